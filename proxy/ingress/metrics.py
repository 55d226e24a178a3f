"""Prometheus metrics of one proxy process (``GET /metrics``), on a private registry.

A private registry per Runtime keeps several proxies in one test process apart. Names follow
the Monitoring Guide (``claude_proxy_*``); the response-time histogram is in milliseconds with
the guide's 100/500/1000 buckets among ours.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from nexus.core.latency import LATENCY_BUCKETS_MS
from nexus.core.records import Record

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MAX_LABEL_LEN = 120
MAX_CACHED_CHILDREN = 10_000
MAX_TRACKED_SESSIONS = 100_000
UNPRICED_PLACEHOLDER = "other"  # the overflow label value of bounded labels  # hostile Host headers must not grow the cache without bound


def _label(value: str | None, default: str = "unknown") -> str:
    return (value or default)[:MAX_LABEL_LEN]


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
        self.db_up = Gauge("claude_proxy_database_up", "1 when the database accepts writes", registry=r)
        self.db_pool_in_use = Gauge("claude_proxy_db_pool_in_use", "Database connections in use", registry=r)
        self.db_pool_size = Gauge("claude_proxy_db_pool_size", "Database pool maximum size", registry=r)
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
        self._tok_input = self.tokens.labels(type="input")
        self._tok_output = self.tokens.labels(type="output")
        self._tok_cache_creation = self.tokens.labels(type="cache_creation")
        self._tok_cache_read = self.tokens.labels(type="cache_read")

    def _request_counter(self, domain: str | None, model: str | None, status: int) -> Any:
        # labels() hashes and validates on every call (~half of observe()); children are cached.
        key = (domain, model, status)
        child = self._request_children.get(key)
        if child is None:
            if len(self._request_children) > MAX_CACHED_CHILDREN:
                self._request_children.clear()
            child = self._request_children[key] = self.requests.labels(
                domain=_label(domain), model=_label(model), status=str(status))
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
            self.unpriced.labels(model=_label(rec.model)).inc()
        if rec.is_error:
            self.errors.labels(error_type=_label(rec.error_type, f"http_{rec.status_code}")).inc()
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
        self.queue_depth.set_function(
            lambda: float(runtime.recorder.queue_depth) if runtime.recorder is not None else 0.0)
        self.journal_pending.set_function(
            lambda: float(runtime.recorder.journal.pending) if runtime.recorder is not None else 0.0)

    def render(self) -> bytes:
        return generate_latest(self.registry)
