"""Every SQL statement the alert evaluator and ``/api/alerts`` run (tables from migration 0003).

Measurements read the per-minute rollups (``api_requests_minute``), never raw rows, so an
evaluation costs a few index range scans however busy the proxy is. Time bounds are always
passed in by the caller (the evaluator's clock), never ``now()``, so tests can drive time.
jsonb goes in as text and comes out as text, so these work on pooled connections (which have a
jsonb codec) and on plain ones alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from nexus.core.latency import empty_hist

# Advisory lock id of the alert evaluator ("nexA"); distinct from the migration lock.
ALERT_LOCK_KEY = 0x6E657841
# NOTIFY channel carrying alert transitions to the other instances' SSE streams.
ALERT_NOTIFY_CHANNEL = "nexus_alerts"

_ALERT_COLS = (
    "id, rule, key, title, severity, status, summary, value, threshold, labels::text AS labels, "
    "started_at, resolved_at, last_notified_at, notify_count, instance_id, updated_at, peak_value, fired_summary"
)


@dataclass(frozen=True)
class TrafficWindow:
    """Requests, errors and merged latency histogram over a time range."""

    requests: int
    errors: int
    hist: list[int]


async def try_lock(conn: asyncpg.Connection) -> bool:
    """Take the evaluator lock for the current transaction; ``False`` if another instance holds it."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", ALERT_LOCK_KEY))


async def claim_evaluation(conn: asyncpg.Connection, now: datetime, min_gap_s: float, instance_id: str) -> bool:
    """Record that an evaluation runs at ``now`` unless one ran less than ``min_gap_s`` ago.

    With N instances on one timer each, this keeps the work at one evaluation per interval.
    """
    row = await conn.fetchrow(
        """INSERT INTO alert_evaluations AS e (id, last_run_at, instance_id) VALUES (true, $1, $3)
           ON CONFLICT (id) DO UPDATE SET last_run_at = EXCLUDED.last_run_at, instance_id = EXCLUDED.instance_id
           WHERE e.last_run_at <= $1 - make_interval(secs => $2) OR e.last_run_at > $1
           RETURNING last_run_at""",
        now, float(min_gap_s), instance_id,
    )
    return row is not None


async def traffic_window(conn: asyncpg.Connection, since: datetime, until: datetime) -> TrafficWindow:
    row = await conn.fetchrow(
        """SELECT coalesce(sum(requests), 0)::bigint AS requests, coalesce(sum(errors), 0)::bigint AS errors,
                  nexus_hist_sum(latency_hist) AS hist
           FROM api_requests_minute
           WHERE bucket >= date_trunc('minute', $1::timestamptz) AND bucket <= $2""",
        since, until,
    )
    hist = list(row["hist"]) if row["hist"] is not None else empty_hist()
    return TrafficWindow(int(row["requests"]), int(row["errors"]), hist)


async def token_minutes(conn: asyncpg.Connection, since: datetime, until: datetime
                        ) -> dict[str, list[tuple[datetime, int]]]:
    """Per account, (minute, tokens) points in ``[since, until]``, oldest first.

    Tokens are input + output + cache creation + cache read: the ``totalTokens`` of
    ``/api/token-usage/current``, so the alert's percentage is the one the monitor shows.
    """
    rows = await conn.fetch(
        """SELECT account_id, bucket,
                  sum(input_tokens + output_tokens + cache_creation_input_tokens
                      + cache_read_input_tokens)::bigint AS tokens
           FROM api_requests_minute
           WHERE bucket >= date_trunc('minute', $1::timestamptz) AND bucket <= $2 AND account_id <> ''
           GROUP BY account_id, bucket
           ORDER BY account_id, bucket""",
        since, until,
    )
    out: dict[str, list[tuple[datetime, int]]] = {}
    for r in rows:
        out.setdefault(r["account_id"], []).append((r["bucket"], int(r["tokens"])))
    return out


async def cost_by_account(conn: asyncpg.Connection, since: datetime, until: datetime) -> dict[str, float]:
    """Cost per account (``''`` for requests without one) in ``[since, until]``."""
    rows = await conn.fetch(
        """SELECT account_id, coalesce(sum(cost_usd), 0)::float8 AS cost
           FROM api_requests_minute WHERE bucket >= $1 AND bucket <= $2
           GROUP BY account_id""",
        since, until,
    )
    return {r["account_id"]: float(r["cost"]) for r in rows}


async def report_pool(conn: asyncpg.Connection, instance_id: str, in_use: int, max_size: int,
                      now: datetime) -> None:
    await conn.execute(
        """INSERT INTO alert_instance_pools (instance_id, in_use, max_size, reported_at) VALUES ($1, $2, $3, $4)
           ON CONFLICT (instance_id) DO UPDATE SET in_use = EXCLUDED.in_use, max_size = EXCLUDED.max_size,
               reported_at = EXCLUDED.reported_at""",
        instance_id, in_use, max_size, now,
    )


async def live_pools(conn: asyncpg.Connection, since: datetime) -> list[tuple[str, int, int]]:
    """Pools of instances that reported since ``since`` (a dead instance's last report ages out)."""
    rows = await conn.fetch(
        "SELECT instance_id, in_use, max_size FROM alert_instance_pools WHERE reported_at >= $1 "
        "ORDER BY instance_id", since,
    )
    return [(r["instance_id"], int(r["in_use"]), int(r["max_size"])) for r in rows]


async def server_connections(conn: asyncpg.Connection) -> tuple[int, int]:
    """(connections open on the server, max_connections minus the superuser reserve)."""
    row = await conn.fetchrow(
        """SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS used,
                  current_setting('max_connections')::int
                  - current_setting('superuser_reserved_connections')::int AS cap"""
    )
    return int(row["used"]), int(row["cap"])


async def report_clock(conn: asyncpg.Connection, instance_id: str, offset_s: float) -> None:
    await conn.execute(
        """INSERT INTO alert_instance_clocks (instance_id, offset_s, seen_at) VALUES ($1, $2, clock_timestamp())
           ON CONFLICT (instance_id) DO UPDATE SET offset_s = EXCLUDED.offset_s, seen_at = EXCLUDED.seen_at""",
        instance_id, offset_s,
    )


async def live_clocks(conn: asyncpg.Connection, max_age_s: float) -> dict[str, float]:
    """Clock offsets of the instances heard from in the last ``max_age_s`` (by the server's clock)."""
    rows = await conn.fetch(
        "SELECT instance_id, offset_s FROM alert_instance_clocks "
        "WHERE seen_at >= clock_timestamp() - make_interval(secs => $1) ORDER BY instance_id", float(max_age_s))
    return {r["instance_id"]: float(r["offset_s"]) for r in rows}


# --- state -------------------------------------------------------------------------------------


async def load_pending(conn: asyncpg.Connection) -> dict[tuple[str, str], datetime]:
    rows = await conn.fetch("SELECT rule, key, pending_since FROM alert_pending")
    return {(r["rule"], r["key"]): r["pending_since"] for r in rows}


async def save_pending(conn: asyncpg.Connection, pending: dict[tuple[str, str], datetime]) -> None:
    """Replace the pending set (a handful of rows; simpler than diffing)."""
    await conn.execute("DELETE FROM alert_pending")
    if pending:
        await conn.executemany(
            "INSERT INTO alert_pending (rule, key, pending_since) VALUES ($1, $2, $3)",
            [(r, k, t) for (r, k), t in pending.items()],
        )


async def firing_alerts(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch(f"SELECT {_ALERT_COLS} FROM alerts WHERE status = 'firing' ORDER BY started_at DESC")
    return [_row(r) for r in rows]


async def insert_firing(conn: asyncpg.Connection, *, rule: str, key: str, title: str, severity: str,
                        summary: str, value: float | None, threshold: float, labels: dict[str, Any],
                        started_at: datetime, instance_id: str, peak: float | None = None,
                        fired_summary: str | None = None) -> dict[str, Any] | None:
    """Store a newly firing alert; ``None`` if one is already firing for (rule, key).

    ``peak`` and ``fired_summary`` default to ``value`` and ``summary``: an alert stored as it fires.
    One stored later (a local alert kept while the database was away) passes what it saw meanwhile."""
    row = await conn.fetchrow(
        f"""INSERT INTO alerts (rule, key, title, severity, status, summary, value, threshold, labels,
                               started_at, last_notified_at, notify_count, instance_id, updated_at,
                               peak_value, fired_summary)
            VALUES ($1, $2, $3, $4, 'firing', $5, $6, $7, $8::text::jsonb, $9, $9, 1, $10, $9,
                    GREATEST($6::double precision, $11::double precision), COALESCE($12::text, $5::text))
            ON CONFLICT (rule, key) WHERE status = 'firing' DO NOTHING
            RETURNING {_ALERT_COLS}""",
        rule, key, title, severity, summary, value, threshold, json.dumps(labels, default=str), started_at,
        instance_id, peak, fired_summary,
    )
    return _row(row) if row else None


async def mark_repeated(conn: asyncpg.Connection, alert_id: int, at: datetime, summary: str,
                        value: float | None) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"""UPDATE alerts SET last_notified_at = $2, notify_count = notify_count + 1, summary = $3,
                              value = $4, updated_at = $2, peak_value = GREATEST(peak_value, $4)
            WHERE id = $1 AND status = 'firing' RETURNING {_ALERT_COLS}""",
        alert_id, at, summary, value,
    )
    return _row(row) if row else None


async def mark_resolved(conn: asyncpg.Connection, alert_id: int, at: datetime, summary: str,
                        value: float | None) -> dict[str, Any] | None:
    """Resolve a firing alert; ``None`` if it was not firing (someone else resolved it)."""
    row = await conn.fetchrow(
        f"""UPDATE alerts SET status = 'resolved', resolved_at = $2, summary = $3, value = $4, updated_at = $2
            WHERE id = $1 AND status = 'firing' RETURNING {_ALERT_COLS}""",
        alert_id, at, summary, value,
    )
    return _row(row) if row else None


async def raise_peaks(conn: asyncpg.Connection, values: list[tuple[int, float]]) -> None:
    """Each firing alert's peak, from this evaluation's values; a row is written only when it rises."""
    if values:
        await conn.executemany(
            """UPDATE alerts SET peak_value = $2
               WHERE id = $1 AND status = 'firing' AND (peak_value IS NULL OR peak_value < $2)""", values)


async def recent_alerts(conn: asyncpg.Connection, limit: int = 50) -> list[dict[str, Any]]:
    """Newest first by last change: firing and resolved alike."""
    rows = await conn.fetch(
        f"SELECT {_ALERT_COLS} FROM alerts ORDER BY updated_at DESC, id DESC LIMIT $1", limit
    )
    return [_row(r) for r in rows]


def _row(r: asyncpg.Record) -> dict[str, Any]:
    d = dict(r)
    labels = d.get("labels")
    d["labels"] = json.loads(labels) if isinstance(labels, str) else (labels or {})
    return d


def _iso(v: datetime | None) -> str | None:
    return None if v is None else v.isoformat()


def alert_json(d: dict[str, Any]) -> dict[str, Any]:
    """The JSON shape of a stored alert, as ``/api/alerts`` and the ``alert`` SSE event send it."""
    return {
        "id": d["id"],
        "rule": d["rule"],
        "key": d["key"],
        "title": d["title"],
        "severity": d["severity"],
        "status": d["status"],
        "summary": d["summary"],
        "value": d["value"],
        "peakValue": d.get("peak_value"),
        "firedSummary": d.get("fired_summary"),
        "threshold": d["threshold"],
        "labels": d["labels"],
        "startedAt": _iso(d["started_at"]),
        "resolvedAt": _iso(d["resolved_at"]),
        "lastNotifiedAt": _iso(d["last_notified_at"]),
        "notifyCount": d["notify_count"],
        "instanceId": d["instance_id"],
        "updatedAt": _iso(d["updated_at"]),
    }
