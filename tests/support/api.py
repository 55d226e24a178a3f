"""Shared pieces of the dashboard API tests (no tests here): a running app and a known data set.

The data set is small on purpose so every number the API returns can be worked out by hand; the
tests also recompute each figure from the Records with plain Python as an independent reference.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest

from nexus.core.records import Record
from nexus.core.settings import Settings
from nexus.store.pool import create_pool
from nexus.store.write import PartitionCache, insert_records
from proxy.api.app import create_dashboard_app
from proxy.runtime import Runtime
from proxy.serve import RunningServer, start_server

KEY = "test-dashboard-key-0123456789"
SONNET = "claude-sonnet-4-5"
HAIKU = "claude-haiku-4-5"
MYSTERY = "mystery-model"
OVERLOADED_BODY = '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'


def fixed_now() -> datetime:
    """Half past a minute, so records seconds before it share its minute and edges are exercised."""
    real = datetime.now(UTC).replace(second=0, microsecond=0)
    return real - timedelta(minutes=1) + timedelta(seconds=30)


def rec(now: datetime, ago: timedelta, **kw: Any) -> Record:
    base: dict[str, Any] = dict(created_at=now - ago, domain="a.example", account_id="acct_1", model=SONNET,
                                status_code=200, response_time_ms=100.0, cost_usd=Decimal("0"))
    base.update(kw)
    return Record(**base)


SESSION_A = "sess-a"


def dataset(now: datetime) -> dict[str, Record]:
    """Six records: two in the current minute, two within the hour, one 3 h ago, one 2 days ago.

    r1, r3, r5 and r6 belong to session ``sess-a`` (r3 by its sub-agent); r1 and r5 carry the tag
    project=apollo, r5 also team=infra.
    """
    return {
        "r1": rec(now, timedelta(seconds=10), input_tokens=100, output_tokens=50,
                  cache_creation_input_tokens=10, cache_read_input_tokens=1000, response_time_ms=100.0,
                  ttft_ms=42.5, cost_usd=Decimal("0.01"), stream=True, request_id="req_1",
                  session_id=SESSION_A, tags={"project": "apollo"}),
        "r2": rec(now, timedelta(seconds=20), status_code=529, error_type="overloaded_error",
                  error_message="Overloaded", response_time_ms=2000.0,
                  request_headers={"anthropic-version": "2023-06-01", "x-api-key": "sk-ant-secret"},
                  response_headers={"request-id": "req_2", "content-type": "application/json"},
                  request_body='{"model":"claude-sonnet-4-5"}', response_body=OVERLOADED_BODY),
        "r3": rec(now, timedelta(minutes=5), domain="b.example", account_id="acct_2", model=HAIKU,
                  input_tokens=10, output_tokens=5, response_time_ms=40.0, cost_usd=Decimal("0.001"),
                  session_id=SESSION_A, agent_id="agent-1"),
        "r4": rec(now, timedelta(minutes=30), domain="b.example", account_id="acct_2", model=MYSTERY,
                  input_tokens=7, output_tokens=3, response_time_ms=300.0, cost_usd=None),
        "r5": rec(now, timedelta(hours=3), error_type="api_error", input_tokens=20, output_tokens=30,
                  response_time_ms=700.0, cost_usd=Decimal("0.002"), session_id=SESSION_A,
                  tags={"project": "apollo", "team": "infra"}),
        "r6": rec(now, timedelta(days=2), input_tokens=1000, output_tokens=1000, response_time_ms=50.0,
                  cost_usd=Decimal("1.0"), session_id=SESSION_A),
    }


@dataclass
class Api:
    """A dashboard app served by Hypercorn on loopback, with an authenticated client."""

    url: str
    runtime: Runtime
    server: RunningServer
    client: httpx.AsyncClient
    pool: asyncpg.Pool
    now: datetime
    dsn: str

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.client.get(path, params=params or None)

    async def insert(self, records: list[Record]) -> None:
        async with self.pool.acquire() as conn:
            await insert_records(conn, records, PartitionCache())


async def start_api(dsn: str, now: datetime | None = None, **app_knobs: Any) -> Api:
    pool = await create_pool(dsn, min_size=1, max_size=4)
    settings = Settings.of(dashboard_api_key=KEY, slow_query_threshold_ms=5000)
    the_now = now or fixed_now()
    runtime = Runtime(settings=settings, pool=pool, dashboard_key=KEY, db_connected=True,
                      clock=lambda: the_now)
    app = create_dashboard_app(runtime, **{"auth_max_failures": 10_000, **app_knobs})
    server = await start_server(app, "127.0.0.1", 0)
    client = httpx.AsyncClient(base_url=server.url, headers={"X-Dashboard-Key": KEY}, timeout=10)
    return Api(server.url, runtime, server, client, pool, the_now, dsn)


async def stop_api(api: Api) -> None:
    await api.client.aclose()
    await api.server.stop(timeout=3)
    await api.pool.close()


@pytest.fixture
async def api(db_dsn: str) -> AsyncIterator[Api]:
    """An API over an empty database."""
    a = await start_api(db_dsn)
    try:
        yield a
    finally:
        await stop_api(a)


@pytest.fixture
async def loaded_api(api: Api) -> AsyncIterator[tuple[Api, dict[str, Record]]]:
    """The API over ``dataset()``."""
    records = dataset(api.now)
    await api.insert(list(records.values()))
    yield api, records
