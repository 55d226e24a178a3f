"""The monitor shows the billing dimensions, driven by Pilot against a real proxy + API + mock upstream.

The Costs panel shows web-search spend and marks the fast-mode share; the request drill-down shows
each dimension and the rates applied. Every number compared comes from the API (asked over HTTP).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.support.traffic import api_get, wait_total
from tests.tui.test_tui_live import make_app, until
from tui import fmt
from tui.panels.costs import FAST_MARK, CostsPanel, to_plain
from tui.screens.request import RequestScreen, detail_renderable

HEADERS = {"x-api-key": "sk-ant-tui-billing", "anthropic-version": "2023-06-01", "x-mock-input-tokens": "1000",
           "x-mock-output-tokens": "400"}
WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}


async def _seed(stack: Any) -> None:
    msgs = [{"role": "user", "content": "look it up"}]
    async with httpx.AsyncClient(base_url=stack.proxy_url, timeout=30) as c:
        for body in (
            {"model": "claude-opus-5-5", "speed": "fast", "inference_geo": "us", "tools": [WEB_SEARCH],
             "thinking": {"type": "enabled", "budget_tokens": 1024}},
            {"model": "claude-opus-5-5", "speed": "fast", "tools": [WEB_SEARCH]},
            {"model": "claude-sonnet-4-5"},
        ):
            r = await c.post("/v1/messages", headers=HEADERS, json={**body, "max_tokens": 2048, "messages": msgs})
            assert r.status_code == 200, r.text
    await wait_total(stack, 3)


async def test_costs_panel_shows_web_search_spend_and_the_fast_share(stack: Any, tmp_path: Path) -> None:
    await _seed(stack)
    costs = await api_get(stack, "/api/costs", days=31)
    dims = costs["byDimension"]
    assert dims["webSearch"]["searches"] > 0 and dims["fast"]["requests"] == 2
    app = make_app(stack, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        panel = app.query_one(CostsPanel)
        await until(pilot, lambda: "web search" in panel.plain, what="costs with web search")
        text = panel.plain
        line = next(x for x in text.splitlines() if "web search" in x)
        assert fmt.usd(dims["webSearch"]["costUsd"]) in line and f"{dims['webSearch']['searches']} srch" in line
        fast = next(x for x in text.splitlines() if "fast mode" in x)
        assert FAST_MARK in fast and fmt.usd(dims["fast"]["costUsd"]) in fast
        assert f"{dims['fast']['shareOfCost']:.0%} of all" in fast


async def test_drill_down_shows_each_dimension_and_the_rates_applied(stack: Any, tmp_path: Path) -> None:
    await _seed(stack)
    rows = (await api_get(stack, "/api/requests", limit=10))["requests"]
    row = next(r for r in rows if r["inferenceGeo"] == "us")
    detail = await api_get(stack, f"/api/requests/{row['id']}")
    app = make_app(stack, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.client is not None, what="client")
        app.push_screen(RequestScreen(app.client, row["id"]))
        await until(pilot, lambda: isinstance(app.screen, RequestScreen) and app.screen.detail is not None,
                    what="detail loaded")
        screen = app.screen
        assert isinstance(screen, RequestScreen) and screen.detail is not None
        text = to_plain(detail_renderable(screen.detail), width=120)
    for label, value in (("speed", "fast"), ("service tier", row["serviceTier"]), ("inference geo", "us"),
                         ("web searches", str(row["webSearchRequests"])), ("thinking tokens", "200"),
                         ("price source", row["priceSource"])):
        assert any(ln.strip().startswith(label) and value in ln for ln in text.splitlines()), label
    rates = detail["pricing"]["ratesPerMillionTokens"]
    assert any(ln.strip().startswith("input") and f"{rates['input']:g}" in ln for ln in text.splitlines())
    assert any(ln.strip().startswith("output") and f"{rates['output']:g}" in ln for ln in text.splitlines())
    assert "inference_geo us x1.1" in text
    assert fmt.usd(detail["pricing"]["totalUsd"]) in text
