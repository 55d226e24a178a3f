"""The recorder against a real PostgreSQL reached through a TCP relay we can cut: nothing is lost."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from nexus.core.records import Record
from nexus.core.settings import Settings
from nexus.store.pool import create_pool
from proxy.ingress.metrics import Metrics
from proxy.recorder.journal import Journal
from proxy.recorder.recorder import Recorder
from proxy.runtime import Runtime


class Relay:
    """A loopback TCP forwarder: ``cut()`` drops every connection and refuses new ones."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.server: asyncio.AbstractServer | None = None
        self.port = 0
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def cut(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        for w in list(self.writers):
            with contextlib.suppress(Exception):
                w.transport.abort()
        self.writers.clear()


def _via(dsn: str, port: int) -> str:
    p = urlsplit(dsn)
    user = p.netloc.rsplit("@", 1)[0]
    return urlunsplit((p.scheme, f"{user}@127.0.0.1:{port}", p.path, p.query, p.fragment))


async def _until(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def _count(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("SELECT count(*) FROM api_requests")
    finally:
        await conn.close()


def _records(n: int) -> list[Record]:
    return [Record(domain="relay.test", model="claude-haiku-4-5", status_code=200, input_tokens=1,
                   output_tokens=2, response_time_ms=5.0) for _ in range(n)]


@pytest.fixture
async def relay(db_dsn):
    parts = urlsplit(db_dsn)
    r = Relay(parts.hostname or "127.0.0.1", parts.port or 5432)
    await r.start()
    yield r
    await r.cut()


async def _recorder(dsn: str, journal_path: Path) -> tuple[Runtime, Recorder]:
    settings = Settings.of(record_flush_interval_s=0.02, record_batch_size=200)
    rt = Runtime(settings=settings, metrics=Metrics())
    rt.pool = await create_pool(dsn, min_size=0, max_size=4)
    rt.db_connected = True
    rec = Recorder(rt, Journal(journal_path))
    rt.recorder = rec
    rt.metrics.bind(rt)
    await rec.start()
    return rt, rec


async def test_outage_spills_to_journal_and_replays_with_nothing_lost(db_dsn, relay, tmp_path):
    rt, rec = await _recorder(_via(db_dsn, relay.port), tmp_path / "journal.ndjson")
    try:
        for r in _records(100):
            rec.submit(r)
        await _until(lambda: rec.written == 100)

        await relay.cut()
        started = time.perf_counter()
        for r in _records(500):
            rec.submit(r)  # must stay instant while the database is gone
        assert time.perf_counter() - started < 0.5
        await _until(lambda: rec.journal.pending == 500 and rec.queue_depth == 0)
        assert rt.db_connected is False
        assert await _count(db_dsn) == 100

        await relay.start()  # the database is back (same port)
        await _until(lambda: rec.journal.pending == 0 and rt.db_connected, timeout=30)
        assert await _count(db_dsn) == 600
        assert rec.dropped == 0
        assert rec.journalled == 500
    finally:
        await rec.stop()
        await rt.pool.close()


async def test_journal_replay_is_idempotent_and_runs_at_start(db_dsn, tmp_path):
    path = tmp_path / "journal.ndjson"
    records = _records(50)
    journal = Journal(path)
    journal.append_sync(records)
    journal.append_sync(records[:20])  # an interrupted earlier replay left duplicates behind
    with path.open("ab") as f:
        f.write(b'{"torn": tru')  # and a torn last line from a crash
    rt, rec = await _recorder(db_dsn, path)
    try:
        await _until(lambda: rec.journal.pending == 0)
        assert await _count(db_dsn) == 50
        assert rec.journal.corrupt_lines == 1
    finally:
        await rec.stop()
        await rt.pool.close()


async def test_stop_flushes_queue_to_journal_when_database_is_gone(relay, db_dsn, tmp_path):
    rt, rec = await _recorder(_via(db_dsn, relay.port), tmp_path / "journal.ndjson")
    await relay.cut()
    rt.db_connected = False
    for r in _records(30):
        rec.submit(r)
    await rec.stop(timeout=5)
    await rt.pool.close()
    assert Journal(tmp_path / "journal.ndjson").pending == 30
