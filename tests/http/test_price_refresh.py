"""``PRICES_AUTO_UPDATE=1``: the proxy refreshes its price dataset in the background from a real HTTP
server on loopback, swaps tables without a restart, and keeps its prices when the source goes bad.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from nexus.pricing import BUNDLED_LABEL
from proxy.service import ProxyService
from tests.support.db import Stack, stack_settings
from tests.support.prices import newer_dataset


async def until(cond: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def dataset_server():
    """Serves ``state["body"]`` (bytes) or ``state["status"]`` at /data.json; counts hits."""
    state: dict[str, Any] = {"body": json.dumps(newer_dataset()).encode(), "status": 200, "hits": 0}

    async def handler(request: web.Request) -> web.Response:
        state["hits"] += 1
        if state["status"] != 200:
            return web.Response(status=state["status"])
        return web.Response(body=state["body"], content_type="application/json")

    app = web.Application()
    app.router.add_get("/data.json", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield state, f"http://127.0.0.1:{port}/data.json"
    finally:
        await runner.cleanup()


async def test_background_refresh_swaps_prices_and_survives_a_bad_source(
        db_dsn: str, tmp_path: Path, mock_upstream: Any, dataset_server: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    state, url = dataset_server
    settings = stack_settings(tmp_path, db_dsn, mock_upstream.url, PRICES_AUTO_UPDATE="1", PRICES_UPDATE_URL=url,
                              PRICES_UPDATE_INTERVAL_S="0.2")
    service = ProxyService(settings)
    info = await service.start()
    stack = Stack(service, info, mock_upstream, db_dsn)
    try:
        rt = stack.runtime
        await until(lambda: not rt.pricing.dataset.is_bundled, what="the first refresh")
        assert rt.pricing.dataset.label.startswith("genai-prices data ")
        async with httpx.AsyncClient(base_url=stack.proxy_url, timeout=30) as c:
            r = await c.post("/v1/messages", headers={"x-api-key": "sk-ant-refresh", "anthropic-version": "2023-06-01",
                                                      "x-mock-input-tokens": "1000", "x-mock-output-tokens": "1000"},
                             json={"model": "claude-nova-6", "max_tokens": 16,
                                   "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 200
        rows = await stack.wait_rows(1)
        # claude-nova-6 exists only in the refreshed data: 3 / 15 per MTok -> 0.003 + 0.015
        assert rows[0]["cost_usd"] == Decimal("0.018") and rows[0]["price_source"].startswith("genai-prices data ")

        # The source goes bad: corrupt JSON, then 503. The refreshed prices stay; one warning only.
        caplog.set_level(logging.DEBUG, logger="nexus.server")
        state["body"] = b"[{"
        hits = state["hits"]
        await until(lambda: state["hits"] >= hits + 2, what="two failed refreshes")
        state["status"] = 503
        await until(lambda: state["hits"] >= hits + 4, what="two more failed refreshes")
        assert not rt.pricing.dataset.is_bundled
        assert rt.pricing.cost("claude-nova-6", _usage(), rows[0]["created_at"]) == Decimal("0.018")
        failures = [r for r in caplog.records if "price refresh failed" in r.getMessage()]
        assert len(failures) >= 3
        assert [r.levelno for r in failures].count(logging.WARNING) == 1
    finally:
        await service.stop()


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _usage():
    from nexus.core.usage import Usage

    return Usage(input_tokens=1000, output_tokens=1000)


async def test_offline_the_bundled_prices_stay(db_dsn: str, tmp_path: Path, mock_upstream: Any,
                                               caplog: pytest.LogCaptureFixture) -> None:
    settings = stack_settings(tmp_path, db_dsn, mock_upstream.url, PRICES_AUTO_UPDATE="1",
                              PRICES_UPDATE_URL="http://127.0.0.1:9/data.json", PRICES_UPDATE_INTERVAL_S="3600")
    service = ProxyService(settings)
    await service.start()
    try:
        task = next(t for t in service.tasks if t.get_name() == "nexus-price-refresh")
        await until(lambda: any("price refresh failed" in r.getMessage() for r in caplog.records),
                    what="the failed refresh")
        assert not task.done() and service.runtime.pricing.dataset.label == BUNDLED_LABEL
        assert service.runtime.pricing.cost("claude-fable-5-1", _usage(), _now()) == Decimal("0.06")
    finally:
        await service.stop()
    assert task.done()
