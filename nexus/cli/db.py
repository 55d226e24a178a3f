"""``nexus db url | migrate | status | prune | reprice``: database chores from the shell."""

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
from nexus.store.reprice import count_candidates, reprice


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


class _Progress:
    """A one-line progress bar on a terminal; a line every 10 % otherwise (logs, CI)."""

    def __init__(self, total: int, stream: Any = None) -> None:
        self.total, self.done, self.stream = max(total, 0), 0, stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_decile = -1

    def __call__(self, n: int) -> None:
        self.done += n
        frac = self.done / self.total if self.total else 1.0
        if self.tty:
            bar = "#" * int(frac * 30)
            self.stream.write(f"\r  [{bar:<30}] {self.done}/{self.total} records")
            self.stream.flush()
        elif int(frac * 10) > self._last_decile:
            self._last_decile = int(frac * 10)
            self.stream.write(f"  {self.done}/{self.total} records ({frac:.0%})\n")

    def close(self) -> None:
        if self.tty and self.done:
            self.stream.write("\n")


def cli_reprice(args: Any, settings: Settings) -> int:
    """Recompute ``cost_usd`` of stored records with the prices in force now (nexus/store/reprice.py)."""
    from nexus.pricing import PriceTable

    seconds = float(args.since)
    if args.batch_size < 1:
        raise CommandError("--batch-size must be at least 1", 2)
    try:
        table = PriceTable.load(settings.pricing.file, settings.data_dir)
    except ValueError as exc:
        raise CommandError(str(exc), 2) from None

    async def body(dsn: str) -> int:
        conn = await _connect(dsn)
        try:
            if 4 not in await applied_versions(conn):
                raise CommandError("the database schema is not up to date: run `nexus db migrate` first")
            since = datetime.now(UTC) - timedelta(seconds=seconds)
            total = await count_candidates(conn, since, args.model)
            mode = " (dry run: nothing is written)" if args.dry_run else ""
            print(f"repricing {total} records since {since.isoformat(timespec='seconds')}"
                  + (f" of model {args.model}" if args.model else "") + f" with {table.dataset.label}"
                  + (f" + {table.file}" if table.file else "") + mode)
            bar = _Progress(total)
            try:
                summary = await reprice(conn, table, since=since, model=args.model, dry_run=args.dry_run,
                                        batch_size=args.batch_size, progress=bar)
            finally:
                bar.close()
        finally:
            await conn.close()
        verb = "would change" if args.dry_run else "changed"
        print(f"records scanned: {summary.scanned}, cost {verb}: {summary.changed} "
              f"(newly priced {summary.newly_priced}, newly unpriced {summary.newly_unpriced}); "
              f"price source filled in: {summary.annotated}")
        print(f"total cost: ${summary.old_total:.6f} -> ${summary.new_total:.6f} "
              f"({summary.new_total - summary.old_total:+.6f})")
        for m, n in sorted(summary.changed_by_model.items(), key=lambda kv: (-kv[1], kv[0]))[:20]:
            print(f"  {m or '(no model)'}: {n} {verb}")
        if not args.dry_run:
            print(f"per-minute rollups refreshed: {summary.minutes_refreshed} minutes")
        return 0

    return _run(settings, body)
