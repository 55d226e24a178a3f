"""Prometheus metrics of one proxy process (``GET /metrics``), on a private registry.

A private registry per Runtime keeps several proxies in one test process apart. Names follow
the Monitoring Guide (``claude_proxy_*``); the response-time histogram is in milliseconds with
the guide's 100/500/1000 buckets among ours.

Label values that come from the client are bounded (docs/security.md): ``model`` is the model's
family (``claude-sonnet-4-5``) when it is a Claude model, else ``other``; ``domain`` is one of the
``TOP_DOMAINS`` busiest of the last 24 h (the first seen until the first day is over), else
``other``; and every labelled metric holds at most ``MAX_SERIES_PER_METRIC`` series, beyond which
new label sets are counted under ``other``.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from nexus.core.latency import LATENCY_BUCKETS_MS
from nexus.core.records import Record
from nexus.pricing.models import normalize_model_id

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MAX_LABEL_LEN = 120
MAX_TRACKED_SESSIONS = 100_000
MAX_SERIES_PER_METRIC = 1_000
TOP_DOMAINS = 50
DOMAIN_WINDOW_S = 86_400.0
OTHER = "other"  # the overflow label value of bounded labels
UNPRICED_PLACEHOLDER = OTHER
_FAMILY = re.compile(r"claude-(?:(?:opus|sonnet|haiku|fable|mythos)-\d{1,2}(?:-\d{1,2})?"
                     r"|\d{1,2}(?:-\d{1,2})?-(?:opus|sonnet|haiku|fable|mythos))")


def _label(value: str | None, default: str = "unknown") -> str:
    return (value or default)[:MAX_LABEL_LEN]


@functools.lru_cache(maxsize=1024)
def model_label(model: str | None) -> str:
    """The model's family when it is a Claude model (``claude-sonnet-4-5``), ``unknown`` when none
    was sent, else ``other``: a client can send any string as ``model``."""
    if not model:
        return "unknown"
    family = normalize_model_id(model[:MAX_LABEL_LEN])
    return family if _FAMILY.fullmatch(family) else OTHER


class TopValues:
    """The ``n`` values seen most in the last window (the first ``n`` seen during the first one).

    Counts are kept for at most ``8 * n`` values (the least counted one makes room), so a flood of
    distinct values costs bounded memory. ``label(v)`` is ``v`` or ``other``; ``evicted()`` hands
    out (once) the values that lost their place at the last rotation, so their series can go.
    """

    def __init__(self, n: int = TOP_DOMAINS, window_s: float = DOMAIN_WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.n = n
        self.window_s = window_s
        self.clock = clock
        self.admitted: set[str] = set()
        self.counts: dict[str, int] = {}
        self.window_end = clock() + window_s
        self._evicted: set[str] = set()

    def label(self, value: str) -> str:
        now = self.clock()
        if now >= self.window_end:
            self._rotate(now)
        count = self.counts.get(value)
        if count is None:
            if len(self.counts) >= 8 * self.n:
                victim = min(self.counts, key=self.counts.__getitem__)
                count = self.counts.pop(victim)
            else:
                count = 0
        self.counts[value] = count + 1
        if value in self.admitted:
            return value
        if len(self.admitted) < self.n:
            self.admitted.add(value)
            return value
        return OTHER

    def _rotate(self, now: float) -> None:
        top = sorted(self.counts, key=lambda v: (-self.counts[v], v))[: self.n]
        new = set(top)
        self._evicted |= self.admitted - new
        self.admitted = new
        self.counts = {}
        self.window_end = now + self.window_s

    @property
    def has_evicted(self) -> bool:
        return bool(self._evicted)

    def evicted(self) -> set[str]:
        out, self._evicted = self._evicted, set()
        return out


class _Bounded:
    """A labelled metric whose number of series is capped (overflow → every label ``other``)."""

    def __init__(self, metric: Any, names: tuple[str, ...], cap: int = MAX_SERIES_PER_METRIC) -> None:
        self.metric = metric
        self.names = names
        self.cap = cap
        self.children: dict[tuple[str, ...], Any] = {}

    def child(self, *values: str) -> Any:
        c = self.children.get(values)
        if c is None:
            if len(self.children) >= self.cap:
                values = tuple(OTHER for _ in values)
                c = self.children.get(values)
                if c is not None:
                    return c
            c = self.children[values] = self.metric.labels(*values)
        return c

    def drop(self, index: int, value: str) -> None:
        """Remove every series whose label ``index`` is ``value``."""
        for key in [k for k in self.children if k[index] == value]:
            del self.children[key]
            try:
                self.metric.remove(*key)
            except KeyError:
                pass


_BUCKET_KIND = {"requests": "requests", "tokens": "tokens", "inputTokens": "input_tokens",
                "outputTokens": "output_tokens"}


class RateLimitCollector:
    """``claude_proxy_ratelimit_*`` at scrape time from the recorder's limits board (docs/limits.md).

    Only accounts seen in the last 24 hours are listed (``LimitsBoard.recent``), so the label
    set stays bounded.
    """

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime

    def describe(self) -> list:
        return []

    def collect(self) -> Any:
        util = GaugeMetricFamily("claude_proxy_ratelimit_utilization",
                                 "Utilization of a rate-limit window as Anthropic reported it (fraction, may exceed 1)",
                                 labels=["account", "window"])
        reset = GaugeMetricFamily("claude_proxy_ratelimit_reset_timestamp_seconds",
                                  "When a rate-limit window resets (Unix time)", labels=["account", "window"])
        remaining = GaugeMetricFamily("claude_proxy_ratelimit_remaining",
                                      "API-key rate limit headroom as Anthropic reported it",
                                      labels=["account", "kind"])
        status = GaugeMetricFamily("claude_proxy_ratelimit_status",
                                   "1 for an account's current unified rate-limit status",
                                   labels=["account", "status"])
        recorder = self.runtime.recorder
        for account, cur in (recorder.limits.recent() if recorder is not None else []):
            snap, acct = cur.snapshot, _label(account)
            for name, win in snap.windows.items():
                if win.utilization is not None:
                    util.add_metric([acct, name], win.utilization)
                if win.resets_at is not None:
                    reset.add_metric([acct, name], win.resets_at.timestamp())
            for key, bucket in snap.rate_limits.items():
                if bucket.remaining is not None:
                    remaining.add_metric([acct, _BUCKET_KIND.get(key, key)], float(bucket.remaining))
            if snap.status:
                status.add_metric([acct, snap.status], 1.0)
        yield util
        yield reset
        yield remaining
        yield status


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("claude_proxy_requests", "Total number of requests",
                                ["domain", "model", "status"], registry=r)
        self.tokens = Counter("claude_proxy_tokens", "Total tokens used", ["type"], registry=r)
        self.response_time = Histogram("claude_proxy_response_time", "Response time in milliseconds",
                                       buckets=LATENCY_BUCKETS_MS, registry=r)
        self.ttft = Histogram("claude_proxy_time_to_first_token",
                              "Time to first token of streamed responses in milliseconds",
                              buckets=LATENCY_BUCKETS_MS, registry=r)
        self.cost = Counter("claude_proxy_cost_usd", "Cost of recorded requests in USD (priced models only)",
                            registry=r)
        self.unpriced = Counter("claude_proxy_unpriced_requests", "Requests whose model has no known price",
                                ["model"], registry=r)
        # Exported from start (at 0): a labelled counter only appears once a label is used, and a
        # dashboard panel over it would show "No data" instead of 0 until the first unpriced request.
        self.unpriced.labels(model=UNPRICED_PLACEHOLDER)
        self.errors = Counter("claude_proxy_errors", "Failed exchanges by error type", ["error_type"],
                              registry=r)
        self.proxy_errors = Counter("claude_proxy_proxy_errors",
                                    "Errors produced by the proxy itself (upstream unreachable, too large, ...)",
                                    ["error_type"], registry=r)
        self.in_flight = Gauge("claude_proxy_in_flight_requests", "Requests being proxied now", registry=r)
        self.queue_depth = Gauge("claude_proxy_record_queue_depth", "Records waiting for the database writer",
                                 registry=r)
        self.records_written = Counter("claude_proxy_records_written", "Records written to the database",
                                       registry=r)
        self.records_journalled = Counter("claude_proxy_records_journalled",
                                          "Records spilled to the on-disk journal", registry=r)
        self.journal_pending = Gauge("claude_proxy_journal_pending_records",
                                     "Records in the on-disk journal awaiting replay", registry=r)
        self.records_dropped = Counter("claude_proxy_records_dropped", "Records lost (should stay 0)",
                                       registry=r)
        self.otel_dropped = Counter("claude_proxy_otel_dropped",
                                    "OpenTelemetry spans not delivered (queue full, export failed)", registry=r)
        self.db_up = Gauge("claude_proxy_database_up", "1 when the database accepts writes", registry=r)
        self.db_pool_in_use = Gauge("claude_proxy_db_pool_in_use", "Database connections in use", registry=r)
        self.db_pool_size = Gauge("claude_proxy_db_pool_size", "Database pool maximum size", registry=r)
        # Watching the watcher (docs/operations.md): the local alert rules' measurements.
        self.record_stall = Gauge("claude_proxy_record_stall_seconds",
                                  "Seconds queued records have waited with no write at all (0: none wait)", registry=r)
        self.journal_age = Gauge("claude_proxy_journal_age_seconds",
                                 "Seconds the on-disk journal has held records (0: empty)", registry=r)
        self.channel_failures = Gauge("claude_proxy_alert_channel_max_consecutive_failures",
                                      "Most notifications in a row that failed on any one alert channel", registry=r)
        self.clock_offset = Gauge("claude_proxy_clock_offset_seconds",
                                  "This instance's clock minus the database server's, last measured", registry=r)
        self.sse_subscribers = Gauge("claude_proxy_sse_subscribers", "Open /api/sse streams", registry=r)
        self.sessions_active = Gauge("claude_proxy_sessions_active",
                                     "Sessions with a request through this instance within SESSION_IDLE_S",
                                     registry=r)
        self.tags_ignored = Counter("claude_proxy_tags_ignored",
                                    "x-nexus-tag-* / TAG_HEADERS values over the limits (name, value, 10 a request)",
                                    registry=r)
        # session id -> monotonic time of its last request here (pruned at scrape time, bounded).
        self._session_seen: dict[str, float] = {}
        self.session_idle_s = 600.0
        self._request_children: dict[tuple[str | None, str | None, int], Any] = {}
        self._requests = _Bounded(self.requests, ("domain", "model", "status"))
        self._unpriced = _Bounded(self.unpriced, ("model",))
        self._errors = _Bounded(self.errors, ("error_type",))
        self._unpriced.child(UNPRICED_PLACEHOLDER)
        self.domains = TopValues()
        self._tok_input = self.tokens.labels(type="input")
        self._tok_output = self.tokens.labels(type="output")
        self._tok_cache_creation = self.tokens.labels(type="cache_creation")
        self._tok_cache_read = self.tokens.labels(type="cache_read")

    def _request_counter(self, domain: str | None, model: str | None, status: int) -> Any:
        # labels() hashes and validates on every call (~half of observe()); children are cached,
        # by raw values (bounded: cleared when full) over label values (bounded by _Bounded).
        key = (domain, model, status)
        dlabel = self.domains.label(_label(domain))
        if self.domains.has_evicted:
            for gone in self.domains.evicted():
                self._requests.drop(0, gone)
            self._request_children.clear()
        child = self._request_children.get(key)
        if child is None or dlabel == OTHER:
            if len(self._request_children) >= MAX_SERIES_PER_METRIC:
                self._request_children.clear()
            child = self._requests.child(dlabel, model_label(model), str(status))
            if dlabel != OTHER:
                self._request_children[key] = child
        return child

    def observe(self, rec: Record) -> None:
        """Count one finished exchange."""
        self._request_counter(rec.domain, rec.model, rec.status_code).inc()
        if rec.input_tokens:
            self._tok_input.inc(rec.input_tokens)
        if rec.output_tokens:
            self._tok_output.inc(rec.output_tokens)
        if rec.cache_creation_input_tokens:
            self._tok_cache_creation.inc(rec.cache_creation_input_tokens)
        if rec.cache_read_input_tokens:
            self._tok_cache_read.inc(rec.cache_read_input_tokens)
        self.response_time.observe(rec.response_time_ms)
        if rec.ttft_ms is not None:
            self.ttft.observe(rec.ttft_ms)
        if rec.cost_usd is not None:
            self.cost.inc(float(rec.cost_usd))
        elif rec.model and rec.request_type == "messages":
            self._unpriced.child(model_label(rec.model)).inc()
        if rec.is_error:
            self._errors.child(_label(rec.error_type, f"http_{rec.status_code}")).inc()
        if rec.session_id is not None:
            seen = self._session_seen
            seen.pop(rec.session_id, None)  # re-insert: the dict stays ordered oldest first
            seen[rec.session_id] = time.monotonic()
            if len(seen) > MAX_TRACKED_SESSIONS:
                del seen[next(iter(seen))]

    def active_sessions(self) -> int:
        """Sessions seen within ``session_idle_s``; forgets the older ones (oldest first)."""
        seen = self._session_seen
        horizon = time.monotonic() - self.session_idle_s
        while seen:
            oldest = next(iter(seen))
            if seen[oldest] >= horizon:
                break
            del seen[oldest]
        return len(seen)

    def bind(self, runtime: Any) -> None:
        """Gauges read live from the runtime at scrape time."""
        def pool_in_use() -> float:
            pool = runtime.pool
            if pool is None:
                return 0.0
            try:
                return float(pool.get_size() - pool.get_idle_size())
            except Exception:  # noqa: BLE001 - a closing pool must not break a scrape
                return 0.0

        def pool_size() -> float:
            pool = runtime.pool
            return float(pool.get_max_size()) if pool is not None else 0.0

        self.db_pool_in_use.set_function(pool_in_use)
        self.db_pool_size.set_function(pool_size)
        self.sse_subscribers.set_function(lambda: float(runtime.broker.subscriber_count))
        self.session_idle_s = runtime.settings.proxy.session_idle_s
        self.sessions_active.set_function(lambda: float(self.active_sessions()))
        self.db_up.set_function(lambda: 1.0 if runtime.db_connected else 0.0)
        self.registry.register(RateLimitCollector(runtime))
        self.queue_depth.set_function(
            lambda: float(runtime.recorder.queue_depth) if runtime.recorder is not None else 0.0)
        self.journal_pending.set_function(
            lambda: float(runtime.recorder.journal.pending) if runtime.recorder is not None else 0.0)
        self.record_stall.set_function(
            lambda: runtime.recorder.stall_seconds(runtime.now()) if runtime.recorder is not None else 0.0)
        self.journal_age.set_function(
            lambda: runtime.recorder.journal_seconds(runtime.now()) if runtime.recorder is not None else 0.0)

        def channel_failures() -> float:
            alerts = runtime.alerts
            chans = alerts.dispatcher.channels.values() if alerts is not None else ()
            return float(max((ch.consecutive_failures for ch in chans), default=0))

        def clock_offset() -> float:
            alerts = runtime.alerts
            return float(alerts.clock_offset_s or 0.0) if alerts is not None else 0.0

        self.channel_failures.set_function(channel_failures)
        self.clock_offset.set_function(clock_offset)

    def render(self) -> bytes:
        return generate_latest(self.registry)
