"""Records leave the request path here: ``submit()`` never blocks and never touches the database.

``submit`` counts the record (metrics, /token-stats), publishes it on the local stream, logs it,
hands it to OpenTelemetry when configured (``otel.py``: a span queued for a background export) and
appends it to a bounded in-memory queue. One writer task drains the queue in batches
(COPY + idempotent insert, see ``nexus.store.write``), then NOTIFYs other instances. When the
database is away, or the queue passes its high-water mark, batches go to the on-disk journal
instead, and the journal is replayed when the database is back. Nothing is dropped while the
disk has room; what is dropped is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime

import asyncpg
import orjson

from nexus.core.records import Record
from nexus.store.errors import DB_AWAY
from nexus.store.write import PartitionCache, insert_records
from proxy.recorder.journal import Journal
from proxy.recorder.limits import LimitsBoard
from proxy.recorder.token_stats import TokenStats
from proxy.runtime import Runtime

log = logging.getLogger("nexus.recorder")

NOTIFY_CHANNEL = "nexus_events"
NOTIFY_MAX_PAYLOAD = 7000  # PostgreSQL's limit is 8000 bytes



class Recorder:
    def __init__(self, runtime: Runtime, journal: Journal,
                 on_record: Callable[[Record], None] | None = None) -> None:
        s = runtime.settings
        self.runtime = runtime
        self.journal = journal
        self.on_record = on_record
        # Each record travels with its event JSON (built once in submit() for the local stream),
        # which the writer reuses for NOTIFY instead of serialising the record again.
        self.queue: deque[tuple[Record, bytes | None]] = deque()
        self.queue_limit = s.recorder.queue_size
        self.high_water = min(s.recorder.journal_high_water, s.recorder.queue_size)
        self.batch_size = s.recorder.batch_size
        self.flush_interval = s.recorder.flush_interval_s
        self.token_stats = TokenStats()
        self.limits = LimitsBoard(runtime.broker)
        self.partitions = PartitionCache()
        self.written = 0
        self.dropped = 0
        self.journalled = 0
        self.last_error: str | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task | None = None
        self._db_checked_at = 0.0
        self.ready_hook: Callable[[], object] | None = None  # async: run once when the DB first answers
        # Watching the watcher (proxy/alerts/watchdog.py), on the runtime's clock:
        # since when records wait with no write progress (None: nothing waits), and since when the
        # journal holds records (None: empty).
        self.waiting_since: datetime | None = None
        self.journal_since: datetime | None = runtime.now() if journal.pending else None

    @property
    def queue_depth(self) -> int:
        return len(self.queue)

    def stall_seconds(self, now: datetime) -> float:
        """How long records have waited with no write (to the database or the journal) at all."""
        return 0.0 if self.waiting_since is None else max(0.0, (now - self.waiting_since).total_seconds())

    def journal_seconds(self, now: datetime) -> float:
        """How long the journal has held records (the database away, or the queue past high water)."""
        if self.journal_since is None or not self.journal.pending:
            return 0.0
        return max(0.0, (now - self.journal_since).total_seconds())

    def _progress(self) -> None:
        """Records left the queue for good: the stall clock restarts (or stops, if nothing waits)."""
        self.waiting_since = self.runtime.now() if self.queue else None

    # -- request path ------------------------------------------------------------------------

    def submit(self, record: Record) -> None:
        """Hand off a finished exchange. Synchronous, O(1), never raises into the request."""
        rt = self.runtime
        event_json: bytes | None = None
        try:
            self.token_stats.add(record)
            if rt.metrics is not None:
                rt.metrics.observe(record)
            event = record.to_event()
            event_json = orjson.dumps(event)
            rt.broker.publish("request", event, event_json)
            if record.ratelimit_headers:
                self.limits.observe(record)
            if self.on_record is not None:
                self.on_record(record)
            if rt.telemetry is not None:
                rt.telemetry.export(record)
        except Exception:  # noqa: BLE001 - observability must never fail a request
            log.exception("post-processing of a record failed")
        if len(self.queue) >= self.queue_limit:
            # The writer could not keep up and even the journal spill lagged: count, never block.
            self.dropped += 1
            if rt.metrics is not None:
                rt.metrics.records_dropped.inc()
            return
        self.queue.append((record, event_json))
        if self.waiting_since is None:
            self.waiting_since = rt.now()
        if len(self.queue) == 1 or len(self.queue) >= self.batch_size:
            self._wake.set()  # the writer then waits flush_interval to gather a batch

    # -- writer ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="nexus-recorder")

    async def stop(self, timeout: float = 30.0) -> None:
        """Flush everything (to the DB, else the journal) and stop."""
        self._stopping = True
        self._wake.set()
        self.limits.close()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
                with contextlib.suppress(BaseException):
                    await self._task
        if self.queue:  # whatever is left goes to disk
            rest = [r for r, _ in self.queue]
            self.queue.clear()
            await self._to_journal(rest)

    def _take(self, n: int) -> tuple[list[Record], list[bytes | None]]:
        """The oldest ``n`` queued records and their event JSON."""
        n = min(n, len(self.queue))
        items = [self.queue.popleft() for _ in range(n)]
        return [r for r, _ in items], [e for _, e in items]

    async def _run(self) -> None:
        while True:
            if not self.queue and not self._stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._idle_wait())
                self._wake.clear()
            elif not self._stopping and len(self.queue) < self.batch_size:
                # Let a batch build up a little: fewer, bigger transactions.
                await asyncio.sleep(self.flush_interval)
            try:
                await self._cycle()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the writer must survive anything
                log.exception("recorder cycle failed")
                await asyncio.sleep(0.5)
            if self._stopping and not self.queue:
                return

    def _idle_wait(self) -> float:
        # Wake up regularly while the DB is down or the journal has work, to retry.
        return 1.0 if (not self.runtime.db_connected or self.journal.pending) else 5.0

    async def _cycle(self) -> None:
        rt = self.runtime
        if not rt.db_connected:
            await self._check_db()
        if rt.db_connected and self.journal.pending:
            await self._replay_journal()
        # Past the high-water mark, the excess goes to disk right away (bounded memory).
        if len(self.queue) > self.high_water:
            excess = len(self.queue) - self.high_water
            spill = [self.queue.pop()[0] for _ in range(excess)]
            spill.reverse()
            await self._to_journal(spill)
        while self.queue:
            batch, events = self._take(self.batch_size)
            if not rt.db_connected:
                await self._to_journal(batch + self._take(len(self.queue))[0])
                return
            if not await self._write(batch, events):
                await self._to_journal(batch)
                return
            if not self._stopping and len(self.queue) < self.batch_size:
                return

    async def _check_db(self) -> None:
        now = time.monotonic()
        if now - self._db_checked_at < 1.0 and not self._stopping:
            return
        self._db_checked_at = now
        pool = self.runtime.pool
        if pool is None:
            return
        try:
            async with pool.acquire(timeout=2) as conn:
                await conn.fetchval("SELECT 1", timeout=2)
            if self.ready_hook is not None:
                await self.ready_hook()  # type: ignore[misc]
                self.ready_hook = None
        except DB_AWAY as exc:
            self._mark_down(exc)
            return
        except Exception as exc:  # noqa: BLE001
            self._mark_down(exc)
            return
        if not self.runtime.db_connected:
            log.info("database is reachable; resuming writes")
        self.runtime.db_connected = True
        self.partitions.forget()

    def _mark_down(self, exc: BaseException) -> None:
        msg = f"{exc.__class__.__name__}: {exc}"[:300]
        if self.runtime.db_connected or self.last_error != msg:
            log.warning("database unavailable, journalling records: %s", msg)
        self.last_error = msg
        self.runtime.db_connected = False

    async def _write(self, batch: Sequence[Record], events: Sequence[bytes | None] | None) -> bool:
        """Insert a batch; then NOTIFY its ``events`` (one per record; None = build it) if given."""
        pool = self.runtime.pool
        if pool is None:
            return False
        try:
            async with pool.acquire(timeout=5) as conn:
                n = await insert_records(conn, batch, self.partitions)
                if events is not None:
                    await self._notify(conn, batch, events)
        except DB_AWAY as exc:
            self._mark_down(exc)
            return False
        except asyncpg.PostgresError as exc:
            # A data problem in this batch (not an outage): keep it on disk for inspection/replay.
            log.error("database rejected a batch of %d records: %s", len(batch), exc)
            self.last_error = str(exc)[:300]
            return False
        self.written += n
        self._progress()
        if self.runtime.metrics is not None:
            self.runtime.metrics.records_written.inc(n)
        return True

    async def _notify(self, conn: asyncpg.Connection, batch: Sequence[Record],
                      events: Sequence[bytes | None]) -> None:
        """Tell other instances (their /api/sse) about these records, a few per NOTIFY.

        All the NOTIFYs of a batch go in one statement (one round trip; delivered in order at
        its commit) — one round trip per payload used to cost more than the batch's insert.
        """
        payloads: list[str] = []
        chunk: list[bytes] = []
        size = 0
        iid = orjson.dumps(self.runtime.instance_id)  # quoted; the listener skips its own by this prefix
        for r, ev in zip(batch, events, strict=True):
            if ev is None:
                ev = orjson.dumps(r.to_event())
            if chunk and size + len(ev) > NOTIFY_MAX_PAYLOAD:
                payloads.append(self._payload(iid, chunk))
                chunk, size = [], 0
            if len(ev) <= NOTIFY_MAX_PAYLOAD:
                chunk.append(ev)
                size += len(ev) + 1
        if chunk:
            payloads.append(self._payload(iid, chunk))
        if len(payloads) == 1:
            await conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, payloads[0])
        elif payloads:
            await conn.execute("SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS t(p, n) ORDER BY n",
                               NOTIFY_CHANNEL, payloads)

    @staticmethod
    def _payload(iid: bytes, events: list[bytes]) -> str:
        return (b'{"i":' + iid + b',"e":[' + b",".join(events) + b"]}").decode()

    async def _to_journal(self, records: Sequence[Record]) -> None:
        if not records:
            return
        try:
            await self.journal.append(records)
        except OSError as exc:
            log.error("journal write failed, %d records lost: %s", len(records), exc)
            self.dropped += len(records)
            if self.runtime.metrics is not None:
                self.runtime.metrics.records_dropped.inc(len(records))
            return
        self.journalled += len(records)
        if self.journal_since is None:
            self.journal_since = self.runtime.now()
        self._progress()
        if self.runtime.metrics is not None:
            self.runtime.metrics.records_journalled.inc(len(records))

    async def _replay_journal(self) -> None:
        total = self.journal.pending
        log.info("replaying %d journalled records", total)
        # Reading and parsing a batch (~1,000 JSON lines) happens in a worker thread, so a long
        # replay after an outage does not stall the requests this process is serving meanwhile.
        batches = self.journal.read_batches(self.batch_size)
        try:
            while (batch := await asyncio.to_thread(next, batches, None)) is not None:
                if not await self._write(batch, None):  # replayed records were never on the stream
                    return  # DB went away again; the journal stays, replay restarts later
        finally:
            with contextlib.suppress(ValueError):  # still running in its thread if we were cancelled
                batches.close()
        await asyncio.to_thread(self.journal.truncate)
        self.journal_since = None
        log.info("journal replayed (%d records)", total)
