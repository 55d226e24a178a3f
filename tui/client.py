"""The monitor's only door to the server: the dashboard API over HTTP (httpx + httpx-sse).

No Textual here, so the same code serves the TUI, ``nexus export`` and the tests, and the
headless paths never pay for importing a UI framework. The server is known only by its JSON
(``docs/api.md``); parsing is tolerant (missing fields become zeros/None) because a monitor
that crashes on a new field is worse than one that shows a blank.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import EventSource, SSEError

DEFAULT_URL = "http://127.0.0.1:3001"
KEY_FILE = "dashboard.key"

# name -> (seconds, timeseries bucket seconds); buckets keep every chart near 60-ish points.
TIME_RANGES: dict[str, tuple[int, int]] = {
    "15m": (15 * 60, 60),
    "1h": (3600, 60),
    "6h": (6 * 3600, 300),
    "24h": (24 * 3600, 900),
    "7d": (7 * 86400, 3600),
}
RANGE_ORDER = tuple(TIME_RANGES)


class ApiError(Exception):
    """The API answered, but not with what we asked for."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ApiUnreachable(ApiError):
    """No answer at all: connection refused, DNS, timeout."""


class ApiAuthError(ApiError):
    """401 (no key) or 403 (wrong key): retrying will not help, the user must act."""


def auth_message(status: int | None) -> str:
    if status == 401:
        return "401: the dashboard API wants a key (--key, DASHBOARD_API_KEY or the data dir's dashboard.key)"
    return "403: the dashboard key was refused (check --key / DASHBOARD_API_KEY)"


def find_key(data_dir: Path, explicit: str | None = None, env_key: str | None = None) -> str | None:
    """The key to send: ``--key``, else ``DASHBOARD_API_KEY``, else the proxy's stored key file."""
    if explicit:
        return explicit
    if env_key:
        return env_key
    path = Path(data_dir) / KEY_FILE
    with contextlib.suppress(OSError):
        text = path.read_text().strip()
        if text:
            return text
    return None


# --------------------------------------------------------------------------- parsing helpers


def _get(d: Mapping[str, Any] | None, *names: str, default: Any = None) -> Any:
    """First present, non-None value among several spellings (camelCase is canonical)."""
    if not isinstance(d, Mapping):
        return default
    for n in names:
        v = d.get(n)
        if v is not None:
            return v
    return default


def _int(v: Any) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


def _float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return 0.0


def _opt_float(v: Any) -> float | None:
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


# --------------------------------------------------------------------------- typed views


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
            input=_int(_get(d, "input", "inputTokens", "input_tokens")),
            output=_int(_get(d, "output", "outputTokens", "output_tokens")),
            cache_creation=_int(_get(d, "cacheCreation", "cacheCreationInputTokens", "cache_creation")),
            cache_read=_int(_get(d, "cacheRead", "cacheReadInputTokens", "cache_read")),
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

    @property
    def is_error(self) -> bool:
        return self.status >= 400 or self.error_type is not None

    @classmethod
    def parse(cls, d: Mapping[str, Any]) -> RequestEvent:
        tokens = d.get("tokens")
        if not isinstance(tokens, Mapping):
            tokens = d
        return cls(
            id=str(_get(d, "id", default="")),
            time=parse_time(_get(d, "time", "createdAt", "created_at", "timestamp")),
            domain=str(_get(d, "domain", default="")),
            account_id=_get(d, "accountId", "account_id"),
            model=_get(d, "model"),
            status=_int(_get(d, "status", "statusCode", "status_code")),
            error_type=_get(d, "errorType", "error_type"),
            latency_ms=_float(_get(d, "latencyMs", "responseTimeMs", "response_time_ms")),
            ttft_ms=_opt_float(_get(d, "ttftMs", "ttft_ms")),
            tokens=Tokens.parse(tokens),
            cost_usd=_opt_float(_get(d, "costUsd", "cost_usd")),
            stream=bool(_get(d, "stream", default=False)),
            request_type=str(_get(d, "requestType", "request_type", default="messages")),
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
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, d: Mapping[str, Any]) -> RequestDetail:
        rec = d.get("request") if isinstance(d.get("request"), Mapping) else d
        bodies = d.get("bodies") if isinstance(d.get("bodies"), Mapping) else d
        return cls(
            event=RequestEvent.parse(rec),
            request_id=_get(rec, "requestId", "request_id"),
            method=str(_get(rec, "method", default="POST")),
            path=str(_get(rec, "path", default="")),
            error_message=_get(rec, "errorMessage", "error_message"),
            error_body=_get(d, "errorBody", "error_body", "error"),
            request_headers=dict(_get(bodies, "requestHeaders", "request_headers", default={}) or {}),
            response_headers=dict(_get(bodies, "responseHeaders", "response_headers", default={}) or {}),
            request_body=_get(bodies, "requestBody", "request_body"),
            response_body=_get(bodies, "responseBody", "response_body"),
            raw=dict(d),
        )


@dataclass(slots=True)
class Breakdown:
    key: str
    requests: int = 0
    tokens: int = 0
    cost_usd: float | None = None
    errors: int = 0
    unpriced_requests: int = 0


@dataclass(slots=True)
class Stats:
    total_requests: int = 0
    tokens: Tokens = field(default_factory=Tokens)
    errors: int = 0
    error_rate: float = 0.0  # 0..1
    latency_avg: float | None = None
    latency_p50: float | None = None
    latency_p95: float | None = None
    latency_p99: float | None = None
    cost_usd: float = 0.0
    requests_per_minute: float = 0.0
    by_model: list[Breakdown] = field(default_factory=list)
    by_domain: list[Breakdown] = field(default_factory=list)

    @classmethod
    def parse(cls, d: Mapping[str, Any]) -> Stats:
        lat = d.get("latencyMs") if isinstance(d.get("latencyMs"), Mapping) else {}
        tokens = d.get("tokens") if isinstance(d.get("tokens"), Mapping) else d
        rate = _float(_get(d, "errorRate", "error_rate"))
        if rate > 1.0:  # a percentage
            rate /= 100.0
        return cls(
            total_requests=_int(_get(d, "totalRequests", "total_requests", "requests")),
            tokens=Tokens.parse(tokens),
            errors=_int(_get(d, "errorCount", "errors", "totalErrors")),
            error_rate=rate,
            latency_avg=_opt_float(_get(lat, "avg", "avgMs", default=_get(d, "avgLatencyMs"))),
            latency_p50=_opt_float(_get(lat, "p50", "p50Ms", default=_get(d, "p50LatencyMs"))),
            latency_p95=_opt_float(_get(lat, "p95", "p95Ms", default=_get(d, "p95LatencyMs"))),
            latency_p99=_opt_float(_get(lat, "p99", "p99Ms", default=_get(d, "p99LatencyMs"))),
            cost_usd=_float(_get(d, "costUsd", "totalCostUsd", "cost")),
            requests_per_minute=_float(_get(d, "requestsPerMinute", "rpm", "requests_per_minute")),
            by_model=_parse_breakdown(_get(d, "byModel", "by_model"), "model"),
            by_domain=_parse_breakdown(_get(d, "byDomain", "by_domain"), "domain"),
        )


def _parse_breakdown(v: Any, key_name: str) -> list[Breakdown]:
    items: list[tuple[str, Any]]
    if isinstance(v, Mapping):
        items = [(str(k), x) for k, x in v.items()]
    elif isinstance(v, list):
        items = [(str(_get(x, key_name, "key", "name", default="?")), x) for x in v if isinstance(x, Mapping)]
    else:
        return []
    out = []
    for key, x in items:
        if not isinstance(x, Mapping):
            continue
        tokens = x.get("tokens")
        tok = Tokens.parse(tokens).total if isinstance(tokens, Mapping) else _int(
            _get(x, "totalTokens", "tokens"))
        out.append(Breakdown(
            key=key,
            requests=_int(_get(x, "requests", "totalRequests", "count")),
            tokens=tok,
            cost_usd=_opt_float(_get(x, "costUsd", "cost")),
            errors=_int(_get(x, "errors", "errorCount")),
            unpriced_requests=_int(_get(x, "unpricedRequests")),
        ))
    return out


@dataclass(slots=True)
class Bucket:
    time: datetime | None
    requests: int = 0
    errors: int = 0
    p50: float | None = None
    p95: float | None = None
    tokens: int = 0
    cost_usd: float = 0.0


@dataclass(slots=True)
class Timeseries:
    bucket_seconds: int
    buckets: list[Bucket] = field(default_factory=list)

    @classmethod
    def parse(cls, d: Mapping[str, Any] | list, bucket_seconds: int) -> Timeseries:
        rows = d if isinstance(d, list) else _get(d, "buckets", "series", "points", "data", default=[])
        bs = bucket_seconds if isinstance(d, list) else _int(_get(d, "bucket", "bucketSeconds",
                                                                  default=bucket_seconds))
        out = []
        for r in rows or []:
            if not isinstance(r, Mapping):
                continue
            tokens = r.get("tokens")
            tok = Tokens.parse(tokens).total if isinstance(tokens, Mapping) else _int(
                _get(r, "totalTokens", "tokens"))
            lat = r.get("latency") if isinstance(r.get("latency"), Mapping) else r
            out.append(Bucket(
                time=parse_time(_get(r, "time", "bucket", "start", "t")),
                requests=_int(_get(r, "requests", "count")),
                errors=_int(_get(r, "errors", "errorCount")),
                p50=_opt_float(_get(lat, "p50", "p50Ms", "p50LatencyMs")),
                p95=_opt_float(_get(lat, "p95", "p95Ms", "p95LatencyMs")),
                tokens=tok,
                cost_usd=_float(_get(r, "costUsd", "cost")),
            ))
        return cls(bucket_seconds=bs or bucket_seconds, buckets=out)


@dataclass(slots=True)
class TokenWindow:
    """One account's 5-hour window (``/api/token-usage/current``)."""

    account_id: str
    window_start: datetime | None = None
    window_end: datetime | None = None
    total_tokens: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation: int = 0
    cache_read: int = 0
    requests: int = 0
    limit: int | None = None
    percent_of_limit: float | None = None  # 0..100
    burn_per_minute: float = 0.0
    projected_total: float | None = None
    exhaustion_time: datetime | None = None
    active: bool = True

    @classmethod
    def parse(cls, d: Mapping[str, Any]) -> TokenWindow:
        limit = _get(d, "limit", "tokenLimit", "windowLimit")
        pct = _opt_float(_get(d, "percentOfLimit", "percentUsed", "pctOfLimit", "percent"))
        limit_i = _int(limit) if limit is not None else None
        total = _int(_get(d, "totalTokens", "total_tokens"))
        if pct is None and limit_i:
            pct = 100.0 * total / limit_i
        return cls(
            account_id=str(_get(d, "accountId", "account_id", default="")),
            active=bool(_get(d, "active", default=True)),
            window_start=parse_time(_get(d, "windowStart", "window_start")),
            window_end=parse_time(_get(d, "windowEnd", "window_end")),
            total_tokens=total,
            input_tokens=_int(_get(d, "totalInputTokens", "inputTokens")),
            output_tokens=_int(_get(d, "totalOutputTokens", "outputTokens")),
            cache_creation=_int(_get(d, "cacheCreationInputTokens", "cacheCreationTokens")),
            cache_read=_int(_get(d, "cacheReadInputTokens", "cacheReadTokens")),
            requests=_int(_get(d, "totalRequests", "requests")),
            limit=limit_i or None,
            percent_of_limit=pct,
            burn_per_minute=_float(_get(d, "burnRatePerMinute", "burnRate", "tokensPerMinute",
                                        "burn_rate_per_minute")),
            projected_total=_opt_float(_get(d, "projectedTotal", "projectedTotalTokens",
                                            "projected_total")),
            exhaustion_time=parse_time(_get(d, "exhaustionTime", "projectedExhaustion",
                                            "exhaustsAt", "exhaustionAt")),
        )


def parse_windows(d: Any) -> list[TokenWindow]:
    if isinstance(d, list):
        rows = d
    elif isinstance(d, Mapping):
        rows = _get(d, "accounts", "windows", "usage", "items", default=None)
        if rows is None:
            rows = [d] if "accountId" in d else []
    else:
        rows = []
    return [TokenWindow.parse(r) for r in rows if isinstance(r, Mapping)]


@dataclass(slots=True)
class Costs:
    today_usd: float = 0.0
    month_usd: float = 0.0
    projection_usd: float | None = None
    by_model: list[Breakdown] = field(default_factory=list)
    unpriced_models: list[str] = field(default_factory=list)
    unpriced_requests: int = 0
    by_day: list[tuple[str, float]] = field(default_factory=list)

    @classmethod
    def parse(cls, d: Mapping[str, Any]) -> Costs:
        by_model = _parse_breakdown(_get(d, "byModel", "by_model", "models"), "model")
        unpriced_raw = _get(d, "unpriced", "unpricedModels", default=[]) or []
        unpriced = [str(_get(x, "model", default="")) if isinstance(x, Mapping) else str(x)
                    for x in unpriced_raw]
        days_raw = _get(d, "daily", "byDay", default=[]) or []
        by_day: list[tuple[str, float]] = []
        for x in days_raw:
            if isinstance(x, Mapping):
                by_day.append((str(_get(x, "date", "day", default="")), _float(_get(x, "costUsd", "cost",
                                                                                      "total"))))
        today = _opt_float(_get(d, "todayUsd", "today", "costToday"))
        if today is None:
            today_s = datetime.now(UTC).date().isoformat()
            today = sum(c for day, c in by_day if day.startswith(today_s))
        month = _opt_float(_get(d, "monthToDateUsd", "monthUsd", "month", "costThisMonth"))
        if month is None:
            month_s = datetime.now(UTC).strftime("%Y-%m")
            month = sum(c for day, c in by_day if day.startswith(month_s))
        return cls(
            today_usd=today,
            month_usd=month,
            projection_usd=_opt_float(_get(d, "monthEndProjectionUsd", "projectionUsd", "projection",
                                           "monthEndProjection")),
            by_model=by_model,
            unpriced_models=[str(m) for m in unpriced],
            unpriced_requests=_int(_get(d, "unpricedRequests", "unpriced_requests")),
            by_day=by_day,
        )


@dataclass(slots=True)
class ErrorGroup:
    status: int
    error_type: str | None
    count: int
    domains: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ErrorsReport:
    """``/api/errors``: counts by status and type, plus the newest error rows."""

    total: int = 0
    groups: list[ErrorGroup] = field(default_factory=list)
    recent: list[RequestEvent] = field(default_factory=list)

    @classmethod
    def parse(cls, d: Any) -> ErrorsReport:
        groups = parse_error_groups(d)
        recent = [RequestEvent.parse(r) for r in (_get(d, "recent", default=[]) or [])
                  if isinstance(r, Mapping)]
        total = _int(_get(d, "totalErrors", default=sum(g.count for g in groups)))
        return cls(total=total, groups=groups, recent=recent)


def parse_error_groups(d: Any) -> list[ErrorGroup]:
    rows = d if isinstance(d, list) else _get(d, "groups", "errors", "byType", "items", default=[])
    out = []
    for r in rows or []:
        if isinstance(r, Mapping):
            domains = _get(r, "domains", "affectedDomains", default=[]) or []
            out.append(ErrorGroup(
                status=_int(_get(r, "statusCode", "status", "status_code")),
                error_type=_get(r, "errorType", "error_type", "type"),
                count=_int(_get(r, "count", "requests", "total")),
                domains=[str(x) for x in domains],
            ))
    return out


@dataclass(slots=True)
class Alert:
    id: str
    rule: str
    severity: str = "warning"
    message: str = ""
    state: str = "firing"  # firing | resolved
    fired_at: datetime | None = None
    resolved_at: datetime | None = None

    @property
    def firing(self) -> bool:
        return self.state in ("firing", "active", "open") and self.resolved_at is None

    @classmethod
    def parse(cls, d: Mapping[str, Any]) -> Alert:
        state = str(_get(d, "state", "status", default="firing")).lower()
        return cls(
            id=str(_get(d, "id", "alertId", default=_get(d, "rule", default="?"))),
            rule=str(_get(d, "title", "rule", "name", "type", default="alert")),
            severity=str(_get(d, "severity", "level", default="warning")),
            message=str(_get(d, "message", "summary", "text", default="")),
            state=state,
            fired_at=parse_time(_get(d, "firedAt", "startedAt", "time", "createdAt")),
            resolved_at=parse_time(_get(d, "resolvedAt", "endedAt")),
        )


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
            version=str(_get(d, "version", default="")),
            uptime_s=_opt_float(_get(d, "uptimeSeconds", "uptimeS", "uptime_s", "uptime")),
            started_at=parse_time(_get(d, "startedAt", "started_at")),
            instance_id=str(_get(d, "instanceId", "instance_id", default="")),
            proxy_url=str(_get(d, "proxyUrl", "proxy_url", default="")),
            raw=dict(d),
        )


@dataclass(frozen=True, slots=True)
class Query:
    """What the user is looking at: the time range and the filters."""

    time_range: str = "1h"
    domain: str | None = None
    account: str | None = None
    model: str | None = None

    @property
    def seconds(self) -> int:
        return TIME_RANGES.get(self.time_range, TIME_RANGES["1h"])[0]

    @property
    def bucket(self) -> int:
        return TIME_RANGES.get(self.time_range, TIME_RANGES["1h"])[1]

    def since(self, now: datetime | None = None) -> datetime:
        return (now or datetime.now(UTC)) - timedelta(seconds=self.seconds)

    def matches(self, ev: RequestEvent) -> bool:
        """Client-side filter for the live stream (the API filters what it can)."""
        # Exact, like the API's filters, so the live log and the polled panels agree.
        if self.domain and ev.domain != self.domain:
            return False
        if self.account and (ev.account_id or "") != self.account:
            return False
        if self.model and (ev.model or "") != self.model:
            return False
        return True

    def params(self) -> dict[str, str | None]:
        """The filters as the API spells them (exact match server-side)."""
        return {"domain": self.domain, "accountId": self.account, "model": self.model}

    @property
    def filter_text(self) -> str:
        parts = [f"{k}={v}" for k, v in (("domain", self.domain), ("account", self.account),
                                         ("model", self.model)) if v]
        return " ".join(parts)


def next_range(name: str) -> str:
    i = RANGE_ORDER.index(name) if name in RANGE_ORDER else 0
    return RANGE_ORDER[(i + 1) % len(RANGE_ORDER)]


# --------------------------------------------------------------------------- the client


class DashboardClient:
    """Typed calls to the dashboard API. Every call has a timeout; none can hang the caller."""

    def __init__(self, base_url: str = DEFAULT_URL, key: str | None = None, *, timeout: float = 5.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = key
        headers = {"X-Dashboard-Key": key} if key else {}
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=headers,
                                       timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)),
                                       transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> DashboardClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        clean = {k: v for k, v in (params or {}).items() if v is not None and v != ""}
        try:
            resp = await self._http.get(path, params=clean)
        except httpx.TimeoutException as exc:
            raise ApiUnreachable(f"timeout talking to {self.base_url}") from exc
        except httpx.TransportError as exc:
            raise ApiUnreachable(f"cannot reach {self.base_url}: {exc.__class__.__name__}") from exc
        if resp.status_code in (401, 403):
            raise ApiAuthError(auth_message(resp.status_code), resp.status_code)
        if resp.status_code >= 400:
            msg = resp.text[:200]
            with contextlib.suppress(ValueError):
                body = resp.json()
                msg = str(_get(body, "message", "error", default=msg))
                if isinstance(body.get("error"), Mapping):
                    msg = str(body["error"].get("message", msg))
            raise ApiError(f"{path}: HTTP {resp.status_code}: {msg}", resp.status_code)
        try:
            return resp.json()
        except ValueError as exc:
            raise ApiError(f"{path}: not JSON") from exc

    @staticmethod
    def _iso(dt: datetime) -> str:
        return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")

    async def info(self) -> Info:
        return Info.parse(await self.get_json("/api/info"))

    async def stats(self, q: Query) -> Stats:
        return Stats.parse(await self.get_json("/api/stats", {"since": q.time_range, **q.params()}))

    async def timeseries(self, q: Query) -> Timeseries:
        data = await self.get_json("/api/timeseries", {"since": q.time_range, "bucket": q.bucket,
                                                        **q.params()})
        return Timeseries.parse(data, q.bucket)

    async def token_windows(self, q: Query, window_minutes: int = 300) -> list[TokenWindow]:
        data = await self.get_json("/api/token-usage/current", {"window": window_minutes,
                                                                 "accountId": q.account,
                                                                 "domain": q.domain})
        return parse_windows(data)

    async def costs(self, q: Query | None = None, days: int = 31) -> Costs:
        q = q or Query()
        return Costs.parse(await self.get_json("/api/costs", {"days": days, "domain": q.domain,
                                                               "accountId": q.account}))

    async def errors(self, q: Query, limit: int = 50) -> ErrorsReport:
        return ErrorsReport.parse(await self.get_json("/api/errors", {
            "since": q.time_range, "limit": limit, **q.params()}))

    async def requests_page(self, q: Query | None = None, *, limit: int = 100, before: str | None = None,
                            errors_only: bool = False) -> tuple[list[RequestEvent], str | None]:
        """One page, newest first, and the cursor for the next (older) page."""
        q = q or Query()
        data = await self.get_json("/api/requests", {
            "limit": limit, "before": before, "status": "error" if errors_only else None,
            "since": q.time_range, **q.params()})
        rows = data if isinstance(data, list) else _get(data, "requests", "items", "data", default=[])
        events = [RequestEvent.parse(r) for r in rows or [] if isinstance(r, Mapping)]
        cursor = None if isinstance(data, list) else _get(data, "nextCursor", "next_cursor", "cursor",
                                                          "before")
        return events, (str(cursor) if cursor else None)

    async def request(self, request_id: str) -> RequestDetail:
        return RequestDetail.parse(await self.get_json(f"/api/requests/{request_id}"))

    async def alerts(self) -> list[Alert]:
        return parse_alerts(await self.get_json("/api/alerts"))

    def stream(self, **kwargs: Any) -> EventStream:
        return EventStream(self, **kwargs)


# --------------------------------------------------------------------------- the live stream


@dataclass(slots=True)
class StreamState:
    """What the header shows about the stream."""

    connected: bool = False
    message: str = "connecting…"
    retry_at: float | None = None  # monotonic time of the next attempt
    auth_failed: bool = False
    last_event_id: str | None = None
    received: int = 0
    reconnects: int = 0
    dropped: int = 0  # events pushed out of the bounded buffer before anyone read them


class EventStream:
    """``/api/sse`` with reconnect, exponential backoff with jitter, and ``Last-Event-ID`` resume.

    Events land in a bounded deque; the UI drains it on its own clock (so 200 events/s cost one
    redraw per tick, not 200) and, when paused, simply stops draining. Old events fall off the
    far end, so memory is bounded however long the monitor runs.
    """

    def __init__(self, client: DashboardClient, *, buffer: int = 5000, min_backoff: float = 0.5,
                 max_backoff: float = 15.0, read_timeout: float = 45.0,
                 on_change: Callable[[StreamState], None] | None = None,
                 on_alert: Callable[[Alert], Awaitable[None] | None] | None = None) -> None:
        self.client = client
        self.requests: deque[RequestEvent] = deque(maxlen=buffer)
        self.alerts: deque[Alert] = deque(maxlen=200)
        self.state = StreamState()
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.read_timeout = read_timeout  # > the server's 15 s heartbeat, so silence means trouble
        self.on_change = on_change
        self.on_alert = on_alert
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="nexus-sse")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None

    def retry_now(self) -> None:
        """Skip the rest of the backoff (e.g. the user pressed a key after fixing the key)."""
        self._wake.set()

    def drain(self, limit: int | None = None) -> list[RequestEvent]:
        out: list[RequestEvent] = []
        while self.requests and (limit is None or len(out) < limit):
            out.append(self.requests.popleft())
        return out

    def _changed(self) -> None:
        if self.on_change is not None:
            with contextlib.suppress(Exception):
                self.on_change(self.state)

    def _push(self, ev: RequestEvent) -> None:
        if len(self.requests) == self.requests.maxlen:
            self.state.dropped += 1
        self.requests.append(ev)

    async def _run(self) -> None:
        backoff = self.min_backoff
        while True:
            try:
                got_any = await self._connect_once()
                if got_any:
                    backoff = self.min_backoff
                self.state.message = "stream ended"
            except ApiAuthError as exc:
                self.state.auth_failed = True
                self.state.message = str(exc)
                backoff = self.max_backoff
            except (httpx.TransportError, httpx.TimeoutException, ApiUnreachable, SSEError, ApiError) as exc:
                self.state.message = f"disconnected ({exc.__class__.__name__})"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never let the stream task die silently
                self.state.message = f"stream error: {exc}"
            self.state.connected = False
            self.state.reconnects += 1
            delay = backoff * (0.8 + 0.4 * random.random())
            self.state.retry_at = time.monotonic() + delay
            self._changed()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            self.state.retry_at = None
            backoff = min(self.max_backoff, backoff * 2)

    async def _connect_once(self) -> bool:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.state.last_event_id:
            headers["Last-Event-ID"] = self.state.last_event_id
        got_any = False
        timeout = httpx.Timeout(connect=3.0, read=self.read_timeout, write=5.0, pool=5.0)
        async with self.client._http.stream("GET", "/api/sse", headers=headers, timeout=timeout) as resp:
            if resp.status_code in (401, 403):
                raise ApiAuthError(auth_message(resp.status_code), resp.status_code)
            if resp.status_code != 200:
                raise ApiError(f"/api/sse: HTTP {resp.status_code}", resp.status_code)
            self.state.connected = True
            self.state.auth_failed = False
            self.state.message = "live"
            self._changed()
            async for sse in EventSource(resp).aiter_sse():
                if sse.id:
                    self.state.last_event_id = sse.id
                if sse.event == "request":
                    try:
                        data = sse.json()
                    except ValueError:
                        continue
                    if isinstance(data, Mapping):
                        self._push(RequestEvent.parse(data))
                        self.state.received += 1
                        got_any = True
                elif sse.event == "alert":
                    try:
                        data = sse.json()
                    except ValueError:
                        continue
                    if isinstance(data, Mapping):
                        alert = Alert.parse(data)
                        self.alerts.append(alert)
                        got_any = True
                        if self.on_alert is not None:
                            res = self.on_alert(alert)
                            if asyncio.iscoroutine(res):
                                await res
                else:
                    got_any = True  # heartbeats prove the link works; reset the backoff
        return got_any
