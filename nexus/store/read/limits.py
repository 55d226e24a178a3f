"""``/api/limits`` and ``/api/limits/history``: the latest snapshot per account and its history.

What is stored and how is ``nexus.store.ratelimits``; this is the dashboard's read of it, timed
like every other dashboard query.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from nexus.store.ratelimits import account_json
from nexus.store.read.base import QueryBase

_LATEST = """SELECT account_id, kind, observed_at, request_id, status_code, snapshot::text AS snapshot,
                    headers::text AS headers FROM ratelimit_latest"""


class LimitQueries(QueryBase):

    async def limits(self, account: str | None) -> list[dict[str, Any]]:
        """Every account's latest snapshot (most recently observed first), or ``account``'s."""
        async with self._conn() as conn:
            if account is None:
                rows = await self._run(conn, "limits", _LATEST + " ORDER BY observed_at DESC, account_id")
            else:
                rows = await self._run(conn, "limits.account", _LATEST + " WHERE account_id = $1", account)
        return [account_json(r) for r in rows]

    async def limits_history(self, account: str, window: str | None, since: datetime,
                             until: datetime) -> list[dict[str, Any]]:
        """Utilization samples (at most one a minute) of a window, or of every window, oldest first."""
        args: list[Any] = [account, since, until]
        sql = """SELECT window_name, bucket, observed_at, utilization, resets_at, status
                 FROM ratelimit_samples WHERE account_id = $1 AND bucket >= $2 AND bucket < $3"""
        if window is not None:
            args.append(window)
            sql += " AND window_name = $4"
        async with self._conn() as conn:
            rows = await self._run(conn, "limits.history", sql + " ORDER BY window_name, bucket", *args)
        return [{"window": r["window_name"], "time": r["bucket"].isoformat(),
                 "observedAt": r["observed_at"].isoformat(), "utilization": r["utilization"],
                 "resetsAt": None if r["resets_at"] is None else r["resets_at"].isoformat(),
                 "status": r["status"]} for r in rows]

    async def latest_windows(self) -> dict[str, dict[str, Any]]:
        """``{account: {"kind", "observedAt", "windows", "status"}}`` for the token-window views."""
        async with self._conn() as conn:
            rows = await self._run(conn, "limits.windows", _LATEST)
        return {r["account_id"]: account_json(r) for r in rows}
