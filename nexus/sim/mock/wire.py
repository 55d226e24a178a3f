"""The wire format the mock speaks: ids, response headers (incl. rate limits), errors, JSON and SSE frames.
"""

from __future__ import annotations

import gzip
import secrets
from typing import Any

import orjson
from aiohttp import web

from nexus.sim.mock.config import ERROR_TYPES, MockState

SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}


JSON_TYPE = "application/json"


def new_id(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")


def int_header(request: web.Request, name: str) -> int | None:
    raw = request.headers.get(name)
    if raw is None:
        return None
    try:
        return max(0, int(float(raw)))
    except ValueError:
        return None


def common_headers(state: MockState, request: web.Request, in_tok: int = 0, out_tok: int = 0,
                   model: str | None = None) -> dict[str, str]:
    """request-id and the rate-limit headers of this credential (``nexus.sim.mock.limits``)."""
    headers = {
        "request-id": new_id("req_"),
        "anthropic-organization-id": "00000000-0000-4000-8000-00000000a0c0",
    }
    headers.update(state.limits.headers(request, model, in_tok, out_tok))
    beta = request.headers.get("anthropic-beta")
    if beta is not None:
        headers["x-mock-echo-beta"] = beta
    return headers


def error_response(
    state: MockState, request: web.Request, status: int, etype: str | None = None, message: str | None = None,
    limit_headers: dict[str, str] | None = None,
) -> web.Response:
    default_type, default_msg = ERROR_TYPES.get(status, ("api_error", "Internal server error"))
    if limit_headers is None:
        headers = common_headers(state, request)
    else:  # a subscription window is full: the rejection's own unified headers
        headers = {"request-id": new_id("req_"),
                   "anthropic-organization-id": "00000000-0000-4000-8000-00000000a0c0", **limit_headers}
    body = {
        "type": "error",
        "error": {"type": etype or default_type, "message": message or default_msg},
        "request_id": headers["request-id"],
    }
    if status in (429, 529) and "retry-after" not in headers:
        headers["retry-after"] = request.headers.get("x-mock-retry-after", "1" if status == 529 else "2")
    if status == 529:
        headers["x-should-retry"] = "true"
    return web.Response(status=status, body=orjson.dumps(body), content_type=JSON_TYPE, headers=headers)


def json_response(state: MockState, request: web.Request, obj: Any, headers: dict[str, str]) -> web.Response:
    body = orjson.dumps(obj)
    want_gzip = request.headers.get("x-mock-gzip") == "1" or (
        state.config.gzip and "gzip" in request.headers.get("accept-encoding", "")
    )
    if want_gzip:
        body = gzip.compress(body, compresslevel=5)
        headers["Content-Encoding"] = "gzip"
    return web.Response(body=body, content_type=JSON_TYPE, headers=headers)


def sse_frame(event: str, data: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
