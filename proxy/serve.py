"""Run ASGI apps (Quart) under Hypercorn inside the current event loop.

Sockets are bound by us first (``fd://``), so port 0 gives a free port with no race and the
caller learns the real port at once — tests, ``nexus demo`` and the daemon all use this.

Two corrections to Hypercorn (docs/security.md), applied once at import and switched per server
through attributes of its ``Config``:

- **peer close frees the socket at once.** Hypercorn's connection task waits for its keep-alive
  timer before it closes a connection the client already closed, so every connect/close cycle
  held a descriptor in CLOSE-WAIT for ``keep_alive_timeout``. ``_read_data`` now stops that timer
  when the read side ends.
- **h2c is off unless asked for** (``ENABLE_H2C=1``): Hypercorn answers ``Upgrade: h2c`` with 101
  and switches on ``PRI * HTTP/2.0`` with no option to refuse; with ``nexus_h2c = False`` the
  upgrade header is ignored (the request is answered in HTTP/1.1) and the HTTP/2 preface gets an
  HTTP/1.1 error, never an HTTP/2 SETTINGS frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from dataclasses import dataclass, field
from typing import Any

import h11
from hypercorn.asyncio import serve
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.config import Config
from hypercorn.protocol.h11 import H11Protocol

log = logging.getLogger("nexus.serve")

DEFAULT_KEEP_ALIVE_TIMEOUT_S = 30.0


def _patch_hypercorn() -> None:
    if getattr(TCPServer, "_nexus_patched", False):
        return
    read_data = TCPServer._read_data
    check_protocol = H11Protocol._check_protocol

    async def _read_data(self: TCPServer) -> None:
        try:
            await read_data(self)
        finally:
            # The peer is gone (EOF, reset, timeout): nothing is idle any more, so the keep-alive
            # timer must not keep the connection (and its descriptor) for keep_alive_timeout.
            await self.idle_task.stop()

    async def _check_protocol(self: H11Protocol, event: h11.Request) -> None:
        if getattr(self.config, "nexus_h2c", True):
            await check_protocol(self, event)
        # else: `Upgrade: h2c` is ignored (answered in HTTP/1.1) and the HTTP/2 preface is just
        # an HTTP/1.1 request `PRI *` that the app refuses (404), then garbage (400, closed)

    TCPServer._read_data = _read_data  # type: ignore[method-assign]
    H11Protocol._check_protocol = _check_protocol  # type: ignore[method-assign]
    TCPServer._nexus_patched = True  # type: ignore[attr-defined]


_patch_hypercorn()


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot bind {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


@dataclass
class RunningServer:
    """A Hypercorn server task; ``stop()`` shuts it down gracefully."""

    host: str
    port: int
    task: asyncio.Task
    shutdown: asyncio.Event
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def stop(self, timeout: float = 10.0) -> None:
        self.shutdown.set()
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
            await asyncio.wait_for(asyncio.shield(self.task), timeout)
        if not self.task.done():
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task


def hypercorn_config(fd: int, graceful_timeout: float = 30.0, keep_alive_timeout: float = DEFAULT_KEEP_ALIVE_TIMEOUT_S,
                     h2c: bool = False) -> Config:
    """Config serving the listening socket ``fd``; Hypercorn takes ownership of it (and closes it)."""
    config = Config()
    config.bind = [f"fd://{fd}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = graceful_timeout
    config.keep_alive_timeout = keep_alive_timeout  # KEEP_ALIVE_TIMEOUT_S
    config.nexus_h2c = h2c  # type: ignore[attr-defined]  # ENABLE_H2C (see _patch_hypercorn)
    # Quart buffers nothing we stream; these are Hypercorn's own caps and must not cut
    # Anthropic-sized requests or long streams.
    config.h11_max_incomplete_size = 64 * 1024
    config.read_timeout = None
    config.websocket_max_message_size = 1
    # A transparent proxy relays the upstream's own Date/Server headers; adding ours would
    # duplicate them. Apps that want a Date header set it themselves.
    config.include_server_header = False
    config.include_date_header = False
    return config


async def start_server(app: Any, host: str = "127.0.0.1", port: int = 0, graceful_timeout: float = 30.0,
                       keep_alive_timeout: float = DEFAULT_KEEP_ALIVE_TIMEOUT_S, h2c: bool = False) -> RunningServer:
    """Bind ``host:port`` and serve ``app`` in a background task; return once listening."""
    sock = bind_socket(host, port)
    real_port = sock.getsockname()[1]
    shutdown = asyncio.Event()
    # Hypercorn wraps the fd in its own socket object and closes it at shutdown, so ours must
    # let go of it; closing both would close a number the OS may have handed out again.
    fd = sock.detach()
    config = hypercorn_config(fd, graceful_timeout, keep_alive_timeout, h2c)
    task = asyncio.create_task(serve(app, config, shutdown_trigger=shutdown.wait), name=f"hypercorn:{real_port}")
    # Wait until the app's startup (lifespan) has run and the socket accepts.
    for _ in range(500):
        if task.done():
            with contextlib.suppress(OSError):
                os.close(fd)
            task.result()  # raise the startup error
        try:
            _, writer = await asyncio.open_connection(host, real_port)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            break
        except OSError:
            await asyncio.sleep(0.01)
    return RunningServer(host=host, port=real_port, task=task, shutdown=shutdown)
