"""The write path: a batch of Records into ``api_requests`` (+ bodies, + per-minute rollups).

One transaction per batch. Fresh records (live traffic) are COPYed straight into the partitioned
table inside a savepoint; if any of them is already there (a batch replayed from the journal after
a crash), the savepoint rolls back and the batch takes the careful path instead: COPY into a
temporary table, ``INSERT … ON CONFLICT DO NOTHING RETURNING id``, and roll up only the rows that
were really inserted. Either way a record is written once and counted once; the fast path only
skips the temporary table when there is nothing to skip (bench/RESULTS.md: ~1.4× records/s).
"""

from __future__ import annotations

import asyncio
import json
import operator
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import asyncpg

from nexus.core.latency import bucket_index
from nexus.core.records import REQUEST_TYPE_MESSAGES, Record
from nexus.store.partitions import ensure_partitions
from nexus.store.ratelimits import write_ratelimits
from nexus.store.rollup import RollupCounters, SessionCounters

RECORD_COLUMNS: tuple[str, ...] = (
    "id", "created_at", "request_id", "domain", "account_id", "method", "path", "model", "stream",
    "status_code", "error_type", "error_message", "input_tokens", "output_tokens",
    "cache_creation_input_tokens", "cache_creation_5m_tokens", "cache_creation_1h_tokens",
    "cache_read_input_tokens", "counted_tokens", "response_time_ms", "ttft_ms", "cost_usd",
    "request_type", "instance_id", "service_tier", "speed", "inference_geo", "web_search_requests",
    "web_fetch_requests", "thinking_tokens", "price_source", "web_search_cost_usd",
    "session_id", "agent_id", "parent_agent_id", "client", "tags",
)
_COLS = ", ".join(RECORD_COLUMNS)
_TMP = "_nexus_incoming"


_row = operator.attrgetter(*RECORD_COLUMNS)  # Record -> tuple of RECORD_COLUMNS, in C

# The writer shares the event loop with the requests it records. Encoding a whole batch for COPY
# (~6.5 µs a row) or rolling it up (~3 µs a record) in one go held the loop for milliseconds per
# batch — the p99 of a proxied request. Both now hand the loop back every _SLICE records.
_SLICE = 64


async def _rows(records: Sequence[Record]) -> AsyncIterator[tuple]:
    """COPY rows of ``records``, yielding to the event loop between slices."""
    for i, r in enumerate(records):
        if i and not i % _SLICE:
            await asyncio.sleep(0)
        yield _row(r)


@dataclass
class PartitionCache:
    """Days known to have partitions, so the hot path asks the catalogue only for new days."""

    known: set[date] = field(default_factory=set)

    async def ensure(self, conn: asyncpg.Connection, records: Sequence[Record]) -> None:
        days = {r.created_at.astimezone(UTC).date() for r in records} - self.known
        if days:
            await ensure_partitions(conn, days)
            self.known |= days

    def forget(self) -> None:
        self.known.clear()


RollupKey = tuple[datetime, str, str, str]


async def rollup(records: Sequence[Record]) -> dict[RollupKey, RollupCounters]:
    """Aggregate records per (minute, domain, account, model), yielding to the loop between slices."""
    out: dict[RollupKey, RollupCounters] = {}
    minutes: dict[int, datetime] = {}
    for start in range(0, len(records), _SLICE):
        if start:
            await asyncio.sleep(0)
        _rollup_into(out, minutes, records[start:start + _SLICE])
    return out


def _rollup_into(out: dict[RollupKey, RollupCounters], minutes: dict[int, datetime],
                 records: Sequence[Record]) -> None:
    """Add ``records`` to ``out`` (``minutes`` caches the minute datetimes already made)."""
    for r in records:
        epoch_min = int(r.created_at.timestamp() // 60)
        minute = minutes.get(epoch_min)
        if minute is None:
            minute = minutes[epoch_min] = datetime.fromtimestamp(epoch_min * 60, UTC)
        key = (minute, r.domain or "", r.account_id or "", r.model or "")
        agg = out.get(key)
        if agg is None:
            agg = out[key] = RollupCounters()
        agg.requests += 1
        agg.errors += 1 if r.is_error else 0
        agg.input += r.input_tokens
        agg.output += r.output_tokens
        agg.cache_creation += r.cache_creation_input_tokens
        agg.cache_read += r.cache_read_input_tokens
        cost = r.cost_usd
        if cost is None:
            if r.request_type == REQUEST_TYPE_MESSAGES and r.model:
                agg.unpriced += 1
                agg.unpriced_tokens += r.total_tokens
        else:
            agg.cost += cost
            if r.speed == "fast":
                agg.fast += 1
                agg.fast_cost += cost
            if r.inference_geo == "us":
                agg.geo_us += 1
                agg.geo_us_cost += cost
        if r.web_search_requests:
            agg.web_search += r.web_search_requests
            if r.web_search_cost_usd is not None:
                agg.web_search_cost += r.web_search_cost_usd
        agg.web_fetch += r.web_fetch_requests
        agg.thinking += r.thinking_tokens
        agg.latency_sum += r.response_time_ms
        agg.hist[bucket_index(r.response_time_ms)] += 1


_ROLLUP_UPSERT = """
INSERT INTO api_requests_minute AS m (bucket, domain, account_id, model, requests, errors, input_tokens,
    output_tokens, cache_creation_input_tokens, cache_read_input_tokens, cost_usd, unpriced_requests,
    latency_sum_ms, latency_hist, fast_requests, fast_cost_usd, geo_us_requests, geo_us_cost_usd,
    web_search_requests, web_search_cost_usd, web_fetch_requests, thinking_tokens, unpriced_tokens)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)
ON CONFLICT (bucket, domain, account_id, model) DO UPDATE SET
    requests = m.requests + EXCLUDED.requests,
    errors = m.errors + EXCLUDED.errors,
    input_tokens = m.input_tokens + EXCLUDED.input_tokens,
    output_tokens = m.output_tokens + EXCLUDED.output_tokens,
    cache_creation_input_tokens = m.cache_creation_input_tokens + EXCLUDED.cache_creation_input_tokens,
    cache_read_input_tokens = m.cache_read_input_tokens + EXCLUDED.cache_read_input_tokens,
    cost_usd = m.cost_usd + EXCLUDED.cost_usd,
    unpriced_requests = m.unpriced_requests + EXCLUDED.unpriced_requests,
    latency_sum_ms = m.latency_sum_ms + EXCLUDED.latency_sum_ms,
    latency_hist = nexus_array_add(m.latency_hist, EXCLUDED.latency_hist),
    fast_requests = m.fast_requests + EXCLUDED.fast_requests,
    fast_cost_usd = m.fast_cost_usd + EXCLUDED.fast_cost_usd,
    geo_us_requests = m.geo_us_requests + EXCLUDED.geo_us_requests,
    geo_us_cost_usd = m.geo_us_cost_usd + EXCLUDED.geo_us_cost_usd,
    web_search_requests = m.web_search_requests + EXCLUDED.web_search_requests,
    web_search_cost_usd = m.web_search_cost_usd + EXCLUDED.web_search_cost_usd,
    web_fetch_requests = m.web_fetch_requests + EXCLUDED.web_fetch_requests,
    thinking_tokens = m.thinking_tokens + EXCLUDED.thinking_tokens,
    unpriced_tokens = m.unpriced_tokens + EXCLUDED.unpriced_tokens
"""


def rollup_rows(agg: dict[RollupKey, RollupCounters]) -> list[tuple]:
    """Parameters of ``_ROLLUP_UPSERT`` for each group."""
    return [(k[0], k[1], k[2], k[3], a.requests, a.errors, a.input, a.output, a.cache_creation, a.cache_read,
             a.cost, a.unpriced, a.latency_sum, a.hist, a.fast, a.fast_cost, a.geo_us, a.geo_us_cost,
             a.web_search, a.web_search_cost, a.web_fetch, a.thinking, a.unpriced_tokens)
            for k, a in agg.items()]

# The sessions read model (migration 0006): one row per session, per (session, agent), per
# (session, tag). Keys are upserted in sorted order so two instances writing the same sessions
# take their row locks in the same order (no deadlock).
_SESSION_UPSERT = """
INSERT INTO api_sessions AS s (session_id, account_id, client, first_seen, last_seen, requests, errors,
    input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens, cost_usd,
    unpriced_requests, models)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
ON CONFLICT (session_id) DO UPDATE SET
    account_id = coalesce(s.account_id, EXCLUDED.account_id),
    client = coalesce(s.client, EXCLUDED.client),
    first_seen = least(s.first_seen, EXCLUDED.first_seen),
    last_seen = greatest(s.last_seen, EXCLUDED.last_seen),
    requests = s.requests + EXCLUDED.requests,
    errors = s.errors + EXCLUDED.errors,
    input_tokens = s.input_tokens + EXCLUDED.input_tokens,
    output_tokens = s.output_tokens + EXCLUDED.output_tokens,
    cache_creation_input_tokens = s.cache_creation_input_tokens + EXCLUDED.cache_creation_input_tokens,
    cache_read_input_tokens = s.cache_read_input_tokens + EXCLUDED.cache_read_input_tokens,
    cost_usd = s.cost_usd + EXCLUDED.cost_usd,
    unpriced_requests = s.unpriced_requests + EXCLUDED.unpriced_requests,
    models = nexus_models_union(s.models, EXCLUDED.models)
"""

_AGENT_UPSERT = """
INSERT INTO api_session_agents AS a (session_id, agent_id, parent_agent_id, first_seen, last_seen, requests,
    errors, input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens, cost_usd, models)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
ON CONFLICT (session_id, agent_id) DO UPDATE SET
    parent_agent_id = coalesce(a.parent_agent_id, EXCLUDED.parent_agent_id),
    first_seen = least(a.first_seen, EXCLUDED.first_seen),
    last_seen = greatest(a.last_seen, EXCLUDED.last_seen),
    requests = a.requests + EXCLUDED.requests,
    errors = a.errors + EXCLUDED.errors,
    input_tokens = a.input_tokens + EXCLUDED.input_tokens,
    output_tokens = a.output_tokens + EXCLUDED.output_tokens,
    cache_creation_input_tokens = a.cache_creation_input_tokens + EXCLUDED.cache_creation_input_tokens,
    cache_read_input_tokens = a.cache_read_input_tokens + EXCLUDED.cache_read_input_tokens,
    cost_usd = a.cost_usd + EXCLUDED.cost_usd,
    models = nexus_models_union(a.models, EXCLUDED.models)
"""

_TAG_UPSERT = """
INSERT INTO api_session_tags AS t (session_id, name, value, requests) VALUES ($1, $2, $3, $4)
ON CONFLICT (session_id, name, value) DO UPDATE SET requests = t.requests + EXCLUDED.requests
"""


@dataclass
class SessionRollup:
    sessions: dict[str, SessionCounters] = field(default_factory=dict)
    agents: dict[tuple[str, str], SessionCounters] = field(default_factory=dict)
    tags: dict[tuple[str, str, str], int] = field(default_factory=dict)


def session_rollup(records: Sequence[Record]) -> SessionRollup:
    """Aggregate the records that carry a session per session, per (session, agent), per tag."""
    out = SessionRollup()
    for r in records:
        sid = r.session_id
        if sid is None:
            continue
        s = out.sessions.get(sid)
        if s is None:
            s = out.sessions[sid] = SessionCounters(first_seen=r.created_at, last_seen=r.created_at)
        s.add(r)
        akey = (sid, r.agent_id or "")
        a = out.agents.get(akey)
        if a is None:
            a = out.agents[akey] = SessionCounters(first_seen=r.created_at, last_seen=r.created_at)
        a.add(r)
        if r.tags:
            for name, value in r.tags.items():
                tkey = (sid, name, value)
                out.tags[tkey] = out.tags.get(tkey, 0) + 1
    return out


async def write_session_rollup(conn: asyncpg.Connection, agg: SessionRollup) -> None:
    if not agg.sessions:
        return
    await conn.executemany(_SESSION_UPSERT, [
        (sid, c.account_id, c.client, c.first_seen, c.last_seen, c.requests, c.errors, c.input, c.output,
         c.cache_creation, c.cache_read, c.cost, c.unpriced, sorted(c.models))
        for sid, c in sorted(agg.sessions.items())])
    await conn.executemany(_AGENT_UPSERT, [
        (sid, aid, c.parent_agent_id, c.first_seen, c.last_seen, c.requests, c.errors, c.input, c.output,
         c.cache_creation, c.cache_read, c.cost, sorted(c.models))
        for (sid, aid), c in sorted(agg.agents.items())])
    if agg.tags:
        await conn.executemany(_TAG_UPSERT, [(*k, n) for k, n in sorted(agg.tags.items())])


_BODY_INSERT = """
INSERT INTO api_request_bodies (request_uuid, created_at, request_headers, response_headers,
    request_body, response_body)
VALUES ($1, $2, $3::text::jsonb, $4::text::jsonb, $5, $6)
ON CONFLICT DO NOTHING
"""


def _json_or_none(value: dict | None) -> str | None:
    # Sent as text and cast in SQL, so it works whether or not the connection has a jsonb codec.
    return None if value is None else json.dumps(value).replace("\\u0000", "\\ufffd")


def _clean_text(value: str | None) -> str | None:
    # PostgreSQL text cannot hold NUL; a hostile body must not make the whole batch fail.
    return None if value is None else value.replace("\x00", "\ufffd")


_TEXT_FIELDS = ("domain", "account_id", "model", "path", "error_type", "error_message", "request_id",
                "method", "request_body", "response_body", "service_tier", "speed", "inference_geo")
_texts = operator.attrgetter(*_TEXT_FIELDS)


def _sanitize(r: Record) -> Record:
    values = _texts(r)
    if not any(isinstance(v, str) and "\x00" in v for v in values):
        return r
    for name, v in zip(_TEXT_FIELDS, values, strict=True):
        if isinstance(v, str) and "\x00" in v:
            setattr(r, name, _clean_text(v))
    return r


async def insert_records(conn: asyncpg.Connection, records: Sequence[Record],
                         partitions: PartitionCache | None = None) -> int:
    """Write a batch; return how many rows were new. Safe to call again with the same records."""
    if not records:
        return 0
    records = [_sanitize(r) for r in records]
    if partitions is not None:
        await partitions.ensure(conn, records)
    async with conn.transaction():
        try:
            async with conn.transaction():  # savepoint: a duplicate undoes only this COPY
                await conn.copy_records_to_table("api_requests", records=_rows(records), columns=RECORD_COLUMNS)
            fresh = list(records)
            new = len(fresh)
        except asyncpg.UniqueViolationError:
            await conn.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {_TMP} (LIKE api_requests INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
            await conn.copy_records_to_table(_TMP, records=_rows(records), columns=RECORD_COLUMNS)
            rows = await conn.fetch(
                f"INSERT INTO api_requests ({_COLS}) SELECT {_COLS} FROM {_TMP} ON CONFLICT DO NOTHING RETURNING id"
            )
            inserted_ids = {r["id"] for r in rows}
            fresh = [r for r in records if r.id in inserted_ids]
            new = len(inserted_ids)
        if fresh:
            agg = await rollup(fresh)
            await conn.executemany(_ROLLUP_UPSERT, rollup_rows(agg))
            await write_session_rollup(conn, session_rollup(fresh))
            limited = [r for r in fresh if r.ratelimit_headers]
            if limited:
                await write_ratelimits(conn, limited)
            bodies = [r for r in fresh if r.has_bodies]
            if bodies:
                await conn.executemany(
                    _BODY_INSERT,
                    [
                        (r.id, r.created_at, _json_or_none(r.request_headers),
                         _json_or_none(r.response_headers), r.request_body, r.response_body)
                        for r in bodies
                    ],
                )
    return new
