"""Server processes of the benchmark, one per OS process (the machine has 2 cores).

``python -m bench.servers mock``            the Messages API mock (nexus.sim.mock)
``python -m bench.servers stamp``           an SSE upstream that stamps each event with its send time
``python -m bench.servers proxy UPSTREAM``  the real proxy (ProxyService: recording ON, dashboard API)
``python -m bench.servers blackhole``       a collector that accepts connections and never answers
``python -m bench.servers collector``       an OTLP/HTTP collector that accepts every export (and keeps nothing)

Each prints one JSON line (its URLs, pid) on stdout once listening and runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from typing import Any

import orjson


def _announce(info: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps({**info, "pid": os.getpid()}).decode() + "\n")
    sys.stdout.flush()


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def run_mock(port: int) -> None:
    from nexus.sim.mock import MockConfig, MockUpstream

    mock = MockUpstream(MockConfig(require_auth=True), port=port)
    await mock.start()
    _announce({"url": mock.url})
    await _wait_for_signal()
    await mock.stop()


# -- timestamping SSE upstream ----------------------------------------------------------------

def _sse(event: str, data: bytes) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


async def run_stamp(port: int) -> None:
    """A Messages-API-shaped SSE stream whose text deltas carry ``time.time_ns()`` at send time.

    The client subtracts that stamp from its own arrival clock (same host, same CLOCK_REALTIME),
    which measures one event's path end to end without depending on the inter-event delay.
    """
    from aiohttp import web

    async def messages(request: web.Request) -> web.StreamResponse:
        await request.read()
        n = int(request.headers.get("x-mock-events", "20"))
        delay = float(request.headers.get("x-mock-event-delay-ms", "5")) / 1000.0
        resp = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream; charset=utf-8",
                                                       "request-id": "req_stamp"})
        await resp.prepare(request)
        start = {"type": "message_start", "message": {
            "id": "msg_stamp", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 1}}}
        with contextlib.suppress(ConnectionError):
            await resp.write(_sse("message_start", orjson.dumps(start)))
            await resp.write(_sse("content_block_start", b'{"type":"content_block_start","index":0,'
                                                         b'"content_block":{"type":"text","text":""}}'))
            for _ in range(n):
                await asyncio.sleep(delay)
                stamp = str(time.time_ns()).encode()
                await resp.write(_sse("content_block_delta", b'{"type":"content_block_delta","index":0,'
                                      b'"delta":{"type":"text_delta","text":"' + stamp + b'"}}'))
            await resp.write(_sse("content_block_stop", b'{"type":"content_block_stop","index":0}'))
            await resp.write(_sse("message_delta", b'{"type":"message_delta","delta":{"stop_reason":"end_turn",'
                                  b'"stop_sequence":null},"usage":{"output_tokens":' + str(n).encode() + b"}}"))
            await resp.write(_sse("message_stop", b'{"type":"message_stop"}'))
            await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1/messages", messages)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    real = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    _announce({"url": f"http://127.0.0.1:{real}"})
    await _wait_for_signal()
    await runner.cleanup()


async def run_blackhole(port: int) -> None:
    """Accepts TCP connections, reads whatever comes and never answers (a hanging OTLP collector)."""
    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", port)
    _announce({"url": f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"})
    await _wait_for_signal()
    server.close()


async def run_collector(port: int) -> None:
    """Answers every OTLP/HTTP export with an empty (valid) protobuf response."""
    from aiohttp import web

    async def accept(request: web.Request) -> web.StreamResponse:
        await request.read()
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/traces", accept)
    app.router.add_post("/v1/metrics", accept)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    _announce({"url": f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"})  # type: ignore[union-attr]
    await _wait_for_signal()
    await runner.cleanup()


# -- the proxy --------------------------------------------------------------------------------

async def run_proxy(upstream: str, dsn: str, data_dir: str, extra: dict[str, str]) -> None:
    """The proxy as ``nexus proxy`` runs it (``run_servers``), only the settings come from here."""
    from nexus.core.settings import load_settings
    from proxy.service import run_servers

    env = {
        "DATABASE_URL": dsn, "NEXUS_DATA_DIR": data_dir, "PROXY_PORT": "0", "DASHBOARD_PORT": "0",
        "CLAUDE_API_BASE_URL": upstream, "DASHBOARD_API_KEY": "bench-key", "LOG_LEVEL": "WARNING",
        **extra,
    }
    import logging

    logging.basicConfig(level=logging.WARNING)
    def ready(info: dict[str, Any]) -> None:
        _announce({"proxy_url": info["proxy_url"], "dashboard_url": info["dashboard_url"],
                   "dashboard_key": info["dashboard_key"]})

    await run_servers(load_settings(env), ready=ready)  # until SIGTERM


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="bench.servers")
    p.add_argument("kind", choices=("mock", "stamp", "proxy", "blackhole", "collector"))
    p.add_argument("upstream", nargs="?")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--dsn", default="")
    p.add_argument("--data-dir", default="")
    p.add_argument("--env", action="append", default=[], help="NAME=VALUE settings for the proxy")
    a = p.parse_args(argv)
    import uvloop

    if a.kind == "mock":
        uvloop.run(run_mock(a.port))
    elif a.kind == "stamp":
        uvloop.run(run_stamp(a.port))
    elif a.kind == "blackhole":
        uvloop.run(run_blackhole(a.port))
    elif a.kind == "collector":
        uvloop.run(run_collector(a.port))
    else:
        extra = dict(kv.split("=", 1) for kv in a.env)
        uvloop.run(run_proxy(a.upstream, a.dsn, a.data_dir, extra))


if __name__ == "__main__":
    main()
