"""Usage extraction: table-driven over event sequences shaped like Anthropic's streaming docs."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import pytest

from nexus.core.usage import (
    MAX_EVENT_BYTES,
    StreamUsageParser,
    Usage,
    count_tokens_from_body,
    error_from_body,
    usage_from_body,
    usage_from_message,
)


def sse(events: list[tuple[str, dict[str, Any]]], newline: str = "\n") -> bytes:
    """Serialise (event, data) pairs the way Anthropic's API writes them."""
    out = []
    for name, data in events:
        out.append(f"event: {name}{newline}data: {json.dumps(data)}{newline}{newline}")
    return "".join(out).encode()


def message_start(usage: dict[str, Any], model: str = "claude-sonnet-4-5-20250929") -> tuple[str, dict]:
    return (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": model,
                "stop_reason": None,
                "stop_sequence": None,
                "usage": usage,
            },
        },
    )


def text_block(text_parts: list[str], index: int = 0) -> list[tuple[str, dict]]:
    events: list[tuple[str, dict]] = [
        (
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
        )
    ]
    for part in text_parts:
        events.append(
            (
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": part}},
            )
        )
    events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    return events


PING = ("ping", {"type": "ping"})
STOP = ("message_stop", {"type": "message_stop"})


def message_delta(usage: dict[str, Any], stop_reason: str = "end_turn") -> tuple[str, dict]:
    return (
        "message_delta",
        {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None}, "usage": usage},
    )


# The basic streaming response of the docs: input in message_start, output in message_delta.
BASIC = [
    message_start({"input_tokens": 25, "output_tokens": 1}),
    *text_block(["Hello", "!"]),
    message_delta({"output_tokens": 15}),
    STOP,
]

# Prompt caching with the 5m/1h split (cache_creation object), and pings between blocks.
CACHED = [
    message_start(
        {
            "input_tokens": 12,
            "cache_creation_input_tokens": 2048,
            "cache_read_input_tokens": 30000,
            "cache_creation": {"ephemeral_5m_input_tokens": 1024, "ephemeral_1h_input_tokens": 1024},
            "output_tokens": 1,
            "service_tier": "standard",
        },
        model="claude-opus-4-1-20250805",
    ),
    PING,
    *text_block(["Cached ", "answer"]),
    PING,
    message_delta({"output_tokens": 321}),
    STOP,
]

# Tool use: a text block then a tool_use block with input_json_delta, stop_reason tool_use.
TOOL_USE = [
    message_start({"input_tokens": 472, "output_tokens": 2}, model="claude-haiku-4-5"),
    *text_block(["Okay, let me check the weather."]),
    (
        "content_block_start",
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "get_weather", "input": {}},
        },
    ),
    (
        "content_block_delta",
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}},
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"location": "San Fra'},
        },
    ),
    ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": 'ncisco, CA"}'}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 1}),
    message_delta({"output_tokens": 89}, stop_reason="tool_use"),
    STOP,
]

# Newer API versions repeat every cumulative count in message_delta (server tools raise input).
DELTA_WITH_ALL_FIELDS = [
    message_start({"input_tokens": 2679, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 3}),
    *text_block(["I'll search."]),
    message_delta(
        {
            "input_tokens": 10682,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 510,
            "server_tool_use": {"web_search_requests": 1},
        }
    ),
    STOP,
]

# Extended thinking: thinking_delta and signature_delta before text.
THINKING = [
    message_start({"input_tokens": 80, "output_tokens": 4}, model="claude-sonnet-4-5"),
    ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Let me"}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "EqQBCgIYAhIM"}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    *text_block(["27 * 453 = 12231"], index=1),
    message_delta({"output_tokens": 1500}),
    STOP,
]

# Every billing dimension: tier, speed and geo in message_start; searches, fetches and thinking
# tokens as running totals in message_delta (a later non-null value wins; a placeholder 0 in a
# delta does not erase a count).
DIMENSIONS = [
    message_start({"input_tokens": 900, "output_tokens": 1, "service_tier": "standard", "speed": "fast",
                   "inference_geo": "us", "server_tool_use": {"web_search_requests": 2, "web_fetch_requests": 0}},
                  model="claude-opus-5-5"),
    *text_block(["Found it."]),
    message_delta({"output_tokens": 300, "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 1},
                   "output_tokens_details": {"thinking_tokens": 120}}),
    message_delta({"output_tokens": 700, "service_tier": "priority", "speed": None, "inference_geo": "x" * 100,
                   "server_tool_use": {"web_search_requests": 5, "web_fetch_requests": "3"},
                   "output_tokens_details": {"thinking_tokens": 410}}),
    STOP,
]

# An error event inside a 200 stream (overloaded mid-generation).
MID_STREAM_ERROR = [
    message_start({"input_tokens": 40, "output_tokens": 1}),
    *text_block(["Partial"])[:2],
    ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
]


def u(**kw: Any) -> dict[str, Any]:
    base = asdict(Usage())
    base.update(kw)
    return base


STREAM_CASES = [
    pytest.param(
        BASIC,
        u(input_tokens=25, output_tokens=15, model="claude-sonnet-4-5-20250929", message_id="msg_01XFDUDYJgAACzvnptvVoYEL", stop_reason="end_turn"),
        id="basic",
    ),
    pytest.param(
        CACHED,
        u(
            input_tokens=12,
            output_tokens=321,
            cache_creation_input_tokens=2048,
            cache_creation_5m_tokens=1024,
            cache_creation_1h_tokens=1024,
            cache_read_input_tokens=30000,
            service_tier="standard",
            model="claude-opus-4-1-20250805",
            message_id="msg_01XFDUDYJgAACzvnptvVoYEL",
            stop_reason="end_turn",
        ),
        id="cached-5m-1h",
    ),
    pytest.param(
        DIMENSIONS,
        u(input_tokens=900, output_tokens=700, service_tier="priority", speed="fast", inference_geo="x" * 32,
          web_search_requests=5, web_fetch_requests=1, thinking_tokens=410, model="claude-opus-5-5",
          message_id="msg_01XFDUDYJgAACzvnptvVoYEL", stop_reason="end_turn"),
        id="billing-dimensions",
    ),
    pytest.param(
        TOOL_USE,
        u(input_tokens=472, output_tokens=89, model="claude-haiku-4-5", message_id="msg_01XFDUDYJgAACzvnptvVoYEL", stop_reason="tool_use"),
        id="tool-use",
    ),
    pytest.param(
        DELTA_WITH_ALL_FIELDS,
        u(input_tokens=10682, output_tokens=510, web_search_requests=1, model="claude-sonnet-4-5-20250929",
          message_id="msg_01XFDUDYJgAACzvnptvVoYEL", stop_reason="end_turn"),
        id="delta-overrides-input",
    ),
    pytest.param(
        THINKING,
        u(input_tokens=80, output_tokens=1500, model="claude-sonnet-4-5", message_id="msg_01XFDUDYJgAACzvnptvVoYEL", stop_reason="end_turn"),
        id="thinking",
    ),
    pytest.param(
        MID_STREAM_ERROR,
        u(
            input_tokens=40,
            output_tokens=1,
            model="claude-sonnet-4-5-20250929",
            message_id="msg_01XFDUDYJgAACzvnptvVoYEL",
            error_type="overloaded_error",
            error_message="Overloaded",
        ),
        id="error-event-in-200",
    ),
    pytest.param(
        [message_start({"input_tokens": 9, "output_tokens": 1}), message_delta({"output_tokens": 2, "input_tokens": None})],
        u(input_tokens=9, output_tokens=2, model="claude-sonnet-4-5-20250929", message_id="msg_01XFDUDYJgAACzvnptvVoYEL", stop_reason="end_turn"),
        id="null-in-delta-ignored",
    ),
    pytest.param(
        [
            message_start({"input_tokens": 9, "cache_read_input_tokens": 100, "output_tokens": 1}),
            message_delta({"output_tokens": 2, "input_tokens": 0, "cache_read_input_tokens": 0}),
        ],
        u(
            input_tokens=9,
            cache_read_input_tokens=100,
            output_tokens=2,
            model="claude-sonnet-4-5-20250929",
            message_id="msg_01XFDUDYJgAACzvnptvVoYEL",
            stop_reason="end_turn",
        ),
        id="placeholder-zero-in-delta-keeps-start",
    ),
    pytest.param(
        [message_start({"input_tokens": 3, "cache_creation": {"ephemeral_1h_input_tokens": 500}, "output_tokens": 1})],
        u(
            input_tokens=3,
            output_tokens=1,
            cache_creation_input_tokens=500,
            cache_creation_1h_tokens=500,
            model="claude-sonnet-4-5-20250929",
            message_id="msg_01XFDUDYJgAACzvnptvVoYEL",
        ),
        id="split-without-total-derives-total",
    ),
    pytest.param(
        [
            ("weird_future_event", {"type": "weird_future_event", "usage": {"output_tokens": 999999}}),
            message_start({"input_tokens": 7, "output_tokens": "12", "cache_read_input_tokens": -5}),
            message_delta({"output_tokens": True}),
        ],
        u(input_tokens=7, model="claude-sonnet-4-5-20250929", message_id="msg_01XFDUDYJgAACzvnptvVoYEL", stop_reason="end_turn"),
        id="unknown-event-and-bad-values-ignored",
    ),
]


@pytest.mark.parametrize(("events", "expected"), STREAM_CASES)
@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_stream_whole(events: list, expected: dict, newline: str) -> None:
    parser = StreamUsageParser()
    parser.feed(sse(events, newline))
    assert asdict(parser.finish()) == expected


@pytest.mark.parametrize(("events", "expected"), STREAM_CASES)
def test_stream_byte_by_byte(events: list, expected: dict) -> None:
    parser = StreamUsageParser()
    for b in sse(events, "\r\n"):
        parser.feed(bytes([b]))
    assert asdict(parser.finish()) == expected
    assert asdict(parser.usage) == expected


def test_first_content_delta_fires_once_on_completing_chunk() -> None:
    raw = sse(BASIC)
    first_delta = raw.index(b"event: content_block_delta")
    end_of_first_delta = raw.index(b"\n\n", first_delta) + 2
    parser = StreamUsageParser()
    assert parser.feed(raw[: end_of_first_delta - 1]) is False  # event not yet terminated
    assert parser.first_token_seen is False
    assert parser.feed(raw[end_of_first_delta - 1 : end_of_first_delta]) is True
    assert parser.feed(raw[end_of_first_delta:]) is False
    assert parser.first_token_seen is True


def test_first_delta_without_event_lines() -> None:
    """Some gateways omit ``event:``; the data's ``type`` names the event then."""
    raw = b"".join(b"data: " + json.dumps(data).encode() + b"\n\n" for _, data in BASIC)
    parser = StreamUsageParser()
    fired = [parser.feed(raw[i : i + 7]) for i in range(0, len(raw), 7)]
    assert fired.count(True) == 1
    assert parser.finish().output_tokens == 15
    assert parser.usage.input_tokens == 25


def test_no_content_delta_never_fires() -> None:
    parser = StreamUsageParser()
    assert parser.feed(sse(MID_STREAM_ERROR[:1])) is False
    assert parser.first_token_seen is False


def test_multiline_data_comments_and_ids() -> None:
    payload = json.dumps(BASIC[0][1], indent=2).splitlines()
    raw = (
        b": keep-alive comment\n"
        b"id: 1\nretry: 3000\nevent: message_start\n"
        + b"".join(b"data:" + line.encode() + b"\n" for line in payload)
        + b"\n"
        + sse([message_delta({"output_tokens": 42})])
    )
    parser = StreamUsageParser()
    parser.feed(raw)
    usage = parser.finish()
    assert (usage.input_tokens, usage.output_tokens) == (25, 42)


@pytest.mark.parametrize(
    "garbage",
    [
        b"data: {not json\n\n",
        b"event: message_start\ndata: [1,2,3]\n\n",
        b"event: message_start\ndata: {\"message\": 5}\n\n",
        b"event: message_delta\ndata: {\"usage\": \"lots\"}\n\n",
        b"event: error\ndata: {\"error\": \"string\"}\n\n",
        b"\xff\xfe\x00garbage\n\n\n",
        b"event: \xff\xff\ndata: {}\n\n",
        b"data: " + b"[" * 100_000 + b"\n\n",  # deep nesting: RecursionError must not escape
    ],
)
def test_garbage_is_ignored(garbage: bytes) -> None:
    parser = StreamUsageParser()
    parser.feed(garbage)
    parser.feed(sse(BASIC))
    assert parser.finish().output_tokens == 15
    assert parser.usage.error_type is None


def test_truncated_stream_gives_partial_usage() -> None:
    raw = sse(BASIC)
    cut = raw.index(b"event: message_delta")
    parser = StreamUsageParser()
    parser.feed(raw[:cut] + raw[cut : cut + 30])  # message_delta cut in half
    usage = parser.finish()
    assert (usage.input_tokens, usage.output_tokens, usage.stop_reason) == (25, 1, None)


def test_unterminated_last_event_not_dispatched() -> None:
    raw = sse(BASIC).rstrip(b"\n")  # the message_stop event lacks its blank line
    without_final_delta = sse(BASIC[:-2]) + sse([message_delta({"output_tokens": 15})]).rstrip(b"\n")
    parser = StreamUsageParser()
    parser.feed(raw)
    assert parser.finish().output_tokens == 15
    parser = StreamUsageParser()
    parser.feed(without_final_delta)
    assert parser.finish().output_tokens == 1


def test_oversized_event_is_dropped_and_parser_recovers() -> None:
    parser = StreamUsageParser()
    huge = b"x" * (64 * 1024)
    parser.feed(b"event: message_start\ndata: ")
    for _ in range(MAX_EVENT_BYTES // len(huge) + 2):
        parser.feed(huge)  # one endless line
    assert parser._partial_len <= MAX_EVENT_BYTES  # bounded
    parser.feed(b"\n\n")
    parser.feed(sse(BASIC))
    assert parser.finish().output_tokens == 15


def test_oversized_multiline_event_is_dropped() -> None:
    parser = StreamUsageParser()
    line = b"data: " + b"y" * 1000 + b"\n"
    parser.feed(b"event: message_start\n" + line * (MAX_EVENT_BYTES // 1000 + 10) + b"\n")
    assert parser._data_len <= MAX_EVENT_BYTES
    parser.feed(sse(BASIC))
    assert parser.finish().input_tokens == 25


def test_uninteresting_events_are_not_buffered() -> None:
    parser = StreamUsageParser()
    parser.feed(b"event: content_block_delta\n" + b"data: " + b"z" * 100_000 + b"\n")
    assert parser._data == []


# ---------------------------------------------------------------------------------------------
# Non-streaming bodies.

NON_STREAMING = {
    "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [{"type": "text", "text": "Hi! My name is Claude."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 2095,
        "cache_creation_input_tokens": 2051,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 51, "ephemeral_1h_input_tokens": 2000},
        "output_tokens": 503,
        "service_tier": "standard",
    },
}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            NON_STREAMING,
            u(
                input_tokens=2095,
                output_tokens=503,
                cache_creation_input_tokens=2051,
                cache_creation_5m_tokens=51,
                cache_creation_1h_tokens=2000,
                service_tier="standard",
                model="claude-sonnet-4-5-20250929",
                message_id="msg_013Zva2CMHLNnXjNJJKqJ2EF",
                stop_reason="end_turn",
            ),
        ),
        ({"type": "message", "model": "claude-3-haiku-20240307", "usage": {"input_tokens": 10, "output_tokens": 20}},
         u(input_tokens=10, output_tokens=20, model="claude-3-haiku-20240307")),
        ({}, u()),
        ({"usage": {"input_tokens": 5, "output_tokens": 50, "service_tier": "batch", "speed": "standard",
                    "inference_geo": "global", "server_tool_use": {"web_search_requests": 3, "web_fetch_requests": 2},
                    "output_tokens_details": {"thinking_tokens": 40}}},
         u(input_tokens=5, output_tokens=50, service_tier="batch", speed="standard", inference_geo="global",
           web_search_requests=3, web_fetch_requests=2, thinking_tokens=40)),
        ({"usage": {"service_tier": 7, "speed": "", "server_tool_use": [1], "output_tokens_details": "x"}}, u()),
        ({"usage": None, "model": 7, "id": ["x"]}, u()),
        ({"usage": {"input_tokens": 1.0, "output_tokens": 2.5}}, u(input_tokens=1)),
        ({"usage": {"input_tokens": 10**15}}, u()),
        (
            {"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"}},
            u(error_type="invalid_request_error", error_message="max_tokens: Field required"),
        ),
    ],
)
def test_usage_from_message(body: dict, expected: dict) -> None:
    assert asdict(usage_from_message(body)) == expected
    assert asdict(usage_from_body(json.dumps(body).encode())) == expected


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1, 2]", b"null", b"\xff\xfe", b'"string"'])
def test_usage_from_body_invalid(raw: bytes) -> None:
    assert usage_from_body(raw) == Usage()


def test_usage_from_message_non_dict_never_raises() -> None:
    assert usage_from_message([1, 2]) == Usage()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}', ("overloaded_error", "Overloaded")),
        (
            b'{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"}',
            ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"),
        ),
        (b'{"type":"error","error":{"type":"not_found_error"}}', ("not_found_error", None)),
        (b'{"type":"error","error":{"message":"no type"}}', ("error", "no type")),
        (b'{"type":"message"}', (None, None)),
        (b'{"error":{"type":"api_error"}}', (None, None)),
        (b"<html>502 Bad Gateway</html>", (None, None)),
        (b"", (None, None)),
    ],
)
def test_error_from_body(raw: bytes, expected: tuple) -> None:
    assert error_from_body(raw) == expected


def test_error_message_truncated() -> None:
    raw = json.dumps({"type": "error", "error": {"type": "api_error", "message": "m" * 5000}}).encode()
    etype, message = error_from_body(raw)
    assert etype == "api_error"
    assert message == "m" * 1000


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"input_tokens": 2095}', 2095),
        (b'{"input_tokens": 0}', 0),
        (b'{"input_tokens": "12"}', None),
        (b'{"type":"error","error":{"type":"invalid_request_error","message":"x"}}', None),
        (b"garbage", None),
        (b"[]", None),
    ],
)
def test_count_tokens_from_body(raw: bytes, expected: int | None) -> None:
    assert count_tokens_from_body(raw) == expected


def test_usage_totals() -> None:
    usage = usage_from_message(NON_STREAMING)
    assert usage.prompt_tokens == 2095 + 2051
    assert usage.total_tokens == 2095 + 2051 + 503
    assert not usage.is_error
