"""``/api/errors``: error counts by status code and type with the affected domains, plus the newest errors.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from nexus.core.timebuckets import iso
from nexus.store.read.base import ERROR_SQL, Filters
from nexus.store.read.requests import RequestQueries


class ErrorQueries(RequestQueries):

    async def errors(self, since: datetime, until: datetime, filters: Filters, limit: int) -> dict[str, Any]:
        args: list[Any] = [since, until]
        sql = f"""
            SELECT status_code, error_type, COUNT(*) AS count,
                   ARRAY_AGG(DISTINCT domain) AS affected_domains,
                   min(created_at) AS first_seen, max(created_at) AS last_seen
            FROM api_requests
            WHERE {ERROR_SQL} AND created_at >= $1 AND created_at < $2{filters.sql(args)}
            GROUP BY status_code, error_type
            ORDER BY count DESC, status_code, error_type"""
        async with self._conn() as conn:
            rows = await self._run(conn, "errors.groups", sql, *args)
        groups = [{
            "statusCode": r["status_code"],
            "errorType": r["error_type"],
            "count": int(r["count"]),
            "affectedDomains": list(r["affected_domains"]),
            "firstSeen": iso(r["first_seen"]),
            "lastSeen": iso(r["last_seen"]),
        } for r in rows]
        recent = await self.requests(limit, filters, status="error", since=since, until=until,
                                     name="errors.recent")
        return {"since": iso(since), "until": iso(until), "totalErrors": sum(g["count"] for g in groups),
                "groups": groups, "recent": recent["requests"]}
