"""``/api/token-usage/current`` and ``/api/token-usage/daily``: usage windows per account, from rollups.

Window math lives in ``nexus.core.windows`` (shared with the alert rules, so the monitor and the
alerts agree on where a window starts and how fast it burns).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from nexus.core.ratelimits import window_length
from nexus.core.timebuckets import floor_minute, iso
from nexus.core.windows import current_window, window_projection
from nexus.store.read.base import Agg, Filters, QueryBase, num, tokens_obj


def _projection(total: int, start: datetime, end: datetime, now: datetime,
                limit: int | None) -> dict[str, Any]:
    out = window_projection(total, start, end, now, limit)
    out["tokenLimit"] = limit
    return out



def _add(agg: Agg, r: Mapping[str, Any]) -> None:
    agg.requests += int(r["requests"])
    agg.input += int(r["input_tokens"])
    agg.output += int(r["output_tokens"])
    agg.cache_creation += int(r["cache_creation"])
    agg.cache_read += int(r["cache_read"])
    agg.cost += r["cost"] or Decimal(0)


def _estimated(body: dict[str, Any], limit: int | None, source: str | None, resets_at: str | None) -> dict[str, Any]:
    pct = body.get("percentOfLimit")
    body.update({"utilization": None if pct is None else round(pct / 100.0, 6), "resetsAt": resets_at,
                 "limitSource": source if limit else None, "limitWindow": None, "limitStatus": None,
                 "measuredAt": None})
    return body


def measured_window(snap: Mapping[str, Any] | None, length: timedelta,
                    now: datetime) -> tuple[str, float, datetime, datetime, Mapping[str, Any]] | None:
    """The headers' window of this ``length`` that is still open: (name, utilization, start, reset, snapshot)."""
    if not snap:
        return None
    best = None
    for name, win in (snap.get("windows") or {}).items():
        if window_length(name) != length or not isinstance(win, Mapping):
            continue
        util, reset = win.get("utilization"), win.get("resetsAt")
        if not isinstance(util, (int, float)) or not isinstance(reset, str):
            continue
        try:
            end = datetime.fromisoformat(reset)
        except ValueError:
            continue
        if end <= now:
            continue  # it has reset since that answer: nothing is known of the new window
        candidate = (name, float(util), end - length, end, snap)
        if best is None or (name in ("5h", "7d") and best[0] not in ("5h", "7d")):
            best = candidate
    return best


def measured_projection(util: float, start: datetime, end: datetime, now: datetime) -> dict[str, Any]:
    """% of limit, its linear projection to the reset and the exhaustion time, from the utilization."""
    length = max((end - start).total_seconds() / 60.0, 0.0)
    elapsed = min(max((now - start).total_seconds() / 60.0, 1.0), length) if length else 0.0
    remaining = min(max((end - now).total_seconds() / 60.0, 0.0), length)
    rate = util / elapsed if elapsed > 0 else 0.0  # fraction per minute
    projected = util + rate * remaining
    exhaustion = None
    if util >= 1.0:
        exhaustion = iso(now)
    elif rate > 0 and (1.0 - util) / rate <= remaining:
        exhaustion = iso(now + timedelta(minutes=(1.0 - util) / rate))
    return {"percentOfLimit": round(util * 100.0, 2), "projectedPercentOfLimit": round(projected * 100.0, 2),
            "projectedExhaustion": exhaustion, "tokenLimit": None}


class WindowQueries(QueryBase):

    async def token_usage_current(self, window_min: int, now: datetime, filters: Filters,
                                  limit_for: Callable[[str], int | None],
                                  measured: Mapping[str, Mapping[str, Any]] | None = None,
                                  source_for: Callable[[str, int | None], str | None] | None = None,
                                  ) -> list[dict[str, Any]]:
        """Current usage window of each account (or of ``filters.account``), Anthropic-style.

        Where the latest answer's rate-limit headers (``measured``: ``/api/limits`` accounts by id)
        have a window of this length that has not reset, that window is the truth: it started at
        ``reset - length``, its % of limit is the utilization Anthropic reported, ``limitSource`` is
        ``headers``. Otherwise (estimated) a window starts at the minute of an account's first
        request and lasts ``window_min``; the first request after it ends opens the next one, and
        the % is tokens over the configured or learned limit. Only rollup minutes are read.
        """
        measured = measured or {}
        window = timedelta(minutes=window_min)
        lookback = min(window * 4, timedelta(days=7))
        values = """sum(requests)::bigint AS requests, sum(input_tokens)::bigint AS input_tokens,
                   sum(output_tokens)::bigint AS output_tokens,
                   sum(cache_creation_input_tokens)::bigint AS cache_creation,
                   sum(cache_read_input_tokens)::bigint AS cache_read, sum(cost_usd) AS cost"""
        async with self._conn() as conn:
            rows = await self._rollup(conn, "token_usage.current",
                                      [("account_id", "account_id"), ("bucket", "bucket")], values,
                                      floor_minute(now - lookback), floor_minute(now) + timedelta(minutes=1),
                                      filters)
        rows.sort(key=lambda r: (r["account_id"], r["bucket"]))
        per_account: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            per_account.setdefault(r["account_id"], []).append(r)
        out: list[dict[str, Any]] = []
        for account in sorted(set(measured) - set(per_account)):
            if filters.account is None or filters.account == account:
                per_account[account] = []  # headers but no traffic in the lookback: still shown
        for account, minutes in per_account.items():
            truth = measured_window(measured.get(account), window, now)
            if truth is not None:
                name, util, start, end, snap = truth
                agg = Agg()
                for r in minutes:
                    if r["bucket"] >= floor_minute(start):
                        _add(agg, r)
                body = self._window_json(account, True, window_min, start, end, now, agg, None)
                body.update(measured_projection(util, start, end, now))
                body.update({"utilization": util, "resetsAt": iso(end), "limitSource": "headers",
                             "limitWindow": name, "limitStatus": (snap.get("windows") or {}).get(name, {}).get("status"),
                             "measuredAt": snap.get("observedAt")})
                out.append(body)
                continue
            points = [(r["bucket"], int(r["input_tokens"] + r["output_tokens"] + r["cache_creation"]
                                        + r["cache_read"])) for r in minutes]
            win = current_window(points, now, window, floor_to_hour=False)
            if win is None:
                continue  # its last window is over: no active window
            agg = Agg()
            for r in minutes:
                if r["bucket"] >= win.start:
                    _add(agg, r)
            limit = limit_for(account)
            body = self._window_json(account, True, window_min, win.start, win.end, now, agg, limit)
            out.append(_estimated(body, limit, source_for(account, limit) if source_for else None, iso(win.end)))
        if filters.account and not out:
            limit = limit_for(filters.account)
            body = self._window_json(filters.account, False, window_min, now - window, now, now, Agg(), limit)
            out.append(_estimated(body, limit, source_for(filters.account, limit) if source_for else None, None))
        out.sort(key=lambda w: (-w["totalTokens"], w["accountId"]))
        return out

    @staticmethod
    def _window_json(account: str, active: bool, window_min: int, start: datetime, end: datetime,
                     now: datetime, agg: Agg, limit: int | None) -> dict[str, Any]:
        t = agg.tokens
        body: dict[str, Any] = {
            "accountId": account,
            "active": active,
            "windowMinutes": window_min,
            "windowStart": iso(start),
            "windowEnd": iso(end),
            "now": iso(now),
            "totalInputTokens": t["input"],
            "totalOutputTokens": t["output"],
            "cacheCreationInputTokens": t["cacheCreation"],
            "cacheReadInputTokens": t["cacheRead"],
            "totalTokens": t["total"],
            "totalRequests": agg.requests,
            "costUsd": num(agg.cost),
        }
        body.update(_projection(t["total"], start, end, now, limit))
        if not active:
            body["burnRatePerMinute"] = 0.0
            body["projectedTotal"] = 0
            body["projectedPercentOfLimit"] = body["percentOfLimit"]
            body["projectedExhaustion"] = None
        return body

    async def token_usage_daily(self, days: int, today: date, filters: Filters,
                                aggregate: bool) -> list[dict[str, Any]]:
        start = datetime.combine(today - timedelta(days=days - 1), datetime.min.time(), UTC)
        end = datetime.combine(today + timedelta(days=1), datetime.min.time(), UTC)
        keys = [("(bucket AT TIME ZONE 'UTC')::date", "day"), ("account_id", "account_id"),
                ("domain", "domain")] + ([] if aggregate else [("model", "model")])
        async with self._conn() as conn:
            rows = await self._rollup(conn, "token_usage.daily" + (".aggregate" if aggregate else ""), keys,
                                      self._AGG_ROLLUP, start, end, filters)
        rows.sort(key=lambda r: (-r["day"].toordinal(), r["account_id"], r["domain"], r.get("model", "")))
        out = []
        for r in rows:
            t = tokens_obj(r["input_tokens"], r["output_tokens"], r["cache_creation"], r["cache_read"])
            item: dict[str, Any] = {"date": r["day"].isoformat(), "accountId": r["account_id"],
                                    "domain": r["domain"]}
            if not aggregate:
                item["model"] = r["model"]
            item.update({
                "totalInputTokens": t["input"], "totalOutputTokens": t["output"],
                "cacheCreationInputTokens": t["cacheCreation"], "cacheReadInputTokens": t["cacheRead"],
                "totalTokens": t["total"], "totalRequests": int(r["requests"]), "errors": int(r["errors"]),
                "costUsd": num(r["cost"]), "unpricedRequests": int(r["unpriced"]),
            })
            out.append(item)
        return out
