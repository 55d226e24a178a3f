"""``/api/costs``: cost by day and model, cumulative, month to date and the month-end projection.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from nexus.store.read.base import DIM_ROLLUP_SQL, Agg, Filters, QueryBase, dimensions_json, num


class CostQueries(QueryBase):

    async def costs(self, days: int, now: datetime, filters: Filters) -> dict[str, Any]:
        today = now.astimezone(UTC).date()
        range_start = today - timedelta(days=days - 1)
        month_start = today.replace(day=1)
        first = min(range_start, month_start)
        async with self._conn() as conn:
            rows = await self._rollup(
                conn, "costs.daily", [("(bucket AT TIME ZONE 'UTC')::date", "day"), ("model", "model")],
                "sum(cost_usd) AS cost, sum(requests) AS requests, sum(unpriced_requests) AS unpriced, "
                + DIM_ROLLUP_SQL,
                datetime.combine(first, datetime.min.time(), UTC),
                datetime.combine(today + timedelta(days=1), datetime.min.time(), UTC), filters)
        daily: dict[date, list[dict[str, Any]]] = {}
        mtd = Decimal(0)
        for r in rows:
            if r["day"] >= month_start:
                mtd += r["cost"] or Decimal(0)
            if r["day"] >= range_start:
                daily.setdefault(r["day"], []).append(r)
        by_model: dict[str, list[Any]] = {}
        dims: dict[str, Agg] = {}
        days_out = []
        cumulative = Decimal(0)
        for i in range(days):
            d = range_start + timedelta(days=i)
            day_rows = sorted(daily.get(d, []), key=lambda r: (-(r["cost"] or 0), r["model"]))
            day_cost = sum((r["cost"] or Decimal(0) for r in day_rows), Decimal(0))
            cumulative += day_cost
            for r in day_rows:
                m = by_model.setdefault(r["model"], [Decimal(0), 0, 0])
                m[0] += r["cost"] or Decimal(0)
                m[1] += int(r["requests"])
                m[2] += int(r["unpriced"])
                d_agg = dims.setdefault(r["model"], Agg())
                d_agg.cost += r["cost"] or Decimal(0)
                d_agg.add_dimensions(r)
            days_out.append({
                "date": d.isoformat(),
                "costUsd": num(day_cost),
                "cumulativeUsd": num(cumulative),
                "requests": sum(int(r["requests"]) for r in day_rows),
                "byModel": [{"model": r["model"], "costUsd": num(r["cost"]), "requests": int(r["requests"])}
                            for r in day_rows],
            })
        month_start_dt = datetime.combine(month_start, datetime.min.time(), UTC)
        next_month = (month_start.replace(day=28) + timedelta(days=4)).replace(day=1)
        month_days = (next_month - month_start).days
        elapsed_days = (now - month_start_dt).total_seconds() / 86400.0
        projection = mtd if elapsed_days < 1 / 24 else mtd / Decimal(repr(elapsed_days)) * month_days
        models_sorted = sorted(by_model.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))
        total = Agg()
        for agg in dims.values():
            total.merge(agg)
        return {
            "days": days,
            "currency": "USD",
            "totalCostUsd": num(cumulative),
            "todayUsd": days_out[-1]["costUsd"] if days_out else 0.0,
            "monthToDateUsd": num(mtd),
            "monthElapsedDays": round(elapsed_days, 6),
            "monthDays": month_days,
            "monthEndProjectionUsd": num(projection, 6),
            "unpricedRequests": sum(v[2] for v in by_model.values()),
            "daily": days_out,
            "byModel": [{"model": m, "costUsd": num(v[0]), "requests": v[1], "unpricedRequests": v[2],
                         "byDimension": dimensions_json(dims[m])}
                        for m, v in models_sorted],
            "byDimension": dimensions_json(total),
            "unpriced": [{"model": m, "requests": v[2], "tokens": dims[m].unpriced_tokens}
                         for m, v in sorted(by_model.items(), key=lambda kv: (-kv[1][2], kv[0])) if v[2]],
        }
