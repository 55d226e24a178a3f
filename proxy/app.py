"""The proxy app (port 3000): ``/v1/*`` forwarding plus ``/health``, ``/token-stats``, ``/metrics``."""

from __future__ import annotations

import orjson
from quart import Quart, Response

from nexus.accounts import AccountResolver
from proxy import upstream
from proxy.context import Runtime
from proxy.forward import anthropic_error, forward
from proxy.metrics import CONTENT_TYPE

V1_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]


def _json(data: object, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status=status, content_type="application/json")


def configure_quart(app: Quart) -> None:
    """Lift Quart's caps that would break Anthropic traffic (see DESIGN.md pitfalls)."""
    app.config["RESPONSE_TIMEOUT"] = None  # 60 s default silently truncates long streams
    app.config["BODY_TIMEOUT"] = None
    app.config["MAX_CONTENT_LENGTH"] = None  # we enforce 32 MB ourselves, with Anthropic's error shape
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False


def create_proxy_app(runtime: Runtime) -> Quart:
    app = Quart("nexus-proxy")
    configure_quart(app)
    resolver = AccountResolver(runtime.settings.credentials_dir)
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
        return await forward(runtime, path, state["session"], resolver)  # type: ignore[arg-type]

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
        from werkzeug.exceptions import HTTPException

        if isinstance(exc, HTTPException):
            return anthropic_error(exc.code or 500, "invalid_request_error", exc.description or "error")
        app.logger.exception("unhandled error in proxy")
        return anthropic_error(500, "api_error", "Internal proxy error")

    return app
