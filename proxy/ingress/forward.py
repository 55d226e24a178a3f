"""``ANY /v1/{path}``: relay an exchange to the upstream unchanged and tee it into a Record.

What the client sends (method, path, query, body, end-to-end headers incl. ``anthropic-beta``)
goes upstream as is; what the upstream answers (status, headers incl. ``request-id`` and
``anthropic-ratelimit-*``, body bytes incl. gzip) comes back as is. SSE streams are relayed
chunk by chunk as they arrive. The record is handed to the recorder without awaiting the
database, in a ``finally`` so a cancelled (client-aborted) exchange is recorded too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import aiohttp
import orjson

from nexus.core.accounts import AccountResolver, normalize_host
from nexus.core.ratelimits import pick_headers
from nexus.core.records import (
    CLIENT_ABORTED_STATUS,
    REQUEST_TYPE_COUNT_TOKENS,
    REQUEST_TYPE_MESSAGES,
    REQUEST_TYPE_OTHER,
    Record,
    utcnow,
)
from nexus.core.redact import client_secret, header_names, redact_headers
from nexus.core.sessions import attribute, tag_header_map
from nexus.core.usage import (
    StreamUsageParser,
    Usage,
    count_tokens_from_body,
    error_from_body,
    usage_from_body,
)
from proxy.ingress.bodies import BodyHold, BodyRefused, read_body
from proxy.ingress.failures import classify_connect_failure, classify_midway_failure
from proxy.ingress.paths import path_problem, upstream_url
from proxy.ingress.relay import (
    BodyDecoder,
    Incoming,
    Relay,
    error_relay,
    outgoing_headers,
    response_headers,
)
from proxy.runtime import Runtime

log = logging.getLogger("nexus.forward")

_STREAM_TAIL_KEEP = 64 * 1024


def _request_type(path: str) -> str | None:
    """Which exchanges become records: Messages and count_tokens; other /v1 calls only relay."""
    p = path.rstrip("/")
    if p == "/v1/messages":
        return REQUEST_TYPE_MESSAGES
    if p == "/v1/messages/count_tokens":
        return REQUEST_TYPE_COUNT_TOKENS
    return None


@dataclass
class Exchange:
    """Book-keeping for one exchange while it is in flight."""

    runtime: Runtime
    record: Record
    started: float
    store_request_body: str | None = None
    # Raw header views, redacted only if this record will store them (see finish()).
    request_headers: Any = None
    response_headers: Any = None
    body_copy: bytearray = field(default_factory=bytearray)
    done: bool = False

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000.0

    def apply_usage(self, usage: Usage) -> None:
        r = self.record
        if r.request_type == REQUEST_TYPE_COUNT_TOKENS:
            return  # counting tokens bills nothing; its count is kept apart
        r.input_tokens = usage.input_tokens
        r.output_tokens = usage.output_tokens
        r.cache_creation_input_tokens = usage.cache_creation_input_tokens
        r.cache_creation_5m_tokens = usage.cache_creation_5m_tokens
        r.cache_creation_1h_tokens = usage.cache_creation_1h_tokens
        r.cache_read_input_tokens = usage.cache_read_input_tokens
        r.service_tier = usage.service_tier
        r.speed = usage.speed
        r.inference_geo = usage.inference_geo
        r.web_search_requests = usage.web_search_requests
        r.web_fetch_requests = usage.web_fetch_requests
        r.thinking_tokens = usage.thinking_tokens
        if usage.model and not r.model:
            r.model = usage.model
        r.response_model, r.response_id, r.stop_reason = usage.model, usage.message_id, usage.stop_reason
        if usage.error_type and not r.error_type:
            r.error_type = usage.error_type
            r.error_message = usage.error_message

    def fail(self, status: int, error_type: str, message: str | None = None) -> None:
        """End the exchange as failed (upstream error, client gone: ``CLIENT_ABORTED_STATUS``) and record it."""
        r = self.record
        r.status_code, r.error_type, r.error_message = status, error_type, message
        self.finish()

    def finish(self, elapsed_ms: float | None = None) -> None:
        """Price, attach bodies per STORE_BODIES, and hand off to the recorder (never awaits the DB)."""
        if self.done:
            return
        self.done = True
        rt = self.runtime
        r = self.record
        r.response_time_ms = self.elapsed_ms() if elapsed_ms is None else elapsed_ms
        if rt.pricing is not None:
            if r.request_type == REQUEST_TYPE_COUNT_TOKENS:
                r.cost_usd = Decimal(0)
            else:
                price = rt.pricing.price(r.model, usage_of(r), r.created_at)
                if price is not None:
                    r.cost_usd, r.price_source, r.web_search_cost_usd = price.cost, price.source, price.web_search_cost
        mode = rt.settings.proxy.store_bodies
        if mode == "all" or (mode == "errors" and r.is_error):
            cap = rt.settings.proxy.max_stored_body_bytes
            extra = header_names(rt.settings.proxy.redact_headers)  # REDACT_HEADERS (cached)
            r.request_headers = (None if self.request_headers is None
                                 else redact_headers(self.request_headers.items(), extra))
            r.response_headers = (None if self.response_headers is None
                                  else redact_headers(self.response_headers.items(), extra))
            r.request_body = self.store_request_body
            if self.body_copy:
                r.response_body = bytes(self.body_copy[-cap:]).decode("utf-8", "replace")
        if rt.recorder is not None:
            rt.recorder.submit(r)


def usage_of(r: Record) -> Usage:
    """What pricing reads of a record (its tokens and billing dimensions)."""
    return Usage(
        input_tokens=r.input_tokens, output_tokens=r.output_tokens,
        cache_creation_input_tokens=r.cache_creation_input_tokens,
        cache_creation_5m_tokens=r.cache_creation_5m_tokens,
        cache_creation_1h_tokens=r.cache_creation_1h_tokens,
        cache_read_input_tokens=r.cache_read_input_tokens, model=r.model,
        service_tier=r.service_tier, speed=r.speed, inference_geo=r.inference_geo,
        web_search_requests=r.web_search_requests,
    )


def _body_facts(body: bytes) -> tuple[str | None, bool, Any]:
    """Model, stream flag and ``metadata.user_id`` from the one parse of the request body."""
    if not body:
        return None, False, None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, False, None
    if not isinstance(data, dict):
        return None, False, None
    model = data.get("model")
    meta = data.get("metadata")
    user_id = meta.get("user_id") if isinstance(meta, dict) else None
    return (model[:200] if isinstance(model, str) else None), bool(data.get("stream") is True), user_id


async def forward(runtime: Runtime, path: str, session: aiohttp.ClientSession,
                  resolver: AccountResolver, incoming: Incoming) -> Relay:
    """Handle one ``/v1/...`` request end to end."""
    hold = BodyHold(runtime)
    try:
        return await _forward(runtime, path, session, resolver, incoming, hold)
    except BodyRefused as refused:
        if runtime.metrics is not None:
            runtime.metrics.proxy_errors.labels(error_type=refused.error_type).inc()
        log.warning("request body refused: %s", refused.error_type)
        return refused.relay
    finally:
        hold.release()  # the body has gone upstream (or nowhere); the record keeps its own copy


async def _forward(runtime: Runtime, path: str, session: aiohttp.ClientSession,
                   resolver: AccountResolver, incoming: Incoming, hold: BodyHold) -> Relay:
    settings = runtime.settings
    started = time.perf_counter()
    full_path = "/v1/" + path
    problem = path_problem(full_path)
    if problem is not None:
        return error_relay(400, "invalid_request_error", f"Invalid request path: {problem}")
    rtype = _request_type(full_path)
    metrics = runtime.metrics
    body = await read_body(incoming, settings.proxy.max_body_bytes, settings.proxy.client_body_timeout_s, hold)
    if body is None:
        if metrics is not None:
            metrics.proxy_errors.labels(error_type="request_too_large").inc()
        return error_relay(413, "request_too_large",
                               f"Request exceeds the maximum allowed size of {settings.proxy.max_body_bytes} bytes")

    req_headers = incoming.headers
    method = incoming.method
    host = req_headers.get("host", "")
    record: Record | None = None
    exchange: Exchange | None = None
    if rtype is not None:
        model, is_stream, user_id = _body_facts(body) if rtype != REQUEST_TYPE_OTHER else (None, False, None)
        who = attribute(req_headers, user_id, tag_header_map(settings.proxy.tag_headers))
        record = Record(
            domain=normalize_host(host) or "unknown",
            account_id=resolver.account_for(host, client_secret(req_headers)),
            method=method, path=full_path, model=model, stream=is_stream,
            request_type=rtype, instance_id=runtime.instance_id,
            traceparent=req_headers.get("traceparent"), tracestate=req_headers.get("tracestate"),
            session_id=who.session_id, agent_id=who.agent_id, parent_agent_id=who.parent_agent_id,
            client=who.client, tags=who.tags or None,
        )
        if who.ignored_tags and metrics is not None:
            metrics.tags_ignored.inc(who.ignored_tags)
        exchange = Exchange(runtime=runtime, record=record, started=started)
        if settings.proxy.store_bodies != "none":
            exchange.request_headers = req_headers
            cap = settings.proxy.max_stored_body_bytes
            exchange.store_request_body = body[:cap].decode("utf-8", "replace")

    query = incoming.query_string.decode("latin-1") if incoming.query_string else ""
    try:
        url = upstream_url(settings.upstream.base_url, full_path, query)
    except ValueError:
        return error_relay(400, "invalid_request_error", "Invalid request path")
    headers = outgoing_headers(req_headers)
    if metrics is not None:
        metrics.in_flight.inc()
    in_flight_released = False

    def release() -> None:
        nonlocal in_flight_released
        if not in_flight_released and metrics is not None:
            metrics.in_flight.dec()
        in_flight_released = True

    try:
        resp = await session.request(method, url, data=body or None, headers=headers,
                                     allow_redirects=False)
    except BaseException as exc:  # noqa: BLE001 - every failure becomes an Anthropic-shaped error
        release()
        status, etype, atype, msg = classify_connect_failure(exc)
        if isinstance(exc, asyncio.CancelledError):
            if exchange is not None:
                exchange.fail(CLIENT_ABORTED_STATUS, "client_aborted")
            raise
        if metrics is not None:
            metrics.proxy_errors.labels(error_type=etype).inc()
        log.warning("upstream request failed: %s (%s)", etype, msg)
        if exchange is not None:
            exchange.fail(status, etype, msg)
        return error_relay(status, atype, msg)

    if exchange is not None:
        exchange.record.status_code = resp.status
        exchange.record.request_id = resp.headers.get("request-id")
        rl = pick_headers(resp.headers.items())
        if rl is not None:
            exchange.record.ratelimit_headers, exchange.record.ratelimit_observed_at = rl, utcnow()
        if settings.proxy.store_bodies != "none":
            exchange.response_headers = resp.headers
    content_type = resp.headers.get("content-type", "")
    is_sse = content_type.startswith("text/event-stream")
    encoding = resp.headers.get("content-encoding", "")

    if not is_sse:
        try:
            raw = await resp.read()
        except BaseException as exc:  # noqa: BLE001
            resp.close()
            release()
            if isinstance(exc, asyncio.CancelledError):
                if exchange is not None:
                    exchange.fail(CLIENT_ABORTED_STATUS, "client_aborted")
                raise
            status, etype, atype, msg = classify_midway_failure(exc)
            if exchange is not None:
                exchange.fail(status, etype, msg)
            return error_relay(status, atype, msg)
        finally:
            resp.release()
        release()
        out = Relay(resp.status, response_headers(resp, streaming=False), raw)
        if exchange is not None:
            ex, status, elapsed = exchange, resp.status, exchange.elapsed_ms()

            def finish_record() -> None:
                decoded = BodyDecoder(encoding).feed(raw) if encoding else raw
                _tee_complete_body(ex, status, decoded)
                ex.finish(elapsed)

            out.after = finish_record
        return out

    return _stream_response(runtime, resp, exchange, encoding, release)


def _tee_complete_body(exchange: Exchange, status: int, decoded: bytes) -> None:
    r = exchange.record
    mode = exchange.runtime.settings.proxy.store_bodies
    if mode == "all" or (mode == "errors" and status >= 400):
        exchange.body_copy = bytearray(decoded[: exchange.runtime.settings.proxy.max_stored_body_bytes])
    if status >= 400:
        etype, emsg = error_from_body(decoded)
        r.error_type = etype or f"http_{status}"
        r.error_message = emsg
        return
    if r.request_type == REQUEST_TYPE_COUNT_TOKENS:
        r.counted_tokens = count_tokens_from_body(decoded)
        return
    exchange.apply_usage(usage_from_body(decoded))


def _stream_response(runtime: Runtime, resp: aiohttp.ClientResponse, exchange: Exchange | None,
                     encoding: str, release: Any) -> Relay:
    """Relay an SSE body chunk by chunk; parse a decoded copy for usage and errors."""
    parser = StreamUsageParser()
    decoder = BodyDecoder(encoding)
    metrics = runtime.metrics
    store_all = runtime.settings.proxy.store_bodies == "all"
    cap = runtime.settings.proxy.max_stored_body_bytes

    def tee(exchange: Exchange, chunk: bytes, arrived: float) -> None:
        decoded = decoder.feed(chunk)
        if parser.feed(decoded) and exchange.record.ttft_ms is None:
            exchange.record.ttft_ms = (arrived - exchange.started) * 1000.0
        if runtime.settings.proxy.store_bodies != "none":
            exchange.body_copy += decoded
            keep = cap if store_all else _STREAM_TAIL_KEEP
            if len(exchange.body_copy) > keep:
                del exchange.body_copy[: len(exchange.body_copy) - keep]

    async def relay() -> AsyncIterator[bytes]:
        completed = False
        failure: tuple[int, str, str, str] | None = None
        # A chunk is relayed first and parsed right after (timed at its arrival), so parsing is
        # not on the event's way to the client; one the client left during is parsed in finally.
        pending: bytes | None = None
        arrived = 0.0
        try:
            async for chunk in resp.content.iter_any():
                if exchange is not None:
                    pending, arrived = chunk, time.perf_counter()
                yield chunk
                if pending is not None and exchange is not None:
                    pending = None
                    tee(exchange, chunk, arrived)
            completed = True
        except asyncio.CancelledError:
            raise
        except GeneratorExit:
            raise
        except Exception as exc:  # noqa: BLE001 - upstream broke mid-stream
            failure = classify_midway_failure(exc)
            log.warning("upstream stream failed: %s", failure[1])
            # Tell the client in-band: headers are gone, so an SSE error event it can act on.
            payload = orjson.dumps({"type": "error", "error": {"type": failure[2], "message": failure[3]}})
            with contextlib.suppress(Exception):
                yield b"event: error\ndata: " + payload + b"\n\n"
        finally:
            resp.close()
            release()
            if exchange is not None:
                if pending is not None:
                    tee(exchange, pending, arrived)
                r = exchange.record
                exchange.apply_usage(parser.finish())
                if failure is not None:
                    r.status_code, r.error_type, _, r.error_message = failure
                elif not completed:
                    r.status_code = CLIENT_ABORTED_STATUS
                    r.error_type = "client_aborted"
                    if metrics is not None:
                        metrics.proxy_errors.labels(error_type="client_aborted").inc()
                elif resp.status >= 400 and not r.error_type:
                    etype, emsg = error_from_body(bytes(exchange.body_copy))
                    r.error_type = etype or f"http_{resp.status}"
                    r.error_message = emsg
                exchange.finish()

    return Relay(resp.status, response_headers(resp, streaming=True), stream=relay(), never_time_out=True)


