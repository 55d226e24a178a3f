"""Every dashboard route's numbers against hand-computed expectations (real PostgreSQL, real Hypercorn).

``dataset()`` in test_api_support holds six records; the expected figures below are worked out
by hand from it (and cross-checked with plain Python over the Records where that is clearer).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from nexus.core.latency import percentile_from_hist
from tests.support.api import HAIKU, MYSTERY, SONNET, Api, rec


def approx(x: float) -> object:
    return pytest.approx(x, rel=1e-9, abs=1e-9)


async def test_stats_last_hour_is_exact(loaded_api):
    a, _ = loaded_api
    r = await a.get("/api/stats", since="1h")
    assert r.status_code == 200, r.text
    s = r.json()
    # r1, r2 (this minute), r3 (5 min), r4 (30 min)
    assert s["totalRequests"] == 4
    assert s["errorCount"] == 1 and s["errorRate"] == 0.25
    assert s["tokens"] == {"input": 117, "output": 58, "cacheCreation": 10, "cacheRead": 1000, "total": 1185}
    assert s["costUsd"] == approx(0.011)
    assert s["unpricedRequests"] == 1
    lat = s["latencyMs"]
    assert lat["method"] == "exact"
    # latencies 40, 100, 300, 2000: percentile_cont interpolates between ranks
    assert lat["avg"] == approx(610.0)
    assert lat["p50"] == approx(200.0)
    assert lat["p95"] == approx(300 + 0.85 * 1700)
    assert lat["p99"] == approx(300 + 0.97 * 1700)
    assert s["requestsPerMinute"] == 2
    models = {m["model"]: m for m in s["byModel"]}
    assert [m["model"] for m in s["byModel"]][0] == SONNET
    assert models[SONNET]["requests"] == 2 and models[SONNET]["errors"] == 1
    assert models[SONNET]["errorRate"] == 0.5
    # per-group p95 comes from the histograms: 100 → (100,250], 2000 → (1000,2500]
    assert models[SONNET]["p95LatencyMs"] == approx(1000 + 0.9 * 1500)
    assert models[HAIKU]["costUsd"] == approx(0.001)
    assert models[MYSTERY]["unpricedRequests"] == 1 and models[MYSTERY]["costUsd"] == 0
    domains = {d["domain"]: d for d in s["byDomain"]}
    assert domains["a.example"]["requests"] == 2 and domains["b.example"]["requests"] == 2
    assert domains["b.example"]["tokens"]["total"] == 25


async def test_stats_day_uses_rollups_and_raw_edges_exactly(loaded_api):
    a, _ = loaded_api
    s = (await a.get("/api/stats", since="24h")).json()
    assert s["totalRequests"] == 5  # + r5 (3 h ago); r6 is 2 days old
    assert s["errorCount"] == 2  # r2 (529) and r5 (error event inside a 200)
    assert s["errorRate"] == 0.4
    assert s["tokens"] == {"input": 137, "output": 88, "cacheCreation": 10, "cacheRead": 1000, "total": 1235}
    assert s["costUsd"] == approx(0.013)
    assert s["latencyMs"]["method"] == "histogram"
    assert s["latencyMs"]["avg"] == approx((100 + 2000 + 40 + 300 + 700) / 5)
    # buckets: 40→(25,50], 100→(100,250], 300→(250,500], 700→(500,1000], 2000→(1000,2500]
    # p50: rank 2.5 falls half-way into (250,500] → 375
    assert s["latencyMs"]["p50"] == approx(375.0)
    hist = [0] * 18
    for i in (3, 5, 6, 7, 8):
        hist[i] = 1
    assert s["latencyMs"]["p95"] == approx(percentile_from_hist(hist, 0.95))
    assert s["latencyMs"]["p99"] == approx(percentile_from_hist(hist, 0.99))
    assert s["requestsPerMinute"] == 2


async def test_stats_filters(loaded_api):
    a, _ = loaded_api
    s = (await a.get("/api/stats", since="7d", domain="b.example")).json()
    assert s["totalRequests"] == 2 and s["tokens"]["total"] == 25 and s["requestsPerMinute"] == 0
    s = (await a.get("/api/stats", since="7d", accountId="acct_1")).json()
    assert s["totalRequests"] == 4 and s["costUsd"] == approx(1.012)
    s = (await a.get("/api/stats", since="7d", account="acct_1", model=SONNET)).json()
    assert s["totalRequests"] == 4
    s = (await a.get("/api/stats", since="7d", model=HAIKU)).json()
    assert s["totalRequests"] == 1 and s["latencyMs"]["p50"] is not None
    s = (await a.get("/api/stats", since="7d", until="1h")).json()
    assert s["totalRequests"] == 2  # r5 and r6
    s = (await a.get("/api/stats", since="7d", domain="nowhere")).json()
    assert s["totalRequests"] == 0 and s["errorRate"] == 0 and s["latencyMs"]["p50"] is None
    assert s["byModel"] == [] and s["costUsd"] == 0


async def test_stats_iso_range_equals_relative(loaded_api):
    a, _ = loaded_api
    since = (a.now - timedelta(hours=4)).isoformat()
    s = (await a.get("/api/stats", since=since, until=a.now.isoformat())).json()
    assert s["totalRequests"] == 5
    naive = (a.now - timedelta(hours=4)).replace(tzinfo=None).isoformat()
    z = (a.now - timedelta(hours=4)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert (await a.get("/api/stats", since=naive)).json()["totalRequests"] == 5
    assert (await a.get("/api/stats", since=z)).json()["totalRequests"] == 5


async def test_empty_database_answers_zeros(api):
    for path in ("/api/stats", "/api/token-usage/current", "/api/token-usage/daily", "/api/timeseries",
                 "/api/requests", "/api/errors", "/api/costs"):
        r = await api.get(path)
        assert r.status_code == 200, (path, r.text)
    assert (await api.get("/api/stats")).json()["totalRequests"] == 0
    assert (await api.get("/api/token-usage/current")).json()["accounts"] == []
    assert (await api.get("/api/requests")).json() == {"requests": [], "nextCursor": None}


async def test_token_usage_current_windows(loaded_api):
    a, _ = loaded_api
    a.runtime.token_limit_for = {"acct_1": 2000}.get
    body = (await a.get("/api/token-usage/current", window=300)).json()
    assert body["windowMinutes"] == 300
    accts = {w["accountId"]: w for w in body["accounts"]}
    assert set(accts) == {"acct_1", "acct_2"}
    assert [w["accountId"] for w in body["accounts"]] == ["acct_1", "acct_2"]  # by tokens
    w = accts["acct_1"]
    minute = a.now.replace(second=0, microsecond=0)
    start = minute - timedelta(hours=3)  # r5's minute opens the window
    assert w["active"] is True
    assert w["windowStart"] == start.isoformat()
    assert w["windowEnd"] == (start + timedelta(minutes=300)).isoformat()
    assert (w["totalInputTokens"], w["totalOutputTokens"]) == (120, 80)
    assert (w["cacheCreationInputTokens"], w["cacheReadInputTokens"]) == (10, 1000)
    assert w["totalTokens"] == 1210 and w["totalRequests"] == 3
    assert w["costUsd"] == approx(0.012)
    elapsed = 180.5  # minutes from windowStart to now (now is half past its minute)
    burn = 1210 / elapsed
    assert w["burnRatePerMinute"] == pytest.approx(burn, abs=1e-3)
    assert w["minutesRemaining"] == pytest.approx(119.5, abs=0.01)
    assert w["projectedTotal"] == round(1210 + burn * 119.5)
    assert w["elapsedMinutes"] == pytest.approx(180.5)
    assert w["tokenLimit"] == 2000 and w["percentOfLimit"] == pytest.approx(60.5)
    exhaust = a.now + timedelta(minutes=(2000 - 1210) / burn)
    got = datetime.fromisoformat(w["projectedExhaustion"])
    assert abs((got - exhaust).total_seconds()) < 1
    w2 = accts["acct_2"]
    assert w2["windowStart"] == (minute - timedelta(minutes=30)).isoformat()
    assert w2["totalTokens"] == 25 and w2["totalRequests"] == 2
    assert w2["tokenLimit"] is None and w2["percentOfLimit"] is None and w2["projectedExhaustion"] is None

    one = (await a.get("/api/token-usage/current", accountId="acct_2", window=300)).json()
    assert one["accountId"] == "acct_2" and one["totalTokens"] == 25
    # a 10-minute window: acct_2's last request was 5 min ago, acct_1's 10 s ago
    short = (await a.get("/api/token-usage/current", window=10)).json()
    assert {w["accountId"]: w["totalTokens"] for w in short["accounts"]} == {"acct_1": 1160, "acct_2": 15}
    idle = (await a.get("/api/token-usage/current", accountId="acct_9")).json()
    assert idle["active"] is False and idle["totalTokens"] == 0 and idle["burnRatePerMinute"] == 0


async def test_token_window_restarts_after_it_ends(api):
    # Window A opens 7 h ago and ends 2 h ago; the request 1 h ago opens window B.
    await api.insert([rec(api.now, timedelta(hours=7), input_tokens=500),
                      rec(api.now, timedelta(hours=1), input_tokens=5),
                      rec(api.now, timedelta(minutes=1), input_tokens=6)])
    w = (await api.get("/api/token-usage/current", accountId="acct_1")).json()
    minute = api.now.replace(second=0, microsecond=0)
    assert w["windowStart"] == (minute - timedelta(hours=1)).isoformat()
    assert w["totalInputTokens"] == 11 and w["totalRequests"] == 2


async def test_token_usage_daily(loaded_api):
    a, records = loaded_api
    body = (await a.get("/api/token-usage/daily", days=30)).json()
    assert body["days"] == 30 and body["aggregate"] is False
    # reference: plain Python over the records
    ref: dict[tuple, dict] = {}
    for r in records.values():
        key = (r.created_at.astimezone(UTC).date().isoformat(), r.account_id, r.domain, r.model)
        d = ref.setdefault(key, {"totalTokens": 0, "totalRequests": 0, "costUsd": Decimal(0), "errors": 0})
        d["totalTokens"] += r.total_tokens
        d["totalRequests"] += 1
        d["costUsd"] += r.cost_usd or 0
        d["errors"] += int(r.is_error)
    got = {(u["date"], u["accountId"], u["domain"], u["model"]): u for u in body["usage"]}
    assert set(got) == set(ref)
    for k, d in ref.items():
        assert got[k]["totalTokens"] == d["totalTokens"]
        assert got[k]["totalRequests"] == d["totalRequests"]
        assert got[k]["errors"] == d["errors"]
        assert got[k]["costUsd"] == approx(float(d["costUsd"]))
    dates = [u["date"] for u in body["usage"]]
    assert dates == sorted(dates, reverse=True)
    agg = (await a.get("/api/token-usage/daily", accountId="acct_1", aggregate="true", days=7)).json()
    assert all("model" not in u for u in agg["usage"])
    assert sum(u["totalTokens"] for u in agg["usage"]) == 1160 + 0 + 50 + 2000
    assert sum(u["totalInputTokens"] for u in agg["usage"]) == 100 + 20 + 1000
    one_day = (await a.get("/api/token-usage/daily", days=1, accountId="acct_2")).json()
    today = a.now.date().isoformat()
    assert all(u["date"] == today for u in one_day["usage"])


async def test_timeseries_minutes(loaded_api):
    a, _ = loaded_api
    body = (await a.get("/api/timeseries", since="1h", bucket=60)).json()
    minute = a.now.replace(second=0, microsecond=0)
    pts = body["points"]
    assert body["bucketSeconds"] == 60
    assert pts[0]["time"] == (minute - timedelta(hours=1)).isoformat()
    assert pts[-1]["time"] == minute.isoformat()
    assert len(pts) == 61
    by_t = {p["time"]: p for p in pts}
    last = by_t[minute.isoformat()]
    assert last["requests"] == 2 and last["errors"] == 1 and last["errorRate"] == 0.5
    assert last["tokens"]["total"] == 1160 and last["costUsd"] == approx(0.01)
    assert last["avgLatencyMs"] == approx(1050.0)
    # 100 → (100,250], 2000 → (1000,2500]; p50 at rank 1 = top of the first bucket
    assert last["p50LatencyMs"] == approx(250.0)
    assert by_t[(minute - timedelta(minutes=5)).isoformat()]["requests"] == 1
    assert by_t[(minute - timedelta(minutes=30)).isoformat()]["unpricedRequests"] == 1
    assert sum(p["requests"] for p in pts) == 4
    empty = by_t[(minute - timedelta(minutes=10)).isoformat()]
    assert empty["requests"] == 0 and empty["p50LatencyMs"] is None and empty["costUsd"] == 0


async def test_timeseries_larger_buckets_align_to_epoch(loaded_api):
    a, _ = loaded_api
    body = (await a.get("/api/timeseries", since="6h", bucket=3600)).json()
    assert all(datetime.fromisoformat(p["time"]).timestamp() % 3600 == 0 for p in body["points"])
    assert sum(p["requests"] for p in body["points"]) == 5
    assert sum(p["errors"] for p in body["points"]) == 2
    ts = (await a.get("/api/timeseries", since="7d", bucket=86400, domain="a.example")).json()
    assert sum(p["requests"] for p in ts["points"]) == 4


async def test_requests_paging_and_filters(loaded_api):
    a, records = loaded_api
    order = ["r1", "r2", "r3", "r4", "r5", "r6"]
    seen = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 2, **({"before": cursor} if cursor else {})}
        body = (await a.get("/api/requests", **params)).json()
        seen += [x["id"] for x in body["requests"]]
        cursor = body["nextCursor"]
        pages += 1
        if cursor is None:
            break
    assert pages == 3
    assert seen == [str(records[k].id) for k in order]
    first = (await a.get("/api/requests", limit=1)).json()["requests"][0]
    r1 = records["r1"]
    assert first == {
        "id": str(r1.id), "time": r1.created_at.isoformat(), "requestId": "req_1", "domain": "a.example",
        "accountId": "acct_1", "method": "POST", "path": "/v1/messages", "model": SONNET, "stream": True,
        "status": 200, "errorType": None, "errorMessage": None, "latencyMs": 100.0, "ttftMs": 42.5,
        "tokens": {"input": 100, "output": 50, "cacheCreation": 10, "cacheRead": 1000, "total": 1160},
        "costUsd": 0.01, "requestType": "messages", "countedTokens": None, "instanceId": None,
        "cacheWrite5mTokens": 0, "cacheWrite1hTokens": 0, "serviceTier": None, "speed": None, "inferenceGeo": None,
        "webSearchRequests": 0, "webFetchRequests": 0, "thinkingTokens": 0, "priceSource": None,
        "webSearchCostUsd": None, "sessionId": "sess-a", "agentId": None, "parentAgentId": None, "client": None,
        "tags": {"project": "apollo"},
    }

    async def ids(**params) -> list[str]:
        return [x["id"] for x in (await a.get("/api/requests", **params)).json()["requests"]]

    def want(*keys: str) -> list[str]:
        return [str(records[k].id) for k in keys]

    assert await ids(status="error") == want("r2", "r5")
    assert await ids(status="ok") == want("r1", "r3", "r4", "r6")
    assert await ids(status="529") == want("r2")
    assert await ids(domain="b.example") == want("r3", "r4")
    assert await ids(model=HAIKU) == want("r3")
    assert await ids(accountId="acct_2", status="ok") == want("r3", "r4")
    assert await ids(since="1h") == want("r1", "r2", "r3", "r4")
    assert await ids(since="1d", until="1h") == want("r5")
    assert await ids(model="no-such-model") == []  # answered from the rollups, no table walk
    assert await ids(status="418") == []
    assert await ids(model=SONNET, status="error", limit=1) == want("r2")
    page2 = (await a.get("/api/requests", model=SONNET, limit=2)).json()
    older = (await a.get("/api/requests", model=SONNET, limit=2, before=page2["nextCursor"])).json()
    assert [x["id"] for x in older["requests"]] == want("r5", "r6") and older["nextCursor"] is None


async def test_cursor_paging_with_equal_timestamps(api):
    t = timedelta(seconds=5)
    same = [rec(api.now, t) for _ in range(5)]
    await api.insert(same)
    got: list[str] = []
    cursor = None
    while True:
        body = (await api.get("/api/requests", limit=2, **({"before": cursor} if cursor else {}))).json()
        got += [x["id"] for x in body["requests"]]
        cursor = body["nextCursor"]
        if not cursor:
            break
    assert sorted(got) == sorted(str(r.id) for r in same) and len(got) == 5


async def test_request_detail(loaded_api):
    a, records = loaded_api
    r2 = records["r2"]
    body = (await a.get(f"/api/requests/{r2.id}")).json()
    assert body["request"]["id"] == str(r2.id) and body["request"]["status"] == 529
    assert body["request"]["errorMessage"] == "Overloaded"
    assert body["errorBody"] == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    assert body["bodies"]["requestHeaders"]["x-api-key"] == "[REDACTED]"
    assert body["bodies"]["requestHeaders"]["anthropic-version"] == "2023-06-01"
    assert body["bodies"]["responseHeaders"]["request-id"] == "req_2"
    assert body["bodies"]["requestBody"] == '{"model":"claude-sonnet-4-5"}'
    assert "sk-ant-secret" not in (await a.get(f"/api/requests/{r2.id}")).text
    plain = (await a.get(f"/api/requests/{records['r1'].id}")).json()
    assert plain["bodies"] is None and plain["errorBody"] is None
    missing = await a.get(f"/api/requests/{uuid.uuid4()}")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"
    bad = await a.get("/api/requests/not-a-uuid")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "id"


async def test_errors(loaded_api):
    a, records = loaded_api
    body = (await a.get("/api/errors", since="24h")).json()
    assert body["totalErrors"] == 2
    groups = [(g["statusCode"], g["errorType"], g["count"], g["affectedDomains"]) for g in body["groups"]]
    assert groups == [(200, "api_error", 1, ["a.example"]), (529, "overloaded_error", 1, ["a.example"])]
    g529 = body["groups"][1]
    assert g529["firstSeen"] == g529["lastSeen"] == records["r2"].created_at.isoformat()
    assert [r["id"] for r in body["recent"]] == [str(records["r2"].id), str(records["r5"].id)]
    assert (await a.get("/api/errors", since="1h")).json()["totalErrors"] == 1
    assert (await a.get("/api/errors", since="1h", limit=1, domain="b.example")).json()["groups"] == []
    await a.insert([rec(a.now, timedelta(minutes=2), domain="c.example", status_code=529,
                        error_type="overloaded_error")])
    g = (await a.get("/api/errors")).json()["groups"][0]
    assert (g["statusCode"], g["count"], g["affectedDomains"]) == (529, 2, ["a.example", "c.example"])


async def test_costs(loaded_api):
    a, records = loaded_api
    body = (await a.get("/api/costs", days=30)).json()
    today = a.now.date()
    assert body["days"] == 30 and body["currency"] == "USD" and len(body["daily"]) == 30
    assert body["daily"][-1]["date"] == today.isoformat()
    assert body["daily"][0]["date"] == (today - timedelta(days=29)).isoformat()
    per_day: dict[date, Decimal] = {}
    for r in records.values():
        per_day[r.created_at.date()] = per_day.get(r.created_at.date(), Decimal(0)) + (r.cost_usd or 0)
    running = Decimal(0)
    for d in body["daily"]:
        day = date.fromisoformat(d["date"])
        running += per_day.get(day, Decimal(0))
        assert d["costUsd"] == approx(float(per_day.get(day, 0)))
        assert d["cumulativeUsd"] == approx(float(running))
    assert body["totalCostUsd"] == approx(1.013)
    assert body["todayUsd"] == approx(float(per_day.get(today, 0)))
    month_start = today.replace(day=1)
    mtd = sum((c for d, c in per_day.items() if d >= month_start), Decimal(0))
    assert body["monthToDateUsd"] == approx(float(mtd))
    elapsed = (a.now - datetime.combine(month_start, datetime.min.time(), UTC)).total_seconds() / 86400
    assert body["monthElapsedDays"] == pytest.approx(elapsed, abs=1e-5)
    if elapsed >= 1 / 24:
        assert body["monthEndProjectionUsd"] == pytest.approx(float(mtd) / elapsed * body["monthDays"], rel=1e-5)
    models = {m["model"]: m for m in body["byModel"]}
    assert models[SONNET]["costUsd"] == approx(1.012) and models[SONNET]["requests"] == 4
    mystery = {k: v for k, v in models[MYSTERY].items() if k != "byDimension"}
    assert mystery == {"model": MYSTERY, "costUsd": 0.0, "requests": 1, "unpricedRequests": 1}
    assert [{k: v for k, v in u.items() if k != "tokens"} for u in body["unpriced"]] == [{"model": MYSTERY,
                                                                                         "requests": 1}]
    assert body["unpriced"][0]["tokens"] > 0
    assert body["unpricedRequests"] == 1
    assert body["byModel"][0]["model"] == SONNET
    one = (await a.get("/api/costs", days=1, accountId="acct_2")).json()
    assert len(one["daily"]) == 1 and one["totalCostUsd"] == approx(0.001)


async def test_info_and_health(api: Api):
    info = (await api.get("/api/info")).json()
    assert info["instanceId"] == api.runtime.instance_id
    assert info["database"] == "connected" and info["uptimeSeconds"] >= 0
    assert info["name"] == "claude-nexus-monitor" and info["version"]
    assert datetime.fromisoformat(info["now"]).tzinfo is not None
    h = await api.client.get("/health", headers={"X-Dashboard-Key": ""})
    assert h.status_code == 200 and h.json() == {"status": "ok", "database": "connected"}


async def test_openapi_lists_every_route(api: Api):
    doc = (await api.get("/api/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    for path in ("/health", "/api/info", "/api/stats", "/api/token-usage/current", "/api/token-usage/daily",
                 "/api/timeseries", "/api/requests", "/api/requests/{id}", "/api/errors", "/api/costs",
                 "/api/alerts", "/api/sse", "/api/openapi.json"):
        assert path in doc["paths"], path


async def test_model_filter_matches_the_family_the_monitor_shows(api: Api):
    """``model=sonnet-4-5`` (what every table shows) finds both snapshots of that family, on
    raw rows (``/api/requests``) and rollups (stats > 1 h, timeseries, costs) alike; other families not."""
    dated = "claude-sonnet-4-5-20250929"
    records = [rec(api.now, timedelta(minutes=2), model=SONNET, cost_usd=Decimal("0.5")),
               rec(api.now, timedelta(hours=2), model=dated, cost_usd=Decimal("0.25")),
               rec(api.now, timedelta(minutes=3), model="claude-sonnet-4", cost_usd=Decimal("4")),
               rec(api.now, timedelta(minutes=4), model=HAIKU, cost_usd=Decimal("8"))]
    await api.insert(records)
    for since in ("1h", "24h"):
        s = (await api.get("/api/stats", since=since, model="sonnet-4-5")).json()
        assert s["totalRequests"] == (1 if since == "1h" else 2)
        assert {m["model"] for m in s["byModel"]} == ({SONNET} if since == "1h" else {SONNET, dated})
    # the exact full name still means only itself
    assert (await api.get("/api/stats", since="24h", model=dated)).json()["totalRequests"] == 1
    ts = (await api.get("/api/timeseries", since="24h", bucket=3600, model="sonnet-4-5")).json()
    assert sum(b["requests"] for b in ts["points"]) == 2
    rows = (await api.get("/api/requests", model="sonnet-4-5")).json()["requests"]
    assert sorted(r["model"] for r in rows) == sorted([SONNET, dated])
    costs = (await api.get("/api/costs", days=2, model="sonnet-4-5")).json()  # 2 h ago may be yesterday
    assert costs["totalCostUsd"] == approx(0.75)
    assert {m["model"] for m in costs["byModel"]} == {SONNET, dated}
