"""Port 3001: the dashboard API (``/api/*``, key required), its parameters, responses, auth, the
SSE broker and stream, and the OpenAPI document.
"""
