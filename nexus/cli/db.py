"""``nexus db url | migrate | status | prune``: database chores from the shell."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from nexus.core.errors import CommandError
from nexus.core.settings import Settings
from nexus.store.embedded import EmbeddedPostgres, EmbeddedPostgresError
from nexus.store.migrate import applied_versions, available_migrations, migrate
from nexus.store.partitions import drop_partitions_before, ensure_partitions_around, existing_partition_days


def _dsn(settings: Settings, start_embedded: bool) -> tuple[str, EmbeddedPostgres | None]:
    """The DSN in use; for chores on the embedded DB, start it (and stop it after) if needed."""
    if settings.database.url:
        return settings.database.url, None
    pg = EmbeddedPostgres(settings.data_dir)
    try:
        if pg.is_running() or not start_embedded:
            return pg.dsn(), None
        return pg.start(), pg
    except EmbeddedPostgresError as exc:
        raise CommandError(str(exc)) from None


async def _connect(dsn: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(dsn, timeout=10)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        raise CommandError(f"cannot connect to the database: {exc.__class__.__name__}: {exc}") from None


def _run(settings: Settings, body: Any) -> int:
    dsn, started = _dsn(settings, start_embedded=True)
    try:
        return asyncio.run(body(dsn))
    finally:
        if started is not None:
            started.stop_if_owned()


def cli_url(args: Any, settings: Settings) -> int:
    dsn, _ = _dsn(settings, start_embedded=False)
    if not settings.database.url and not EmbeddedPostgres(settings.data_dir).is_running():
        sys.stderr.write("nexus: note: the embedded PostgreSQL is not running (start `nexus proxy`)\n")
    print(dsn)
    return 0


def cli_migrate(args: Any, settings: Settings) -> int:
    async def body(dsn: str) -> int:
        conn = await _connect(dsn)
        try:
            done = await migrate(conn)
            await ensure_partitions_around(conn)
        finally:
            await conn.close()
        if done:
            for m in done:
                print(f"applied {m.version:04d}_{m.name}")
        else:
            print("database is up to date")
        return 0

    return _run(settings, body)


def cli_status(args: Any, settings: Settings) -> int:
    async def body(dsn: str) -> int:
        conn = await _connect(dsn)
        try:
            done = await applied_versions(conn)
            shipped = available_migrations()
            print(f"database: {'external' if settings.database.url else 'embedded'} "
                  f"({conn.get_server_version().major}.{conn.get_server_version().minor})")
            pending = [m for m in shipped if m.version not in done]
            print(f"migrations: {len(done)} applied, {len(pending)} pending")
            if not done:
                return 0
            days = sorted(await existing_partition_days(conn))
            if days:
                print(f"partitions: {len(days)} daily, {days[0]} .. {days[-1]}")
            row = await conn.fetchrow(
                "SELECT count(*) AS n, min(created_at) AS first, max(created_at) AS last FROM api_requests")
            print(f"requests: {row['n']} (first {row['first']}, last {row['last']})")
            size = await conn.fetchval(
                "SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid))) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'")
            print(f"size: {size}")
        finally:
            await conn.close()
        return 0

    return _run(settings, body)


def cli_prune(args: Any, settings: Settings) -> int:
    seconds = float(args.older_than)
    if seconds < 86400:
        raise CommandError("--older-than must be at least 1d (partitions are daily)", 2)

    async def body(dsn: str) -> int:
        conn = await _connect(dsn)
        try:
            cutoff = (datetime.now(UTC) - timedelta(seconds=seconds)).date()
            dropped = await drop_partitions_before(conn, cutoff, include_rollups=args.rollups)
        finally:
            await conn.close()
        print(f"dropped {len(dropped)} partitions older than {cutoff}" + (": " + ", ".join(dropped) if dropped else ""))
        return 0

    return _run(settings, body)
