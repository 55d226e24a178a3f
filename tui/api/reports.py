"""The view models of aggregates the panels draw: stats, timeseries, token windows, costs, errors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tui.api.models import RequestEvent, Tokens, as_float, as_int, as_opt_float, field_of, parse_time


def as_opt_int(v: Any) -> int | None:
    f = as_opt_float(v)
    return None if f is None else int(f)


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
        rate = as_float(field_of(d, "errorRate", "error_rate"))
        if rate > 1.0:  # a percentage
            rate /= 100.0
        return cls(
            total_requests=as_int(field_of(d, "totalRequests", "total_requests", "requests")),
            tokens=Tokens.parse(tokens),
            errors=as_int(field_of(d, "errorCount", "errors", "totalErrors")),
            error_rate=rate,
            latency_avg=as_opt_float(field_of(lat, "avg", "avgMs", default=field_of(d, "avgLatencyMs"))),
            latency_p50=as_opt_float(field_of(lat, "p50", "p50Ms", default=field_of(d, "p50LatencyMs"))),
            latency_p95=as_opt_float(field_of(lat, "p95", "p95Ms", default=field_of(d, "p95LatencyMs"))),
            latency_p99=as_opt_float(field_of(lat, "p99", "p99Ms", default=field_of(d, "p99LatencyMs"))),
            cost_usd=as_float(field_of(d, "costUsd", "totalCostUsd", "cost")),
            requests_per_minute=as_float(field_of(d, "requestsPerMinute", "rpm", "requests_per_minute")),
            by_model=_parse_breakdown(field_of(d, "byModel", "by_model"), "model"),
            by_domain=_parse_breakdown(field_of(d, "byDomain", "by_domain"), "domain"),
        )


def _parse_breakdown(v: Any, key_name: str) -> list[Breakdown]:
    items: list[tuple[str, Any]]
    if isinstance(v, Mapping):
        items = [(str(k), x) for k, x in v.items()]
    elif isinstance(v, list):
        items = [(str(field_of(x, key_name, "key", "name", default="?")), x) for x in v if isinstance(x, Mapping)]
    else:
        return []
    out = []
    for key, x in items:
        if not isinstance(x, Mapping):
            continue
        tokens = x.get("tokens")
        tok = Tokens.parse(tokens).total if isinstance(tokens, Mapping) else as_int(
            field_of(x, "totalTokens", "tokens"))
        out.append(Breakdown(
            key=key,
            requests=as_int(field_of(x, "requests", "totalRequests", "count")),
            tokens=tok,
            cost_usd=as_opt_float(field_of(x, "costUsd", "cost")),
            errors=as_int(field_of(x, "errors", "errorCount")),
            unpriced_requests=as_int(field_of(x, "unpricedRequests")),
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
        rows = d if isinstance(d, list) else field_of(d, "buckets", "series", "points", "data", default=[])
        bs = bucket_seconds if isinstance(d, list) else as_int(field_of(d, "bucket", "bucketSeconds",
                                                                  default=bucket_seconds))
        out = []
        for r in rows or []:
            if not isinstance(r, Mapping):
                continue
            tokens = r.get("tokens")
            tok = Tokens.parse(tokens).total if isinstance(tokens, Mapping) else as_int(
                field_of(r, "totalTokens", "tokens"))
            lat = r.get("latency") if isinstance(r.get("latency"), Mapping) else r
            out.append(Bucket(
                time=parse_time(field_of(r, "time", "bucket", "start", "t")),
                requests=as_int(field_of(r, "requests", "count")),
                errors=as_int(field_of(r, "errors", "errorCount")),
                p50=as_opt_float(field_of(lat, "p50", "p50Ms", "p50LatencyMs")),
                p95=as_opt_float(field_of(lat, "p95", "p95Ms", "p95LatencyMs")),
                tokens=tok,
                cost_usd=as_float(field_of(r, "costUsd", "cost")),
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
    # Measured (``limitSource`` = headers: Anthropic's utilization) or estimated (configured/learned).
    utilization: float | None = None  # fraction
    resets_at: datetime | None = None
    limit_source: str | None = None

    @classmethod
    def parse(cls, d: Mapping[str, Any]) -> TokenWindow:
        limit = field_of(d, "limit", "tokenLimit", "windowLimit")
        pct = as_opt_float(field_of(d, "percentOfLimit", "percentUsed", "pctOfLimit", "percent"))
        limit_i = as_int(limit) if limit is not None else None
        total = as_int(field_of(d, "totalTokens", "total_tokens"))
        if pct is None and limit_i:
            pct = 100.0 * total / limit_i
        return cls(
            account_id=str(field_of(d, "accountId", "account_id", default="")),
            active=bool(field_of(d, "active", default=True)),
            window_start=parse_time(field_of(d, "windowStart", "window_start")),
            window_end=parse_time(field_of(d, "windowEnd", "window_end")),
            total_tokens=total,
            input_tokens=as_int(field_of(d, "totalInputTokens", "inputTokens")),
            output_tokens=as_int(field_of(d, "totalOutputTokens", "outputTokens")),
            cache_creation=as_int(field_of(d, "cacheCreationInputTokens", "cacheCreationTokens")),
            cache_read=as_int(field_of(d, "cacheReadInputTokens", "cacheReadTokens")),
            requests=as_int(field_of(d, "totalRequests", "requests")),
            limit=limit_i or None,
            percent_of_limit=pct,
            burn_per_minute=as_float(field_of(d, "burnRatePerMinute", "burnRate", "tokensPerMinute",
                                        "burn_rate_per_minute")),
            projected_total=as_opt_float(field_of(d, "projectedTotal", "projectedTotalTokens",
                                            "projected_total")),
            exhaustion_time=parse_time(field_of(d, "exhaustionTime", "projectedExhaustion",
                                            "exhaustsAt", "exhaustionAt")),
            utilization=as_opt_float(d.get("utilization")),
            resets_at=parse_time(d.get("resetsAt")),
            limit_source=d.get("limitSource") if isinstance(d.get("limitSource"), str) else None,
        )

    @property
    def measured(self) -> bool:
        return self.limit_source == "headers"


def parse_windows(d: Any) -> list[TokenWindow]:
    if isinstance(d, list):
        rows = d
    elif isinstance(d, Mapping):
        rows = field_of(d, "accounts", "windows", "usage", "items", default=None)
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
    unpriced_tokens: dict[str, int] = field(default_factory=dict)
    # The range's cost by billing dimension (``byDimension``).
    web_search_usd: float = 0.0
    web_searches: int = 0
    fast_usd: float = 0.0
    fast_share: float = 0.0
    us_only_usd: float = 0.0

    @classmethod
    def parse(cls, d: Mapping[str, Any]) -> Costs:
        by_model = _parse_breakdown(field_of(d, "byModel", "by_model", "models"), "model")
        unpriced_raw = field_of(d, "unpriced", "unpricedModels", default=[]) or []
        unpriced = [str(field_of(x, "model", default="")) if isinstance(x, Mapping) else str(x)
                    for x in unpriced_raw]
        unpriced_tokens = {str(field_of(x, "model", default="")): as_int(field_of(x, "tokens"))
                           for x in unpriced_raw if isinstance(x, Mapping)}
        dims = field_of(d, "byDimension", default={}) or {}
        web = dims.get("webSearch") if isinstance(dims.get("webSearch"), Mapping) else {}
        fast = dims.get("fast") if isinstance(dims.get("fast"), Mapping) else {}
        us = dims.get("usOnly") if isinstance(dims.get("usOnly"), Mapping) else {}
        days_raw = field_of(d, "daily", "byDay", default=[]) or []
        by_day: list[tuple[str, float]] = []
        for x in days_raw:
            if isinstance(x, Mapping):
                by_day.append((str(field_of(x, "date", "day", default="")), as_float(field_of(x, "costUsd", "cost",
                                                                                      "total"))))
        today = as_opt_float(field_of(d, "todayUsd", "today", "costToday"))
        if today is None:
            today_s = datetime.now(UTC).date().isoformat()
            today = sum(c for day, c in by_day if day.startswith(today_s))
        month = as_opt_float(field_of(d, "monthToDateUsd", "monthUsd", "month", "costThisMonth"))
        if month is None:
            month_s = datetime.now(UTC).strftime("%Y-%m")
            month = sum(c for day, c in by_day if day.startswith(month_s))
        return cls(
            today_usd=today,
            month_usd=month,
            projection_usd=as_opt_float(field_of(d, "monthEndProjectionUsd", "projectionUsd", "projection",
                                           "monthEndProjection")),
            by_model=by_model,
            unpriced_models=[str(m) for m in unpriced],
            unpriced_requests=as_int(field_of(d, "unpricedRequests", "unpriced_requests")),
            by_day=by_day,
            unpriced_tokens=unpriced_tokens,
            web_search_usd=as_float(field_of(web, "costUsd")),
            web_searches=as_int(field_of(web, "searches")),
            fast_usd=as_float(field_of(fast, "costUsd")),
            fast_share=as_float(field_of(fast, "shareOfCost")),
            us_only_usd=as_float(field_of(us, "costUsd")),
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
    raw: dict[str, Any] = field(default_factory=dict)  # the API's answer, for export

    @classmethod
    def parse(cls, d: Any) -> ErrorsReport:
        groups = parse_error_groups(d)
        recent = [RequestEvent.parse(r) for r in (field_of(d, "recent", default=[]) or [])
                  if isinstance(r, Mapping)]
        total = as_int(field_of(d, "totalErrors", default=sum(g.count for g in groups)))
        return cls(total=total, groups=groups, recent=recent, raw=dict(d) if isinstance(d, Mapping) else {})


def parse_error_groups(d: Any) -> list[ErrorGroup]:
    rows = d if isinstance(d, list) else field_of(d, "groups", "errors", "byType", "items", default=[])
    out = []
    for r in rows or []:
        if isinstance(r, Mapping):
            domains = field_of(r, "domains", "affectedDomains", default=[]) or []
            out.append(ErrorGroup(
                status=as_int(field_of(r, "statusCode", "status", "status_code")),
                error_type=field_of(r, "errorType", "error_type", "type"),
                count=as_int(field_of(r, "count", "requests", "total")),
                domains=[str(x) for x in domains],
            ))
    return out


@dataclass(slots=True)
class LimitWindow:
    """One window of an account's rate limits (``5h``, ``7d``, ``7d_oi``, …), as the headers said."""

    name: str
    utilization: float | None = None  # fraction, may exceed 1
    resets_at: datetime | None = None
    status: str | None = None


@dataclass(slots=True)
class LimitBucket:
    """API-key headroom of one kind (requests, tokens, input/output tokens)."""

    kind: str
    limit: int | None = None
    remaining: int | None = None
    resets_at: datetime | None = None


# Windows in the order the panel shows them; unknown ones follow, by name.
WINDOW_ORDER = {"5h": 0, "7d": 1, "7d_oi": 2}


@dataclass(slots=True)
class LimitAccount:
    """One account of ``/api/limits``: exactly what the latest answer's headers said."""

    account_id: str
    kind: str | None = None  # subscription | api_key
    observed_at: datetime | None = None
    status: str | None = None
    claim: str | None = None
    resets_at: datetime | None = None
    windows: list[LimitWindow] = field(default_factory=list)
    buckets: list[LimitBucket] = field(default_factory=list)
    retry_after_s: float | None = None
    overage_status: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)  # the API's object, for export

    def window(self, name: str) -> LimitWindow | None:
        return next((w for w in self.windows if w.name == name), None)

    @classmethod
    def parse(cls, d: Mapping[str, Any]) -> LimitAccount:
        wins = d.get("windows") if isinstance(d.get("windows"), Mapping) else {}
        windows = [LimitWindow(str(n), as_opt_float(w.get("utilization")), parse_time(w.get("resetsAt")),
                               w.get("status") if isinstance(w.get("status"), str) else None)
                   for n, w in wins.items() if isinstance(w, Mapping)]
        windows.sort(key=lambda w: (WINDOW_ORDER.get(w.name, 9), w.name))
        rls = d.get("rateLimits") if isinstance(d.get("rateLimits"), Mapping) else {}
        buckets = [LimitBucket(str(k), as_opt_int(b.get("limit")), as_opt_int(b.get("remaining")),
                               parse_time(b.get("resetsAt")))
                   for k, b in rls.items() if isinstance(b, Mapping)]
        overage = d.get("overage") if isinstance(d.get("overage"), Mapping) else {}
        headers = d.get("headers") if isinstance(d.get("headers"), Mapping) else {}

        def text(v: Any) -> str | None:
            return v if isinstance(v, str) else None

        return cls(account_id=str(d.get("accountId") or ""), kind=text(d.get("kind")),
                   observed_at=parse_time(d.get("observedAt")), status=text(d.get("status")),
                   claim=text(d.get("representativeClaim")), resets_at=parse_time(d.get("resetsAt")),
                   windows=windows, buckets=buckets, retry_after_s=as_opt_float(d.get("retryAfterS")),
                   overage_status=text(overage.get("status")),
                   headers={str(k): str(v) for k, v in headers.items()}, raw=dict(d))


def parse_limits(d: Any) -> list[LimitAccount]:
    rows = d.get("accounts") if isinstance(d, Mapping) else d
    return [LimitAccount.parse(r) for r in rows or [] if isinstance(r, Mapping)]


@dataclass(slots=True)
class LimitSample:
    window: str
    time: datetime
    utilization: float


def parse_history(d: Any) -> list[LimitSample]:
    rows = d.get("samples") if isinstance(d, Mapping) else None
    out = []
    for r in rows or []:
        if not isinstance(r, Mapping):
            continue
        t, u = parse_time(r.get("time")), as_opt_float(r.get("utilization"))
        if t is not None and u is not None:
            out.append(LimitSample(str(r.get("window") or ""), t, u))
    return out
