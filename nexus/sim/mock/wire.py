"""The wire format the mock speaks: ids, response headers (incl. rate limits), errors, JSON and SSE frames.
"""

from __future__ import annotations

import gzip
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from nexus.sim.mock.config import (
    ERROR_TYPES,
    RL_INPUT_TOKENS,
    RL_OUTPUT_TOKENS,
    RL_REQUESTS,
    RL_TOKENS,
    MockState,
)

SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}


JSON_TYPE = "application/json"


def new_id(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def int_header(request: web.Request, name: str) -> int | None:
    raw = request.headers.get(name)
    if raw is None:
        return None
    try:
        return max(0, int(float(raw)))
    except ValueError:
        return None


def common_headers(state: MockState, request: web.Request, in_tok: int = 0, out_tok: int = 0) -> dict[str, str]:
    """request-id and the anthropic-ratelimit-* family, computed from a per-minute window."""
    now = time.time()
    minute = int(now // 60)
    if minute != state.window_start:
        state.window_start = minute
        state.window_requests = state.window_input = state.window_output = 0
        state.window_reset = _rfc3339((minute + 1) * 60)
    state.window_requests += 1
    state.window_input += in_tok
    state.window_output += out_tok
    reset = state.window_reset
    req_left = max(0, RL_REQUESTS - state.window_requests)
    in_left = max(0, RL_INPUT_TOKENS - state.window_input)
    out_left = max(0, RL_OUTPUT_TOKENS - state.window_output)
    headers = {
        "request-id": new_id("req_"),
        "anthropic-organization-id": "00000000-0000-4000-8000-00000000a0c0",
        "anthropic-ratelimit-requests-limit": str(RL_REQUESTS),
        "anthropic-ratelimit-requests-remaining": str(req_left),
        "anthropic-ratelimit-requests-reset": reset,
        "anthropic-ratelimit-tokens-limit": str(RL_TOKENS),
        "anthropic-ratelimit-tokens-remaining": str(in_left + out_left),
        "anthropic-ratelimit-tokens-reset": reset,
        "anthropic-ratelimit-input-tokens-limit": str(RL_INPUT_TOKENS),
        "anthropic-ratelimit-input-tokens-remaining": str(in_left),
        "anthropic-ratelimit-input-tokens-reset": reset,
        "anthropic-ratelimit-output-tokens-limit": str(RL_OUTPUT_TOKENS),
        "anthropic-ratelimit-output-tokens-remaining": str(out_left),
        "anthropic-ratelimit-output-tokens-reset": reset,
    }
    beta = request.headers.get("anthropic-beta")
    if beta is not None:
        headers["x-mock-echo-beta"] = beta
    return headers


def error_response(
    state: MockState, request: web.Request, status: int, etype: str | None = None, message: str | None = None
) -> web.Response:
    default_type, default_msg = ERROR_TYPES.get(status, ("api_error", "Internal server error"))
    headers = common_headers(state, request)
    body = {
        "type": "error",
        "error": {"type": etype or default_type, "message": message or default_msg},
        "request_id": headers["request-id"],
    }
    if status in (429, 529):
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
