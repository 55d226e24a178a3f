"""The API when the database is away: /health says so with 503, data routes answer 503 JSON, never 500."""

from __future__ import annotations

import httpx

from nexus.core.settings import Settings
from nexus.store.pool import create_pool
from proxy.api.app import create_dashboard_app
from proxy.runtime import Runtime
from proxy.serve import start_server
from tests.support.api import KEY, start_api, stop_api
from tests.support.db import create_test_database, drop_test_database

DATA_ROUTES = ["/api/stats", "/api/token-usage/current", "/api/token-usage/daily", "/api/timeseries",
               "/api/requests", "/api/requests/0b9b6a52-3c1e-4d59-9a57-7f3b2f1f3c11", "/api/errors",
               "/api/costs"]


async def _assert_degraded(url: str) -> None:
    async with httpx.AsyncClient(base_url=url, headers={"X-Dashboard-Key": KEY}, timeout=10) as c:
        h = await c.get("/health")
        assert h.status_code == 503
        assert h.json() == {"status": "degraded", "database": "disconnected"}
        for path in DATA_ROUTES:
            r = await c.get(path)
            assert r.status_code == 503, (path, r.status_code, r.text[:200])
            assert r.json()["error"]["type"] == "database_unavailable"
        info = await c.get("/api/info")
        assert info.status_code == 200 and info.json()["database"] == "disconnected"
        async with c.stream("GET", "/api/sse") as s:  # the live stream does not need the database
            assert s.status_code == 200


async def test_no_pool_is_503():
    runtime = Runtime(settings=Settings(), pool=None, dashboard_key=KEY)
    server = await start_server(create_dashboard_app(runtime), "127.0.0.1", 0)
    try:
        await _assert_degraded(server.url)
    finally:
        await server.stop(timeout=3)


async def test_closed_pool_is_503(db_dsn):
    a = await start_api(db_dsn)
    try:
        assert (await a.client.get("/health")).status_code == 200
        await a.pool.close()
        await _assert_degraded(a.url)
    finally:
        await a.client.aclose()
        await a.server.stop(timeout=3)


async def test_dropped_database_is_503_and_recovers_with_a_new_pool(pg_admin_dsn, pg_template):
    dsn = await create_test_database(pg_admin_dsn, pg_template)
    a = await start_api(dsn)
    try:
        assert (await a.client.get("/api/stats")).status_code == 200
        await drop_test_database(pg_admin_dsn, dsn)  # WITH (FORCE): live connections are killed
        await _assert_degraded(a.url)
        # the database comes back (here: another one) and the runtime gets a new pool
        dsn2 = await create_test_database(pg_admin_dsn, pg_template)
        old = a.pool
        a.runtime.pool = a.pool = await create_pool(dsn2, min_size=1, max_size=2)
        old.terminate()
        assert (await a.client.get("/health")).json() == {"status": "ok", "database": "connected"}
        assert (await a.client.get("/api/stats")).status_code == 200
        await stop_api(a)
        await drop_test_database(pg_admin_dsn, dsn2)
    finally:
        await drop_test_database(pg_admin_dsn, dsn)
