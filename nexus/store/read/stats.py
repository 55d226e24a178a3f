"""``/api/stats``: totals, tokens, errors, latency percentiles and the per-model / per-domain breakdown.

Counts are exact for any range: whole minutes come from the rollups, the ragged edges (< 1 minute
at each end) from raw rows. The total percentiles are exact ``percentile_cont`` up to one hour and
histogram-interpolated beyond.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import asyncpg

from nexus.core.latency import HIST_LEN, percentile_from_hist
from nexus.core.timebuckets import ceil_minute, floor_minute, iso
from nexus.store.read.base import (
    BOUNDS,
    DIM_RAW_SQL,
    DIM_ROLLUP_SQL,
    ERROR_SQL,
    EXACT_PERCENTILE_MAX_RANGE,
    HIST_SUM_SQL,
    UNPRICED_SQL,
    Agg,
    Filters,
    QueryBase,
    dimensions_json,
    ms,
    num,
)


class StatsQueries(QueryBase):

    async def stats(self, since: datetime, until: datetime, filters: Filters, now: datetime,
                    top: int | None = None) -> dict[str, Any]:
        """``top``: ``byModel`` / ``byDomain`` keep the ``top`` busiest groups and sum the rest as one
        ``other`` group (model and domain come from client input: the answer must stay small)."""
        exact = until - since <= EXACT_PERCENTILE_MAX_RANGE
        async with self._conn() as conn:
            if exact:
                body = await self._stats_exact(conn, since, until, filters, top)
            else:
                body = await self._stats_hist(conn, since, until, filters, top)
            args: list[Any] = [now - timedelta(seconds=60), now]
            sql = ("SELECT count(*) AS n FROM api_requests WHERE created_at > $1 AND created_at <= $2"
                   + filters.sql(args))
            rpm = (await self._run(conn, "stats.requests_per_minute", sql, *args))[0]["n"]
        return {"since": iso(since), "until": iso(until), **body, "requestsPerMinute": int(rpm)}

    _AGG_RAW = f"""count(*) AS requests,
        count(*) FILTER (WHERE {ERROR_SQL}) AS errors,
        coalesce(sum(input_tokens), 0) AS input_tokens,
        coalesce(sum(output_tokens), 0) AS output_tokens,
        coalesce(sum(cache_creation_input_tokens), 0) AS cache_creation,
        coalesce(sum(cache_read_input_tokens), 0) AS cache_read,
        coalesce(sum(cost_usd), 0) AS cost,
        count(*) FILTER (WHERE {UNPRICED_SQL}) AS unpriced,
        coalesce(sum(response_time_ms), 0) AS latency_sum, {DIM_RAW_SQL}"""

    # Counts as bigint (sum() of bigint is numeric, which is slower to ship and to add up in Python).

    @staticmethod
    def _group_json(agg: Agg, key: str, value: str, p95: float | None) -> dict[str, Any]:
        return {
            key: value,
            "requests": agg.requests,
            "errors": agg.errors,
            "errorRate": agg.error_rate,
            "tokens": agg.tokens,
            "costUsd": num(agg.cost),
            "unpricedRequests": agg.unpriced,
            "avgLatencyMs": ms(agg.avg_latency),
            "p95LatencyMs": ms(p95),
            "byDimension": dimensions_json(agg),
        }

    @staticmethod
    def _totals_json(agg: Agg, p50: float | None, p95: float | None, p99: float | None,
                     method: str) -> dict[str, Any]:
        return {
            "totalRequests": agg.requests,
            "errorCount": agg.errors,
            "errorRate": agg.error_rate,
            "tokens": agg.tokens,
            "latencyMs": {"avg": ms(agg.avg_latency), "p50": ms(p50), "p95": ms(p95), "p99": ms(p99),
                          "method": method},
            "costUsd": num(agg.cost),
            "unpricedRequests": agg.unpriced,
            "byDimension": dimensions_json(agg),
        }

    async def _stats_exact(self, conn: asyncpg.Connection, since: datetime, until: datetime,
                           filters: Filters, top: int | None = None) -> dict[str, Any]:
        """Counts as for any range, plus exact total percentiles from one sort of the raw rows.

        One ``percentile_cont`` over the whole range (not per model/domain: grouping sets would
        sort the rows once per set, ten times slower on a busy hour); the per-group p95 stays
        histogram-interpolated.
        """
        body = await self._stats_hist(conn, since, until, filters, top)
        args: list[Any] = [since, until]
        sql = f"""SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]::float8[])
                         WITHIN GROUP (ORDER BY response_time_ms) AS pct
                  FROM api_requests WHERE created_at >= $1 AND created_at < $2{filters.sql(args)}"""
        pct = (await self._run(conn, "stats.percentiles", sql, *args))[0]["pct"]
        p50, p95, p99 = pct or (None, None, None)
        body["latencyMs"].update({"p50": ms(p50), "p95": ms(p95), "p99": ms(p99), "method": "exact"})
        return body

    async def _stats_hist(self, conn: asyncpg.Connection, since: datetime, until: datetime,
                          filters: Filters, top: int | None = None) -> dict[str, Any]:
        groups = await self.range_groups(conn, since, until, filters)
        total = Agg()
        models: dict[str, Agg] = {}
        domains: dict[str, Agg] = {}
        for (domain, model), agg in groups.items():
            total.merge(agg)
            models.setdefault(model, Agg()).merge(agg)
            domains.setdefault(domain, Agg()).merge(agg)
        body = self._totals_json(total, percentile_from_hist(total.hist, 0.5),
                                 percentile_from_hist(total.hist, 0.95),
                                 percentile_from_hist(total.hist, 0.99), "histogram")
        body["byModel"] = self._groups_json(models, "model", top)
        body["byDomain"] = self._groups_json(domains, "domain", top)
        return body

    def _groups_json(self, groups: dict[str, Agg], key: str, top: int | None) -> list[dict[str, Any]]:
        """Busiest first; beyond ``top`` groups, the rest merged into one ``other`` (last)."""
        order = sorted(groups, key=lambda k: (-groups[k].requests, k))
        rest: Agg | None = None
        if top is not None and len(order) > top:
            rest = Agg()
            for k in order[top:]:
                rest.merge(groups[k])
            order = order[:top]
        out = [self._group_json(groups[k], key, k, percentile_from_hist(groups[k].hist, 0.95)) for k in order]
        if rest is not None:
            out.append(self._group_json(rest, key, "other", percentile_from_hist(rest.hist, 0.95)))
        return out

    async def range_groups(self, conn: asyncpg.Connection, since: datetime, until: datetime,
                           filters: Filters) -> dict[tuple[str, str], Agg]:
        """Exact per-(domain, model) counters and latency histograms for ``[since, until)``.

        Whole minutes come from the rollups, the partial minutes at either end from raw rows,
        so the answer is exact while the raw table is touched for at most two minutes.
        """
        m0, m1 = ceil_minute(since), floor_minute(until)
        groups: dict[tuple[str, str], Agg] = {}
        args: list[Any]
        if m0 < m1:
            rows = await self._rollup(conn, "stats.rollup", [("domain", "domain"), ("model", "model")],
                                      f"{self._AGG_ROLLUP}, {DIM_ROLLUP_SQL}, {HIST_SUM_SQL} AS hist", m0, m1, filters)
            for r in rows:
                agg = groups.setdefault((r["domain"], r["model"]), Agg())
                agg.add_row(r)
                agg.hist = [a + int(b or 0) for a, b in zip(agg.hist, r["hist"], strict=True)]
            edges = "(created_at >= $1 AND created_at < $2) OR (created_at >= $3 AND created_at < $4)"
            args = [since, m0, m1, until]
        else:
            edges = "created_at >= $1 AND created_at < $2"
            args = [since, until]
        args.append(BOUNDS)
        bounds_idx = len(args)
        sql = f"""
            SELECT domain, coalesce(model, '') AS model,
                   width_bucket(response_time_ms, ${bounds_idx}::float8[]) AS b, {self._AGG_RAW}
            FROM api_requests
            WHERE ({edges}){filters.sql(args)}
            GROUP BY 1, 2, 3"""
        for r in await self._run(conn, "stats.raw_edges", sql, *args):
            agg = groups.setdefault((r["domain"], r["model"]), Agg())
            agg.add_row(r)
            agg.hist[min(int(r["b"]), HIST_LEN - 1)] += int(r["requests"])
        return groups
