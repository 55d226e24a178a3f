"""OpenTelemetry: every recorded exchange as a GenAI client span, plus OTLP metrics (docs/telemetry.md).

``Recorder.submit`` hands each finished Record to ``Telemetry.export``, after the client has its
answer. The span is built from the Record alone: its start and end are the exchange's own times, its
attributes the recorded values under the GenAI semantic conventions and ``nexus.*`` — never message
contents or credentials. A client ``traceparent`` (kept on the Record, forwarded upstream unchanged)
makes the span its child. Spans go to the SDK's batch span processor, whose worker thread exports
them over OTLP/HTTP; we bound what it holds: past ``OTEL_BSP_MAX_QUEUE_SIZE`` spans waiting, or when
an export fails, spans are dropped and counted (``claude_proxy_otel_dropped_total``). Nothing on the
request path waits for the collector, and records go to PostgreSQL whatever happens here.

The SDK is an optional dependency (the ``otel`` extra). Its import below is guarded with
``ImportError`` — the one guard the house allows, because the missing part is a third-party extra,
not a module of ours (docs/architecture.md). Without it, a configured endpoint logs one line and the
proxy runs as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from nexus.core.records import REQUEST_TYPE_COUNT_TOKENS, REQUEST_TYPE_MESSAGES, Record
from nexus.core.settings import Settings
from nexus.core.version import VERSION
from proxy.recorder.otel_metrics import Key, MetricSet

try:  # the `otel` extra: third-party and optional (see the module docstring)
    from opentelemetry.context import Context
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics.export import (
        AggregationTemporality,
        Histogram,
        HistogramDataPoint,
        Metric,
        MetricsData,
        NumberDataPoint,
        ResourceMetrics,
        ScopeMetrics,
        Sum,
    )
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, get_current_span
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError as exc:  # pragma: no cover - exercised by installs without the extra
    SDK_MISSING: str | None = exc.name or "opentelemetry"
else:
    SDK_MISSING = None

log = logging.getLogger("nexus.otel")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
PROVIDER = "anthropic"
# The attributes of every metric point (low cardinality: no accounts, sessions or tags).
_METRIC_KEYS = ("gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model", "gen_ai.response.model",
                "server.address", "server.port")
# Bucket boundaries the GenAI metric conventions advise for these histograms.
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)


def operation_name(r: Record) -> str:
    """``chat`` for Messages; count_tokens is not an inference and keeps its own (custom) name."""
    return "chat" if r.request_type == REQUEST_TYPE_MESSAGES else r.request_type


def unix_ns(t: datetime) -> int:
    return (t - _EPOCH) // _US * 1000


def span_times(r: Record) -> tuple[int, int]:
    """The exchange's start (its record's ``created_at``) and end (start + its recorded latency), in ns."""
    start = unix_ns(r.created_at)
    return start, start + round(r.response_time_ms * 1_000_000)


def _tags(value: Any) -> list[str] | None:
    """Tags as an OpenTelemetry string array: ``key=value`` for a mapping, sorted."""
    if not value:
        return None
    if isinstance(value, dict):
        return sorted(f"{k}={v}" for k, v in value.items())
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def span_attributes(r: Record, server: tuple[str, int]) -> dict[str, Any]:
    """The span's attributes: recorded values only (the table in docs/telemetry.md)."""
    op = operation_name(r)
    a: dict[str, Any] = {
        "gen_ai.operation.name": op,
        "gen_ai.provider.name": PROVIDER,
        "gen_ai.request.stream": r.stream,
        "server.address": server[0],
        "server.port": server[1],
        "nexus.request_type": r.request_type,
    }
    if r.model:
        a["gen_ai.request.model"] = r.model
    if r.response_model:
        a["gen_ai.response.model"] = r.response_model
    if r.response_id:
        a["gen_ai.response.id"] = r.response_id
    if r.stop_reason:
        a["gen_ai.response.finish_reasons"] = [r.stop_reason]
    if r.request_type != REQUEST_TYPE_COUNT_TOKENS:
        # The convention's input is all the model read: Anthropic's uncached input plus cache reads and writes.
        a["gen_ai.usage.input_tokens"] = r.input_tokens + r.cache_read_input_tokens + r.cache_creation_input_tokens
        a["gen_ai.usage.output_tokens"] = r.output_tokens
        a["gen_ai.usage.cache_read.input_tokens"] = r.cache_read_input_tokens
        a["gen_ai.usage.cache_write.input_tokens"] = r.cache_creation_input_tokens
        a["gen_ai.usage.reasoning.output_tokens"] = r.thinking_tokens
        a["nexus.web_search_requests"] = r.web_search_requests
    if r.stream and r.ttft_ms is not None:
        a["gen_ai.response.time_to_first_chunk"] = r.ttft_ms / 1000.0
    if r.is_error:
        a["error.type"] = r.error_type or f"http_{r.status_code}"
    # Session fields (gen_ai.conversation.id = the session id) when the Record carries them.
    optional = {
        "gen_ai.conversation.id": getattr(r, "session_id", None),
        "nexus.account_id": r.account_id,
        "nexus.agent_id": getattr(r, "agent_id", None),
        "nexus.parent_agent_id": getattr(r, "parent_agent_id", None),
        "nexus.tags": _tags(getattr(r, "tags", None)),
        "nexus.cost_usd": None if r.cost_usd is None else float(r.cost_usd),
        "nexus.service_tier": r.service_tier,
        "nexus.speed": r.speed,
        "nexus.inference_geo": r.inference_geo,
        "nexus.instance_id": r.instance_id,
    }
    a.update((k, v) for k, v in optional.items() if v is not None)
    return a


def upstream_server(base_url: str) -> tuple[str, int]:
    """``server.address`` / ``server.port`` of the upstream the proxy calls."""
    parts = urlsplit(base_url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def _signal_url(t: Any, signal: str) -> str:
    own = t.traces_endpoint if signal == "traces" else t.metrics_endpoint
    return own or f"{(t.endpoint or '').rstrip('/')}/v1/{signal}"


MAX_BACKOFF_S = 30.0
PROBE_SPANS = 8  # the first export after a failure sends this many spans; the rest of its batch is dropped


class _CountingExporter:
    """Wraps the OTLP span exporter: what leaves the queue is no longer pending; what fails is dropped.

    After a failed export (the SDK's own retries included) it waits before trying again, 1 s
    doubling to ``MAX_BACKOFF_S``; meanwhile spans are dropped (and counted) without being encoded,
    and ``Telemetry.export`` does not even build them. The next try is a probe of ``PROBE_SPANS``
    spans, and no span is built while it is out: encoding is the costly part (it holds the GIL,
    which the event loop then waits for), so a collector that is down or hangs costs next to nothing.
    Duck-typed to the SDK's ``SpanExporter`` (``export``, ``shutdown``, ``force_flush``) so that this
    module stays importable without the SDK.
    """

    def __init__(self, inner: Any, telemetry: Telemetry) -> None:
        self.inner = inner
        self.telemetry = telemetry
        self.backoff_s = 0.0
        self.retry_at = 0.0  # time.monotonic() before which exports are not tried

    def export(self, spans: Sequence[Any]) -> Any:
        t = self.telemetry
        t._taken(len(spans))
        if time.monotonic() < self.retry_at:
            t._dropped(len(spans))
            return SpanExportResult.FAILURE
        if self.backoff_s > 0:  # the collector failed last time: probe it with a few spans
            t._dropped(max(0, len(spans) - PROBE_SPANS))
            spans = spans[:PROBE_SPANS]
            self.retry_at = float("inf")  # build no spans while the probe is out
        try:
            result = self.inner.export(spans)
        except Exception:  # noqa: BLE001 - the worker thread must go on
            result = None
        if result != SpanExportResult.SUCCESS:
            t._dropped(len(spans))
            self.backoff_s = min(MAX_BACKOFF_S, max(1.0, self.backoff_s * 2))
            self.retry_at = time.monotonic() + self.backoff_s
            return SpanExportResult.FAILURE
        t._exported(len(spans))
        self.backoff_s, self.retry_at = 0.0, 0.0
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class Telemetry:
    """The process's OpenTelemetry pipeline, fed by the recorder: spans to the SDK's batch processor, metric points."""

    def __init__(self, settings: Settings, metrics: Any = None, instance_id: str | None = None) -> None:
        t = settings.telemetry
        self.settings = settings
        self.metrics = metrics  # proxy.ingress.metrics.Metrics: claude_proxy_otel_dropped_total
        self.capacity = max(1, t.max_queue_size)
        self.server = upstream_server(settings.upstream.base_url)
        self.traces_url = _signal_url(t, "traces")
        self.metrics_url: str | None = _signal_url(t, "metrics") if (t.endpoint or t.metrics_endpoint) else None
        self.dropped = 0
        self.exported = 0
        self._pending = 0  # spans handed to the processor and not yet taken by an export
        self._lock = threading.Lock()
        self._closed = False
        self._settled = False  # stop() has counted what was left; late worker reports are ignored

        attrs = {"service.version": VERSION}
        if instance_id:
            attrs["service.instance.id"] = instance_id
        resource = Resource.create(attrs)  # also reads OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME
        if ("OTEL_SERVICE_NAME" in settings.explicit
                or str(resource.attributes.get("service.name", "")).startswith("unknown_service")):
            resource = resource.merge(Resource({"service.name": t.service_name}))
        self.resource = resource
        self.exporter = _CountingExporter(OTLPSpanExporter(endpoint=self.traces_url, timeout=t.export_timeout_s), self)
        self.provider = TracerProvider(resource=resource, shutdown_on_exit=False)  # sampler: OTEL_TRACES_SAMPLER
        self.processor = BatchSpanProcessor(
            self.exporter, max_queue_size=self.capacity,  # type: ignore[arg-type]
            schedule_delay_millis=t.schedule_delay_ms, max_export_batch_size=min(512, self.capacity))
        self.provider.add_span_processor(self.processor)
        self.scope = InstrumentationScope("nexus.proxy", VERSION)
        self.propagator = TraceContextTextMapPropagator()
        self.metric_set: MetricSet | None = None
        if self.metrics_url is not None:
            self.metric_set = MetricSet(DURATION_BUCKETS, TOKEN_BUCKETS)
            self.metric_exporter = OTLPMetricExporter(endpoint=self.metrics_url, timeout=t.export_timeout_s)
            self._metrics_stop = threading.Event()
            self._metrics_thread = threading.Thread(target=self._pump_metrics, args=(t.metric_interval_ms / 1000.0,),
                                                    name="nexus-otel-metrics", daemon=True)
            self._metrics_thread.start()

    @classmethod
    def create(cls, settings: Settings, metrics: Any = None, instance_id: str | None = None) -> Telemetry | None:
        """The pipeline if an OTLP endpoint is configured and the SDK is installed; else None (one log line)."""
        t = settings.telemetry
        if not t.enabled:
            return None
        which = "OTEL_EXPORTER_OTLP_ENDPOINT" if t.endpoint else "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
        if SDK_MISSING is not None:
            log.warning("%s is set but the OpenTelemetry SDK is not installed (no module %r): not exporting; "
                        "pip install 'claude-nexus-monitor[otel]'", which, SDK_MISSING)
            return None
        if t.protocol != "http/protobuf":
            log.warning("OTEL_EXPORTER_OTLP_PROTOCOL=%s is not supported (only http/protobuf): not exporting",
                        t.protocol)
            return None
        tel = cls(settings, metrics, instance_id)
        log.info("OpenTelemetry: spans to %s%s", tel.traces_url,
                 f", metrics to {tel.metrics_url}" if tel.metrics_url else "")
        return tel

    # -- the recorder's side (event-loop thread) ------------------------------------------------

    def export(self, r: Record) -> None:
        """One span (and the metric points) for a finished exchange. Never blocks on the network."""
        if self._closed:
            return
        attrs = span_attributes(r, self.server)
        if self.metric_set is not None:
            self._observe(r, attrs)
        with self._lock:
            full = self._pending >= self.capacity
        if full or time.monotonic() < self.exporter.retry_at:  # queue full, or the collector failed just now
            self._dropped(1)
            return
        span = self._finished_span(r, attrs)
        if span is None:  # not sampled
            return
        with self._lock:
            self._pending += 1
        self.processor.on_end(span)

    def _finished_span(self, r: Record, attrs: dict[str, Any]) -> ReadableSpan | None:
        """The exchange as an ended span, or None when the sampler (``OTEL_TRACES_SAMPLER``) says no.

        The span is built ended, as a ``ReadableSpan``, with the provider's sampler, id generator and
        resource — what ``Tracer.start_span`` + ``Span.end`` do, less re-validating attributes that
        are ours and already clean (17–34 µs against 48–69 µs; bench/RESULTS.md, bench.otel_micro).
        """
        p = self.provider
        name = f"{attrs['gen_ai.operation.name']} {r.model}" if r.model else attrs["gen_ai.operation.name"]
        ctx = Context()
        if r.traceparent:
            carrier = {"traceparent": r.traceparent}
            if r.tracestate:
                carrier["tracestate"] = r.tracestate
            ctx = self.propagator.extract(carrier, context=ctx)
        parent: SpanContext | None = get_current_span(ctx).get_span_context()
        if parent is not None and not parent.is_valid:
            parent = None
        trace_id = parent.trace_id if parent is not None else p.id_generator.generate_trace_id()
        sampling = p.sampler.should_sample(ctx, trace_id, name, SpanKind.CLIENT, attrs, ())
        if not sampling.decision.is_sampled():
            return None
        if sampling.attributes:
            attrs = {**attrs, **sampling.attributes}
        context = SpanContext(trace_id, p.id_generator.generate_span_id(), is_remote=False,
                              trace_flags=TraceFlags(TraceFlags.SAMPLED), trace_state=sampling.trace_state)
        start, end = span_times(r)
        return ReadableSpan(name, context=context, parent=parent, resource=self.resource, attributes=attrs,
                            kind=SpanKind.CLIENT, status=Status(StatusCode.ERROR if r.is_error else StatusCode.UNSET),
                            start_time=start, end_time=end, instrumentation_scope=self.scope)

    def _observe(self, r: Record, attrs: dict[str, Any]) -> None:
        ms = self.metric_set
        assert ms is not None
        common: Key = tuple((k, attrs[k]) for k in _METRIC_KEYS if k in attrs)
        error = attrs.get("error.type")
        with ms.lock:
            ms.duration.record(common + (("error.type", error),) if error else common, r.response_time_ms / 1000.0)
            if "gen_ai.usage.input_tokens" in attrs:
                ms.tokens.record(common + (("gen_ai.token.type", "input"),), attrs["gen_ai.usage.input_tokens"])
                ms.tokens.record(common + (("gen_ai.token.type", "output"),), r.output_tokens)
            if "gen_ai.response.time_to_first_chunk" in attrs:
                ms.ttfc.record(common, attrs["gen_ai.response.time_to_first_chunk"])
            if r.cost_usd is not None and r.cost_usd > 0:
                ms.cost.record(common, float(r.cost_usd))

    def _metrics_data(self) -> MetricsData | None:
        """The metric set as the SDK's export types: cumulative since the process started."""
        ms = self.metric_set
        if ms is None:
            return None
        now, start = time.time_ns(), ms.start_ns
        out = []
        for inst, points in ms.snapshot():
            if not points:
                continue
            if inst.bounds is None:
                data: Any = Sum(data_points=[
                    NumberDataPoint(attributes=dict(k), start_time_unix_nano=start, time_unix_nano=now, value=v)
                    for k, v in points.items()], aggregation_temporality=AggregationTemporality.CUMULATIVE,
                    is_monotonic=True)
            else:
                data = Histogram(data_points=[
                    HistogramDataPoint(attributes=dict(k), start_time_unix_nano=start, time_unix_nano=now,
                                       count=p.count, sum=p.sum, bucket_counts=p.buckets,
                                       explicit_bounds=list(inst.bounds), min=p.min, max=p.max)
                    for k, p in points.items()], aggregation_temporality=AggregationTemporality.CUMULATIVE)
            out.append(Metric(name=inst.name, description=inst.description, unit=inst.unit, data=data))
        if not out:
            return None
        scope = ScopeMetrics(scope=self.scope, metrics=out, schema_url="")
        return MetricsData(resource_metrics=[ResourceMetrics(resource=self.resource, scope_metrics=[scope],
                                                             schema_url="")])

    def _export_metrics(self) -> None:
        data = self._metrics_data()
        if data is not None:
            with contextlib.suppress(Exception):  # a failed export is retried with the next, cumulative one
                self.metric_exporter.export(data)

    def _pump_metrics(self, interval_s: float) -> None:
        while not self._metrics_stop.wait(interval_s):
            self._export_metrics()

    # -- the exporter's side (the SDK's worker thread) ------------------------------------------

    def _taken(self, n: int) -> None:
        with self._lock:
            if not self._settled:
                self._pending -= n

    def _exported(self, n: int) -> None:
        with self._lock:
            if not self._settled:
                self.exported += n

    def _dropped(self, n: int) -> None:
        with self._lock:
            if self._settled:
                return
            self.dropped += n
        if self.metrics is not None:
            self.metrics.otel_dropped.inc(n)

    # -- the service's side ---------------------------------------------------------------------

    def flush(self, timeout_s: float = 10.0) -> None:
        """Export what is queued now, and the metrics (blocking)."""
        self.provider.force_flush(int(timeout_s * 1000))
        if self.metric_set is not None:
            self._export_metrics()

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Export what is queued, within ``timeout_s``; what is still waiting then counts as dropped."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def shut() -> None:
            try:
                self.provider.shutdown()
                if self.metric_set is not None:
                    self._metrics_stop.set()
                    self._metrics_thread.join(timeout_s)
                    self._export_metrics()  # the last cumulative point
                    self.metric_exporter.shutdown()
            finally:
                with contextlib.suppress(RuntimeError):  # the loop may be gone by then
                    loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))

        # A daemon thread, not the loop's executor: a collector that never answers must not hold up exit.
        threading.Thread(target=shut, name="nexus-otel-stop", daemon=True).start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done, timeout_s)
        with self._lock:
            left, self._pending = self._pending, 0
        if left > 0:
            self._dropped(left)
        with self._lock:
            self._settled = True
