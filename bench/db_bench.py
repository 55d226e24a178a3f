"""Figures 5 and 6: the write path into PostgreSQL, and the dashboard's stats on 1 M / 10 M rows."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import asyncpg

from bench import fill
from bench.common import DATA_DIR, Figure, create_database, median, pct, start_mock, start_proxy
from nexus.core.records import Record
from nexus.store.pool import create_pool
from nexus.store.write import _COLS, PartitionCache, _row, insert_records, rollup


def make_records(n: int, seed: int = 7) -> list[Record]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    out = []
    for i in range(n):
        out.append(Record(
            id=uuid.uuid4(), created_at=now - timedelta(milliseconds=(n - i) * 3), request_id=f"req_{i:08x}",
            domain=rng.choice(fill.DOMAINS), account_id=rng.choice(fill.ACCOUNTS),
            model=rng.choice(fill.MODELS)[0], stream=rng.random() < 0.6, status_code=200,
            input_tokens=rng.randint(50, 20000), output_tokens=rng.randint(10, 2000),
            response_time_ms=rng.lognormvariate(7, 0.9), cost_usd=Decimal("0.0123"), instance_id="bench"))
    return out


_EXECUTEMANY = (f"INSERT INTO api_requests ({_COLS}) VALUES ("
                + ", ".join(f"${i + 1}" for i in range(len(_COLS.split(", ")))) + ") ON CONFLICT DO NOTHING")


async def insert_executemany(conn: asyncpg.Connection, records: list[Record]) -> None:
    """The alternative to ``insert_records``: executemany of INSERT … ON CONFLICT, same rollups.

    (It cannot tell which rows were new, so a replay would double-count rollups: one more reason
    the writer uses COPY + INSERT … RETURNING.)
    """
    from nexus.store.write import _ROLLUP_UPSERT, rollup_rows

    async with conn.transaction():
        await conn.executemany(_EXECUTEMANY, [_row(r) for r in records])
        agg = await rollup(records)
        await conn.executemany(_ROLLUP_UPSERT, rollup_rows(agg))


class DbBench:
    def __init__(self, quick: bool, log: Any) -> None:
        self.quick = quick
        self.log = log
        self.figures: list[Figure] = []
        self.extra: dict[str, Any] = {}

    async def run_write(self) -> list[Figure]:
        dsn = await create_database("bench_write", fresh=True)
        n = 40_000 if self.quick else 100_000
        batch = 1000
        rates: dict[str, list[float]] = {"copy": [], "executemany": []}
        conn = await asyncpg.connect(dsn)
        try:
            parts = PartitionCache()
            await insert_records(conn, make_records(batch, 1), parts)  # partitions, temp table, plans
            for rnd in range(2 if self.quick else 3):
                for kind in ("copy", "executemany"):
                    recs = make_records(n, 100 + rnd)
                    t0 = time.perf_counter()
                    for i in range(0, n, batch):
                        if kind == "copy":
                            await insert_records(conn, recs[i:i + batch], parts)
                        else:
                            await insert_executemany(conn, recs[i:i + batch])
                    rates[kind].append(n / (time.perf_counter() - t0))
        finally:
            await conn.close()
        copy, em = median(rates["copy"]), median(rates["executemany"])
        self.extra["fig5_rates"] = rates
        self.figures.append(Figure("5", "write path: COPY + INSERT…RETURNING + rollups (batches of 1,000)",
                                   "≥ 20,000 rec/s", f"{copy:,.0f} rec/s", f"executemany {em:,.0f} rec/s",
                                   f"{copy / em:.1f}× executemany", copy >= 20_000))
        self.log(f"  fig 5: copy {copy:,.0f}/s executemany {em:,.0f}/s")
        await self._sustained(dsn)
        return self.figures

    async def _sustained(self, dsn: str) -> None:
        """The real Recorder (writer task, batches, NOTIFY): its drain rate, and its queue under load.

        (a) drain: N records are submitted up front, then the writer is timed until the queue is
        empty — the writer's own capacity, NOTIFY to other instances included. (b) bounded: the
        same process offers records at a steady rate while the writer runs; the queue's maximum
        depth is reported. Both in one process, like the proxy (submit() is the request's cost).
        """
        from nexus.core.settings import load_settings
        from proxy.recorder.journal import Journal
        from proxy.recorder.recorder import Recorder
        from proxy.runtime import Runtime

        journal_dir = DATA_DIR / "write-data"
        journal_dir.mkdir(parents=True, exist_ok=True)

        async def recorder(**env: str) -> Recorder:
            settings = load_settings({"DATABASE_URL": dsn, "NEXUS_DATA_DIR": str(journal_dir), **env})
            # No Prometheus metrics: observing a record is ~12 µs of submit()'s ~20 µs
            # (prometheus_client labels()), paid by the request path, not by the writer.
            rt = Runtime(settings=settings, metrics=None)
            rt.pool = await create_pool(dsn, min_size=1, max_size=4)
            rt.db_connected = True
            return Recorder(rt, Journal(journal_dir / "journal.ndjson"))

        n = 40_000 if self.quick else 100_000
        rec = await recorder(RECORD_QUEUE_SIZE=str(n + 1), JOURNAL_HIGH_WATER=str(n + 1))
        records = make_records(n, 5)
        for r in records:
            rec.submit(r)
        t0 = time.perf_counter()
        await rec.start()
        while rec.queue_depth and time.perf_counter() - t0 < 60:
            await asyncio.sleep(0.01)
        drain = rec.written / (time.perf_counter() - t0)
        await rec.stop()
        await rec.runtime.pool.close()
        ok = drain >= 20_000 and rec.written == n and rec.journalled == 0
        self.figures.append(Figure("5", "Recorder drain rate (writer + NOTIFY, batches of 1,000)", "≥ 20,000 rec/s",
                                   f"{drain:,.0f} rec/s", f"{n:,} queued", "—", ok,
                                   [f"written {rec.written:,}, journalled {rec.journalled}, dropped {rec.dropped}"]))
        self.log(f"  fig 5 drain: {drain:,.0f}/s")

        rec = await recorder()
        await rec.start()
        rate, secs, tick = 10_000, (4 if self.quick else 8), 0.02
        per_tick = int(rate * tick)
        pool = make_records(per_tick * 50, 6)
        depth_max = submitted = 0
        halves = [0, 0]
        t0 = nxt = time.perf_counter()
        try:
            while time.perf_counter() - t0 < secs:
                i = submitted % len(pool)
                for r in pool[i:i + per_tick]:
                    r.id = uuid.uuid4()
                    rec.submit(r)
                submitted += per_tick
                depth_max = max(depth_max, rec.queue_depth)
                h = 0 if time.perf_counter() - t0 < secs / 2 else 1
                halves[h] = max(halves[h], rec.queue_depth)
                nxt += tick
                await asyncio.sleep(max(0.0, nxt - time.perf_counter()))
            offered = submitted / (time.perf_counter() - t0)
        finally:
            await rec.stop()
            await rec.runtime.pool.close()
        # Bounded = it does not grow: the second half's peak is no higher than the first half's
        # (plus one batch), and it stays under the journal's high-water mark.
        ok = (halves[1] <= halves[0] + rec.batch_size and depth_max < rec.high_water
              and rec.journalled == 0 and rec.dropped == 0 and rec.written == submitted)
        self.figures.append(Figure("5", "Recorder queue under a steady offered load", "bounded, nothing lost",
                                   f"max depth {depth_max:,}", f"offered {offered:,.0f} rec/s",
                                   f"peaks {halves[0]:,} → {halves[1]:,}", ok,
                                   [f"written {rec.written:,} of {submitted:,}; journalled {rec.journalled}; "
                                    f"high-water {rec.high_water:,}"]))
        self.log(f"  fig 5 bounded: offered {offered:,.0f}/s max depth {depth_max}")

    # -- 6: stats ---------------------------------------------------------------------------

    async def run_stats(self) -> list[Figure]:
        sizes = [1_000_000] if self.quick else [1_000_000, 10_000_000]
        for n in sizes:
            name = f"bench_stats_{n // 1_000_000}m"
            dsn = await create_database(name, fresh=False)
            state = await fill.ensure_filled(dsn, n, self.log)
            self.log(f"  fig 6 {n:,} rows: {state}")
            await self._stats_on(dsn, n)
        return self.figures

    async def _stats_on(self, dsn: str, n: int) -> None:
        mock = start_mock()
        proxy = start_proxy(mock.info["url"], dsn, DATA_DIR / f"proxy-stats-{n}")
        try:
            url, key = proxy.info["dashboard_url"], proxy.info["dashboard_key"]
            endpoints = {
                "/api/stats": "/api/stats?since=24h",
                "/api/timeseries": "/api/timeseries?since=24h&bucket=300",
                "/api/token-usage/current": "/api/token-usage/current",
            }
            reps = 20 if self.quick else 60
            async with aiohttp.ClientSession(headers={"X-Dashboard-Key": key}) as s:
                for label, path in endpoints.items():
                    times: list[float] = []
                    for i in range(reps + 3):
                        t0 = time.perf_counter()
                        async with s.get(url + path) as r:
                            body = await r.read()
                            assert r.status == 200, (r.status, body[:300])
                        if i >= 3:
                            times.append((time.perf_counter() - t0) * 1000)
                    p50, p99 = median(times), pct(times, 0.99)
                    self.extra[f"fig6_{n}_{label}"] = times
                    self.figures.append(Figure("6", f"{label} {'current 5 h window' if 'token' in label else '24 h'}, {n // 1_000_000} M rows", "p50 ≤ 50, p99 ≤ 200 ms",
                                               f"p50 {p50:.1f} / p99 {p99:.1f} ms", f"{len(body):,} B response", "—",
                                               p50 <= 50 and p99 <= 200))
                    self.log(f"  fig 6 {n:,} {label}: p50 {p50:.1f} p99 {p99:.1f} ms")
        finally:
            proxy.stop()
            mock.stop()

