"""Cumulative GenAI metrics, aggregated in plain Python for ``otel.py`` (no SDK import here).

The SDK's synchronous instruments validate and hash every attribute of every measurement (65–133 µs
an exchange for the four metrics; ours 8–12 µs, attributes included: ``python -m bench.otel_micro``,
bench/RESULTS.md); a measurement here costs a dict lookup and a bisect. ``otel.py`` turns a ``snapshot()`` into the SDK's
``MetricsData`` and hands it to the OTLP metric exporter on its own thread.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

Key = tuple[tuple[str, Any], ...]  # a metric point's attributes, in a fixed order


@dataclass
class HistogramPoint:
    count: int = 0
    sum: float = 0.0
    min: float = float("inf")
    max: float = float("-inf")
    buckets: list[int] = field(default_factory=list)


@dataclass
class Instrument:
    name: str
    unit: str
    description: str
    bounds: Sequence[float] | None = None  # None: a monotonic sum
    points: dict[Key, Any] = field(default_factory=dict)

    def record(self, key: Key, value: float) -> None:
        """Add one measurement (the caller holds the set's lock)."""
        if self.bounds is None:
            self.points[key] = self.points.get(key, 0.0) + value
            return
        p = self.points.get(key)
        if p is None:
            p = self.points[key] = HistogramPoint(buckets=[0] * (len(self.bounds) + 1))
        p.count += 1
        p.sum += value
        p.min = min(p.min, value)
        p.max = max(p.max, value)
        p.buckets[bisect_left(self.bounds, value)] += 1  # bucket i holds (bounds[i-1], bounds[i]]


class MetricSet:
    """The four GenAI metrics of one process, cumulative since ``start_ns``."""

    def __init__(self, duration_bounds: Sequence[float], token_bounds: Sequence[float]) -> None:
        self.start_ns = time.time_ns()
        self.lock = threading.Lock()
        self.duration = Instrument("gen_ai.client.operation.duration", "s", "GenAI operation duration",
                                   duration_bounds)
        self.tokens = Instrument("gen_ai.client.token.usage", "{token}", "Tokens used, by gen_ai.token.type",
                                 token_bounds)
        self.ttfc = Instrument("gen_ai.client.time_to_first_chunk", "s", "Time to the first chunk of a stream",
                               duration_bounds)
        self.cost = Instrument("nexus.cost", "USD", "Cost of priced exchanges")
        self.instruments = (self.duration, self.tokens, self.ttfc, self.cost)

    def snapshot(self) -> list[tuple[Instrument, dict[Key, Any]]]:
        """A consistent copy of every instrument's points (from the exporting thread)."""
        with self.lock:
            out = []
            for inst in self.instruments:
                if inst.bounds is None:
                    out.append((inst, dict(inst.points)))
                else:
                    out.append((inst, {k: HistogramPoint(p.count, p.sum, p.min, p.max, list(p.buckets))
                                       for k, p in inst.points.items()}))
            return out
