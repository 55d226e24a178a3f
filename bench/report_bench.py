"""``nexus report`` on 1 M and 10 M rows: how long the whole report takes, and its parts.

    flock /work/bench.lock python -m bench.report_bench [--rows 10000000] [--runs 5]

Uses the cached tables of ``bench/fill.py`` (rows spread over [fill - 7 d, fill + 3 d)); the
report's end is set to the end of that span, so a week covers 7/10 of the rows (previous week
the other 3/10) and a month all of them. Times are wall clock of ``build_report`` (all its SQL)
plus rendering, median of ``--runs`` after one warm-up, with the machine's other load as it is.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import datetime

import asyncpg

from bench.common import create_database, stop_postgres
from bench.fill import SPAN_AFTER, ensure_filled
from nexus.cli.report import render_html, render_md
from nexus.store.report import build_report


async def measure(rows: int, runs: int) -> list[str]:
    dsn = await create_database(f"bench_stats_{rows // 1_000_000}m", fresh=False)
    state = await ensure_filled(dsn, rows)
    conn = await asyncpg.connect(dsn, command_timeout=600)
    try:
        meta = await conn.fetchval("SELECT value FROM nexus_meta WHERE key = 'bench_fill'")
        until = datetime.fromisoformat(meta.split(" ", 1)[1]) + SPAN_AFTER
        minutes = await conn.fetchval("SELECT count(*) FROM api_requests_minute")
        out = [f"{rows:,} rows ({state}); {minutes:,} rollup rows; report end {until.isoformat()}"]
        for period in ("week", "month"):
            times, render = [], []
            report = await build_report(conn, period, until, 30)  # warm-up
            for _ in range(runs):
                t0 = time.perf_counter()
                report = await build_report(conn, period, until, 30)
                t1 = time.perf_counter()
                render_md(report)
                render_html(report)
                render.append(time.perf_counter() - t1)
                times.append(t1 - t0)
            t = report["traffic"]
            out.append(f"  {period}: build p50 {statistics.median(times) * 1000:,.0f} ms "
                       f"(min {min(times) * 1000:,.0f}, max {max(times) * 1000:,.0f}), md+html "
                       f"{statistics.median(render) * 1000:.1f} ms; {t['current']['requests']:,} requests vs "
                       f"{t['previous']['requests']:,}")
        return out
    finally:
        await conn.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, action="append")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    try:
        for n in args.rows or [1_000_000, 10_000_000]:
            for line in asyncio.run(measure(n, args.runs)):
                print(line, flush=True)
    finally:
        stop_postgres()


if __name__ == "__main__":
    main()

