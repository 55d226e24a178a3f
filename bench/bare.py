"""Reference forwarders without recording, to see what the frameworks themselves cost.

``python -m bench.bare quart UPSTREAM``  Quart route + aiohttp relay (the setup measured in bench/RESULTS.md)
``python -m bench.bare asgi UPSTREAM``   a raw ASGI callable under Hypercorn + aiohttp relay
``python -m bench.bare aiohttp UPSTREAM`` aiohttp.web server + aiohttp relay (no Hypercorn at all)

The first two use the proxy's serving code (``proxy.serve.start_server``: Hypercorn, uvloop). Prints one JSON
line with its URL once listening; runs until SIGTERM.
"""

from __future__ import annotations

import sys
from typing import Any

import aiohttp

from bench.servers import _announce, _wait_for_signal

HOP = {b"host", b"content-length", b"connection", b"keep-alive", b"transfer-encoding"}
SKIP = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")


def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), auto_decompress=False,
                                 skip_auto_headers=SKIP)


def quart_app(upstream: str) -> Any:
    from quart import Quart, Response, request

    app = Quart("bare")
    state: dict[str, aiohttp.ClientSession] = {}

    @app.before_serving
    async def _open() -> None:
        state["s"] = _session()

    @app.route("/v1/<path:path>", methods=["GET", "POST"])
    async def v1(path: str) -> Response:
        body = await request.get_data()
        headers = [(k, v) for k, v in request.headers.items() if k.lower().encode() not in HOP]
        async with state["s"].request(request.method, upstream + "/v1/" + path, data=body, headers=headers) as r:
            raw = await r.read()
            out = Response(raw, status=r.status)
            out.headers.clear()
            for k, v in r.headers.items():
                if k.lower().encode() not in HOP or k.lower() == "content-length":
                    out.headers.add(k, v)
            return out

    return app


def asgi_app(upstream: str) -> Any:
    state: dict[str, aiohttp.ClientSession] = {}

    async def app(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    state["s"] = _session()
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await state["s"].close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        more = True
        while more:
            msg = await receive()
            body += msg.get("body", b"")
            more = msg.get("more_body", False)
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"] if k not in HOP]
        async with state["s"].request(scope["method"], upstream + scope["path"], data=body, headers=headers) as r:
            if r.content_type == "text/event-stream":  # relay a stream chunk by chunk, as the proxy does
                out = [(k, v) for k, v in r.raw_headers if k.lower() not in HOP]
                await send({"type": "http.response.start", "status": r.status, "headers": out})
                async for chunk in r.content.iter_any():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
                return
            raw = await r.read()
            out = [(k, v) for k, v in r.raw_headers if k.lower() not in HOP or k.lower() == b"content-length"]
        await send({"type": "http.response.start", "status": r.status, "headers": out})
        await send({"type": "http.response.body", "body": raw})

    return app


async def _run_aiohttp(upstream: str) -> None:
    from aiohttp import web

    session = _session()

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = [(k, v) for k, v in request.headers.items() if k.lower().encode() not in HOP]
        async with session.request(request.method, upstream + request.path, data=body, headers=headers) as r:
            if r.content_type == "text/event-stream":
                resp = web.StreamResponse(status=r.status,
                                          headers=[(k, v) for k, v in r.headers.items() if k.lower().encode() not in HOP])
                await resp.prepare(request)
                async for chunk in r.content.iter_any():
                    await resp.write(chunk)
                await resp.write_eof()
                return resp
            raw = await r.read()
            out = [(k, v) for k, v in r.headers.items() if k.lower().encode() not in HOP]
        return web.Response(body=raw, status=r.status, headers=out)

    server = web.Server(handle)
    runner = web.ServerRunner(server, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    _announce({"proxy_url": f"http://127.0.0.1:{port}"})
    await _wait_for_signal()
    await runner.cleanup()
    await session.close()


async def _run(kind: str, upstream: str) -> None:
    from proxy.serve import start_server

    if kind == "aiohttp":
        await _run_aiohttp(upstream)
        return
    app = quart_app(upstream) if kind == "quart" else asgi_app(upstream)
    srv = await start_server(app)
    _announce({"proxy_url": srv.url})
    await _wait_for_signal()
    await srv.stop(5)


if __name__ == "__main__":
    import uvloop

    uvloop.run(_run(sys.argv[1], sys.argv[2].rstrip("/")))
