"""Token usage extraction from Anthropic Messages API responses: pure functions over bytes and dicts.

The proxy tees every response through this module, so it has three duties beyond being right:

* **Never raise.** A parser bug must not break a client's request or lose a record; anything we do
  not understand is ignored and the record simply carries what we did understand.
* **Never over-count.** Anthropic's streaming usage is *cumulative*: ``message_start`` carries the
  input and cache tokens (and a provisional output count), and every ``message_delta`` repeats the
  running totals. Values therefore *replace* what we have, they are never added, so a duplicated,
  re-chunked or truncated stream can only ever report the same or fewer tokens than the whole.
* **Bounded memory.** A hostile or broken upstream can send an endless line; we keep at most
  ``MAX_EVENT_BYTES`` of an unterminated event and drop it beyond that.

Streaming shape (from Anthropic's Messages streaming docs)::

    event: message_start
    data: {"type":"message_start","message":{"id":"msg_…","model":"claude-…","usage":
           {"input_tokens":25,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,
            "output_tokens":1}}}

    event: content_block_delta
    data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}

    event: message_delta
    data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":15,
           "server_tool_use":{"web_search_requests":2},"output_tokens_details":{"thinking_tokens":9}}}

``usage`` also carries the billing dimensions: ``service_tier``, ``speed``, ``inference_geo``,
``server_tool_use.web_search_requests`` / ``web_fetch_requests`` and ``output_tokens_details.
thinking_tokens`` (part of output), in ``message_start`` and/or ``message_delta``; later non-null wins.

An ``error`` event (``{"type":"error","error":{"type":"overloaded_error",…}}``) can arrive inside a
stream whose HTTP status was 200; it makes the exchange an error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_ERROR_MESSAGE_CHARS", "MAX_EVENT_BYTES", "StreamUsageParser", "Usage", "count_tokens_from_body",
           "error_from_body", "usage_from_body", "usage_from_message"]

# An event (or a single line) longer than this is dropped: real usage-bearing events are a few
# hundred bytes, and the proxy must not grow without bound on a broken upstream.
MAX_EVENT_BYTES = 1024 * 1024
MAX_ERROR_MESSAGE_CHARS = 1000
# Larger "token counts" are garbage (and would overflow bigint arithmetic downstream); ignore them.
_MAX_TOKENS = 10**12
# service_tier / speed / inference_geo are short enum-like words; longer values are cut.
MAX_DIMENSION_CHARS = 32

# Events whose JSON we need to read; everything else is skipped without parsing (cheap tee).
_PARSED_EVENTS = frozenset({"message_start", "message_delta", "error"})


@dataclass
class Usage:
    """Tokens and outcome of one Messages exchange, as Anthropic reported them.

    ``input_tokens`` is the *uncached* input; cache writes and reads have their own fields, and
    ``cache_creation_input_tokens`` is the total of writes (which may be split into 5-minute and
    1-hour writes when Anthropic reports the split).
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_creation_5m_tokens: int = 0
    cache_creation_1h_tokens: int = 0
    cache_read_input_tokens: int = 0
    service_tier: str | None = None
    speed: str | None = None
    inference_geo: str | None = None
    web_search_requests: int = 0
    web_fetch_requests: int = 0
    thinking_tokens: int = 0  # part of output_tokens (priced as output), reported apart
    model: str | None = None
    message_id: str | None = None
    stop_reason: str | None = None
    error_type: str | None = None
    error_message: str | None = None

    @property
    def prompt_tokens(self) -> int:
        """Everything the model read: the quantity Anthropic's long-prompt price tiers look at."""
        return self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens

    @property
    def total_tokens(self) -> int:
        """Same definition as ``api_requests.total_tokens``: input + output + cache writes + reads."""
        return self.prompt_tokens + self.output_tokens

    @property
    def is_error(self) -> bool:
        return self.error_type is not None


# ---------------------------------------------------------------------------------------------
# Field readers: each tolerates any JSON value and returns None for "not usable".


def _as_tokens(value: Any) -> int | None:
    """A token count, or None when the value is absent, null or not a sane non-negative count."""
    if isinstance(value, bool):  # bool is an int subclass; true is not "1 token"
        return None
    if isinstance(value, int):
        return value if 0 <= value <= _MAX_TOKENS else None
    if isinstance(value, float) and value.is_integer() and 0 <= value <= _MAX_TOKENS:
        return int(value)
    return None


def _as_str(value: Any, limit: int = 200) -> str | None:
    if isinstance(value, str) and value:
        return value[:limit]
    return None


def _apply_usage(usage: Usage, raw: Any, *, from_delta: bool) -> None:
    """Overlay one ``usage`` object onto ``usage``: present, valid values replace earlier ones.

    ``message_delta`` usage is cumulative, so replacing is right. One exception: a zero for an
    input/cache field in a ``message_delta`` does not erase a non-zero count from
    ``message_start`` -- cumulative counts cannot shrink, and some Anthropic-compatible gateways
    send placeholder zeros there.
    """
    if not isinstance(raw, dict):
        return

    def put(attr: str, value: Any, keep_nonzero: bool) -> None:
        n = _as_tokens(value)
        if n is None:
            return
        if keep_nonzero and n == 0 and getattr(usage, attr) > 0:
            return
        setattr(usage, attr, n)

    put("input_tokens", raw.get("input_tokens"), from_delta)
    put("output_tokens", raw.get("output_tokens"), False)
    put("cache_read_input_tokens", raw.get("cache_read_input_tokens"), from_delta)
    for attr in ("service_tier", "speed", "inference_geo"):
        text = _as_str(raw.get(attr), MAX_DIMENSION_CHARS)
        if text is not None:
            setattr(usage, attr, text)
    tools, details = raw.get("server_tool_use"), raw.get("output_tokens_details")
    if isinstance(tools, dict):
        put("web_search_requests", tools.get("web_search_requests"), from_delta)
        put("web_fetch_requests", tools.get("web_fetch_requests"), from_delta)
    if isinstance(details, dict):
        put("thinking_tokens", details.get("thinking_tokens"), False)

    total = _as_tokens(raw.get("cache_creation_input_tokens"))
    split = raw.get("cache_creation")
    five = one = None
    if isinstance(split, dict):
        five = _as_tokens(split.get("ephemeral_5m_input_tokens"))
        one = _as_tokens(split.get("ephemeral_1h_input_tokens"))
    if five is not None:
        put("cache_creation_5m_tokens", five, from_delta)
    if one is not None:
        put("cache_creation_1h_tokens", one, from_delta)
    if total is not None:
        put("cache_creation_input_tokens", total, from_delta)
    # The total must cover the split: if only the split was sent (or the total is short), derive it.
    split_sum = usage.cache_creation_5m_tokens + usage.cache_creation_1h_tokens
    if usage.cache_creation_input_tokens < split_sum:
        usage.cache_creation_input_tokens = split_sum


def _apply_error(usage: Usage, raw: Any) -> None:
    """Read ``{"type":"error","error":{"type":…,"message":…}}`` (or just its inner object)."""
    if not isinstance(raw, dict):
        return
    err = raw.get("error")
    if not isinstance(err, dict):
        return
    etype = _as_str(err.get("type")) or "error"
    usage.error_type = etype
    message = err.get("message")
    usage.error_message = message[:MAX_ERROR_MESSAGE_CHARS] if isinstance(message, str) else None


def _apply_message(usage: Usage, msg: Any) -> None:
    """Overlay a Messages ``message`` object (non-streaming body or ``message_start.message``)."""
    if not isinstance(msg, dict):
        return
    usage.model = _as_str(msg.get("model")) or usage.model
    usage.message_id = _as_str(msg.get("id")) or usage.message_id
    usage.stop_reason = _as_str(msg.get("stop_reason"), 64) or usage.stop_reason
    _apply_usage(usage, msg.get("usage"), from_delta=False)


def _loads(raw: bytes | bytearray | memoryview | str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, TypeError, RecursionError):
        return None


# ---------------------------------------------------------------------------------------------
# Non-streaming bodies.


def usage_from_message(body: dict) -> Usage:
    """Usage of a non-streaming Messages response (or an error body). Never raises on a dict."""
    usage = Usage()
    if not isinstance(body, dict):
        return usage
    if body.get("type") == "error":
        _apply_error(usage, body)
        return usage
    _apply_message(usage, body)
    return usage


def usage_from_body(raw: bytes) -> Usage:
    """Usage from raw (already decompressed) JSON bytes; anything unparseable gives an empty Usage."""
    body = _loads(raw)
    return usage_from_message(body) if isinstance(body, dict) else Usage()


def error_from_body(raw: bytes) -> tuple[str | None, str | None]:
    """``(error type, message)`` of an Anthropic error body; ``(None, None)`` for anything else.

    Used on non-2xx responses so the record carries e.g. ``rate_limit_error`` rather than just 429.
    """
    body = _loads(raw)
    if not isinstance(body, dict) or body.get("type") != "error":
        return None, None
    usage = Usage()
    _apply_error(usage, body)
    return usage.error_type, usage.error_message


def count_tokens_from_body(raw: bytes) -> int | None:
    """The ``input_tokens`` of a ``/v1/messages/count_tokens`` response; None when absent."""
    body = _loads(raw)
    if not isinstance(body, dict):
        return None
    return _as_tokens(body.get("input_tokens"))


# ---------------------------------------------------------------------------------------------
# Streaming.


class StreamUsageParser:
    """Incremental SSE parser fed raw (decoded) byte chunks at arbitrary boundaries.

    Follows the WHATWG event-stream rules that matter here: lines end in CRLF, LF or CR; ``:``
    starts a comment; ``event:`` names the event; several ``data:`` lines are joined with ``\\n``;
    a blank line dispatches. Only ``message_start``, ``message_delta`` and ``error`` are decoded;
    other events are counted by name only, so the tee costs little on long streams.
    """

    def __init__(self) -> None:
        self._usage = Usage()
        self._partial: list[bytes] = []  # pieces of the current unterminated line
        self._partial_len = 0
        self._skip_lf = False  # the previous chunk ended in CR: a leading LF belongs to it
        self._discarding_line = False  # the current line overflowed; skip to its end
        self._event: str | None = None
        self._data: list[bytes] = []
        self._data_len = 0
        self._has_data = False
        self._event_dropped = False  # the current event overflowed; ignore it
        self._first_delta_seen = False
        self._events = 0

    # -- public --------------------------------------------------------------------------------

    @property
    def usage(self) -> Usage:
        """Usage so far (live object; copy it if you keep it across further feeds)."""
        return self._usage

    @property
    def events_seen(self) -> int:
        """Dispatched events, any type (diagnostics)."""
        return self._events

    @property
    def first_token_seen(self) -> bool:
        return self._first_delta_seen

    def feed(self, chunk: bytes) -> bool:
        """Consume a chunk; True exactly once, on the chunk completing the first content delta.

        The proxy stamps time-to-first-token when this returns True.
        """
        try:
            return self._feed(chunk)
        except Exception:  # pragma: no cover - defensive: the tee must never break a response
            self._reset_line()
            self._reset_event()
            return False

    def finish(self) -> Usage:
        """End of stream (or abort): return the usage so far.

        An unterminated last event is *not* dispatched: a truncated stream reports only what fully
        arrived, which keeps partial usage a lower bound of the real usage.
        """
        self._reset_line()
        self._reset_event()
        return self._usage

    # -- internals -----------------------------------------------------------------------------

    def _feed(self, chunk: bytes) -> bool:
        if not chunk:
            return False
        if not isinstance(chunk, bytes):
            chunk = bytes(chunk)
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
                if not chunk:
                    return False
        if b"\r" in chunk:
            if chunk.endswith(b"\r"):
                self._skip_lf = True
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if b"\n" not in chunk:
            self._append_partial(chunk)
            return False

        lines = chunk.split(b"\n")
        tail = lines.pop()
        fired = False
        first = True
        for piece in lines:
            if first:
                first = False
                if self._discarding_line:
                    self._discarding_line = False
                    self._reset_line()
                    continue
                if self._partial:
                    if self._partial_len + len(piece) > MAX_EVENT_BYTES:
                        self._reset_line()
                        self._drop_event()
                        continue
                    self._partial.append(piece)
                    piece = b"".join(self._partial)
                    self._reset_line()
            if self._line(piece):
                fired = True
        if tail:
            self._append_partial(tail)
        return fired

    def _append_partial(self, piece: bytes) -> None:
        if self._discarding_line:
            return
        self._partial.append(piece)
        self._partial_len += len(piece)
        if self._partial_len > MAX_EVENT_BYTES:
            self._reset_line()
            self._discarding_line = True
            self._drop_event()

    def _reset_line(self) -> None:
        self._partial = []
        self._partial_len = 0

    def _reset_event(self) -> None:
        self._event = None
        self._data = []
        self._data_len = 0
        self._has_data = False
        self._event_dropped = False

    def _drop_event(self) -> None:
        """Forget the event being built (too large) until its terminating blank line."""
        self._data = []
        self._data_len = 0
        self._event_dropped = True

    def _line(self, line: bytes) -> bool:
        """Process one complete line; True when it dispatched the first content delta."""
        if not line:
            return self._dispatch()
        if line[:1] == b":":
            return False
        field, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if field == b"data":
            self._has_data = True
            if self._event_dropped or (self._event is not None and self._event not in _PARSED_EVENTS):
                return False
            self._data_len += len(value) + 1
            if self._data_len > MAX_EVENT_BYTES:
                self._drop_event()
                return False
            self._data.append(value)
        elif field == b"event":
            self._event = value.decode("utf-8", "replace").strip()
            if self._event not in _PARSED_EVENTS:
                self._data = []
                self._data_len = 0
        # id:, retry: and unknown fields carry nothing we need.
        return False

    def _dispatch(self) -> bool:
        if not self._has_data:
            self._reset_event()  # SSE: an event without data is not dispatched
            return False
        name = self._event
        dropped = self._event_dropped
        data = b"\n".join(self._data) if self._data else b""
        self._reset_event()
        self._events += 1
        if dropped:
            return False
        if name is not None and name not in _PARSED_EVENTS:
            return self._content_delta_seen() if name == "content_block_delta" else False
        payload = _loads(data)
        if not isinstance(payload, dict):
            return False
        kind = name or _as_str(payload.get("type"))
        if kind == "message_start":
            _apply_message(self._usage, payload.get("message"))
        elif kind == "message_delta":
            delta = payload.get("delta")
            if isinstance(delta, dict):
                self._usage.stop_reason = _as_str(delta.get("stop_reason"), 64) or self._usage.stop_reason
            _apply_usage(self._usage, payload.get("usage"), from_delta=True)
        elif kind == "error":
            _apply_error(self._usage, payload)
        elif kind == "content_block_delta":
            return self._content_delta_seen()
        return False

    def _content_delta_seen(self) -> bool:
        if self._first_delta_seen:
            return False
        self._first_delta_seen = True
        return True
