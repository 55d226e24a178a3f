"""How an upstream failure is told to the client and recorded: (status, error_type, Anthropic type, message).

Before the response headers arrive a failure becomes a proxy-made error response (502/504/400);
after them, the status is gone, so a stream gets an in-band SSE ``error`` event instead.
"""

from __future__ import annotations

import asyncio

import aiohttp

from proxy.ingress import upstream


def classify_connect_failure(exc: BaseException) -> tuple[int, str, str, str]:
    """(status, recorded error_type, Anthropic error type, message) for a failure before headers."""
    if isinstance(exc, upstream.TLS_ERRORS):
        return 502, "upstream_tls_error", "api_error", "Upstream TLS handshake failed"
    if isinstance(exc, aiohttp.ClientConnectorDNSError if hasattr(aiohttp, "ClientConnectorDNSError") else ()):
        return 502, "upstream_dns_error", "api_error", "Upstream host could not be resolved"
    if isinstance(exc, upstream.CONNECT_ERRORS) and not isinstance(exc, aiohttp.ServerDisconnectedError):
        return 502, "upstream_unreachable", "api_error", "Upstream API is unreachable"
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return 504, "upstream_timeout", "timeout_error", "Upstream API timed out"
    if isinstance(exc, upstream.DISCONNECT_ERRORS):
        return 502, "upstream_disconnected", "api_error", "Upstream closed the connection"
    if isinstance(exc, (ValueError, aiohttp.InvalidURL)):
        return 400, "invalid_request", "invalid_request_error", "Request could not be forwarded: invalid header or URL"
    return 502, "upstream_error", "api_error", "Upstream request failed"


def classify_midway_failure(exc: BaseException) -> tuple[int, str, str, str]:
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return 504, "upstream_timeout", "timeout_error", "Upstream API timed out"
    return 502, "upstream_disconnected", "api_error", "Upstream closed the connection mid-response"
