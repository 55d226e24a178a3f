"""A real OTLP/HTTP receiver for the tests (no tests here): aiohttp on loopback, decoding with opentelemetry-proto.

``POST /v1/traces`` takes an ``ExportTraceServiceRequest``, ``POST /v1/metrics`` an
``ExportMetricsServiceRequest`` (protobuf, optionally gzip), as a collector would; the spans and
metric points it received are kept as plain dicts. ``wait_spans(n)`` waits (on an event, with a
deadline) until n spans have arrived. ``hang=True`` makes it a collector that accepts connections
and never answers.
"""

from __future__ import annotations

import asyncio
import gzip
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

PROTOBUF = "application/x-protobuf"


def any_value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return attrs(v.kvlist_value.values)
    return None if kind is None else getattr(v, kind)


def attrs(kvs: Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in kvs}


@dataclass
class OtlpReceiver:
    hang: bool = False
    spans: list[dict[str, Any]] = field(default_factory=list)
    points: list[dict[str, Any]] = field(default_factory=list)  # one per metric data point, in arrival order
    requests: int = 0
    url: str = ""
    _runner: web.AppRunner | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def _body(self, request: web.Request) -> bytes:
        raw = await request.read()
        return gzip.decompress(raw) if request.headers.get("content-encoding") == "gzip" else raw

    async def _traces(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        if self.hang:
            await asyncio.Event().wait()
        msg = ExportTraceServiceRequest.FromString(await self._body(request))
        for rs in msg.resource_spans:
            resource = attrs(rs.resource.attributes)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    self.spans.append({
                        "name": s.name, "kind": s.kind, "trace_id": s.trace_id.hex(), "span_id": s.span_id.hex(),
                        "parent_span_id": s.parent_span_id.hex(), "trace_state": s.trace_state,
                        "start_ns": s.start_time_unix_nano, "end_ns": s.end_time_unix_nano,
                        "attributes": attrs(s.attributes), "status": s.status.code, "resource": resource,
                        "scope": ss.scope.name,
                    })
        self._arrived.set()
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(), content_type=PROTOBUF)

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        if self.hang:
            await asyncio.Event().wait()
        msg = ExportMetricsServiceRequest.FromString(await self._body(request))
        for rm in msg.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    kind = m.WhichOneof("data")
                    for p in getattr(m, kind).data_points:
                        point: dict[str, Any] = {"name": m.name, "unit": m.unit, "kind": kind,
                                                 "attributes": attrs(p.attributes)}
                        if kind == "histogram":
                            point.update(count=p.count, sum=p.sum)
                        else:
                            point["value"] = p.as_double if p.WhichOneof("value") == "as_double" else p.as_int
                        self.points.append(point)
        return web.Response(body=ExportMetricsServiceResponse().SerializeToString(), content_type=PROTOBUF)

    async def start(self) -> OtlpReceiver:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/traces", self._traces)
        app.router.add_post("/v1/metrics", self._metrics)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_spans(self, n: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        """The spans received, once there are at least ``n`` (AssertionError after ``timeout``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.spans) < n:
            self._arrived.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"{len(self.spans)} spans received, {n} expected")
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                continue
        return self.spans

    def last_points(self, name: str) -> list[dict[str, Any]]:
        """The latest cumulative point of each attribute set of metric ``name``."""
        latest: dict[tuple, dict[str, Any]] = {}
        for p in self.points:
            if p["name"] == name:
                latest[tuple(sorted((k, str(v)) for k, v in p["attributes"].items()))] = p
        return list(latest.values())
