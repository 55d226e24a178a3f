"""View models of ``/api/sessions`` and ``/api/sessions/{id}``, and the Sessions screen's filter words.

No Textual here (like the rest of ``tui.api``): the screen, ``nexus export`` and the tests share it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tui.api.models import RequestEvent, Tokens, as_int, as_opt_float, field_of, parse_time


def _tags(v: Any) -> dict[str, str]:
    return {str(k): str(x) for k, x in v.items()} if isinstance(v, Mapping) else {}


def _share_of(v: Any) -> dict[str, float] | None:
    if not isinstance(v, Mapping):
        return None
    out = {}
    for k, x in v.items():
        if isinstance(x, (int, float)) and not isinstance(x, bool):
            out[str(k)] = float(x)
    return out or None


@dataclass(slots=True)
class Session:
    session_id: str
    account_id: str | None = None
    client: str | None = None
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    active: bool = False
    requests: int = 0
    errors: int = 0
    tokens: Tokens = field(default_factory=Tokens)
    cost_usd: float | None = None
    unpriced: int = 0
    models: list[str] = field(default_factory=list)
    agents: int = 0
    tags: dict[str, str] = field(default_factory=dict)
    quota_share: dict[str, float] | None = None  # active sessions only (utilization points per window)
    raw: dict[str, Any] = field(default_factory=dict)  # the API's object, for export

    @classmethod
    def parse(cls, d: Mapping[str, Any]) -> Session:
        return cls(
            session_id=str(field_of(d, "sessionId", default="")),
            account_id=field_of(d, "accountId"),
            client=field_of(d, "client"),
            first_seen=parse_time(field_of(d, "firstSeen")),
            last_seen=parse_time(field_of(d, "lastSeen")),
            active=bool(field_of(d, "active", default=False)),
            requests=as_int(field_of(d, "requests")),
            errors=as_int(field_of(d, "errors")),
            tokens=Tokens.parse(d.get("tokens")),
            cost_usd=as_opt_float(field_of(d, "costUsd")),
            unpriced=as_int(field_of(d, "unpricedRequests")),
            models=[str(m) for m in field_of(d, "models", default=[]) or []],
            agents=as_int(field_of(d, "agents")),
            tags=_tags(d.get("tags")),
            quota_share=_share_of(d.get("quotaShare")),
            raw=dict(d),
        )


@dataclass(slots=True)
class SessionAgent:
    agent_id: str | None
    parent_agent_id: str | None = None
    depth: int = 0
    requests: int = 0
    errors: int = 0
    tokens: Tokens = field(default_factory=Tokens)
    cost_usd: float | None = None
    models: list[str] = field(default_factory=list)
    last_seen: datetime | None = None

    @classmethod
    def parse(cls, d: Mapping[str, Any]) -> SessionAgent:
        return cls(
            agent_id=field_of(d, "agentId"),
            parent_agent_id=field_of(d, "parentAgentId"),
            depth=as_int(field_of(d, "depth")),
            requests=as_int(field_of(d, "requests")),
            errors=as_int(field_of(d, "errors")),
            tokens=Tokens.parse(d.get("tokens")),
            cost_usd=as_opt_float(field_of(d, "costUsd")),
            models=[str(m) for m in field_of(d, "models", default=[]) or []],
            last_seen=parse_time(field_of(d, "lastSeen")),
        )


@dataclass(slots=True)
class SessionDetail:
    session: Session
    agents: list[SessionAgent] = field(default_factory=list)
    requests: list[RequestEvent] = field(default_factory=list)
    quota_share: dict[str, float] | None = None
    quota_note: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)  # the API's answer, for export

    @classmethod
    def parse(cls, d: Mapping[str, Any]) -> SessionDetail:
        share = d.get("quotaShare")
        return cls(
            session=Session.parse(d.get("session") or {}),
            agents=[SessionAgent.parse(a) for a in d.get("agents") or [] if isinstance(a, Mapping)],
            requests=[RequestEvent.parse(r) for r in d.get("requests") or [] if isinstance(r, Mapping)],
            quota_share={str(k): float(v) for k, v in share.items()} if isinstance(share, Mapping) else None,
            quota_note=field_of(d, "quotaShareNote"),
            raw=dict(d),
        )


def parse_sessions(d: Any) -> tuple[list[Session], str | None]:
    rows = field_of(d, "sessions", default=[]) if isinstance(d, Mapping) else []
    cursor = field_of(d, "nextCursor") if isinstance(d, Mapping) else None
    return [Session.parse(r) for r in rows or [] if isinstance(r, Mapping)], (str(cursor) if cursor else None)


@dataclass(frozen=True, slots=True)
class SessionFilter:
    """The Sessions screen's ``/`` filter: ``session:5f1e`` ``tag:project=apollo`` ``client:claude-cli``.

    Words without a prefix match the session id. ``tag`` and ``client`` go to the API; ``session``
    (a prefix of the id) is matched here.
    """

    session: str | None = None
    tag: tuple[str, str] | None = None
    client: str | None = None

    @classmethod
    def parse(cls, text: str) -> SessionFilter:
        session = tag = client = None
        for word in text.split():
            key, sep, value = word.partition(":")
            if not sep:
                key, value = "session", word
            key, value = key.lower(), value.strip()
            if not value:
                continue
            if key == "session":
                session = value
            elif key == "client":
                client = value
            elif key == "tag":
                name, sep2, v = value.partition("=") if "=" in value else value.partition(":")
                if sep2 and name and v:
                    tag = (name.lower(), v)
        return cls(session, tag, client)

    def params(self) -> dict[str, str | None]:
        return {"tag": f"{self.tag[0]}:{self.tag[1]}" if self.tag else None, "client": self.client}

    def matches(self, s: Session) -> bool:
        return not self.session or s.session_id.startswith(self.session)

    @property
    def text(self) -> str:
        parts = []
        if self.session:
            parts.append(f"session:{self.session}")
        if self.tag:
            parts.append(f"tag:{self.tag[0]}={self.tag[1]}")
        if self.client:
            parts.append(f"client:{self.client}")
        return " ".join(parts)
