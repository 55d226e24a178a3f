"""Real capture servers for the alert channels: HTTP (Slack, webhook, PagerDuty), SMTP, and ones that fail.

``capture`` is a fixture (registered by ``tests/conftest.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from dataclasses import dataclass, field
from email import message_from_bytes as _parse_mail
from email import policy as _mail_policy
from typing import Any

import pytest
from aiohttp import web


@dataclass
class Received:
    path: str
    json: Any
    headers: dict[str, str]


@dataclass
class CaptureServer:
    """A tiny HTTP server that records every POST; ``fail_first`` answers 500 that many times."""

    fail_first: int = 0
    received: list[Received] = field(default_factory=list)
    attempts: int = 0
    _runner: web.AppRunner | None = None
    port: int = 0
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def _handle(self, request: web.Request) -> web.Response:
        self.attempts += 1
        if self.fail_first > 0:
            self.fail_first -= 1
            return web.Response(status=500, text="try again")
        self.received.append(Received(request.path, await request.json(), dict(request.headers)))
        self._arrived.set()
        return web.Response(text="ok")

    async def start(self) -> CaptureServer:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def on(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def wait_for(self, n: int, path: str | None = None, timeout: float = 5.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while True:
            got = self.received if path is None else self.on(path)
            if len(got) >= n or time.monotonic() > deadline:
                return got
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), max(0.01, deadline - time.monotonic()))


class HangingServer:
    """Accepts connections and never answers: the worst kind of receiver."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        with contextlib.suppress(Exception):
            await reader.read(-1)

    async def start(self) -> HangingServer:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        for w in self.writers:
            w.close()
        if self.server is not None:
            self.server.close()


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# Ports held bound (never listening) for the whole test run: a connect is refused, and no server
# started later can take the port. A port merely found free and released (``free_port``) can be
# handed to the next server the same test starts — the proxy or the dashboard — and the "dead"
# URL then answers (HTTP 404): a flake seen in CI.
_HELD: list[socket.socket] = []


def refused_url() -> str:
    """A loopback URL whose connections are refused, for as long as the tests run."""
    s = socket.socket()  # no SO_REUSEADDR: nobody else can bind this port while it is held
    s.bind(("127.0.0.1", 0))
    _HELD.append(s)
    return f"http://127.0.0.1:{s.getsockname()[1]}/dead"


def message_from_bytes(raw: bytes):
    return _parse_mail(raw, policy=_mail_policy.default)


class SmtpSink:
    """aiosmtpd handler keeping every message."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
async def capture():
    srv = await CaptureServer().start()
    try:
        yield srv
    finally:
        await srv.stop()
