"""``/api/sessions``, ``/api/sessions/{id}`` and the ``sessionId=`` / ``tag=`` filters, over the known data set.

Every figure is worked out by hand from ``tests/support/api.py``'s ``dataset()``: r1, r3, r5, r6 are
session ``sess-a`` (r3 by ``agent-1``), r1 and r5 carry project=apollo, r5 also team=infra.
"""

from __future__ import annotations

import pytest

from tests.support.api import HAIKU, SESSION_A, SONNET


def approx(x: float) -> object:
    return pytest.approx(x, abs=1e-9)


async def test_stats_filtered_by_session_and_tag(loaded_api):
    a, _ = loaded_api
    s = (await a.get("/api/stats", sessionId=SESSION_A)).json()
    assert (s["totalRequests"], s["errorCount"]) == (3, 1)
    assert s["tokens"] == {"input": 130, "output": 85, "cacheCreation": 10, "cacheRead": 1000, "total": 1225}
    assert s["costUsd"] == approx(0.013)
    week = (await a.get("/api/stats", sessionId=SESSION_A, since="7d")).json()
    assert week["totalRequests"] == 4 and week["costUsd"] == approx(1.013)
    assert {m["model"]: m["requests"] for m in week["byModel"]} == {SONNET: 3, HAIKU: 1}
    apollo = (await a.get("/api/stats", tag="project:apollo")).json()
    assert apollo["totalRequests"] == 2 and apollo["costUsd"] == approx(0.012) and apollo["errorCount"] == 1
    assert (await a.get("/api/stats", tag="team=infra")).json()["totalRequests"] == 1
    assert (await a.get("/api/stats", tag="project:zeus")).json()["totalRequests"] == 0
    both = (await a.get("/api/stats", tag="project:apollo", sessionId=SESSION_A, model=SONNET)).json()
    assert both["totalRequests"] == 2
    assert (await a.get("/api/stats", sessionId="other")).json()["totalRequests"] == 0


async def test_timeseries_costs_errors_requests_filtered(loaded_api):
    a, recs = loaded_api
    ts = (await a.get("/api/timeseries", since="4h", bucket=3600, sessionId=SESSION_A)).json()
    assert sum(p["requests"] for p in ts["points"]) == 3
    assert sum(p["errors"] for p in ts["points"]) == 1
    assert sum(p["costUsd"] for p in ts["points"]) == approx(0.013)
    ts_tag = (await a.get("/api/timeseries", since="4h", bucket=3600, tag="project:apollo")).json()
    assert sum(p["requests"] for p in ts_tag["points"]) == 2

    costs = (await a.get("/api/costs", days=30, sessionId=SESSION_A)).json()
    assert costs["totalCostUsd"] == approx(1.013)
    assert (await a.get("/api/costs", days=30, tag="project:apollo")).json()["totalCostUsd"] == approx(0.012)

    errors = (await a.get("/api/errors", sessionId=SESSION_A)).json()
    assert errors["totalErrors"] == 1 and [r["id"] for r in errors["recent"]] == [str(recs["r5"].id)]
    assert (await a.get("/api/errors", tag="project:zeus")).json()["totalErrors"] == 0

    async def ids(**params: str) -> list[str]:
        return [r["id"] for r in (await a.get("/api/requests", **params)).json()["requests"]]

    assert await ids(sessionId=SESSION_A) == [str(recs[k].id) for k in ("r1", "r3", "r5", "r6")]
    assert await ids(tag="project:apollo") == [str(recs[k].id) for k in ("r1", "r5")]
    assert await ids(sessionId=SESSION_A, tag="team:infra") == [str(recs["r5"].id)]
    assert await ids(sessionId=SESSION_A, model=HAIKU) == [str(recs["r3"].id)]
    assert await ids(sessionId=SESSION_A, status="529") == []
    row = (await a.get("/api/requests", sessionId=SESSION_A, limit=1)).json()["requests"][0]
    assert (row["sessionId"], row["agentId"], row["tags"]) == (SESSION_A, None, {"project": "apollo"})


async def test_sessions_list(loaded_api):
    a, recs = loaded_api
    body = (await a.get("/api/sessions")).json()
    assert body["nextCursor"] is None
    [s] = body["sessions"]
    assert s == {
        "sessionId": SESSION_A, "accountId": "acct_1", "client": None,
        "firstSeen": recs["r6"].created_at.isoformat(), "lastSeen": recs["r1"].created_at.isoformat(),
        "active": True, "requests": 4, "errors": 1,
        "tokens": {"input": 1130, "output": 1085, "cacheCreation": 10, "cacheRead": 1000, "total": 3225},
        "costUsd": approx(1.013), "unpricedRequests": 0, "models": sorted([HAIKU, SONNET]), "agents": 1,
        "tags": {"project": "apollo", "team": "infra"}, "quotaShare": None,  # acct_1 reports no windows
    }
    assert (await a.get("/api/sessions", active="false")).json()["sessions"] == []
    assert len((await a.get("/api/sessions", active="true")).json()["sessions"]) == 1
    assert len((await a.get("/api/sessions", tag="team:infra")).json()["sessions"]) == 1
    assert (await a.get("/api/sessions", tag="project:zeus")).json()["sessions"] == []
    assert (await a.get("/api/sessions", accountId="acct_2")).json()["sessions"] == []
    assert (await a.get("/api/sessions", since="1s")).json()["sessions"] == []


async def test_session_detail_and_agent_tree(loaded_api):
    a, recs = loaded_api
    d = (await a.get(f"/api/sessions/{SESSION_A}")).json()
    assert d["session"]["sessionId"] == SESSION_A and d["quotaShare"] is None
    main, sub = d["agents"]
    assert (main["agentId"], main["depth"], main["requests"], main["errors"]) == (None, 0, 3, 1)
    assert main["costUsd"] == approx(1.012) and main["tokens"]["input"] == 1120
    assert (sub["agentId"], sub["parentAgentId"], sub["depth"], sub["requests"]) == ("agent-1", None, 1, 1)
    assert sub["costUsd"] == approx(0.001) and sub["models"] == [HAIKU]
    assert [r["id"] for r in d["requests"]] == [str(recs[k].id) for k in ("r1", "r3", "r5", "r6")]
    assert len((await a.get(f"/api/sessions/{SESSION_A}", limit=2)).json()["requests"]) == 2
    r = await a.get("/api/sessions/nobody")
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"
    r = await a.get("/api/sessions/a%20b")
    assert r.status_code == 400 and r.json()["error"]["param"] == "id"


async def test_sessions_paging(api):
    from datetime import timedelta

    from tests.support.api import rec

    records = [rec(api.now, timedelta(minutes=i), session_id=f"s{i:02d}") for i in range(7)]
    await api.insert(records)
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params = {"limit": "3", **({"before": cursor} if cursor else {})}
        page = (await api.get("/api/sessions", **params)).json()
        seen += [s["sessionId"] for s in page["sessions"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == [f"s{i:02d}" for i in range(7)]


@pytest.mark.parametrize(("path", "params", "param"), [
    ("/api/stats", {"tag": "project"}, "tag"),
    ("/api/stats", {"tag": ":apollo"}, "tag"),
    ("/api/requests", {"sessionId": "a b"}, "sessionId"),
    ("/api/timeseries", {"sessionId": "x" * 129}, "sessionId"),
    ("/api/sessions", {"active": "maybe"}, "active"),
    ("/api/sessions", {"before": "nonsense"}, "before"),
    ("/api/sessions", {"sessionId": "s"}, "sessionId"),  # not a parameter of this route
    ("/api/token-usage/current", {"tag": "project:apollo"}, "tag"),  # nor of this one
])
async def test_bad_session_params(api, path, params, param):
    r = await api.get(path, **params)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param
