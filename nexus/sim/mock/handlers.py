"""The HTTP handlers: ``/v1/messages`` (JSON and SSE), ``count_tokens``, ``models``, and the ``/_mock/*`` controls.

Behaviour can be steered per request with ``x-mock-*`` headers (the proxy forwards them unchanged, so a
test talking to the proxy can script what the upstream does).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from nexus.sim.mock.billing import apply_billing
from nexus.sim.mock.cache import PromptUsage, count_prompt, steer_usage
from nexus.sim.mock.config import (
    ERROR_TYPES,
    MAX_BODY_BYTES,
    MODELS,
    STATE_KEY,
    TYPE_TO_STATUS,
    MockState,
    log,
)
from nexus.sim.mock.content import pick_tool, split_text, text_for, tool_input
from nexus.sim.mock.wire import (
    JSON_TYPE,
    SSE_HEADERS,
    common_headers,
    error_response,
    int_header,
    json_response,
    new_id,
    sse_frame,
)

if TYPE_CHECKING:
    pass


"""The real API rejects request bodies above 32 MB with 413 ``request_too_large``."""


"""Status → (error.type, message), as the Anthropic API documents its errors."""


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
    return error_response(state, request, status)


async def _read_json(state: MockState, request: web.Request) -> tuple[dict[str, Any] | None, bytes, web.Response | None]:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        _record(state, request, request.content_length or -1)
        return None, b"", error_response(state, request, 413)
    _record(state, request, len(raw))
    if len(raw) > MAX_BODY_BYTES:
        return None, raw, error_response(state, request, 413)
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, raw, error_response(state, request, 400, message="There was an issue with the format "
                                          "or content of your request: invalid JSON body")
    if not isinstance(payload, dict):
        return None, raw, error_response(state, request, 400, message="request body must be a JSON object")
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
        return error_response(state, request, 401, message="x-api-key header is required")
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
        return error_response(state, request, 400, message=problem)
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
    model_name = payload["model"]
    rejected = state.limits.rejection(request, model_name)
    if rejected is not None:  # a subscription window is full until its reset
        return error_response(state, request, 429, message="This request would exceed your account's rate limit. "
                              "Please try again later.", limit_headers=rejected[0])
    error_rate = state.current_error_rate()
    if error_rate > 0 and state.rng.random() < error_rate:
        return error_response(state, request, state.rng.choice((429, 429, 529, 529, 500)))
    stream_error = request.headers.get("x-mock-stream-error")
    if streaming and not stream_error and cfg.stream_error_rate > 0 and state.rng.random() < cfg.stream_error_rate:
        stream_error = "overloaded_error"

    usage = count_prompt(state, payload, raw, use_cache=True)
    steer_usage(request, usage)
    refused = apply_billing(payload, usage)
    if refused is not None:
        return error_response(state, request, 400, message=refused)
    max_tokens: int = payload["max_tokens"]
    steered_out = int_header(request, "x-mock-output-tokens")
    stop_reason = "end_turn"
    if steered_out is not None:
        usage.output_tokens = steered_out
    else:
        usage.output_tokens = min(max_tokens, 24 + usage.input_tokens % 97)
        if usage.output_tokens == max_tokens:
            stop_reason = "max_tokens"
    tool = pick_tool(payload, request)
    if tool is not None:
        stop_reason = "tool_use"
    model: str = payload["model"]
    msg_id = new_id("msg_")
    headers = common_headers(state, request, usage.input_tokens + usage.cache_write, usage.output_tokens, model)

    if streaming:
        return await _stream(state, request, headers, msg_id, model, usage, tool, stop_reason, stream_error)

    text = text_for(usage.output_tokens)
    content: list[dict[str, Any]] = []
    if tool is not None:
        content.append({"type": "text", "text": f"I'll use the {tool['name']} tool."})
        content.append({"type": "tool_use", "id": new_id("toolu_"), "name": tool["name"],
                        "input": tool_input(tool.get("input_schema"))})
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
    return json_response(state, request, message, headers)


async def _drop_mid_body(request: web.Request, body: bytes, headers: dict[str, str]) -> web.StreamResponse:
    """A non-streaming answer cut off halfway: headers and a ``content-length`` promise, half the body."""
    resp = web.StreamResponse(status=200, headers={**headers, "Content-Type": JSON_TYPE})
    resp.content_length = len(body)
    await resp.prepare(request)
    with contextlib.suppress(ConnectionError):
        await resp.write(body[: len(body) // 2])
    _drop(request)
    return resp


async def _stream(
    state: MockState,
    request: web.Request,
    headers: dict[str, str],
    msg_id: str,
    model: str,
    usage: PromptUsage,
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
    n_events = int_header(request, "x-mock-events")
    n_events = max(1, n_events if n_events is not None else cfg.events)
    stall = int_header(request, "x-mock-stall-ms") or 0
    drop_mid = request.headers.get("x-mock-drop") == "mid-stream"

    resp = web.StreamResponse(status=200, headers={**SSE_HEADERS, **headers})
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
    usage: PromptUsage,
    tool: dict[str, Any] | None,
    stop_reason: str,
    stream_error: str | None,
) -> None:
    """The event sequence itself; any step may be cut short by a steered drop or error event."""

    async def send(event: str, data: dict[str, Any]) -> None:
        await resp.write(sse_frame(event, data))
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
        blocks.append(({"type": "text", "text": ""}, "text_delta", split_text(intro, 2)))
        tool_json = orjson.dumps(tool_input(tool.get("input_schema"))).decode()
        start = {"type": "tool_use", "id": new_id("toolu_"), "name": tool["name"], "input": {}}
        blocks.append((start, "input_json_delta", split_text(tool_json, n_events)))
    else:
        blocks.append(({"type": "text", "text": ""}, "text_delta", split_text(text_for(usage.output_tokens), n_events)))

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
                status = TYPE_TO_STATUS.get(stream_error, 529)
                message = ERROR_TYPES.get(status, ("", "Overloaded"))[1]
                await resp.write(sse_frame("error", {"type": "error", "error": {"type": stream_error, "message": message}}))
                await resp.write_eof()
                return
        await send("content_block_stop", {"type": "content_block_stop", "index": index})

    final_usage = {
        "input_tokens": usage.input_tokens,
        "cache_creation_input_tokens": usage.cache_write,
        "cache_read_input_tokens": usage.cache_read,
        "output_tokens": usage.output_tokens,
        # Running totals, as the real API repeats them here: server tools and thinking are known now.
        **{k: v for k, v in usage.billing().items() if k in ("server_tool_use", "output_tokens_details")},
    }
    await send("message_delta", {"type": "message_delta",
                                 "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                                 "usage": final_usage})
    await resp.write(sse_frame("message_stop", {"type": "message_stop"}))
    await resp.write_eof()


async def handle_count_tokens(request: web.Request) -> web.StreamResponse:
    """POST /v1/messages/count_tokens: the same estimate a message would report, no cache split."""
    state = request.app[STATE_KEY]
    checked = await _checked_payload(state, request, need_max_tokens=False)
    if isinstance(checked, web.StreamResponse):
        return checked
    payload, raw = checked
    usage = count_prompt(state, payload, raw, use_cache=False)
    steer_usage(request, usage)
    return json_response(state, request, {"input_tokens": usage.input_tokens}, common_headers(state, request))


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
                return json_response(state, request, {"type": "model", **m}, common_headers(state, request))
        return error_response(state, request, 404, message=f"model: {model_id}")
    data = [{"type": "model", **m} for m in MODELS]
    body = {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}
    return json_response(state, request, body, common_headers(state, request))


async def handle_not_found(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    _record(state, request, request.content_length or 0)
    await _think(state, request)
    return error_response(state, request, 404, message="Not Found")


async def handle_mock_requests(request: web.Request) -> web.StreamResponse:
    """GET /_mock/requests: what reached the upstream, newest last (``?limit=N`` for the tail)."""
    state = request.app[STATE_KEY]
    items = list(state.requests)
    limit = request.query.get("limit")
    if limit and limit.isdigit():
        items = items[-int(limit):] if int(limit) else []
    return web.Response(body=orjson.dumps(items), content_type=JSON_TYPE)


async def handle_mock_limits(request: web.Request) -> web.StreamResponse:
    """GET /_mock/limits: the rate-limit headers last sent per credential (by its hash)."""
    return web.Response(body=orjson.dumps(request.app[STATE_KEY].limits.report()), content_type=JSON_TYPE)


async def handle_mock_reset(request: web.Request) -> web.StreamResponse:
    request.app[STATE_KEY].reset()
    return web.Response(body=b'{"ok":true}', content_type=JSON_TYPE)


async def handle_mock_incident(request: web.Request) -> web.StreamResponse:
    """POST /_mock/incident?rate=0.5&seconds=90: answer that share of requests with 429/529/500."""
    state = request.app[STATE_KEY]
    try:
        rate = float(request.query.get("rate", "0.5"))
        seconds = float(request.query.get("seconds", "90"))
    except ValueError:
        return web.Response(status=400, body=b'{"error":"rate and seconds must be numbers"}', content_type=JSON_TYPE)
    if not (0.0 <= rate <= 1.0 and 0.0 <= seconds <= 86400.0):
        return web.Response(status=400, body=b'{"error":"rate must be 0..1, seconds 0..86400"}',
                            content_type=JSON_TYPE)
    state.incident_rate = rate
    state.incident_until = time.monotonic() + seconds
    log.warning("mock upstream: incident started, %.0f%% errors for %.0f s", rate * 100, seconds)
    return web.Response(body=orjson.dumps({"ok": True, "rate": rate, "seconds": seconds}), content_type=JSON_TYPE)


async def handle_mock_webhook(request: web.Request) -> web.StreamResponse:
    """POST /_mock/webhook: a capture endpoint for alert webhooks in the demo (GET lists them)."""
    state = request.app[STATE_KEY]
    if request.method == "GET":
        return web.Response(body=orjson.dumps(list(state.webhooks)), content_type=JSON_TYPE)
    raw = await request.read()
    try:
        body: Any = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        body = raw[:2000].decode("utf-8", "replace")
    state.webhooks.append({"time": time.time(), "body": body})
    summary = body.get("text") or body.get("summary") or body.get("title") if isinstance(body, dict) else None
    log.warning("mock upstream: alert webhook received: %s", summary or str(body)[:200])
    return web.Response(body=b'{"ok":true}', content_type=JSON_TYPE)
