"""``nexus db backup`` / ``nexus db restore`` on the embedded database, as a user runs them.

A seeded embedded server → ``nexus db backup`` → a brand-new data dir → ``nexus db restore``: every
table's row count and the sums of its numbers are identical. A second restore into that (now
non-empty) database is refused without ``--force``. And the proxy's automatic rotating backups.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest

from nexus.core.records import Record
from nexus.store.embedded import EmbeddedPostgres
from nexus.store.migrate import migrate
from nexus.store.write import PartitionCache, insert_records
from tests.process.test_cli import assert_one_line_error, run

SUMS = {  # table -> the sums compared (counts are compared for every table)
    "api_requests": "sum(input_tokens), sum(output_tokens), sum(cache_read_input_tokens), sum(cost_usd), "
                    "sum(response_time_ms), count(DISTINCT id), count(error_type)",
    "api_requests_minute": "sum(requests), sum(errors), sum(input_tokens), sum(output_tokens), sum(cost_usd)",
    "api_request_bodies": "count(*), sum(length(request_body))",
    "alerts": "count(*), sum(value)",
}


def _records(now: datetime) -> list[Record]:
    out = []
    for i in range(300):
        err = i % 17 == 0
        out.append(Record(
            created_at=now - timedelta(minutes=7 * i), domain=f"d{i % 3}.example", account_id=f"acct_{i % 4:012d}",
            model=("claude-sonnet-4-5", "claude-opus-4-1", "claude-haiku-4-5")[i % 3], status_code=529 if err else 200,
            error_type="overloaded_error" if err else None, input_tokens=100 + i, output_tokens=10 * i,
            cache_read_input_tokens=i * 3, response_time_ms=50.0 + i, cost_usd=Decimal(i) / Decimal(1000),
            request_body=f'{{"x": {i}}}' if err else None, response_body="{}" if err else None))
    return out


async def _fingerprint(dsn: str) -> dict[str, object]:
    conn = await asyncpg.connect(dsn)
    try:
        tables = [r[0] for r in await conn.fetch(
            "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND relkind IN ('r', 'p') ORDER BY relname")]
        out: dict[str, object] = {t: await conn.fetchval(f'SELECT count(*) FROM "{t}"') for t in tables}
        for t, expr in SUMS.items():
            out[f"{t}:sums"] = tuple(await conn.fetchrow(f"SELECT {expr} FROM {t}"))
        out["migrations"] = [tuple(r) for r in await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY 1")]
        return out
    finally:
        await conn.close()


@pytest.fixture
def two_data_dirs():
    dirs = [Path(tempfile.mkdtemp(prefix="nexus-backup-")) for _ in range(2)]
    try:
        yield dirs
    finally:
        for d in dirs:
            EmbeddedPostgres(d).destroy()
            shutil.rmtree(d, ignore_errors=True)


@pytest.mark.slow
def test_backup_restore_round_trip_and_refusal(two_data_dirs, tmp_path: Path):
    src_dir, new_dir = two_data_dirs
    src = EmbeddedPostgres(src_dir)
    dsn = src.start()

    async def seed() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await migrate(conn)
            await insert_records(conn, _records(datetime.now(UTC)), PartitionCache())
            await conn.execute(
                "INSERT INTO alerts (rule, key, title, severity, status, summary, value, threshold, labels, "
                "started_at, last_notified_at, notify_count, instance_id, updated_at) VALUES "
                "('error_rate', 'global', 't', 'critical', 'resolved', 's', 0.25, 0.05, '{}', now(), now(), 1, 'i', "
                "now())")
        finally:
            await conn.close()

    asyncio.run(seed())
    before = asyncio.run(_fingerprint(dsn))
    assert before["api_requests"] == 300 and before["alerts"] == 1

    archive = tmp_path / "nexus.dump"
    env_src = {"NEXUS_DATA_DIR": str(src_dir)}
    proc = run("db", "backup", "--out", str(archive), env=env_src)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("backing up the embedded database nexus on 127.0.0.1:")
    assert "pg_dump (embedded, " in lines[0]
    assert lines[-1].startswith(f"wrote {archive} (") and " tables) in " in lines[-1]
    assert 'dumping contents of table "public.api_requests_minute"' in proc.stderr  # progress
    assert archive.read_bytes()[:5] == b"PGDMP" and not list(tmp_path.glob("*.partial"))

    env_new = {"NEXUS_DATA_DIR": str(new_dir)}
    proc = run("db", "restore", str(archive), env=env_new, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1].startswith("restored ") and "(300 request records)" in proc.stdout
    restored = EmbeddedPostgres(new_dir)
    assert not restored.is_running()  # the command stopped the server it started
    new_dsn = restored.start()
    assert asyncio.run(_fingerprint(new_dsn)) == before
    restored.stop()

    # The target now holds records: refused without --force, one line, nothing touched.
    proc = run("db", "restore", str(archive), env=env_new, timeout=120)
    assert_one_line_error(proc, 1, "is not empty (")
    assert "(alerts, api_request_bodies, api_requests, api_requests_minute hold rows)" in proc.stderr
    assert "use --force" in proc.stderr
    # --force replaces it (with the same content here), atomically.
    proc = run("db", "restore", str(archive), "--force", env=env_new, timeout=120)
    assert proc.returncode == 0, proc.stderr
    new_dsn = restored.start()
    assert asyncio.run(_fingerprint(new_dsn)) == before
    restored.stop()
    src.stop()


def test_restore_rejects_what_is_not_an_archive(tmp_path: Path):
    junk = tmp_path / "junk.dump"
    junk.write_text("not a dump")
    assert_one_line_error(run("db", "restore", str(junk), env={"NEXUS_DATA_DIR": str(tmp_path)}), 1,
                          "is not a pg_dump custom-format archive")
    assert_one_line_error(run("db", "restore", str(tmp_path / "missing"), env={"NEXUS_DATA_DIR": str(tmp_path)}),
                          1, "cannot read")
    assert_one_line_error(run("db", "backup", env={"BACKUP_EVERY": "soon"}), 2, "BACKUP_EVERY")




def _is_archive(p: Path) -> bool:
    return p.read_bytes()[:5] == b"PGDMP" and p.stat().st_size > 1000


async def test_running_proxy_takes_rotating_backups(db_dsn: str, tmp_path: Path, mock_upstream):
    """BACKUP_DIR with an old backup: the proxy takes one at start, off the request path, keeps BACKUP_KEEP."""
    from proxy.service import ProxyService
    from tests.support.db import stack_settings

    backups = tmp_path / "backups"
    backups.mkdir()
    old = []
    for i in range(5):  # five backups, the newest two days old: one is due now
        p = backups / f"nexus-2030010{i + 1}-000000.dump"
        p.write_bytes(b"PGDMP old")
        ts = time.time() - 86400 * (10 - i)
        os.utime(p, (ts, ts))
        old.append(p)
    (backups / "unrelated.txt").write_text("not ours")
    settings = stack_settings(tmp_path, db_dsn, mock_upstream.url, BACKUP_DIR=str(backups),
                              BACKUP_EVERY="24h", BACKUP_KEEP="3")
    service = ProxyService(settings)
    await service.start()
    try:
        deadline = time.monotonic() + 30
        while service.last_backup is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert service.last_backup is not None and service.last_backup["ok"], service.last_backup
        new = Path(service.last_backup["path"])
        assert new.parent == backups and _is_archive(new)
        assert sorted(p.name for p in backups.iterdir()) == sorted([old[3].name, old[4].name, new.name,
                                                                    "unrelated.txt"])
        assert service.last_backup["removed"] == [p.name for p in old[:3]]
        # the next one is a day away
        from nexus.store.backup import due_in
        assert 86400 - 60 < due_in(backups, 86400, time.time()) <= 86400
    finally:
        await service.stop()
