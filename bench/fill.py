"""Fill ``api_requests`` with N synthetic rows by COPY, and build their per-minute rollups.

The rows span ``[now - 7 days, now + 3 days)`` evenly (a 10 M table holds ~1 M rows per day), so a
cached database stays valid for the "last 24 h" and "current 5 h window" queries for 3 days; it
is rebuilt when older. The rollups (``api_requests_minute``) are made with one
``INSERT … SELECT … GROUP BY`` over the raw rows — the same aggregates the writer maintains
batch by batch (``nexus.store.write.rollup``), so the dashboard reads what it would in production.

    python -m bench.fill 10000000        # into database bench_stats_10m of bench/.data/pg
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg

from nexus.core.latency import HIST_LEN, LATENCY_BUCKETS_MS
from nexus.store.partitions import ensure_partitions
from nexus.store.write import RECORD_COLUMNS

SPAN_BEFORE = timedelta(days=7)
SPAN_AFTER = timedelta(days=3)
DOMAINS = ("api.acme.dev", "claude.internal")
ACCOUNTS = ("acct_alpha", "acct_beta", "acct_gamma", "acct_delta")
MODELS = (("claude-sonnet-4-5-20250929", 0.55, 3, 15), ("claude-haiku-4-5-20251001", 0.25, 1, 5),
          ("claude-opus-4-1-20250805", 0.15, 15, 75), ("claude-future-unpriced", 0.05, None, None))
# The columns the pre-formatted rows fill (up to instance_id); later ones (billing dimensions,
# added by migration 0004 and after) take their defaults. total_tokens is generated.
COLUMNS = RECORD_COLUMNS[:RECORD_COLUMNS.index("instance_id") + 1]


def _combos(rng: random.Random, n: int) -> list[str]:
    """Pre-formatted COPY text for every column after id and created_at."""
    out = []
    for _ in range(n):
        domain = rng.choice(DOMAINS)
        account = rng.choice(ACCOUNTS)
        model, _, pin, pout = rng.choices(MODELS, weights=[m[1] for m in MODELS])[0]
        stream = rng.random() < 0.6
        err = rng.random() < 0.03
        status = rng.choice((429, 529, 500)) if err else 200
        etype = {429: "rate_limit_error", 529: "overloaded_error", 500: "api_error"}.get(status, None)
        inp, outp = rng.randint(50, 20000), rng.randint(10, 2000) if not err else 0
        cw, cr = rng.choice((0, 0, 0, 2048)), rng.choice((0, 0, 4096, 16000))
        rt = rng.lognormvariate(7.0, 0.9)  # ~1.1 s median, long tail
        ttft = rt * 0.2 if stream else None
        cost = None if pin is None else (inp * pin + outp * pout + cw * pin * 1.25 + cr * pin * 0.1) / 1e6
        vals = [
            f"req_{rng.getrandbits(48):012x}", domain, account, "POST", "/v1/messages", model,
            "t" if stream else "f", str(status), etype, "error" if err else None, str(inp), str(outp),
            str(cw), str(cw), "0", str(cr), None, f"{rt:.3f}", None if ttft is None else f"{ttft:.3f}",
            None if cost is None else f"{cost:.10f}", "messages", "bench",
        ]
        out.append("\t".join("\\N" if v is None else v for v in vals) + "\n")
    return out


async def _rows(n: int, start: datetime, span_s: float, lo: int, hi: int,
                chunk: int = 50_000) -> AsyncIterator[bytes]:
    """Rows ``lo`` … ``hi - 1`` of the ``n`` spread over the span (the same rows whatever the split)."""
    rng = random.Random(42)
    combos = _combos(rng, 4096)
    step = span_s / n
    t0 = start.timestamp()
    prefix = f"{rng.getrandbits(32):08x}-0000-4000-8000-"
    i = lo
    while i < hi:
        lines = []
        for k in range(i, min(hi, i + chunk)):
            ts = datetime.fromtimestamp(t0 + k * step, UTC).isoformat()
            lines.append(f"{prefix}{k:012x}\t{ts}\t{combos[k * 2654435761 % 4096]}")
        i += chunk
        yield "".join(lines).encode()
        await asyncio.sleep(0)


_BOUNDS = "ARRAY[" + ", ".join(str(float(b)) for b in LATENCY_BUCKETS_MS) + "]::float8[]"
ROLLUP_SQL = f"""
INSERT INTO api_requests_minute (bucket, domain, account_id, model, requests, errors, input_tokens, output_tokens,
    cache_creation_input_tokens, cache_read_input_tokens, cost_usd, unpriced_requests, latency_sum_ms, latency_hist)
SELECT date_trunc('minute', created_at), domain, coalesce(account_id, ''), coalesce(model, ''),
       count(*), count(*) FILTER (WHERE status_code >= 400 OR error_type IS NOT NULL),
       sum(input_tokens), sum(output_tokens), sum(cache_creation_input_tokens), sum(cache_read_input_tokens),
       coalesce(sum(cost_usd), 0),
       count(*) FILTER (WHERE cost_usd IS NULL AND request_type = 'messages' AND model IS NOT NULL),
       sum(response_time_ms),
       ARRAY[{", ".join(f"count(*) FILTER (WHERE width_bucket(response_time_ms, {_BOUNDS}) = {i})"
                        for i in range(HIST_LEN))}]::bigint[]
FROM api_requests
WHERE created_at >= $1 AND created_at < $2
GROUP BY 1, 2, 3, 4
"""


async def fill(dsn: str, n: int, log=print) -> dict[str, float]:
    """Truncate and refill; returns timings. The generation time is stored in nexus_meta."""
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - SPAN_BEFORE
    span = (SPAN_BEFORE + SPAN_AFTER).total_seconds()
    # Two connections, each with half of the rows (then half of the minutes): PostgreSQL's work is
    # the bottleneck, and one backend per core roughly halves the wait on a 2-core machine.
    conns = [await asyncpg.connect(dsn, command_timeout=3600) for _ in range(2)]
    conn = conns[0]
    try:
        await conn.execute("TRUNCATE api_requests, api_requests_minute, api_request_bodies")
        days = {(start + timedelta(days=d)).date() for d in range(12)}
        await ensure_partitions(conn, days)
        for c in conns:
            await c.execute("SET synchronous_commit = off")
        half = n // 2
        t0 = time.perf_counter()
        await asyncio.gather(*(c.copy_to_table("api_requests", source=_rows(n, start, span, lo, hi),
                                               columns=COLUMNS, format="text")
                               for c, (lo, hi) in zip(conns, ((0, half), (half, n)), strict=True)))
        t1 = time.perf_counter()
        log(f"    COPY {n:,} rows in {t1 - t0:.1f} s ({n / (t1 - t0):,.0f} rows/s)")
        # Split on a whole minute, so that each rollup row comes from one side only.
        mid = (start + timedelta(seconds=span / 2)).replace(second=0)
        end = start + timedelta(seconds=span) + timedelta(minutes=1)
        await asyncio.gather(conns[0].execute(ROLLUP_SQL, start, mid), conns[1].execute(ROLLUP_SQL, mid, end))
        t2 = time.perf_counter()
        minutes = await conn.fetchval("SELECT count(*) FROM api_requests_minute")
        log(f"    rollups: {minutes:,} rows in {t2 - t1:.1f} s")
        await conn.execute("ANALYZE api_requests")
        await conn.execute("ANALYZE api_requests_minute")
        await conn.execute(
            "INSERT INTO nexus_meta (key, value) VALUES ('bench_fill', $1) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
            f"{n} {now.isoformat()}")
    finally:
        for c in conns:
            await c.close()
    return {"copy_s": t1 - t0, "rollup_s": t2 - t1, "rows_per_s": n / (t1 - t0)}


async def ensure_filled(dsn: str, n: int, log=print) -> str:
    """Reuse the cached table if it has ``n`` rows and is less than 2.5 days old; else refill."""
    conn = await asyncpg.connect(dsn)
    try:
        meta = await conn.fetchval("SELECT value FROM nexus_meta WHERE key = 'bench_fill'")
    finally:
        await conn.close()
    if meta:
        count, when = meta.split(" ", 1)
        age = datetime.now(UTC) - datetime.fromisoformat(when)
        if int(count) == n and age < timedelta(days=2.5):
            return f"cached ({age.total_seconds() / 3600:.1f} h old)"
    log(f"    filling {n:,} rows (cached under bench/.data/pg for later runs)")
    t = await fill(dsn, n, log)
    return f"filled now: COPY {t['rows_per_s']:,.0f} rows/s, rollups {t['rollup_s']:.0f} s"


if __name__ == "__main__":
    from bench.common import create_database

    async def _main() -> None:
        n = int(sys.argv[1])
        dsn = await create_database(f"bench_stats_{n // 1_000_000}m", fresh=False)
        print(await ensure_filled(dsn, n))

    asyncio.run(_main())
