"""``nexus report`` on a seeded database: every number of the JSON equals an aggregate computed here,
by hand, from the seeded records (the rollups the report reads are maintained by the real writer).
The Markdown and HTML renderings carry the same numbers.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg

from nexus.core.latency import bucket_index, empty_hist, percentile_from_hist
from nexus.core.records import Record
from nexus.store.write import PartitionCache, insert_records
from tests.process.test_cli import assert_one_line_error, run

UNTIL = datetime(2030, 1, 15, tzinfo=UTC)
CUR = (UNTIL - timedelta(days=7), UNTIL)
PREV = (UNTIL - timedelta(days=14), UNTIL - timedelta(days=7))
MODELS = ("claude-sonnet-4-5", "claude-opus-4-1", "mystery-model-x")
ACCOUNTS = ("acct_aaaaaaaaaaaa", "acct_bbbbbbbbbbbb", "acct_cccccccccccc")
ERRORS = ((200, None), (200, None), (200, None), (200, None), (529, "overloaded_error"), (429, "rate_limit_error"),
          (500, None), (200, None))


def seed_records() -> list[Record]:
    rnd = random.Random(20300115)
    out = []
    for _ in range(400):
        # 2 days before the previous period .. 1 day after the current one (both outside must not count)
        at = PREV[0] - timedelta(days=2) + timedelta(seconds=rnd.randrange(0, 17 * 86400))
        model = rnd.choice(MODELS)
        status, etype = rnd.choice(ERRORS)
        out.append(Record(created_at=at, domain="example.com", account_id=rnd.choice(ACCOUNTS), model=model,
                          status_code=status, error_type=etype, input_tokens=rnd.randrange(1, 5000),
                          output_tokens=rnd.randrange(0, 2000), cache_read_input_tokens=rnd.randrange(0, 100) * 10,
                          cache_creation_input_tokens=rnd.randrange(0, 3) * 7,
                          response_time_ms=rnd.choice((3.0, 40.0, 120.0, 800.0, 1800.0, 4000.0, 12000.0)),
                          cost_usd=None if model == "mystery-model-x" else Decimal(rnd.randrange(1, 10**6)) / 10**7))
    # a burst: 7 requests in one minute of the current period, 4 in one of the previous
    for n, t in ((7, CUR[0] + timedelta(days=3, hours=5, minutes=17)), (4, PREV[0] + timedelta(days=1, minutes=3))):
        for k in range(n):
            out.append(Record(created_at=t + timedelta(seconds=k), domain="example.com", account_id=ACCOUNTS[0],
                              model=MODELS[0], status_code=200, input_tokens=10, output_tokens=5,
                              response_time_ms=60.0, cost_usd=Decimal("0.001")))
    return out


def _in(r: Record, span: tuple[datetime, datetime]) -> bool:
    return span[0] <= r.created_at < span[1]


def pct(cur: float, prev: float):
    return None if not prev else round((cur - prev) / prev * 100.0, 1)


def usd(v) -> float:
    return float(round(Decimal(v or 0), 6))


def traffic(rs: list[Record]) -> dict:
    n, e = len(rs), sum(r.is_error for r in rs)
    tok = {"input": sum(r.input_tokens for r in rs), "output": sum(r.output_tokens for r in rs),
           "cacheCreation": sum(r.cache_creation_input_tokens for r in rs),
           "cacheRead": sum(r.cache_read_input_tokens for r in rs)}
    tok["total"] = sum(tok.values())
    return {"requests": n, "errors": e, "errorRate": round(e / n, 6) if n else 0.0, "tokens": tok,
            "costUsd": usd(sum((r.cost_usd or Decimal(0)) for r in rs)),
            "unpricedRequests": sum(r.cost_usd is None for r in rs)}


def cost_by(rs_cur, rs_prev, key) -> list[dict]:
    cur, prev = defaultdict(Decimal), defaultdict(Decimal)
    for r in rs_cur:
        cur[key(r)] += r.cost_usd or Decimal(0)
    for r in rs_prev:
        prev[key(r)] += r.cost_usd or Decimal(0)
    keys = sorted(set(cur) | set(prev), key=lambda k: (-cur.get(k, 0), -prev.get(k, 0), k))[:10]
    return [{"key": k, "currentUsd": usd(cur.get(k)), "previousUsd": usd(prev.get(k)),
             "changePct": pct(float(cur.get(k, 0)), float(prev.get(k, 0)))} for k in keys]


def latency(rs: list[Record]) -> dict[str, dict]:
    out = {}
    for m in {r.model for r in rs}:
        mine = [r for r in rs if r.model == m]
        hist = empty_hist()
        for r in mine:
            hist[bucket_index(r.response_time_ms)] += 1
        out[m] = {"requests": len(mine), "avgMs": round(sum(r.response_time_ms for r in mine) / len(mine), 1),
                  "p50Ms": round(percentile_from_hist(hist, 0.5), 1), "p95Ms": round(percentile_from_hist(hist, 0.95), 1)}
    return out


def expected(records: list[Record], retention_days: int) -> dict:
    cur = [r for r in records if _in(r, CUR)]
    prev = [r for r in records if _in(r, PREV)]
    t_cur, t_prev = traffic(cur), traffic(prev)

    def etype(r):
        return r.error_type or f"http_{r.status_code}"

    e_cur = Counter(etype(r) for r in cur if r.is_error)
    e_prev = Counter(etype(r) for r in prev if r.is_error)
    l_cur, l_prev = latency(cur), latency(prev)
    per_minute = Counter(r.created_at.replace(second=0, microsecond=0) for r in cur)
    per_minute_prev = Counter(r.created_at.replace(second=0, microsecond=0) for r in prev)
    peak_at, peak = sorted(per_minute.items(), key=lambda kv: (-kv[1], kv[0]))[0]
    hours = Counter(r.created_at.replace(minute=0, second=0, microsecond=0) for r in cur)
    days = defaultdict(list)
    for r in cur:
        days[r.created_at.date()].append(r)
    unpriced = Counter(r.model for r in cur if r.cost_usd is None)
    unpriced_tok = Counter()
    for r in cur:
        if r.cost_usd is None:
            unpriced_tok[r.model] += r.total_tokens
    oldest = min(r.created_at for r in records)
    rej_cur = sum(r.status_code == 429 for r in cur)
    rej_prev = sum(r.status_code == 429 for r in prev)
    return {
        "traffic": {"current": t_cur, "previous": t_prev, "change": {
            "requests": pct(t_cur["requests"], t_prev["requests"]), "errors": pct(t_cur["errors"], t_prev["errors"]),
            "costUsd": pct(t_cur["costUsd"], t_prev["costUsd"]),
            "tokens": pct(t_cur["tokens"]["total"], t_prev["tokens"]["total"]),
            "errorRatePoints": round((t_cur["errorRate"] - t_prev["errorRate"]) * 100, 2)}},
        "errorTypes": [{"errorType": k, "current": e_cur.get(k, 0), "previous": e_prev.get(k, 0),
                        "changePct": pct(e_cur.get(k, 0), e_prev.get(k, 0))}
                       for k in sorted(set(e_cur) | set(e_prev), key=lambda k: (-e_cur[k], -e_prev[k], k))],
        "latency": [{"model": m, **v, "previous": {k: l_prev.get(m, {}).get(k) for k in ("requests", "p50Ms", "p95Ms")}}
                    for m, v in sorted(l_cur.items(), key=lambda kv: (-kv[1]["requests"], kv[0]))],
        "byModel": cost_by(cur, prev, lambda r: r.model),
        "byAccount": cost_by(cur, prev, lambda r: r.account_id),
        "busiestHours": [{"hour": h.isoformat(), "requests": n}
                         for h, n in sorted(hours.items(), key=lambda kv: (-kv[1], kv[0]))[:5]],
        "hourOfDay": [sum(n for h, n in hours.items() if h.hour == hod) for hod in range(24)],
        "daily": [{"date": d.isoformat(), "requests": len(rs), "errors": sum(r.is_error for r in rs),
                   "costUsd": usd(sum((r.cost_usd or Decimal(0)) for r in rs))} for d, rs in sorted(days.items())],
        "rejections": {"current": rej_cur, "previous": rej_prev, "changePct": pct(rej_cur, rej_prev)},
        "unpriced": [{"model": m, "requests": n, "tokens": unpriced_tok[m]} for m, n in unpriced.most_common()],
        "peak": {"requests": peak, "at": peak_at.isoformat(), "previous": max(per_minute_prev.values()),
                 "changePct": pct(peak, max(per_minute_prev.values()))},
        "daysUntilPrune": (oldest.date() + timedelta(days=retention_days + 1) - UNTIL.date()).days,
        "oldest": oldest.isoformat(),
    }


def test_report_numbers_equal_hand_computed_aggregates(db_dsn: str, tmp_path):
    records = seed_records()

    async def seed() -> None:
        conn = await asyncpg.connect(db_dsn)
        try:
            await insert_records(conn, records, PartitionCache())
        finally:
            await conn.close()

    asyncio.run(seed())
    env = {"DATABASE_URL": db_dsn, "RETENTION_DAYS": "30"}
    proc = run("report", "--period", "week", "--format", "json", "--until", "2030-01-15", env=env)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    want = expected(records, 30)
    assert got["period"] == "week"
    assert got["current"] == {"start": CUR[0].isoformat(), "end": CUR[1].isoformat()}
    assert got["previous"] == {"start": PREV[0].isoformat(), "end": PREV[1].isoformat()}
    assert got["traffic"] == want["traffic"]
    assert got["traffic"]["current"]["requests"] > 100 and got["traffic"]["previous"]["requests"] > 100
    assert got["errorTypes"] == want["errorTypes"]
    assert {e["errorType"] for e in got["errorTypes"]} == {"overloaded_error", "rate_limit_error", "http_500"}
    assert got["latency"] == want["latency"]
    assert got["cost"]["byModel"] == want["byModel"] and got["cost"]["byAccount"] == want["byAccount"]
    assert got["busiestHours"] == want["busiestHours"] and got["hourOfDay"] == want["hourOfDay"]
    assert got["daily"] == want["daily"] and len(got["daily"]) == 7
    assert got["limits"]["rejections"] == want["rejections"]
    assert got["unpriced"] == want["unpriced"] and got["unpriced"][0]["model"] == "mystery-model-x"
    cap = got["capacity"]
    assert {k: cap["peakRequestsPerMinute"][k] for k in ("requests", "at", "previous", "changePct")} == want["peak"]
    assert cap["peakRequestsPerMinute"]["requests"] == 7  # the burst
    assert cap["oldestRecord"] == want["oldest"] and cap["retentionDays"] == 30
    assert cap["daysUntilPrune"] == want["daysUntilPrune"]
    assert cap["databaseBytes"] > cap["periodBytes"] > 0 and cap["growthBytesPerDay"] == round(cap["periodBytes"] / 7)

    md = run("report", "--until", "2030-01-15", env=env)
    assert md.returncode == 0, md.stderr
    t = want["traffic"]["current"]
    assert f"| requests | {t['requests']:,} | {want['traffic']['previous']['requests']:,} |" in md.stdout
    assert "## Cost by model" in md.stdout and "mystery-model-x" in md.stdout
    out = tmp_path / "r.html"
    proc = run("report", "--period", "month", "--format", "html", "--out", str(out), "--until", "2030-01-15", env=env)
    assert proc.returncode == 0 and proc.stdout.startswith(f"wrote {out} (html, ")
    page = out.read_text()
    assert page.count("<svg") == 4 and "<script" not in page and "Claude Nexus report: month" in page


def test_report_errors_are_one_line():
    assert_one_line_error(run("report", "--period", "year"), 2, "invalid choice")
    assert_one_line_error(run("report", "--until", "yesterday-ish",
                              env={"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x"}), 2, "--until")
