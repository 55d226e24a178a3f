"""A simulated Anthropic Messages API, as a real HTTP server (aiohttp.web).

Why it exists: tests, the benchmarks and ``nexus demo`` need an upstream that speaks the wire
protocol faithfully (the same JSON shapes, the same SSE event sequence, the same headers) without
an API key or network. It is also the *direct* baseline of the proxy benchmarks, so the hot path
is deliberately lean: no middleware, orjson, no think time unless asked for. It is a test double
shipped beside the real thing, as httpx ships ``MockTransport``.

Behaviour can be steered per request with ``x-mock-*`` headers (the proxy forwards them
unchanged, so a test talking to the proxy can script what the upstream does) or globally with
:class:`MockConfig` (``error_rate`` for the demo). ``GET /_mock/requests`` shows what reached the
upstream, so tests can assert that the proxy forwarded query strings and headers intact.

====================  ==================================================
``config``            models, error types, budgets; ``MockConfig``, ``MockState``
``wire``              ids, headers (rate limits), errors, JSON and SSE frames
``cache``             token counting and the prompt cache
``content``           answer text and tool calls
``handlers``          the routes
``server``            ``MockUpstream``: the app on a loopback port
====================  ==================================================
"""

from __future__ import annotations

from nexus.sim.mock.config import ERROR_TYPES, MODELS, MockConfig, MockState
from nexus.sim.mock.server import MockUpstream, create_mock_app

__all__ = ["ERROR_TYPES", "MODELS", "MockConfig", "MockState", "MockUpstream", "create_mock_app"]
