"""Daily partitions of ``api_requests`` and ``api_request_bodies``: create ahead, drop whole days.

Pruning drops partitions (instant, no bloat) instead of deleting rows. The per-minute rollups
are a plain table and survive pruning of raw rows unless asked to go too.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import asyncpg

PARTITIONED_TABLES = ("api_requests", "api_request_bodies")
PARTITION_LOCK_KEY = 0x6E657876  # advisory lock id serialising partition DDL across instances
_PART = re.compile(r"^(api_requests|api_request_bodies)_p(\d{8})$")


def partition_name(table: str, day: date) -> str:
    return f"{table}_p{day:%Y%m%d}"


async def existing_partition_days(conn: asyncpg.Connection, table: str = "api_requests") -> set[date]:
    rows = await conn.fetch(
        """SELECT c.relname FROM pg_inherits i
           JOIN pg_class c ON c.oid = i.inhrelid
           JOIN pg_class p ON p.oid = i.inhparent
           WHERE p.relname = $1""",
        table,
    )
    days: set[date] = set()
    for r in rows:
        m = _PART.match(r["relname"])
        if m and m.group(1) == table:
            days.add(datetime.strptime(m.group(2), "%Y%m%d").date())
    return days


async def ensure_partitions(conn: asyncpg.Connection, days: set[date] | list[date]) -> int:
    """Create the daily partitions for ``days`` that do not exist yet; return how many were made.

    Rows of those days that already sit in the default partition are moved into the new one, so a
    late-created day never fails on the default partition's constraint.
    """
    made = 0
    for table in PARTITIONED_TABLES:
        have = await existing_partition_days(conn, table)
        for day in sorted(set(days) - have):
            name = partition_name(table, day)
            lo = datetime(day.year, day.month, day.day, tzinfo=UTC)
            hi = lo + timedelta(days=1)
            async with conn.transaction():
                # Several instances may start at once: serialise partition DDL across them and
                # look again under the lock, so the loser finds the winner's partition.
                await conn.execute("SELECT pg_advisory_xact_lock($1)", PARTITION_LOCK_KEY)
                if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name):
                    continue
                # Lock the default partition, move stray rows of that day out, then attach.
                default = f"{table}_default"
                await conn.execute(f"LOCK TABLE {default} IN ACCESS EXCLUSIVE MODE")
                await conn.execute(
                    f"CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED)"
                )
                stray = await conn.fetchval(
                    f"SELECT count(*) FROM {default} WHERE created_at >= $1 AND created_at < $2", lo, hi
                )
                if stray:
                    cols = await _insert_columns(conn, table)
                    await conn.execute(
                        f"INSERT INTO {name} ({cols}) SELECT {cols} FROM {default} "
                        "WHERE created_at >= $1 AND created_at < $2",
                        lo, hi,
                    )
                    await conn.execute(
                        f"DELETE FROM {default} WHERE created_at >= $1 AND created_at < $2", lo, hi
                    )
                await conn.execute(
                    f"ALTER TABLE {table} ATTACH PARTITION {name} "
                    f"FOR VALUES FROM ('{lo.isoformat()}') TO ('{hi.isoformat()}')"
                )
            made += 1
    return made


async def _insert_columns(conn: asyncpg.Connection, table: str) -> str:
    rows = await conn.fetch(
        """SELECT attname FROM pg_attribute
           WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = ''
           ORDER BY attnum""",
        table,
    )
    return ", ".join(r["attname"] for r in rows)


async def ensure_partitions_around(conn: asyncpg.Connection, now: datetime | None = None,
                                   back: int = 1, ahead: int = 7) -> int:
    now = now or datetime.now(UTC)
    today = now.astimezone(UTC).date()
    return await ensure_partitions(conn, [today + timedelta(days=d) for d in range(-back, ahead + 1)])


async def drop_partitions_before(conn: asyncpg.Connection, cutoff: date,
                                 include_rollups: bool = False) -> list[str]:
    """Drop every daily partition whose whole day is before ``cutoff``; return the dropped names."""
    dropped: list[str] = []
    for table in PARTITIONED_TABLES:
        for day in sorted(await existing_partition_days(conn, table)):
            if day < cutoff:
                name = partition_name(table, day)
                await conn.execute(f"DROP TABLE IF EXISTS {name}")
                dropped.append(name)
        lo = datetime(cutoff.year, cutoff.month, cutoff.day, tzinfo=UTC)
        await conn.execute(f"DELETE FROM {table}_default WHERE created_at < $1", lo)
    # Rate-limit history goes with the raw rows (the latest snapshot per account stays).
    lo = datetime(cutoff.year, cutoff.month, cutoff.day, tzinfo=UTC)
    await conn.execute("DELETE FROM ratelimit_samples WHERE bucket < $1", lo)
    await conn.execute("DELETE FROM ratelimit_answers WHERE observed_at < $1", lo)
    if include_rollups:
        await conn.execute("DELETE FROM api_requests_minute WHERE bucket < $1", lo)
        # Sessions whose every request is gone (their agents and tags follow, ON DELETE CASCADE).
        await conn.execute("DELETE FROM api_sessions WHERE last_seen < $1", lo)
    return dropped
