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
            print(f"per-minute rollups refreshed: {summary.minutes_refreshed} minutes; "
                  f"sessions refreshed: {summary.sessions_refreshed}")
        return 0

    return _run(settings, body)


# --- backup / restore ---------------------------------------------------------------------------


def _where(settings: Settings, dsn: str) -> str:
    """The database in words, without the password."""
    from urllib.parse import urlsplit

    parts = urlsplit(dsn)
    kind = "external" if settings.database.url else "embedded"
    return f"{kind} database {parts.path.lstrip('/') or '?'} on {parts.hostname}:{parts.port or 5432}"


class _Lines:
    """Progress from pg_dump/pg_restore --verbose: table lines only, on stderr."""

    KEEP = ("dumping contents of table", "processing data for table")

    def __init__(self) -> None:
        self.tables = 0

    def __call__(self, line: str) -> None:
        if line.startswith(self.KEEP):
            self.tables += 1
            sys.stderr.write(f"  {line}\n")
            sys.stderr.flush()


async def _server_major(dsn: str) -> int:
    conn = await _connect(dsn)
    try:
        return conn.get_server_version().major
    finally:
        await conn.close()


def cli_backup(args: Any, settings: Settings) -> int:
    """``nexus db backup [--out FILE]``: a consistent pg_dump custom-format archive of the database in use."""
    import time
    from pathlib import Path

    from nexus.store.backup import BackupError, backup_name, dump, find_tool, human_size

    out = Path(args.out) if args.out else (settings.backup.dir or settings.data_dir / "backups") / backup_name(
        datetime.now(UTC))

    async def body(dsn: str) -> int:
        major = await _server_major(dsn)
        try:
            tool = find_tool("pg_dump", major, external=bool(settings.database.url))
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        print(f"backing up the {_where(settings, dsn)} (PostgreSQL {major}) with {tool.path} ({tool.origin}, {tool.major})",
              flush=True)
        t0 = time.monotonic()
        lines = _Lines()
        try:
            size = await asyncio.to_thread(dump, dsn, out, tool, lines)
        except (BackupError, OSError) as exc:
            raise CommandError(str(exc)) from None
        print(f"wrote {out} ({human_size(size)}, {lines.tables} tables) in {time.monotonic() - t0:.1f}s")
        return 0

    return _run(settings, body)


def cli_restore(args: Any, settings: Settings) -> int:
    """``nexus db restore FILE [--force]``: into an empty (or new) database; a non-empty one needs --force."""
    import time
    from pathlib import Path

    from nexus.core.runfiles import find_running
    from nexus.store.backup import BackupError, find_tool, nonempty_tables, restore

    archive = Path(args.file)
    try:
        with archive.open("rb") as f:
            magic = f.read(5)
    except OSError as exc:
        raise CommandError(f"cannot read {archive}: {exc.strerror or exc}") from None
    if magic != b"PGDMP":
        raise CommandError(f"{archive} is not a pg_dump custom-format archive (made by `nexus db backup`)")
    if not settings.database.url and not args.force:
        running = find_running(settings)
        if running is not None:
            raise CommandError(f"a proxy is running on this data dir (pid {running[0]}): stop it first "
                               "(`nexus stop`), or pass --force")

    async def body(dsn: str) -> int:
        conn = await _connect(dsn)
        try:
            major = conn.get_server_version().major
            full = await nonempty_tables(conn)
        finally:
            await conn.close()
        if full and not args.force:
            shown = ", ".join(full[:4]) + (f" and {len(full) - 4} more" if len(full) > 4 else "")
            raise CommandError(f"the {_where(settings, dsn)} is not empty ({shown} hold rows); restoring would "
                               "replace it: use --force, or restore into a new NEXUS_DATA_DIR")
        try:
            tool = find_tool("pg_restore", major, external=bool(settings.database.url))
            psql = find_tool("psql", None, external=bool(settings.database.url))
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        print(f"restoring {archive} into the {_where(settings, dsn)} with {tool.path} ({tool.origin}, {tool.major})",
              flush=True)
        t0 = time.monotonic()
        lines = _Lines()
        try:
            await asyncio.to_thread(restore, dsn, archive, tool, psql, lines)
        except BackupError as exc:
            raise CommandError(f"{exc} (nothing was changed: the restore runs in one transaction)") from None
        conn = await _connect(dsn)
        try:
            n = await conn.fetchval("SELECT count(*) FROM api_requests") if await conn.fetchval(
                "SELECT to_regclass('public.api_requests') IS NOT NULL") else 0
        finally:
            await conn.close()
        print(f"restored {lines.tables} tables ({n} request records) in {time.monotonic() - t0:.1f}s")
        return 0

    return _run(settings, body)
