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
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from nexus.core.records import REQUEST_TYPE_COUNT_TOKENS, REQUEST_TYPE_MESSAGES, Record
from nexus.core.settings import Settings
from nexus.core.version import VERSION

try:  # the `otel` extra: third-party and optional (see the module docstring)
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
    from opentelemetry.trace import SpanKind, Status, StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError as exc:  # pragma: no cover - exercised by installs without the extra
    SDK_MISSING: str | None = exc.name or "opentelemetry"
else:
    SDK_MISSING = None

log = logging.getLogger("nexus.otel")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
PROVIDER = "anthropic"
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


class _CountingExporter:
    """Wraps the OTLP span exporter: what leaves the queue is no longer pending; what fails is dropped.

    Duck-typed to the SDK's ``SpanExporter`` (``export``, ``shutdown``, ``force_flush``) so that
    this module stays importable without the SDK.
    """

    def __init__(self, inner: Any, telemetry: Telemetry) -> None:
        self.inner = inner
        self.telemetry = telemetry

    def export(self, spans: Sequence[Any]) -> Any:
        t = self.telemetry
        t._taken(len(spans))
        try:
            result = self.inner.export(spans)
        except Exception:  # noqa: BLE001 - the worker thread must go on
            result = None
        if result != SpanExportResult.SUCCESS:
            t._dropped(len(spans))
        else:
            t._exported(len(spans))
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class Telemetry:
    """The process's OpenTelemetry pipeline: a tracer (and a meter) fed from the recorder."""

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
        exporter = OTLPSpanExporter(endpoint=self.traces_url, timeout=t.export_timeout_s)
        self.provider = TracerProvider(resource=resource, shutdown_on_exit=False)  # sampler: OTEL_TRACES_SAMPLER
        self.processor = BatchSpanProcessor(
            _CountingExporter(exporter, self), max_queue_size=self.capacity,  # type: ignore[arg-type]
            schedule_delay_millis=t.schedule_delay_ms, max_export_batch_size=min(512, self.capacity))
        self.provider.add_span_processor(self.processor)
        self.tracer = self.provider.get_tracer("nexus.proxy", VERSION)
        self.propagator = TraceContextTextMapPropagator()
        self.meter_provider: Any = None
        if self.metrics_url is not None:
            reader = PeriodicExportingMetricReader(
                OTLPMetricExporter(endpoint=self.metrics_url, timeout=t.export_timeout_s),
                export_interval_millis=t.metric_interval_ms)
            self.meter_provider = MeterProvider(resource=resource, metric_readers=[reader], shutdown_on_exit=False)
            meter = self.meter_provider.get_meter("nexus.proxy", VERSION)
            self.duration = meter.create_histogram(
                "gen_ai.client.operation.duration", unit="s", description="GenAI operation duration",
                explicit_bucket_boundaries_advisory=DURATION_BUCKETS)
            self.token_usage = meter.create_histogram(
                "gen_ai.client.token.usage", unit="{token}", description="Tokens used, by gen_ai.token.type",
                explicit_bucket_boundaries_advisory=TOKEN_BUCKETS)
            self.ttfc = meter.create_histogram(
                "gen_ai.client.time_to_first_chunk", unit="s", description="Time to the first chunk of a stream",
                explicit_bucket_boundaries_advisory=DURATION_BUCKETS)
            self.cost = meter.create_counter("nexus.cost", unit="USD", description="Cost of priced exchanges")

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
        if self.meter_provider is not None:
            self._observe(r, attrs)
        with self._lock:
            full = self._pending >= self.capacity
        if full:
            self._dropped(1)
            return
        start, end = span_times(r)
        name = f"{attrs['gen_ai.operation.name']} {r.model}" if r.model else attrs["gen_ai.operation.name"]
        parent = None
        if r.traceparent:
            carrier = {"traceparent": r.traceparent}
            if r.tracestate:
                carrier["tracestate"] = r.tracestate
            parent = self.propagator.extract(carrier)
        span = self.tracer.start_span(name, context=parent, kind=SpanKind.CLIENT, attributes=attrs,
                                      start_time=start)
        if r.is_error:
            span.set_status(Status(StatusCode.ERROR))
        if span.get_span_context().trace_flags.sampled:
            with self._lock:
                self._pending += 1
        span.end(end_time=end)

    def _observe(self, r: Record, attrs: dict[str, Any]) -> None:
        keys = ("gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model", "gen_ai.response.model",
                "server.address", "server.port")
        common = {k: attrs[k] for k in keys if k in attrs}
        with_error = {**common, "error.type": attrs["error.type"]} if "error.type" in attrs else common
        self.duration.record(r.response_time_ms / 1000.0, with_error)
        if "gen_ai.usage.input_tokens" in attrs:
            self.token_usage.record(attrs["gen_ai.usage.input_tokens"], {**common, "gen_ai.token.type": "input"})
            self.token_usage.record(r.output_tokens, {**common, "gen_ai.token.type": "output"})
        if "gen_ai.response.time_to_first_chunk" in attrs:
            self.ttfc.record(attrs["gen_ai.response.time_to_first_chunk"], common)
        if r.cost_usd is not None and r.cost_usd > 0:
            self.cost.add(float(r.cost_usd), common)

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
        """Export what is queued now (blocking; tests and shutdown)."""
        self.provider.force_flush(int(timeout_s * 1000))
        if self.meter_provider is not None:
            self.meter_provider.force_flush(int(timeout_s * 1000))

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
                if self.meter_provider is not None:
                    self.meter_provider.shutdown(timeout_millis=timeout_s * 1000)
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
