"""Who sent an exchange: its session, agent, client and tags — pure functions over what the client sent.

Claude Code names its session in the ``x-claude-code-session-id`` header (2.1.x); older versions
put it in the body's ``metadata.user_id``, either as a JSON-encoded object
``{"device_id":…,"account_uuid":…,"session_id":…}`` or as the legacy string
``user_<hash>_account_<uuid>_session_<uuid>``. Peers broke each time the format changed
(docs/architecture.md, pitfalls), so all three are read, header first. Only the session id is kept:
``metadata.user_id`` holds a device id and is never stored.

Sub-agent requests add ``x-claude-code-agent-id`` (and, below the first level,
``x-claude-code-parent-agent-id``). The client is the User-Agent's first product token plus
``x-app`` (``claude-cli/2.1.197 (cli)``, ``AsyncAnthropic/Python``, ``curl/8.5.0``).

Tags: ``x-nexus-tag-<name>: <value>`` headers (removed before forwarding, see
``proxy/ingress/relay.py``) and existing headers mapped by ``TAG_HEADERS`` (``x-team=team``, kept).
"""

from __future__ import annotations

import functools
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from nexus.core.errors import ConfigError

SESSION_HEADER = "x-claude-code-session-id"
AGENT_HEADER = "x-claude-code-agent-id"
PARENT_AGENT_HEADER = "x-claude-code-parent-agent-id"
TAG_PREFIX = "x-nexus-tag-"

MAX_ID_CHARS = 128
MAX_CLIENT_CHARS = 80
MAX_TAGS = 10
MAX_TAG_VALUE_CHARS = 128

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,127}")
_TAG_NAME = re.compile(r"[a-z0-9_-]{1,32}")
_HEADER_NAME = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+")
# user_<hash>_account_<uuid or empty>_session_<uuid>
_LEGACY = re.compile(r"user_[0-9A-Za-z]*_account_[0-9A-Za-z-]*_session_(.+)")


def valid_id(value: Any) -> str | None:
    """``value`` if it is a plausible id (1..128 chars of ``[A-Za-z0-9._:@+=-]``), else ``None``."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value if _ID.fullmatch(value) else None


def session_from_user_id(user_id: Any) -> str | None:
    """The session id inside ``metadata.user_id`` (JSON object or legacy string), else ``None``."""
    if not isinstance(user_id, str) or not user_id or len(user_id) > 4096:
        return None
    if user_id.startswith("{"):
        try:
            obj = orjson.loads(user_id)
        except orjson.JSONDecodeError:
            return None
        return valid_id(obj.get("session_id")) if isinstance(obj, dict) else None
    m = _LEGACY.fullmatch(user_id)
    return valid_id(m.group(1)) if m else None


def _printable(text: str, limit: int) -> str:
    text = text[:limit]
    return text if text.isprintable() else "".join(c for c in text if c.isprintable())


def client_of(user_agent: str | None, x_app: str | None = None) -> str | None:
    """First product token of the User-Agent, plus ``x-app`` in parentheses when sent."""
    token = _printable(user_agent.strip().split(" ", 1)[0], MAX_CLIENT_CHARS) if user_agent else ""
    app = _printable(x_app.strip(), 32) if x_app else ""
    if not token:
        return f"({app})" if app else None
    return f"{token} ({app})" if app else token


def parse_tag_headers(spec: str | None) -> dict[str, str]:
    """``TAG_HEADERS`` (``x-team=team,x-user=user``) as {header (lower case): tag name}.

    Raises ``ConfigError`` on a malformed entry, so a typo stops the start instead of silently
    tagging nothing.
    """
    out: dict[str, str] = {}
    for part in (spec or "").split(","):
        part = part.strip()
        if not part:
            continue
        header, sep, tag = (s.strip() for s in part.partition("="))
        header = header.lower()
        if not sep or not _HEADER_NAME.fullmatch(header) or not _TAG_NAME.fullmatch(tag):
            raise ConfigError(f"TAG_HEADERS: {part!r} is not header=tag (tag names: [a-z0-9_-], at most 32)")
        if header.startswith(TAG_PREFIX):
            raise ConfigError(f"TAG_HEADERS: {header} is already a tag header")
        out[header] = tag
    return out


@functools.lru_cache(maxsize=8)
def tag_header_map(spec: str | None) -> Mapping[str, str]:
    """``parse_tag_headers`` once per distinct spec (the proxy asks on every request); read-only."""
    return types.MappingProxyType(parse_tag_headers(spec))


def tag_value(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value or len(value) > MAX_TAG_VALUE_CHARS or not value.isprintable():
        return None
    return value


@dataclass(slots=True)
class Attribution:
    """What one request says about who sent it."""

    session_id: str | None = None
    agent_id: str | None = None
    parent_agent_id: str | None = None
    client: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    ignored_tags: int = 0  # tag headers over the limits (bad name, bad value, more than MAX_TAGS)


def attribute(headers: Any, user_id: Any = None, tag_headers: Mapping[str, str] | None = None) -> Attribution:
    """Read session, agents, client and tags from the request's headers and ``metadata.user_id``.

    ``headers`` is any case-insensitive mapping with ``get`` and ``items``; ``user_id`` is the
    body's ``metadata.user_id`` from the one parse the proxy already does (never re-parsed here).
    """
    get = headers.get
    session = valid_id(get(SESSION_HEADER)) or session_from_user_id(user_id)
    a = Attribution(
        session_id=session,
        agent_id=valid_id(get(AGENT_HEADER)),
        parent_agent_id=valid_id(get(PARENT_AGENT_HEADER)),
        client=client_of(get("user-agent"), get("x-app")),
    )
    tags = a.tags
    mapped: list[tuple[str, Any]] = []
    for name, value in headers.items():
        low = name.lower()
        if low.startswith(TAG_PREFIX):
            tag = low[len(TAG_PREFIX):]
            v = tag_value(value)
            if not _TAG_NAME.fullmatch(tag) or v is None or (tag not in tags and len(tags) >= MAX_TAGS):
                a.ignored_tags += 1
                continue
            tags[tag] = v
        elif tag_headers and low in tag_headers:
            mapped.append((tag_headers[low], value))
    # Mapped headers fill in what the explicit tags did not say.
    for tag, value in mapped:
        if tag in tags:
            continue
        v = tag_value(value)
        if v is None or len(tags) >= MAX_TAGS:
            a.ignored_tags += 1
            continue
        tags[tag] = v
    return a


def is_tag_header(name: str) -> bool:
    """Headers that are ours alone and never go upstream."""
    return name.lower().startswith(TAG_PREFIX)


def parse_tag_filter(raw: str) -> tuple[str, str]:
    """``name:value`` (or ``name=value``: the first of the two splits) of a ``tag=`` query filter.

    ``ValueError`` if malformed.
    """
    cut = min((i for i in (raw.find(":"), raw.find("=")) if i >= 0), default=-1)
    if cut >= 0:
        name, value = raw[:cut].strip().lower(), raw[cut + 1:].strip()
        if _TAG_NAME.fullmatch(name) and value and len(value) <= MAX_TAG_VALUE_CHARS:
            return name, value
    raise ValueError(f"tag must be name:value (name [a-z0-9_-] up to 32, value up to 128 chars), got {raw!r}")
