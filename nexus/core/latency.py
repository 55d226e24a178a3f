"""Fixed latency buckets shared by the per-minute rollups and the Prometheus histogram.

Percentiles over long ranges are read from these histograms (exact ``percentile_cont`` over
millions of rows is too slow for a live chart); the answer is interpolated inside a bucket.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

# Upper bounds in milliseconds; a final implicit +Inf bucket follows.
LATENCY_BUCKETS_MS: tuple[float, ...] = (
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 20000, 30000, 60000, 120000, 300000, 600000,
)
HIST_LEN = len(LATENCY_BUCKETS_MS) + 1


def bucket_index(ms: float) -> int:
    """Index of the bucket holding ``ms`` (the same as SQL width_bucket: a value equal to a bound goes above it)."""
    return bisect.bisect_right(LATENCY_BUCKETS_MS, ms)


def empty_hist() -> list[int]:
    return [0] * HIST_LEN


def percentile_from_hist(hist: Sequence[int], q: float) -> float | None:
    """Approximate the ``q`` quantile (0..1) from bucket counts by linear interpolation."""
    total = sum(hist)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(hist):
        if count <= 0:
            continue
        if seen + count >= rank:
            lower = 0.0 if i == 0 else LATENCY_BUCKETS_MS[i - 1]
            upper = LATENCY_BUCKETS_MS[i] if i < len(LATENCY_BUCKETS_MS) else lower * 2
            frac = (rank - seen) / count
            return lower + (upper - lower) * max(0.0, min(1.0, frac))
        seen += count
    return float(LATENCY_BUCKETS_MS[-1])
