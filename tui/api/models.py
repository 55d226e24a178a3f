"""The view models of single things: a request, an alert, the server's info; and the tolerant JSON readers.

Parsing is tolerant (missing fields become zeros/None) because a monitor that crashes on a new
field is worse than one that shows a blank.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def field_of(d: Mapping[str, Any] | None, *names: str, default: Any = None) -> Any:
    """First present, non-None value among several spellings (camelCase is canonical)."""
    if not isinstance(d, Mapping):
        return default
    for n in names:
        v = d.get(n)
        if v is not None:
            return v
    return default


def as_int(v: Any) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


def as_float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return 0.0


def as_opt_float(v: Any) -> float | None:
    if v is None:
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def parse_time(v: Any) -> datetime | None:
    if v is None or v == "":
        return None
    if isinstance(v, (int, float)):
        return datetime.fromtimestamp(float(v), UTC)
    try:
        dt = datetime.fromisoformat(str(v).replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@dataclass(slots=True)
class Tokens:
    input: int = 0
    output: int = 0
    cache_creation: int = 0
    cache_read: int = 0

    @property
    def total(self) -> int:
        return self.input + self.output + self.cache_creation + self.cache_read

    @classmethod
    def parse(cls, d: Any) -> Tokens:
        if not isinstance(d, Mapping):
            return cls()
        return cls(
            input=as_int(field_of(d, "input", "inputTokens", "input_tokens")),
            output=as_int(field_of(d, "output", "outputTokens", "output_tokens")),
            cache_creation=as_int(field_of(d, "cacheCreation", "cacheCreationInputTokens", "cache_creation")),
            cache_read=as_int(field_of(d, "cacheRead", "cacheReadInputTokens", "cache_read")),
        )


@dataclass(slots=True)
class RequestEvent:
    """One finished exchange, as sent on ``/api/sse`` and listed by ``/api/requests``."""

    id: str
    time: datetime | None
    domain: str = ""
    account_id: str | None = None
    model: str | None = None
    status: int = 0
    error_type: str | None = None
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    tokens: Tokens = field(default_factory=Tokens)
    cost_usd: float | None = None
    stream: bool = False
    request_type: str = "messages"
    session_id: str | None = None
    agent_id: str | None = None
    client: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def is_error(self) -> bool:
        return self.status >= 400 or self.error_type is not None

    @classmethod
    def parse(cls, d: Mapping[str, Any]) -> RequestEvent:
        tokens = d.get("tokens")
        if not isinstance(tokens, Mapping):
            tokens = d
        return cls(
            id=str(field_of(d, "id", default="")),
            time=parse_time(field_of(d, "time", "createdAt", "created_at", "timestamp")),
            domain=str(field_of(d, "domain", default="")),
            account_id=field_of(d, "accountId", "account_id"),
            model=field_of(d, "model"),
            status=as_int(field_of(d, "status", "statusCode", "status_code")),
            error_type=field_of(d, "errorType", "error_type"),
            latency_ms=as_float(field_of(d, "latencyMs", "responseTimeMs", "response_time_ms")),
            ttft_ms=as_opt_float(field_of(d, "ttftMs", "ttft_ms")),
            tokens=Tokens.parse(tokens),
            cost_usd=as_opt_float(field_of(d, "costUsd", "cost_usd")),
            stream=bool(field_of(d, "stream", default=False)),
            request_type=str(field_of(d, "requestType", "request_type", default="messages")),
            session_id=field_of(d, "sessionId", "session_id"),
            agent_id=field_of(d, "agentId", "agent_id"),
            client=field_of(d, "client"),
            tags={str(k): str(v) for k, v in (d.get("tags") or {}).items()} if isinstance(d.get("tags"), Mapping)
            else {},
        )


@dataclass(slots=True)
class RequestDetail:
    """``GET /api/requests/{id}``: the record plus whatever the proxy stored about it."""

    event: RequestEvent
    request_id: str | None = None
    method: str = "POST"
    path: str = ""
    error_message: str | None = None
    error_body: Any = None
    request_headers: dict[str, str] = field(default_factory=dict)
    response_headers: dict[str, str] = field(default_factory=dict)
    request_body: str | None = None
    response_body: str | None = None
    # Billing dimensions as recorded, and the rates applied (docs/api.md, /api/requests/{id}).
    service_tier: str | None = None
    speed: str | None = None
    inference_geo: str | None = None
    web_search_requests: int = 0
    web_fetch_requests: int = 0
    thinking_tokens: int = 0
    price_source: str | None = None
    pricing: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, d: Mapping[str, Any]) -> RequestDetail:
        rec = d.get("request") if isinstance(d.get("request"), Mapping) else d
        bodies = d.get("bodies") if isinstance(d.get("bodies"), Mapping) else d
        return cls(
            event=RequestEvent.parse(rec),
            request_id=field_of(rec, "requestId", "request_id"),
            method=str(field_of(rec, "method", default="POST")),
            path=str(field_of(rec, "path", default="")),
            error_message=field_of(rec, "errorMessage", "error_message"),
            error_body=field_of(d, "errorBody", "error_body", "error"),
            request_headers=dict(field_of(bodies, "requestHeaders", "request_headers", default={}) or {}),
            response_headers=dict(field_of(bodies, "responseHeaders", "response_headers", default={}) or {}),
            request_body=field_of(bodies, "requestBody", "request_body"),
            response_body=field_of(bodies, "responseBody", "response_body"),
            service_tier=field_of(rec, "serviceTier"),
            speed=field_of(rec, "speed"),
            inference_geo=field_of(rec, "inferenceGeo"),
            web_search_requests=as_int(field_of(rec, "webSearchRequests")),
            web_fetch_requests=as_int(field_of(rec, "webFetchRequests")),
            thinking_tokens=as_int(field_of(rec, "thinkingTokens")),
            price_source=field_of(rec, "priceSource"),
            pricing=d.get("pricing") if isinstance(d.get("pricing"), Mapping) else None,
            raw=dict(d),
        )


@dataclass(slots=True)
class Alert:
    id: str
    rule: str
    severity: str = "warning"
    message: str = ""
    state: str = "firing"  # firing | resolved
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    value: float | None = None
    threshold: float | None = None
    # The server keeps both (``firedSummary``, ``peakValue``: its summary is rewritten when an alert
    # resolves, "Error rate 4.1 %…", which alone reads as if nothing had happened); the monitor
    # keeps what it saw too, for a server that does not send them.
    fired_message: str | None = None
    peak: float | None = None
    rule_id: str = ""  # the rule's name (error_rate, token_window, …); ``rule`` is its title
    key: str = ""  # what it is about: global, an account (acct_…:5h), an instance
    account: str | None = None  # the account it is about, from its labels
    raw: dict[str, Any] = field(default_factory=dict)  # the server's object, for export

    @property
    def firing(self) -> bool:
        return self.state in ("firing", "active", "open") and self.resolved_at is None

    def merged(self, old: Alert | None) -> Alert:
        """This update, keeping what the earlier ones said: the firing message and the peak value."""
        fired = self.fired_message or (self.message if self.firing else (old.fired_message if old else None))
        if fired is None and old is not None and old.firing:
            fired = old.message
        values = [v for v in (self.value, self.peak, old.peak if old else None, old.value if old else None)
                  if v is not None]
        self.fired_message = fired
        self.peak = max(values) if values else None
        return self

    @property
    def duration_s(self) -> float | None:
        if self.fired_at is None:
            return None
        end = self.resolved_at or datetime.now(UTC)
        return (end - self.fired_at).total_seconds()

    @classmethod
    def parse(cls, d: Mapping[str, Any]) -> Alert:
        state = str(field_of(d, "state", "status", default="firing")).lower()
        return cls(
            id=str(field_of(d, "id", "alertId", default=field_of(d, "rule", default="?"))),
            rule=str(field_of(d, "title", "rule", "name", "type", default="alert")),
            severity=str(field_of(d, "severity", "level", default="warning")),
            message=str(field_of(d, "message", "summary", "text", default="")),
            state=state,
            fired_at=parse_time(field_of(d, "firedAt", "startedAt", "time", "createdAt")),
            resolved_at=parse_time(field_of(d, "resolvedAt", "endedAt")),
            value=as_opt_float(field_of(d, "value")),
            threshold=as_opt_float(field_of(d, "threshold")),
            fired_message=field_of(d, "firedSummary") or None,
            peak=as_opt_float(field_of(d, "peakValue")),
            rule_id=str(field_of(d, "rule", default="") or ""),
            key=str(field_of(d, "key", default="") or ""),
            account=_label(d, "account"),
            raw=dict(d),
        )


def _label(d: Mapping[str, Any], name: str) -> str | None:
    labels = d.get("labels")
    v = labels.get(name) if isinstance(labels, Mapping) else None
    return str(v) if v else None


def parse_alerts(d: Any) -> list[Alert]:
    if isinstance(d, list):
        return [Alert.parse(x) for x in d if isinstance(x, Mapping)]
    if not isinstance(d, Mapping):
        return []
    out: list[Alert] = []
    seen: set[str] = set()
    for key in ("active", "firing", "alerts", "recent", "items"):
        for x in d.get(key) or []:
            if isinstance(x, Mapping):
                a = Alert.parse(x)
                if key in ("active", "firing") and a.state not in ("firing", "active"):
                    a.state = "firing"
                if a.id not in seen:
                    seen.add(a.id)
                    out.append(a)
    return out


@dataclass(slots=True)
class Info:
    """``/api/info``: who we are talking to (version, uptime, instance)."""

    version: str = ""
    uptime_s: float | None = None
    started_at: datetime | None = None
    instance_id: str = ""
    proxy_url: str = ""
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, d: Mapping[str, Any]) -> Info:
        return cls(
            version=str(field_of(d, "version", default="")),
            uptime_s=as_opt_float(field_of(d, "uptimeSeconds", "uptimeS", "uptime_s", "uptime")),
            started_at=parse_time(field_of(d, "startedAt", "started_at")),
            instance_id=str(field_of(d, "instanceId", "instance_id", default="")),
            proxy_url=str(field_of(d, "proxyUrl", "proxy_url", default="")),
            raw=dict(d),
        )
