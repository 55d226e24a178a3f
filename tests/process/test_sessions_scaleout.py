"""Two ``nexus proxy`` processes on one database, the same Claude Code sessions through both at once.

The sessions read model (``api_sessions``, ``api_session_agents``, ``api_session_tags``) is
upserted by each instance's writer in the same transaction as its rows: after mixed concurrent
traffic the rollups must equal a fresh aggregation of the raw rows — nothing lost or doubled.
Real processes, as two instances run in production (docs/scaling.md).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import anthropic

from nexus.sim.mock import MockUpstream
from tests.http.test_sessions_e2e import (
    HAIKU,
    KEY,
    MODEL,
    S1,
    S2,
    S3,
    assert_rollup_is_fresh,
    cc_headers,
    send,
)
from tests.support.proc import ProxyProcess, fetch_rows, wait_rows


async def test_rollup_equals_fresh_aggregation_across_two_instances(db_dsn: str, tmp_path: Path) -> None:
    async with MockUpstream() as mock:
        procs = [ProxyProcess(tmp_path / name, db_dsn, mock.url, INSTANCE_ID=f"inst-{name}") for name in ("a", "b")]
        for p in procs:
            await asyncio.to_thread(p.start)
        try:
            clients = [anthropic.AsyncAnthropic(api_key=KEY, base_url=p.proxy_url, max_retries=0) for p in procs]

            async def one(i: int) -> None:
                sid = (S1, S2, S3)[i % 3]
                agent = None if i % 4 == 0 else f"agent-{i % 3}"
                await send(clients[i % 2], cc_headers(sid, agent, "agent-0" if agent == "agent-2" else None,
                                                      project=("apollo", "zeus")[i % 2]), sid,
                           stream=i % 5 == 0, error=i % 7 == 0, model=(MODEL, HAIKU)[i % 2])

            await asyncio.gather(*(one(i) for i in range(60)))
            assert await wait_rows(db_dsn, 60) == 60
            rows = await fetch_rows(db_dsn)
            assert {r["instance_id"] for r in rows} == {"inst-a", "inst-b"}
            # Rows and rollups commit in one transaction, so the 60 rows imply their rollups.
            await assert_rollup_is_fresh(db_dsn)
        finally:
            for p in procs:
                await asyncio.to_thread(p.stop)
