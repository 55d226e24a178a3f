"""``/api/timeseries``: per-bucket requests, errors, latency percentiles, tokens and cost, from rollups.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from nexus.core.latency import percentile_from_hist
from nexus.core.timebuckets import floor_to, iso
from nexus.store.read.base import HIST_SUM_SQL, Agg, Filters, QueryBase, ms, num


class TimeseriesQueries(QueryBase):

    async def timeseries(self, since: datetime, until: datetime, bucket_s: int,
                         filters: Filters) -> dict[str, Any]:
        start = floor_to(since, bucket_s)
        step_s = int(bucket_s)  # validated int, inlined so the cache key carries it
        t_sql = f"to_timestamp(floor(extract(epoch FROM bucket) / {step_s}) * {step_s})"
        async with self._conn() as conn:
            rows = await self._rollup(conn, "timeseries", [(t_sql, "t")],
                                      f"{self._AGG_ROLLUP}, {HIST_SUM_SQL} AS hist", start, until, filters)
        by_t: dict[datetime, Agg] = {}
        for r in rows:
            agg = Agg()
            agg.add_row(r)
            agg.hist = [int(x or 0) for x in r["hist"]]
            by_t[r["t"]] = agg
        points = []
        t = start
        step = timedelta(seconds=bucket_s)
        while t < until:
            agg = by_t.get(t, Agg())
            points.append({
                "time": iso(t),
                "requests": agg.requests,
                "errors": agg.errors,
                "errorRate": agg.error_rate,
                "avgLatencyMs": ms(agg.avg_latency),
                "p50LatencyMs": ms(percentile_from_hist(agg.hist, 0.5)),
                "p95LatencyMs": ms(percentile_from_hist(agg.hist, 0.95)),
                "tokens": agg.tokens,
                "costUsd": num(agg.cost),
                "unpricedRequests": agg.unpriced,
            })
            t += step
        return {"since": iso(since), "until": iso(until), "bucketSeconds": bucket_s, "points": points}
