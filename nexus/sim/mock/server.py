"""The mock as a real aiohttp server on loopback: ``MockUpstream`` (an async context manager) and its app.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
from typing import Any

from aiohttp import web

from nexus.core.errors import CommandError
from nexus.sim.mock.config import MAX_BODY_BYTES, STATE_KEY, MockConfig, MockState
from nexus.sim.mock.handlers import (
    handle_count_tokens,
    handle_messages,
    handle_mock_incident,
    handle_mock_limits,
    handle_mock_requests,
    handle_mock_reset,
    handle_mock_webhook,
    handle_models,
    handle_not_found,
)


def create_mock_app(config: MockConfig | None = None) -> web.Application:
    """The mock as an aiohttp Application (state in ``app[STATE_KEY]``)."""
    app = web.Application(client_max_size=MAX_BODY_BYTES + 8 * 1024 * 1024)
    app[STATE_KEY] = MockState(config or MockConfig())
    r = app.router
    r.add_post("/v1/messages", handle_messages)
    r.add_post("/v1/messages/count_tokens", handle_count_tokens)
    r.add_get("/v1/models", handle_models)
    r.add_get("/v1/models/{model_id}", handle_models)
    r.add_get("/_mock/requests", handle_mock_requests)
    r.add_post("/_mock/reset", handle_mock_reset)
    r.add_get("/_mock/limits", handle_mock_limits)
    r.add_post("/_mock/incident", handle_mock_incident)
    r.add_route("GET", "/_mock/webhook", handle_mock_webhook)
    r.add_post("/_mock/webhook", handle_mock_webhook)
    r.add_route("*", "/{tail:.*}", handle_not_found)
    return app


class MockUpstream:
    """The mock on a real loopback port, as an async context manager.

    ``port=0`` picks a free port; ``url`` is known once started.
    """

    def __init__(self, config: MockConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config or MockConfig()
        self.host = host
        self.port = port
        self.app = create_mock_app(self.config)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def state(self) -> MockState:
        return self.app[STATE_KEY]

    @property
    def requests(self) -> list[dict[str, Any]]:
        """What the mock received, oldest first (bounded by ``MockConfig.max_recorded``)."""
        return list(self.state.requests)

    async def start(self) -> None:
        # Short shutdown timeout: a stalled test stream must not hold ``stop()`` for a minute.
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024)
        await site.start()
        server = site._server
        if server is not None and getattr(server, "sockets", None):
            self.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> MockUpstream:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def serve_forever(mock: MockUpstream) -> None:
    try:
        await mock.start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise CommandError(f"mock upstream: port {mock.port} on {mock.host} is already in use") from None
        raise CommandError(f"mock upstream: cannot listen on {mock.host}:{mock.port}: {exc.strerror or exc}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    # Announce only once signals are handled: a script may send SIGTERM right after this line.
    print(f"mock upstream listening on {mock.url}", flush=True)
    try:
        await stop.wait()
    finally:
        await mock.stop()
