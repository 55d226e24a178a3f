"""Property-based tests of the SSE usage parser.

Properties:
* any chunking of a valid stream gives the same Usage as the whole stream, and the
  first-token signal fires exactly once, on the chunk that completes the first content delta;
* line endings (LF, CRLF, CR) and interleaved pings / comments / unknown events change nothing;
* a truncated stream never reports more of any token kind than the whole stream;
* arbitrary garbage never raises, and garbage before a stream does not change its totals;
* the non-streaming helpers never raise on any bytes or any JSON-like dict.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexus.core.usage import (
    StreamUsageParser,
    Usage,
    count_tokens_from_body,
    error_from_body,
    usage_from_body,
    usage_from_message,
)

pytestmark = pytest.mark.slow  # property tests: hundreds of generated streams each

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_creation_5m_tokens",
    "cache_creation_1h_tokens",
    "cache_read_input_tokens",
    "web_search_requests",
    "web_fetch_requests",
    "thinking_tokens",
)

counts = st.integers(min_value=0, max_value=2_000_000)


@dataclass
class Stream:
    raw: bytes
    expected: Usage
    first_delta_end: int | None  # offset just past the line terminator that ends the first content delta


def _event(name: str, data: dict[str, Any], nl: str) -> str:
    return f"event: {name}{nl}data: {json.dumps(data)}{nl}{nl}"


NOISE = [
    "event: ping\ndata: {\"type\": \"ping\"}\n\n",
    ": keep-alive\n",
    "event: future_event\ndata: {\"type\": \"future_event\", \"usage\": {\"output_tokens\": 99999999}}\n\n",
    "id: 7\n",
    "retry: 1000\n",
]


@st.composite
def streams(draw: st.DrawFn) -> Stream:
    nl = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    inp, w5, w1, read = draw(counts), draw(counts), draw(counts), draw(counts)
    send_split = draw(st.booleans())
    send_total = draw(st.booleans()) or not send_split
    out0 = draw(st.integers(min_value=0, max_value=5))
    start_usage: dict[str, Any] = {"input_tokens": inp, "cache_read_input_tokens": read, "output_tokens": out0}
    if send_total:
        start_usage["cache_creation_input_tokens"] = w5 + w1
    if send_split:
        start_usage["cache_creation"] = {"ephemeral_5m_input_tokens": w5, "ephemeral_1h_input_tokens": w1}
    model = draw(st.sampled_from(["claude-sonnet-4-5-20250929", "claude-opus-5-5", "claude-haiku-4-5"]))
    dims = {k: draw(st.sampled_from([None, *values])) for k, values in
            (("service_tier", ("standard", "priority", "batch")), ("speed", ("standard", "fast")),
             ("inference_geo", ("global", "us")))}
    start_usage.update({k: v for k, v in dims.items() if v is not None})
    searches, fetches = draw(st.integers(0, 20)), draw(st.integers(0, 20))
    if draw(st.booleans()):
        start_usage["server_tool_use"] = {"web_search_requests": searches, "web_fetch_requests": fetches}
    else:
        searches = fetches = 0

    parts: list[str] = [
        _event(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_fuzz",
                    "type": "message",
                    "role": "assistant",
                    "content": [],
                    "model": model,
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": start_usage,
                },
            },
            nl,
        )
    ]
    first_delta_end: int | None = None
    texts = draw(st.lists(st.lists(st.text(max_size=20), max_size=4), max_size=3))
    for index, block in enumerate(texts):
        parts.append(_event("content_block_start", {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}, nl))
        for text in block:
            parts.append(_event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}}, nl))
            if first_delta_end is None:
                # With CRLF the blank line's CR already ends the event; its LF is a tail.
                first_delta_end = len("".join(parts).encode()) - (len(nl) - 1)
            if draw(st.booleans()):
                parts.append(NOISE[draw(st.integers(0, len(NOISE) - 1))].replace("\n", nl))
        parts.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}, nl))

    # Cumulative deltas: non-decreasing output; some also repeat (or raise) input/cache counts.
    expected = Usage(
        input_tokens=inp,
        output_tokens=out0,
        cache_creation_input_tokens=w5 + w1,
        cache_creation_5m_tokens=w5 if send_split else 0,
        cache_creation_1h_tokens=w1 if send_split else 0,
        cache_read_input_tokens=read,
        model=model,
        message_id="msg_fuzz",
        web_search_requests=searches,
        web_fetch_requests=fetches,
        **dims,
    )
    output = out0
    for _ in range(draw(st.integers(0, 3))):
        output += draw(st.integers(0, 50_000))
        usage: dict[str, Any] = {"output_tokens": output}
        if draw(st.booleans()):  # running totals of server tools and thinking, never shrinking
            expected.web_search_requests += draw(st.integers(0, 5))
            expected.web_fetch_requests += draw(st.integers(0, 5))
            usage["server_tool_use"] = {"web_search_requests": expected.web_search_requests,
                                        "web_fetch_requests": expected.web_fetch_requests}
        if draw(st.booleans()):
            expected.thinking_tokens = draw(st.integers(expected.thinking_tokens, output))
            usage["output_tokens_details"] = {"thinking_tokens": expected.thinking_tokens}
        if draw(st.booleans()):
            expected.service_tier = usage["service_tier"] = draw(st.sampled_from(["standard", "priority"]))
        if draw(st.booleans()):
            expected.input_tokens += draw(st.integers(0, 10_000))
            usage["input_tokens"] = expected.input_tokens
            usage["cache_read_input_tokens"] = expected.cache_read_input_tokens
            usage["cache_creation_input_tokens"] = expected.cache_creation_input_tokens
        stop = draw(st.sampled_from(["end_turn", "max_tokens", "tool_use", None]))
        parts.append(_event("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None}, "usage": usage}, nl))
        expected.output_tokens = output
        expected.stop_reason = stop or expected.stop_reason
    if draw(st.booleans()):
        parts.append(_event("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, nl))
        expected.error_type, expected.error_message = "overloaded_error", "Overloaded"
    else:
        parts.append(_event("message_stop", {"type": "message_stop"}, nl))
    return Stream("".join(parts).encode(), expected, first_delta_end)


def chunked(raw: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(raw) + 1) for c in cuts})
    pieces, prev = [], 0
    for p in points:
        pieces.append(raw[prev:p])
        prev = p
    pieces.append(raw[prev:])
    return pieces


def run(pieces: list[bytes]) -> tuple[Usage, list[bool]]:
    parser = StreamUsageParser()
    fired = [parser.feed(p) for p in pieces]
    return parser.finish(), fired


@SETTINGS
@given(streams(), st.lists(st.integers(min_value=0, max_value=10**6), max_size=40))
def test_any_chunking_gives_the_same_usage(stream: Stream, cuts: list[int]) -> None:
    whole, _ = run([stream.raw])
    assert asdict(whole) == asdict(stream.expected)
    pieces = chunked(stream.raw, cuts)
    usage, fired = run(pieces)
    assert asdict(usage) == asdict(stream.expected)
    if stream.first_delta_end is None:
        assert not any(fired)
    else:
        assert fired.count(True) == 1
        # It fired on the chunk that holds the last byte of the first delta event.
        ends = [sum(len(p) for p in pieces[: i + 1]) for i in range(len(pieces))]
        chunk = fired.index(True)
        assert ends[chunk] >= stream.first_delta_end > ends[chunk] - len(pieces[chunk])


@SETTINGS
@given(streams())
def test_byte_at_a_time(stream: Stream) -> None:
    usage, fired = run([bytes([b]) for b in stream.raw])
    assert asdict(usage) == asdict(stream.expected)
    assert fired.count(True) == (0 if stream.first_delta_end is None else 1)


@SETTINGS
@given(streams(), st.integers(min_value=0), st.lists(st.integers(min_value=0, max_value=10**6), max_size=10))
def test_truncation_never_over_counts(stream: Stream, cut: int, cuts: list[int]) -> None:
    prefix = stream.raw[: cut % (len(stream.raw) + 1)]
    usage, _ = run(chunked(prefix, cuts))
    for name in TOKEN_FIELDS:
        assert getattr(usage, name) <= getattr(stream.expected, name), name


garbage_lines = st.lists(
    st.one_of(
        st.binary(max_size=64),
        st.text(max_size=40).map(lambda s: s.encode("utf-8", "surrogatepass")),
        st.sampled_from(
            [
                b"data: {",
                b"data: [1, 2",
                b"data: null",
                b"event: message_start",
                b"event: message_delta",
                b"event: error",
                b"data: {\"type\": \"ping\"}",
                b": comment",
                b"event:",
                b"data:",
                b"\xff\xfe\xfd",
                b"\r",
                b"\n",
                b"",
            ]
        ),
    ),
    max_size=30,
)


@SETTINGS
@given(garbage_lines, st.lists(st.integers(min_value=0, max_value=10**5), max_size=20))
def test_garbage_never_raises(lines: list[bytes], cuts: list[int]) -> None:
    raw = b"\n".join(lines)
    usage, fired = run(chunked(raw, cuts))
    assert isinstance(usage, Usage)
    assert not any(fired)
    for name in TOKEN_FIELDS:
        assert getattr(usage, name) == 0


@SETTINGS
@given(garbage_lines, streams(), st.lists(st.integers(min_value=0, max_value=10**6), max_size=20))
def test_garbage_before_a_stream_changes_nothing(lines: list[bytes], stream: Stream, cuts: list[int]) -> None:
    # The blank lines end whatever unterminated line/event the garbage left open.
    raw = b"\n".join(lines) + b"\n\n" + stream.raw
    usage, fired = run(chunked(raw, cuts))
    for name in TOKEN_FIELDS:
        assert getattr(usage, name) == getattr(stream.expected, name), name
    assert usage.model == stream.expected.model
    assert fired.count(True) == (0 if stream.first_delta_end is None else 1)


@SETTINGS
@given(st.binary(max_size=2048))
def test_body_helpers_never_raise_on_bytes(raw: bytes) -> None:
    assert isinstance(usage_from_body(raw), Usage)
    etype, message = error_from_body(raw)
    assert etype is None or isinstance(etype, str)
    assert message is None or len(message) <= 1000
    n = count_tokens_from_body(raw)
    assert n is None or n >= 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
usage_keys = st.sampled_from(
    ["input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "cache_creation", "service_tier"]
)


@SETTINGS
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "type": st.sampled_from(["message", "error"]) | json_values,
            "model": json_values,
            "id": json_values,
            "stop_reason": json_values,
            "error": json_values,
            "usage": st.dictionaries(usage_keys, json_values) | json_values,
        },
    )
)
def test_usage_from_message_never_raises(body: dict[str, Any]) -> None:
    usage = usage_from_message(body)
    for name in TOKEN_FIELDS:
        value = getattr(usage, name)
        assert isinstance(value, int) and not isinstance(value, bool) and value >= 0
    assert usage.cache_creation_input_tokens >= usage.cache_creation_5m_tokens + usage.cache_creation_1h_tokens
    # And through bytes, when the dict is JSON-serialisable.
    try:
        raw = json.dumps(body).encode()
    except (TypeError, ValueError):
        return
    usage_from_body(raw)
