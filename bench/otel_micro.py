"""``python -m bench.otel_micro``: what ``Telemetry.export`` costs the event loop, per exchange, in-process.

Each path runs 20,000 times, 5 repeats, median per call (µs). The OTLP exporter is swapped for one
that accepts every batch at once (no encoding, no HTTP: those happen on the SDK's worker thread, not
on the event loop), so only what the event loop pays is measured. The SDK's own
ways (``Tracer.start_span`` + ``end``, synchronous instruments) are measured beside ours.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from decimal import Decimal

from nexus.core.records import Record
from nexus.core.settings import load_settings
from proxy.recorder.otel import DURATION_BUCKETS, TOKEN_BUCKETS, Telemetry, span_attributes, span_times

N, REPEATS = 20_000, 5


def _record() -> Record:
    return Record(model="claude-sonnet-4-5", stream=True, status_code=200, account_id="acct_1", instance_id="i1",
                  input_tokens=10, output_tokens=200, cache_read_input_tokens=3000, ttft_ms=420.0,
                  cost_usd=Decimal("0.0123"), service_tier="standard", response_model="claude-sonnet-4-5",
                  response_id="msg_01", stop_reason="end_turn")


class _Accepting:
    def export(self, spans: object) -> object:
        from opentelemetry.sdk.trace.export import SpanExportResult

        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def _per_call(fn: Callable[[Record], object]) -> float:
    records = [_record() for _ in range(N)]
    runs = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        for r in records:
            fn(r)
        runs.append((time.perf_counter() - t0) / N * 1e6)
    return statistics.median(runs)


def main() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.trace import SpanKind

    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_BSP_MAX_QUEUE_SIZE": str(10 * N * REPEATS),
           "OTEL_BSP_SCHEDULE_DELAY": "3600000", "OTEL_METRIC_EXPORT_INTERVAL": "3600000"}
    t = Telemetry(load_settings(env), None, "bench")
    t.exporter.inner = _Accepting()
    server = t.server
    tracer = t.provider.get_tracer("bench")
    meter = MeterProvider(metric_readers=[InMemoryMetricReader()], shutdown_on_exit=False).get_meter("bench")
    dur = meter.create_histogram("d", explicit_bucket_boundaries_advisory=DURATION_BUCKETS)
    tok = meter.create_histogram("t", explicit_bucket_boundaries_advisory=TOKEN_BUCKETS)
    ttfc = meter.create_histogram("f", explicit_bucket_boundaries_advisory=DURATION_BUCKETS)
    cost = meter.create_counter("c")

    def sdk_span(r: Record) -> None:
        a = span_attributes(r, server)
        start, end = span_times(r)
        tracer.start_span("chat x", kind=SpanKind.CLIENT, attributes=a, start_time=start).end(end_time=end)

    def sdk_metrics(r: Record) -> None:
        a = span_attributes(r, server)
        common = {k: a[k] for k in ("gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model",
                                    "gen_ai.response.model", "server.address", "server.port")}
        dur.record(r.response_time_ms / 1000, common)
        tok.record(a["gen_ai.usage.input_tokens"], {**common, "gen_ai.token.type": "input"})
        tok.record(r.output_tokens, {**common, "gen_ai.token.type": "output"})
        ttfc.record(a["gen_ai.response.time_to_first_chunk"], common)
        cost.add(float(r.cost_usd or 0), common)

    rows = {
        "attributes of a Record": lambda r: span_attributes(r, server),
        "metrics, ours (attributes + 5 points)": lambda r: t._observe(r, span_attributes(r, server)),
        "metrics, SDK instruments (attributes + 5 points)": sdk_metrics,
        "span, ours (attributes + built ended + queued)": lambda r: (t.processor.on_end(s)
                                                                     if (s := t._finished_span(
                                                                         r, span_attributes(r, server))) else None),
        "span, SDK start_span + end (attributes + queued)": sdk_span,
        "Telemetry.export, whole (metrics + span)": t.export,
    }
    for name, fn in rows.items():
        print(f"{name:<52} {_per_call(fn):6.1f} µs")
    t.exporter.retry_at = float("inf")
    print(f"{'Telemetry.export while the collector is failing':<52} {_per_call(t.export):6.1f} µs")


if __name__ == "__main__":
    main()
