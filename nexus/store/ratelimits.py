"""Rate-limit snapshots in the database: written with each batch of records, read by the API.

Written by ``nexus.store.write.insert_records`` in the batch's transaction (so off the request
path, and once per record even when a batch is replayed from the journal):

* ``ratelimit_latest`` — one row per account, the latest answer's snapshot (moves forward only);
* ``ratelimit_samples`` — per account, window and minute, the minute's latest utilization;
* ``ratelimit_answers`` — per answer (``api_requests.id``), its utilization of every window.

The JSON of ``/api/limits`` is built here (``account_json``) from the stored snapshot, so every
instance on the database answers the same.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from nexus.core.ratelimits import RateLimitSnapshot, account_view, parse_headers
from nexus.core.records import Record
from nexus.core.timebuckets import floor_minute

_LATEST_UPSERT = """
INSERT INTO ratelimit_latest AS l (account_id, kind, observed_at, request_uuid, request_id, status_code,
    snapshot, headers, instance_id)
VALUES ($1, $2, $3, $4, $5, $6, $7::text::jsonb, $8::text::jsonb, $9)
ON CONFLICT (account_id) DO UPDATE SET
    kind = EXCLUDED.kind, observed_at = EXCLUDED.observed_at, request_uuid = EXCLUDED.request_uuid,
    request_id = EXCLUDED.request_id, status_code = EXCLUDED.status_code, snapshot = EXCLUDED.snapshot,
    headers = EXCLUDED.headers, instance_id = EXCLUDED.instance_id, updated_at = now()
WHERE l.observed_at <= EXCLUDED.observed_at
"""

_SAMPLE_UPSERT = """
INSERT INTO ratelimit_samples AS s (account_id, window_name, bucket, observed_at, utilization, resets_at,
    status, request_uuid)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (account_id, window_name, bucket) DO UPDATE SET
    observed_at = EXCLUDED.observed_at, utilization = EXCLUDED.utilization,
    resets_at = EXCLUDED.resets_at, status = EXCLUDED.status, request_uuid = EXCLUDED.request_uuid
WHERE s.observed_at <= EXCLUDED.observed_at
"""

_ANSWER_INSERT = """
INSERT INTO ratelimit_answers (request_uuid, observed_at, account_id, request_id, status, utilization)
VALUES ($1, $2, $3, $4, $5, $6::text::jsonb)
ON CONFLICT DO NOTHING
"""


def snapshot_of(r: Record) -> RateLimitSnapshot | None:
    """The record's parsed snapshot (parsing its headers if the recorder has not)."""
    if r.ratelimits is None and r.ratelimit_headers:
        r.ratelimits = parse_headers(r.ratelimit_headers, r.ratelimit_observed_at)
    return r.ratelimits


def observed_at(r: Record) -> datetime:
    return r.ratelimit_observed_at or r.created_at


def _dumps(value: Any) -> str:
    # Sent as text and cast in SQL, so it works whether or not the connection has a jsonb codec.
    return json.dumps(value).replace("\\u0000", "\\ufffd")


async def write_ratelimits(conn: asyncpg.Connection, records: Sequence[Record]) -> int:
    """Store the snapshots of ``records`` (those with an account and rate-limit headers)."""
    latest: dict[str, tuple[datetime, Record, RateLimitSnapshot]] = {}
    samples: dict[tuple[str, str, datetime], tuple] = {}
    answers: list[tuple] = []
    for r in records:
        if not r.account_id or not r.ratelimit_headers:
            continue
        snap = snapshot_of(r)
        if snap is None:
            continue
        at = observed_at(r)
        prev = latest.get(r.account_id)
        if prev is None or prev[0] <= at:
            latest[r.account_id] = (at, r, snap)
        util = snap.utilization()
        if util:
            answers.append((r.id, at, r.account_id, r.request_id, snap.status, _dumps(util)))
            minute = floor_minute(at.astimezone(UTC))
            for name, win in snap.windows.items():
                if win.utilization is None:
                    continue
                key = (r.account_id, name, minute)
                old = samples.get(key)
                if old is None or old[3] <= at:
                    samples[key] = (r.account_id, name, minute, at, win.utilization, win.resets_at, win.status, r.id)
    if not latest:
        return 0
    await conn.executemany(_LATEST_UPSERT, [
        (acct, snap.kind, at, r.id, r.request_id, r.status_code, _dumps(snap.to_json()),
         _dumps(r.ratelimit_headers), r.instance_id)
        for acct, (at, r, snap) in sorted(latest.items())
    ])
    if samples:
        await conn.executemany(_SAMPLE_UPSERT, [samples[k] for k in sorted(samples)])
    if answers:
        await conn.executemany(_ANSWER_INSERT, answers)
    return len(latest)


def _loads(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def account_json(row: Any) -> dict[str, Any]:
    """One ``/api/limits`` account from a ``ratelimit_latest`` row (contract: PRODUCT.md §6)."""
    return account_view(row["account_id"], row["observed_at"], _loads(row["snapshot"]) or {},
                        row["request_id"], row["status_code"], _loads(row["headers"]) or {})


async def latest_snapshots(conn: asyncpg.Connection) -> dict[str, dict[str, Any]]:
    """Every account's latest snapshot as ``/api/limits`` shows it, by account id."""
    rows = await conn.fetch("""SELECT account_id, kind, observed_at, request_id, status_code,
                                      snapshot::text AS snapshot, headers::text AS headers FROM ratelimit_latest""")
    return {r["account_id"]: account_json(r) for r in rows}
