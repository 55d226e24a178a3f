"""Session, agent, client and tag extraction: the three session formats, malformed values, tag limits."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from multidict import CIMultiDict

from nexus.core.errors import ConfigError
from nexus.core.sessions import (
    MAX_TAGS,
    attribute,
    client_of,
    is_tag_header,
    parse_tag_filter,
    parse_tag_headers,
    session_from_user_id,
    valid_id,
)

SID = "5f1e7b2a-8c3d-4e6f-9a0b-1c2d3e4f5a6b"
SID2 = "0d9c8b7a-6f5e-4d3c-2b1a-0f9e8d7c6b5a"
JSON_USER_ID = orjson.dumps({"device_id": "d" * 64, "account_uuid": "a1b2c3d4-0000-4000-8000-000000000001",
                             "session_id": SID2}).decode()
LEGACY_USER_ID = f"user_{'ab12' * 16}_account_a1b2c3d4-0000-4000-8000-000000000001_session_{SID2}"


@pytest.mark.parametrize(("headers", "user_id", "expected"), [
    # header first, whatever the body says
    ({"x-claude-code-session-id": SID}, JSON_USER_ID, SID),
    ({"X-Claude-Code-Session-Id": SID}, None, SID),
    # JSON-encoded metadata.user_id
    ({}, JSON_USER_ID, SID2),
    # legacy string, with and without an account
    ({}, LEGACY_USER_ID, SID2),
    ({}, f"user_{'ab12' * 16}_account__session_{SID2}", SID2),
    # a malformed header falls back to the body
    ({"x-claude-code-session-id": "has space"}, LEGACY_USER_ID, SID2),
    ({"x-claude-code-session-id": "x" * 129}, None, None),
    ({"x-claude-code-session-id": ""}, None, None),
    # malformed bodies: nothing
    ({}, "user_abc", None),
    ({}, "plain-user-id", None),
    ({}, '{"session_id": 42}', None),
    ({}, '{"device_id": "d"}', None),
    ({}, "{not json", None),
    ({}, '["session_id"]', None),
    ({}, orjson.dumps({"session_id": "s" * 129}).decode(), None),
    ({}, f"user_x_account_y_session_{'z' * 129}", None),
    ({}, 12345, None),
    ({}, None, None),
    ({}, {"session_id": SID}, None),  # an object, not the JSON string Claude Code sends
])
def test_session_id_sources(headers: dict[str, str], user_id: Any, expected: str | None) -> None:
    assert attribute(CIMultiDict(headers), user_id).session_id == expected


@pytest.mark.parametrize(("value", "ok"), [
    (SID, True), ("a", True), ("x" * 128, True), ("x" * 129, False), ("", False), ("  ", False),
    ("a b", False), ("-leading", False), ("agent_01:sub.2", True), ("é", False), ("a\n", True),
    ("a\x00b", False), (None, False), (7, False),
])
def test_valid_id(value: Any, ok: bool) -> None:
    assert (valid_id(value) is not None) is ok


def test_user_id_is_never_kept_whole() -> None:
    a = attribute(CIMultiDict(), JSON_USER_ID)
    assert a.session_id == SID2
    assert "d" * 64 not in repr(a)  # the device id goes nowhere


@pytest.mark.parametrize(("headers", "agent", "parent"), [
    ({"x-claude-code-agent-id": "agent-1"}, "agent-1", None),
    ({"x-claude-code-agent-id": "agent-2", "x-claude-code-parent-agent-id": "agent-1"}, "agent-2", "agent-1"),
    ({"x-claude-code-agent-id": "bad id"}, None, None),
    ({"x-claude-code-parent-agent-id": "p" * 200}, None, None),
    ({}, None, None),
])
def test_agent_ids(headers: dict[str, str], agent: str | None, parent: str | None) -> None:
    a = attribute(CIMultiDict(headers))
    assert (a.agent_id, a.parent_agent_id) == (agent, parent)


@pytest.mark.parametrize(("ua", "app", "expected"), [
    ("claude-cli/2.1.197 (external, sdk-cli)", "cli", "claude-cli/2.1.197 (cli)"),
    ("claude-cli/2.1.328 (external, sdk-cli)", None, "claude-cli/2.1.328"),
    ("AsyncAnthropic/Python 0.75.0", None, "AsyncAnthropic/Python"),
    ("curl/8.5.0", None, "curl/8.5.0"),
    ("python-httpx/0.28.1", "", "python-httpx/0.28.1"),
    (None, None, None),
    ("", "cli", "(cli)"),
    ("x" * 500, None, "x" * 80),
])
def test_client(ua: str | None, app: str | None, expected: str | None) -> None:
    assert client_of(ua, app) == expected
    headers = {k: v for k, v in (("user-agent", ua), ("x-app", app)) if v is not None}
    assert attribute(CIMultiDict(headers)).client == expected


@pytest.mark.parametrize(("headers", "tags", "ignored"), [
    ([("x-nexus-tag-project", "apollo")], {"project": "apollo"}, 0),
    ([("X-Nexus-Tag-Project", "  apollo  ")], {"project": "apollo"}, 0),
    ([("x-nexus-tag-team_a-1", "infra")], {"team_a-1": "infra"}, 0),
    ([("x-nexus-tag-" + "n" * 32, "v")], {"n" * 32: "v"}, 0),
    ([("x-nexus-tag-" + "n" * 33, "v")], {}, 1),  # name too long
    ([("x-nexus-tag-pro.ject", "v")], {}, 1),  # name charset
    ([("x-nexus-tag-", "v")], {}, 1),  # empty name
    ([("x-nexus-tag-p", "v" * 128)], {"p": "v" * 128}, 0),
    ([("x-nexus-tag-p", "v" * 129)], {}, 1),  # value too long
    ([("x-nexus-tag-p", "")], {}, 1),  # empty value
    ([("x-nexus-tag-p", "a\tb")], {}, 1),  # not printable
    ([(f"x-nexus-tag-t{i}", str(i)) for i in range(12)], {f"t{i}": str(i) for i in range(MAX_TAGS)}, 2),
    ([("x-nexus-tag-p", "one"), ("x-nexus-tag-p", "two")], {"p": "two"}, 0),  # last wins
    ([("x-other", "v")], {}, 0),
])
def test_tag_headers(headers: list[tuple[str, str]], tags: dict[str, str], ignored: int) -> None:
    a = attribute(CIMultiDict(headers))
    assert a.tags == tags and a.ignored_tags == ignored


def test_tag_headers_mapping() -> None:
    mapping = parse_tag_headers("x-team=team, X-User=user")
    assert mapping == {"x-team": "team", "x-user": "user"}
    a = attribute(CIMultiDict([("X-Team", "infra"), ("x-user", "ada"), ("x-nexus-tag-team", "web")]), None, mapping)
    assert a.tags == {"team": "web", "user": "ada"}  # the explicit tag wins over the mapping
    full = [(f"x-nexus-tag-t{i}", "v") for i in range(MAX_TAGS)] + [("x-team", "infra")]
    b = attribute(CIMultiDict(full), None, mapping)
    assert len(b.tags) == MAX_TAGS and "team" not in b.tags and b.ignored_tags == 1


@pytest.mark.parametrize("spec", ["x-team", "x-team=", "=team", "x team=team", "x-team=Team!", "x-nexus-tag-a=a",
                                  "x-team=" + "t" * 33])
def test_tag_headers_spec_errors(spec: str) -> None:
    with pytest.raises(ConfigError, match="TAG_HEADERS"):
        parse_tag_headers(spec)


def test_tag_headers_empty() -> None:
    assert parse_tag_headers("") == {} and parse_tag_headers(None) == {} and parse_tag_headers(" , ") == {}


@pytest.mark.parametrize(("raw", "expected"), [
    ("project:apollo", ("project", "apollo")),
    ("project=apollo", ("project", "apollo")),
    ("Project:a:b", ("project", "a:b")),
    ("url:http://x", ("url", "http://x")),
])
def test_tag_filter(raw: str, expected: tuple[str, str]) -> None:
    assert parse_tag_filter(raw) == expected


@pytest.mark.parametrize("raw", ["project", "project:", ":apollo", "pro ject:a", "p:" + "v" * 129])
def test_tag_filter_errors(raw: str) -> None:
    with pytest.raises(ValueError, match="tag must be"):
        parse_tag_filter(raw)


def test_is_tag_header() -> None:
    assert is_tag_header("X-Nexus-Tag-Project") and not is_tag_header("x-nexus-other")


def test_session_from_user_id_direct() -> None:
    assert session_from_user_id(LEGACY_USER_ID) == SID2
    assert session_from_user_id("x" * 5000) is None


def test_tag_filter_first_separator_splits() -> None:
    assert parse_tag_filter("a=b:c") == ("a", "b:c")
    assert parse_tag_filter("a:b=c") == ("a", "b=c")
