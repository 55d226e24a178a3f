"""The proxy app (port 3000): ``/v1/*`` forwarding plus ``/health``, ``/token-stats``, ``/metrics``.

``/v1/*`` is served by a raw-ASGI fast path in front of Quart (``ProxyASGI``): the relay needs
none of Quart's request/app contexts, routing or wrappers, and skipping them roughly halves the
proxy's CPU per request (bench/RESULTS.md). Everything else — and any ``/v1`` request the fast
path does not take (HEAD, odd methods, paths Quart's router would redirect) — goes to Quart,
so behaviour is the same either way: same ``forward``, same errors, same 499 on disconnect.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from multidict import CIMultiDict
from quart import Quart, Response, request
from werkzeug.exceptions import HTTPException

from nexus.core.accounts import AccountResolver
from proxy.ingress import upstream
from proxy.ingress.forward import forward
from proxy.ingress.metrics import CONTENT_TYPE
from proxy.ingress.paths import path_problem
from proxy.ingress.relay import Incoming, Relay, anthropic_error, error_relay, to_quart_response
from proxy.runtime import Runtime

V1_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]
FAST_METHODS = frozenset(("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))  # HEAD: Quart's rules

log = logging.getLogger("nexus.proxy")


def _json(data: object, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status=status, content_type="application/json")


def configure_quart(app: Quart) -> None:
    """Lift Quart's caps that would break Anthropic traffic (docs/architecture.md, "Pitfalls")."""
    app.config["RESPONSE_TIMEOUT"] = None  # 60 s default silently truncates long streams
    app.config["BODY_TIMEOUT"] = None
    app.config["MAX_CONTENT_LENGTH"] = None  # we enforce 32 MB ourselves, with Anthropic's error shape
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False


def create_proxy_app(runtime: Runtime) -> ProxyASGI:
    app = Quart("nexus-proxy")
    configure_quart(app)
    app.url_map.merge_slashes = False  # `//` is a 404 (ProxyASGI), never a Host-built redirect
    resolver = AccountResolver(runtime.settings.proxy.credentials_dir)
    state: dict[str, object] = {}

    @app.before_serving
    async def _open_session() -> None:
        state["session"] = upstream.create_session(runtime.settings)

    @app.after_serving
    async def _close_session() -> None:
        session = state.pop("session", None)
        if session is not None:
            await session.close()  # type: ignore[attr-defined]

    @app.route("/v1/<path:path>", methods=V1_METHODS)
    async def v1(path: str) -> Response:
        incoming = Incoming(request.method, request.headers, request.query_string, request.body)
        relay = await forward(runtime, path, state["session"], resolver, incoming)  # type: ignore[arg-type]
        relay.run_after()
        return to_quart_response(relay)

    @app.get("/health")
    async def health() -> Response:
        rec = runtime.recorder
        return _json({
            "status": "ok",
            "instance_id": runtime.instance_id,
            "uptime_s": round(runtime.uptime_s, 1),
            "database": "connected" if runtime.db_connected else "disconnected",
            "queue_depth": rec.queue_depth if rec else 0,
            "journal_records": rec.journal.pending if rec else 0,
            "journal_bytes": rec.journal.size_bytes() if rec else 0,
            "records_written": rec.written if rec else 0,
            "records_dropped": rec.dropped if rec else 0,
        })

    @app.get("/token-stats")
    async def token_stats() -> Response:
        rec = runtime.recorder
        return _json(rec.token_stats.to_json() if rec else {"total_requests": 0})

    @app.get("/metrics")
    async def metrics() -> Response:
        body = runtime.metrics.render() if runtime.metrics is not None else b""
        return Response(body, content_type=CONTENT_TYPE)

    @app.errorhandler(404)
    async def not_found(_exc: Exception) -> Response:
        return anthropic_error(404, "not_found_error", "Not found")

    @app.errorhandler(405)
    async def not_allowed(_exc: Exception) -> Response:
        return anthropic_error(405, "invalid_request_error", "Method not allowed")

    @app.errorhandler(Exception)
    async def crashed(exc: Exception) -> Response:
        if isinstance(exc, HTTPException):
            return anthropic_error(exc.code or 500, "invalid_request_error", exc.description or "error")
        app.logger.exception("unhandled error in proxy")
        return anthropic_error(500, "api_error", "Internal proxy error")

    return ProxyASGI(app, runtime, state, resolver)


def _refuse_path(path: str, raw_path: bytes | None) -> Relay | None:
    """400 for a ``/v1`` path that could leave ``/v1`` upstream; 404 for ``//`` anywhere (Quart's
    router would answer it with a redirect whose Location comes from the client's Host header)."""
    if path.startswith("/v1"):
        problem = path_problem(path, raw_path)
        if problem is not None:
            return error_relay(400, "invalid_request_error", f"Invalid request path: {problem}")
    if "//" in path:
        return error_relay(404, "not_found_error", "Not found")
    return None


async def _send_relay(send: Any, relay: Relay) -> None:
    await send({"type": "http.response.start", "status": relay.status,
                "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in relay.headers]})
    await send({"type": "http.response.body", "body": relay.body, "more_body": False})


class _Disconnected(Exception):
    """The client went away while we were still reading its request body."""


class ProxyASGI:
    """ASGI entry point: ``/v1/*`` straight to ``forward``, the rest to the Quart app.

    Mirrors what Quart does around a handler: the body is read as it arrives, a client that
    disconnects cancels the handler (so ``forward`` records a 499), a crash is a 500 in Anthropic's
    error shape. Attribute access falls through to the Quart app.
    """

    def __init__(self, app: Quart, runtime: Runtime, state: dict[str, object], resolver: AccountResolver) -> None:
        self.app = app
        self.runtime = runtime
        self.state = state
        self.resolver = resolver

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path:
            refusal = _refuse_path(path, scope.get("raw_path"))
            if refusal is not None:
                await _send_relay(send, refusal)
                return
        if (not path.startswith("/v1/") or len(path) == 4 or "//" in path
                or scope["method"] not in FAST_METHODS or "session" not in self.state):
            await self.app(scope, receive, send)
            return
        await self._relay(scope, receive, send, path[4:])

    async def _relay(self, scope: dict, receive: Any, send: Any, path: str) -> None:
        task = asyncio.current_task()
        assert task is not None
        headers = CIMultiDict((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"])
        watcher: asyncio.Task | None = None
        disconnected = False

        async def watch() -> None:
            # Like Quart's receiver task: keep reading (the rest of a refused body, then nothing)
            # until the client disconnects, and then cancel the handler so forward records a 499.
            nonlocal disconnected
            while True:
                msg = await receive()
                if msg["type"] == "http.disconnect":
                    disconnected = True
                    task.cancel()
                    return

        async def body() -> Any:
            nonlocal watcher
            while True:
                msg = await receive()
                if msg["type"] == "http.disconnect":
                    raise _Disconnected
                chunk = msg.get("body", b"")
                if not msg.get("more_body", False):
                    watcher = asyncio.ensure_future(watch())
                    if chunk:
                        yield chunk
                    return
                if chunk:
                    yield chunk

        incoming = Incoming(scope["method"], headers, scope.get("query_string", b""), body())
        started = False
        relay: Relay | None = None
        try:
            relay = await forward(self.runtime, path, self.state["session"], self.resolver,  # type: ignore[arg-type]
                                  incoming)
            if watcher is None:  # forward refused the body before its end
                watcher = asyncio.ensure_future(watch())
            await send({"type": "http.response.start", "status": relay.status,
                        "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in relay.headers]})
            started = True
            if relay.stream is None:
                await send({"type": "http.response.body", "body": relay.body, "more_body": False})
            else:
                await self._send_stream(relay, send)
        except _Disconnected:
            return
        except asyncio.CancelledError:
            if disconnected and task.uncancel() == 0:
                return  # the client left: forward has recorded the 499
            raise
        except Exception:  # noqa: BLE001 - the same answer Quart's error handler gives
            log.exception("unhandled error in proxy")
            if not started:
                err = error_relay(500, "api_error", "Internal proxy error")
                await send({"type": "http.response.start", "status": err.status,
                            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in err.headers]})
                await send({"type": "http.response.body", "body": err.body, "more_body": False})
        finally:
            if relay is not None:
                relay.run_after()  # the record, once the response is on its way (or the client gone)
            if watcher is not None and not watcher.done():
                watcher.cancel()

    @staticmethod
    async def _send_stream(relay: Relay, send: Any) -> None:
        stream = relay.stream
        assert stream is not None
        try:
            async for chunk in stream:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
