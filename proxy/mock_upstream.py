"""A simulated Anthropic Messages API, as a real HTTP server (aiohttp.web).

Why it exists: tests, the benchmarks and ``nexus demo`` need an upstream that speaks the wire
protocol faithfully (the same JSON shapes, the same SSE event sequence, the same headers) without
an API key or network. It is also the *direct* baseline of the proxy benchmarks, so the hot path
is deliberately lean: no middleware, orjson, no think time unless asked for.

Behaviour can be steered per request with ``x-mock-*`` headers (the proxy forwards them
unchanged, so a test talking to the proxy can script what the upstream does) or globally with
:class:`MockConfig` (``error_rate`` for the demo). ``GET /_mock/requests`` shows what reached the
upstream, so tests can assert that the proxy forwarded query strings and headers intact.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import functools
import gzip
import hashlib
import logging
import random
import secrets
import signal
import sys
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

if TYPE_CHECKING:
    from nexus.config import Settings

__all__ = ["MockConfig", "MockUpstream", "MockState", "create_mock_app", "cli_main", "MODELS"]

MAX_BODY_BYTES = 32 * 1024 * 1024
"""The real API rejects request bodies above 32 MB with 413 ``request_too_large``."""

ERROR_TYPES: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "There was an issue with the format or content of your request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "Not found"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}
"""Status → (error.type, message), as the Anthropic API documents its errors."""

_TYPE_TO_STATUS = {etype: status for status, (etype, _msg) in ERROR_TYPES.items()}

MODELS: list[dict[str, str]] = [
    {"id": "claude-opus-5-5", "display_name": "Claude Opus 5.5", "created_at": "2026-10-07T00:00:00Z"},
    {"id": "claude-sonnet-5-5", "display_name": "Claude Sonnet 5.5", "created_at": "2026-10-07T00:00:00Z"},
    {"id": "claude-haiku-5-5", "display_name": "Claude Haiku 5.5", "created_at": "2026-10-07T00:00:00Z"},
    {"id": "claude-opus-5", "display_name": "Claude Opus 5", "created_at": "2026-07-01T00:00:00Z"},
    {"id": "claude-sonnet-5", "display_name": "Claude Sonnet 5", "created_at": "2026-07-01T00:00:00Z"},
    {"id": "claude-opus-4-8", "display_name": "Claude Opus 4.8", "created_at": "2026-05-01T00:00:00Z"},
    {"id": "claude-opus-4-7", "display_name": "Claude Opus 4.7", "created_at": "2026-03-01T00:00:00Z"},
    {"id": "claude-opus-4-6", "display_name": "Claude Opus 4.6", "created_at": "2026-02-01T00:00:00Z"},
    {"id": "claude-sonnet-4-6", "display_name": "Claude Sonnet 4.6", "created_at": "2026-02-01T00:00:00Z"},
    {"id": "claude-opus-4-5-20251101", "display_name": "Claude Opus 4.5", "created_at": "2025-11-01T00:00:00Z"},
    {"id": "claude-haiku-4-5-20251001", "display_name": "Claude Haiku 4.5", "created_at": "2025-10-01T00:00:00Z"},
    {"id": "claude-sonnet-4-5-20250929", "display_name": "Claude Sonnet 4.5", "created_at": "2025-09-29T00:00:00Z"},
    {"id": "claude-opus-4-1-20250805", "display_name": "Claude Opus 4.1", "created_at": "2025-08-05T00:00:00Z"},
]

_WORDS = (
    "the proxy records every request and the monitor shows latency tokens and cost as they happen "
    "streaming responses arrive event by event so the first token reaches the client early while "
    "usage is reported in message start and the final message delta carries cumulative counts"
).split()

# Rate-limit buckets the headers describe (per minute, like a mid-tier organisation).
_RL_REQUESTS = 4_000
_RL_INPUT_TOKENS = 2_000_000
_RL_OUTPUT_TOKENS = 400_000
_RL_TOKENS = _RL_INPUT_TOKENS + _RL_OUTPUT_TOKENS

log = logging.getLogger("nexus.mock_upstream")

_SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
_JSON = "application/json"


@dataclass
class MockConfig:
    """Global behaviour; per-request ``x-mock-*`` headers override it.

    ``error_rate`` answers that share of message requests with a random 429/529/500 and
    ``stream_error_rate`` turns that share of streams into a 200 that ends in an ``error`` event —
    the demo uses them so the monitor has errors to show. ``seed`` makes that choice repeatable.
    ``max_recorded`` bounds the request log of ``/_mock/requests``; ``cache_ttl_scale`` shrinks the
    5 m / 1 h prompt-cache lifetimes so a test can watch an entry expire.
    """

    latency_ms: float = 0
    event_delay_ms: float = 0
    error_rate: float = 0.0
    stream_error_rate: float = 0.0
    gzip: bool = False
    require_auth: bool = True
    seed: int | None = None
    events: int = 5
    max_recorded: int = 1000
    cache_ttl_scale: float = 1.0


@dataclass
class MockState:
    """Mutable state of one mock app: recorded requests, the prompt cache, rate-limit window."""

    config: MockConfig
    requests: deque[dict[str, Any]] = field(init=False)
    rng: random.Random = field(init=False)
    # prefix hash -> expiry (monotonic); bounded so a long demo cannot grow it without limit.
    cache: OrderedDict[bytes, float] = field(default_factory=OrderedDict)
    window_start: int = 0
    window_requests: int = 0
    window_input: int = 0
    window_output: int = 0
    window_reset: str = ""

    def __post_init__(self) -> None:
        self.requests = deque(maxlen=max(1, self.config.max_recorded))
        self.rng = random.Random(self.config.seed)

    # An "incident": a higher error rate until a monotonic deadline (POST /_mock/incident), so a
    # demo can show an alert firing and resolving.
    incident_rate: float = 0.0
    incident_until: float = 0.0
    webhooks: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=200))

    def current_error_rate(self) -> float:
        if self.incident_until and time.monotonic() < self.incident_until:
            return max(self.config.error_rate, self.incident_rate)
        return self.config.error_rate

    def reset(self) -> None:
        self.requests.clear()
        self.cache.clear()
        self.webhooks.clear()
        self.incident_until = 0.0


STATE_KEY: web.AppKey[MockState] = web.AppKey("mock_state", MockState)


# --------------------------------------------------------------------------------------------
# helpers


def _new_id(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _int_header(request: web.Request, name: str) -> int | None:
    raw = request.headers.get(name)
    if raw is None:
        return None
    try:
        return max(0, int(float(raw)))
    except ValueError:
        return None


def _common_headers(state: MockState, request: web.Request, in_tok: int = 0, out_tok: int = 0) -> dict[str, str]:
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
    req_left = max(0, _RL_REQUESTS - state.window_requests)
    in_left = max(0, _RL_INPUT_TOKENS - state.window_input)
    out_left = max(0, _RL_OUTPUT_TOKENS - state.window_output)
    headers = {
        "request-id": _new_id("req_"),
        "anthropic-organization-id": "00000000-0000-4000-8000-00000000a0c0",
        "anthropic-ratelimit-requests-limit": str(_RL_REQUESTS),
        "anthropic-ratelimit-requests-remaining": str(req_left),
        "anthropic-ratelimit-requests-reset": reset,
        "anthropic-ratelimit-tokens-limit": str(_RL_TOKENS),
        "anthropic-ratelimit-tokens-remaining": str(in_left + out_left),
        "anthropic-ratelimit-tokens-reset": reset,
        "anthropic-ratelimit-input-tokens-limit": str(_RL_INPUT_TOKENS),
        "anthropic-ratelimit-input-tokens-remaining": str(in_left),
        "anthropic-ratelimit-input-tokens-reset": reset,
        "anthropic-ratelimit-output-tokens-limit": str(_RL_OUTPUT_TOKENS),
        "anthropic-ratelimit-output-tokens-remaining": str(out_left),
        "anthropic-ratelimit-output-tokens-reset": reset,
    }
    beta = request.headers.get("anthropic-beta")
    if beta is not None:
        headers["x-mock-echo-beta"] = beta
    return headers


def _error_response(
    state: MockState, request: web.Request, status: int, etype: str | None = None, message: str | None = None
) -> web.Response:
    default_type, default_msg = ERROR_TYPES.get(status, ("api_error", "Internal server error"))
    headers = _common_headers(state, request)
    body = {
        "type": "error",
        "error": {"type": etype or default_type, "message": message or default_msg},
        "request_id": headers["request-id"],
    }
    if status in (429, 529):
        headers["retry-after"] = request.headers.get("x-mock-retry-after", "1" if status == 529 else "2")
    if status == 529:
        headers["x-should-retry"] = "true"
    return web.Response(status=status, body=orjson.dumps(body), content_type=_JSON, headers=headers)


def _record(state: MockState, request: web.Request, body_size: int) -> None:
    state.requests.append(
        {
            "time": time.time(),
            "method": request.method,
            "path": request.path,
            # Raw, as sent: a proxy that re-encodes the query string must be caught by tests.
            "query_string": request.raw_path.partition("?")[2],
            "headers": [[k, v] for k, v in request.headers.items()],
            "body_size": body_size,
        }
    )


def _has_auth(request: web.Request) -> bool:
    return bool(request.headers.get("x-api-key") or request.headers.get("authorization"))


def _drop(request: web.Request) -> None:
    """Abort the TCP connection: no response, no chunked terminator (a crashed upstream)."""
    transport = request.transport
    if transport is not None:
        transport.abort()


async def _think(state: MockState, request: web.Request) -> None:
    raw = request.headers.get("x-mock-latency-ms")
    delay = state.config.latency_ms
    if raw is not None:
        with contextlib.suppress(ValueError):
            delay = float(raw)
    if delay > 0:
        await asyncio.sleep(delay / 1000.0)


def _maybe_injected(state: MockState, request: web.Request) -> web.Response | None:
    raw = request.headers.get("x-mock-status")
    if raw is None:
        return None
    try:
        status = int(raw)
    except ValueError:
        return None
    if status < 400:
        return None
    return _error_response(state, request, status)


# --------------------------------------------------------------------------------------------
# token accounting


def _dumps_len(obj: Any) -> int:
    return len(orjson.dumps(obj))


def _prompt_segments(payload: dict[str, Any]) -> list[bytes]:
    """The prompt in cache order (tools, system, messages), one serialised piece per block."""
    segments: list[bytes] = []
    tools = payload.get("tools")
    if isinstance(tools, list):
        segments.extend(orjson.dumps(t) for t in tools)
    system = payload.get("system")
    if isinstance(system, list):
        segments.extend(orjson.dumps(b) for b in system)
    elif system:
        segments.append(orjson.dumps(system))
    messages = payload.get("messages")
    if isinstance(messages, list):
        segments.extend(orjson.dumps(m) for m in messages)
    return segments


@dataclass
class _Usage:
    input_tokens: int
    output_tokens: int
    cache_write_5m: int = 0
    cache_write_1h: int = 0
    cache_read: int = 0

    @property
    def cache_write(self) -> int:
        return self.cache_write_5m + self.cache_write_1h

    def as_dict(self, output_tokens: int | None = None) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_write,
            "cache_read_input_tokens": self.cache_read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.cache_write_5m,
                "ephemeral_1h_input_tokens": self.cache_write_1h,
            },
            "output_tokens": self.output_tokens if output_tokens is None else output_tokens,
            "service_tier": "standard",
        }


def _count_prompt(state: MockState, payload: dict[str, Any], raw: bytes, use_cache: bool) -> _Usage:
    """Deterministic token counts: ~4 bytes of JSON per token, like a rough tokenizer.

    With ``cache_control`` present, everything up to the last breakpoint is the cached prefix:
    the first time a prefix is seen it is a cache write (5m or 1h bucket by its ``ttl``), later
    within the TTL it is a cache read — so repeated conversations show cache hits as they would
    against the real API.
    """
    if not use_cache or b"cache_control" not in raw:
        n = sum(len(s) for s in _prompt_segments(payload))
        return _Usage(input_tokens=max(1, n // 4), output_tokens=0)
    segments = _prompt_segments(payload)
    last_cc = -1
    for i, seg in enumerate(segments):
        if b"cache_control" in seg:
            last_cc = i
    total = sum(len(s) for s in segments)
    prefix = segments[: last_cc + 1]
    prefix_len = sum(len(s) for s in prefix)
    cached = prefix_len // 4
    usage = _Usage(input_tokens=max(1, (total - prefix_len) // 4), output_tokens=0)
    if cached <= 0:
        return usage
    one_hour = b'"ttl":"1h"' in segments[last_cc]
    h = hashlib.blake2b(digest_size=16)
    h.update(str(payload.get("model")).encode())
    for seg in prefix:
        h.update(seg)
    key = h.digest()
    now = time.monotonic()
    expiry = state.cache.get(key)
    ttl = (3600.0 if one_hour else 300.0) * state.config.cache_ttl_scale
    if expiry is not None and expiry > now:
        usage.cache_read = cached
        state.cache[key] = now + ttl  # a hit refreshes the TTL, as documented
        state.cache.move_to_end(key)
    else:
        if one_hour:
            usage.cache_write_1h = cached
        else:
            usage.cache_write_5m = cached
        state.cache[key] = now + ttl
        if len(state.cache) > 10_000:
            state.cache.popitem(last=False)
    return usage


def _steer_usage(request: web.Request, usage: _Usage) -> None:
    hdr = request.headers
    if "x-mock-input-tokens" in hdr:
        usage.input_tokens = _int_header(request, "x-mock-input-tokens") or 0
    if "x-mock-cache-read" in hdr:
        usage.cache_read = _int_header(request, "x-mock-cache-read") or 0
    if "x-mock-cache-write" in hdr:
        usage.cache_write_5m = _int_header(request, "x-mock-cache-write") or 0
        usage.cache_write_1h = 0


@functools.lru_cache(maxsize=2048)
def _text_for(output_tokens: int) -> str:
    """Roughly one word per output token (capped, so huge steered counts stay cheap)."""
    n = max(1, min(output_tokens, 2000))
    words = [_WORDS[i % len(_WORDS)] for i in range(n)]
    return " ".join(words).capitalize() + "."


def _split(text: str, parts: int) -> list[str]:
    """Cut ``text`` into exactly ``parts`` pieces (fewer only if it is shorter than that).

    Whole words go together when there are enough of them, so deltas look like token runs;
    otherwise (tool JSON) the cut is by characters.
    """
    parts = max(1, min(parts, len(text)))
    words = text.split(" ")
    if len(words) >= parts:
        bounds = [round(k * len(words) / parts) for k in range(parts + 1)]
        chunks = [" ".join(words[bounds[k] : bounds[k + 1]]) for k in range(parts)]
        return [c if k == 0 else " " + c for k, c in enumerate(chunks)]
    bounds = [round(k * len(text) / parts) for k in range(parts + 1)]
    return [text[bounds[k] : bounds[k + 1]] for k in range(parts)]


def _pick_tool(payload: dict[str, Any], request: web.Request) -> dict[str, Any] | None:
    """Which tool the "model" calls, if any.

    Deterministic stand-in for the model's choice: a tool is used when ``tool_choice`` forces
    one (``any`` / ``tool``), when ``x-mock-tool-use: 1`` asks for it, or when the last user
    message mentions a tool by name; never with ``tool_choice: none``.
    """
    tools = payload.get("tools")
    if not isinstance(tools, list) or not tools:
        return None
    named = [t for t in tools if isinstance(t, dict) and isinstance(t.get("name"), str)]
    if not named:
        return None
    choice = payload.get("tool_choice")
    ctype = choice.get("type") if isinstance(choice, dict) else None
    if ctype == "none":
        return None
    if ctype == "tool":
        for t in named:
            if t["name"] == choice.get("name"):  # type: ignore[union-attr]
                return t
        return named[0]
    if ctype == "any" or request.headers.get("x-mock-tool-use") == "1":
        return named[0]
    messages = payload.get("messages") or []
    last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
    content = last.get("content")
    text = content if isinstance(content, str) else orjson.dumps(content).decode() if content else ""
    for t in named:
        if t["name"] in text:
            return t
    return None


def _example_value(schema: Any, name: str) -> Any:
    if not isinstance(schema, dict):
        return "example"
    if "enum" in schema and schema["enum"]:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "string":
        return {"location": "San Francisco, CA", "city": "Paris", "path": "src/main.py"}.get(name, f"example {name}")
    if kind == "integer":
        return 42
    if kind == "number":
        return 3.5
    if kind == "boolean":
        return True
    if kind == "array":
        return [_example_value(schema.get("items"), name)]
    if kind == "object":
        return _tool_input(schema)
    return "example"


def _tool_input(schema: Any) -> dict[str, Any]:
    """An input object that satisfies the tool's schema (its required properties, or all)."""
    if not isinstance(schema, dict):
        return {}
    props = schema.get("properties") or {}
    if not isinstance(props, dict):
        return {}
    names = schema.get("required") or list(props)
    return {n: _example_value(props.get(n), n) for n in names if isinstance(n, str)}


# --------------------------------------------------------------------------------------------
# handlers


async def _read_json(state: MockState, request: web.Request) -> tuple[dict[str, Any] | None, bytes, web.Response | None]:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        _record(state, request, request.content_length or -1)
        return None, b"", _error_response(state, request, 413)
    _record(state, request, len(raw))
    if len(raw) > MAX_BODY_BYTES:
        return None, raw, _error_response(state, request, 413)
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, raw, _error_response(state, request, 400, message="There was an issue with the format "
                                          "or content of your request: invalid JSON body")
    if not isinstance(payload, dict):
        return None, raw, _error_response(state, request, 400, message="request body must be a JSON object")
    return payload, raw, None


def _validate(payload: dict[str, Any], need_max_tokens: bool) -> str | None:
    if not isinstance(payload.get("model"), str) or not payload["model"]:
        return "model: Field required"
    if need_max_tokens:
        mt = payload.get("max_tokens")
        if isinstance(mt, bool) or not isinstance(mt, int):
            return "max_tokens: Field required"
        if mt < 1:
            return "max_tokens: Input should be greater than or equal to 1"
    messages = payload.get("messages")
    if not isinstance(messages, list):
        return "messages: Field required"
    if not messages:
        return "messages: at least one message is required"
    return None


async def _preflight(state: MockState, request: web.Request) -> web.Response | None:
    """Steps every API route shares: think time, drop, injected status, auth."""
    await _think(state, request)
    if request.headers.get("x-mock-drop") == "before-headers":
        _drop(request)
        return web.Response(status=500)  # never reaches the client: the socket is gone
    injected = _maybe_injected(state, request)
    if injected is not None:
        return injected
    if state.config.require_auth and not _has_auth(request):
        return _error_response(state, request, 401, message="x-api-key header is required")
    return None


async def _checked_payload(state: MockState, request: web.Request,
                           need_max_tokens: bool) -> web.StreamResponse | tuple[dict[str, Any], bytes]:
    """The request's JSON and raw bytes, or the error the real API would answer first.

    Order as the handlers had it: body read, then injected status / auth, then parse errors,
    then validation.
    """
    payload, raw, err = await _read_json(state, request)
    pre = await _preflight(state, request)
    if pre is not None:
        return pre
    if err is not None:
        return err
    assert payload is not None
    problem = _validate(payload, need_max_tokens=need_max_tokens)
    if problem:
        return _error_response(state, request, 400, message=problem)
    return payload, raw


async def handle_messages(request: web.Request) -> web.StreamResponse:
    """POST /v1/messages: a message, or its SSE stream when ``stream: true``."""
    state = request.app[STATE_KEY]
    checked = await _checked_payload(state, request, need_max_tokens=True)
    if isinstance(checked, web.StreamResponse):
        return checked
    payload, raw = checked

    cfg = state.config
    streaming = payload.get("stream") is True
    error_rate = state.current_error_rate()
    if error_rate > 0 and state.rng.random() < error_rate:
        return _error_response(state, request, state.rng.choice((429, 429, 529, 529, 500)))
    stream_error = request.headers.get("x-mock-stream-error")
    if streaming and not stream_error and cfg.stream_error_rate > 0 and state.rng.random() < cfg.stream_error_rate:
        stream_error = "overloaded_error"

    usage = _count_prompt(state, payload, raw, use_cache=True)
    _steer_usage(request, usage)
    max_tokens: int = payload["max_tokens"]
    steered_out = _int_header(request, "x-mock-output-tokens")
    stop_reason = "end_turn"
    if steered_out is not None:
        usage.output_tokens = steered_out
    else:
        usage.output_tokens = min(max_tokens, 24 + usage.input_tokens % 97)
        if usage.output_tokens == max_tokens:
            stop_reason = "max_tokens"
    tool = _pick_tool(payload, request)
    if tool is not None:
        stop_reason = "tool_use"
    model: str = payload["model"]
    msg_id = _new_id("msg_")
    headers = _common_headers(state, request, usage.input_tokens + usage.cache_write, usage.output_tokens)

    if streaming:
        return await _stream(state, request, headers, msg_id, model, usage, tool, stop_reason, stream_error)

    text = _text_for(usage.output_tokens)
    content: list[dict[str, Any]] = []
    if tool is not None:
        content.append({"type": "text", "text": f"I'll use the {tool['name']} tool."})
        content.append({"type": "tool_use", "id": _new_id("toolu_"), "name": tool["name"],
                        "input": _tool_input(tool.get("input_schema"))})
    else:
        content.append({"type": "text", "text": text})
    message = {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage.as_dict(),
    }
    if request.headers.get("x-mock-drop") == "mid-stream":
        return await _drop_mid_body(request, orjson.dumps(message), headers)
    return _json_response(state, request, message, headers)


async def _drop_mid_body(request: web.Request, body: bytes, headers: dict[str, str]) -> web.StreamResponse:
    """A non-streaming answer cut off halfway: headers and a ``content-length`` promise, half the body."""
    resp = web.StreamResponse(status=200, headers={**headers, "Content-Type": _JSON})
    resp.content_length = len(body)
    await resp.prepare(request)
    with contextlib.suppress(ConnectionError):
        await resp.write(body[: len(body) // 2])
    _drop(request)
    return resp


def _json_response(state: MockState, request: web.Request, obj: Any, headers: dict[str, str]) -> web.Response:
    body = orjson.dumps(obj)
    want_gzip = request.headers.get("x-mock-gzip") == "1" or (
        state.config.gzip and "gzip" in request.headers.get("accept-encoding", "")
    )
    if want_gzip:
        body = gzip.compress(body, compresslevel=5)
        headers["Content-Encoding"] = "gzip"
    return web.Response(body=body, content_type=_JSON, headers=headers)


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


async def _stream(
    state: MockState,
    request: web.Request,
    headers: dict[str, str],
    msg_id: str,
    model: str,
    usage: _Usage,
    tool: dict[str, Any] | None,
    stop_reason: str,
    stream_error: str | None,
) -> web.StreamResponse:
    """Write the real event sequence, one ``write`` (one TCP send) per event."""
    cfg = state.config
    delay_ms = cfg.event_delay_ms
    raw_delay = request.headers.get("x-mock-event-delay-ms")
    if raw_delay is not None:
        with contextlib.suppress(ValueError):
            delay_ms = float(raw_delay)
    delay = delay_ms / 1000.0
    n_events = _int_header(request, "x-mock-events")
    n_events = max(1, n_events if n_events is not None else cfg.events)
    stall = _int_header(request, "x-mock-stall-ms") or 0
    drop_mid = request.headers.get("x-mock-drop") == "mid-stream"

    resp = web.StreamResponse(status=200, headers={**_SSE_HEADERS, **headers})
    await resp.prepare(request)
    try:
        await _write_events(resp, request, delay, n_events, stall, drop_mid, msg_id, model, usage, tool,
                            stop_reason, stream_error)
    except ConnectionError:
        pass  # the client (or the proxy) went away mid-stream: normal life for an upstream, not a bug
    return resp


async def _write_events(
    resp: web.StreamResponse,
    request: web.Request,
    delay: float,
    n_events: int,
    stall: int,
    drop_mid: bool,
    msg_id: str,
    model: str,
    usage: _Usage,
    tool: dict[str, Any] | None,
    stop_reason: str,
    stream_error: str | None,
) -> None:
    """The event sequence itself; any step may be cut short by a steered drop or error event."""

    async def send(event: str, data: dict[str, Any]) -> None:
        await resp.write(_sse(event, data))
        if delay > 0:
            await asyncio.sleep(delay)

    start_message = {
        "id": msg_id, "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": usage.as_dict(output_tokens=1),
    }
    await send("message_start", {"type": "message_start", "message": start_message})

    blocks: list[tuple[dict[str, Any], str, list[str]]] = []
    if tool is not None:
        intro = f"I'll use the {tool['name']} tool."
        blocks.append(({"type": "text", "text": ""}, "text_delta", _split(intro, 2)))
        tool_json = orjson.dumps(_tool_input(tool.get("input_schema"))).decode()
        start = {"type": "tool_use", "id": _new_id("toolu_"), "name": tool["name"], "input": {}}
        blocks.append((start, "input_json_delta", _split(tool_json, n_events)))
    else:
        blocks.append(({"type": "text", "text": ""}, "text_delta", _split(_text_for(usage.output_tokens), n_events)))

    sent_deltas = 0
    total_deltas = sum(len(pieces) for _, _, pieces in blocks)
    for index, (block, kind, pieces) in enumerate(blocks):
        await send("content_block_start", {"type": "content_block_start", "index": index, "content_block": block})
        if index == 0:
            await send("ping", {"type": "ping"})
        for piece in pieces:
            key = "text" if kind == "text_delta" else "partial_json"
            await send("content_block_delta",
                       {"type": "content_block_delta", "index": index, "delta": {"type": kind, key: piece}})
            sent_deltas += 1
            if sent_deltas == 1 and stall > 0:
                await asyncio.sleep(stall / 1000.0)
            if drop_mid and sent_deltas >= max(1, total_deltas // 2):
                _drop(request)
                return
            if stream_error and sent_deltas >= max(1, total_deltas // 2):
                status = _TYPE_TO_STATUS.get(stream_error, 529)
                message = ERROR_TYPES.get(status, ("", "Overloaded"))[1]
                await resp.write(_sse("error", {"type": "error", "error": {"type": stream_error, "message": message}}))
                await resp.write_eof()
                return
        await send("content_block_stop", {"type": "content_block_stop", "index": index})

    final_usage = {
        "input_tokens": usage.input_tokens,
        "cache_creation_input_tokens": usage.cache_write,
        "cache_read_input_tokens": usage.cache_read,
        "output_tokens": usage.output_tokens,
    }
    await send("message_delta", {"type": "message_delta",
                                 "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                                 "usage": final_usage})
    await resp.write(_sse("message_stop", {"type": "message_stop"}))
    await resp.write_eof()


async def handle_count_tokens(request: web.Request) -> web.StreamResponse:
    """POST /v1/messages/count_tokens: the same estimate a message would report, no cache split."""
    state = request.app[STATE_KEY]
    checked = await _checked_payload(state, request, need_max_tokens=False)
    if isinstance(checked, web.StreamResponse):
        return checked
    payload, raw = checked
    usage = _count_prompt(state, payload, raw, use_cache=False)
    _steer_usage(request, usage)
    return _json_response(state, request, {"input_tokens": usage.input_tokens}, _common_headers(state, request))


async def handle_models(request: web.Request) -> web.StreamResponse:
    """GET /v1/models (and /v1/models/{id}), shaped like the real paginated list."""
    state = request.app[STATE_KEY]
    _record(state, request, 0)
    pre = await _preflight(state, request)
    if pre is not None:
        return pre
    model_id = request.match_info.get("model_id")
    if model_id:
        for m in MODELS:
            if m["id"] == model_id:
                return _json_response(state, request, {"type": "model", **m}, _common_headers(state, request))
        return _error_response(state, request, 404, message=f"model: {model_id}")
    data = [{"type": "model", **m} for m in MODELS]
    body = {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}
    return _json_response(state, request, body, _common_headers(state, request))


async def handle_not_found(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    _record(state, request, request.content_length or 0)
    await _think(state, request)
    return _error_response(state, request, 404, message="Not Found")


async def handle_mock_requests(request: web.Request) -> web.StreamResponse:
    """GET /_mock/requests: what reached the upstream, newest last (``?limit=N`` for the tail)."""
    state = request.app[STATE_KEY]
    items = list(state.requests)
    limit = request.query.get("limit")
    if limit and limit.isdigit():
        items = items[-int(limit):] if int(limit) else []
    return web.Response(body=orjson.dumps(items), content_type=_JSON)


async def handle_mock_reset(request: web.Request) -> web.StreamResponse:
    request.app[STATE_KEY].reset()
    return web.Response(body=b'{"ok":true}', content_type=_JSON)


async def handle_mock_incident(request: web.Request) -> web.StreamResponse:
    """POST /_mock/incident?rate=0.5&seconds=90: answer that share of requests with 429/529/500."""
    state = request.app[STATE_KEY]
    try:
        rate = float(request.query.get("rate", "0.5"))
        seconds = float(request.query.get("seconds", "90"))
    except ValueError:
        return web.Response(status=400, body=b'{"error":"rate and seconds must be numbers"}', content_type=_JSON)
    if not (0.0 <= rate <= 1.0 and 0.0 <= seconds <= 86400.0):
        return web.Response(status=400, body=b'{"error":"rate must be 0..1, seconds 0..86400"}',
                            content_type=_JSON)
    state.incident_rate = rate
    state.incident_until = time.monotonic() + seconds
    log.warning("mock upstream: incident started, %.0f%% errors for %.0f s", rate * 100, seconds)
    return web.Response(body=orjson.dumps({"ok": True, "rate": rate, "seconds": seconds}), content_type=_JSON)


async def handle_mock_webhook(request: web.Request) -> web.StreamResponse:
    """POST /_mock/webhook: a capture endpoint for alert webhooks in the demo (GET lists them)."""
    state = request.app[STATE_KEY]
    if request.method == "GET":
        return web.Response(body=orjson.dumps(list(state.webhooks)), content_type=_JSON)
    raw = await request.read()
    try:
        body: Any = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        body = raw[:2000].decode("utf-8", "replace")
    state.webhooks.append({"time": time.time(), "body": body})
    summary = body.get("text") or body.get("summary") or body.get("title") if isinstance(body, dict) else None
    log.warning("mock upstream: alert webhook received: %s", summary or str(body)[:200])
    return web.Response(body=b'{"ok":true}', content_type=_JSON)


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


async def _serve_forever(mock: MockUpstream) -> None:
    try:
        await mock.start()
    except OSError as exc:
        from nexus.cli import CommandError

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


def cli_main(args: argparse.Namespace, settings: Settings | None) -> int:
    """``nexus mock-upstream``: serve until Ctrl+C / SIGTERM (``settings`` is not needed)."""
    from nexus.cli import CommandError

    error_rate = float(getattr(args, "error_rate", 0.0) or 0.0)
    if not 0.0 <= error_rate <= 1.0:
        raise CommandError(f"--error-rate must be between 0 and 1, got {error_rate}")
    latency = float(getattr(args, "latency_ms", 0.0) or 0.0)
    if latency < 0:
        raise CommandError(f"--latency-ms must be >= 0, got {latency}")
    config = MockConfig(latency_ms=latency, error_rate=error_rate)
    mock = MockUpstream(config, host=getattr(args, "host", "127.0.0.1"), port=int(getattr(args, "port", 8787)))
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        runner = asyncio.run
    try:
        runner(_serve_forever(mock))
    except KeyboardInterrupt:
        pass
    sys.stdout.flush()
    return 0
