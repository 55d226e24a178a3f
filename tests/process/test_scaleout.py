"""Two ``nexus proxy`` processes on one PostgreSQL, one monitor: it sees both (docs/scaling.md)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from nexus.core.dashboard_key import read_key_file
from nexus.core.settings import load_settings
from nexus.sim.mock import MockConfig, MockUpstream
from nexus.store.partitions import ensure_partitions_around
from tests.support.proc import ProxyProcess, api_headers, message_body, wait_rows

pytestmark = pytest.mark.timeout(180)

PER_INSTANCE = 10


async def _collect_sse(url: str, key: str, want: int, out: list[dict[str, Any]], ready: asyncio.Event) -> None:
    """Read ``request`` events from ``url``/api/sse until ``want`` of them arrived."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(30, read=30)) as client:
        async with client.stream("GET", url + "/api/sse", headers={"X-Dashboard-Key": key}) as s:
            assert s.status_code == 200, await s.aread()
            event, data = "message", ""
            async for line in s.aiter_lines():
                if not ready.is_set():
                    ready.set()  # the first heartbeat: subscribed
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data += line[5:].strip()
                elif line == "":
                    if event == "request" and data:
                        out.append(json.loads(data))
                        if len(out) >= want:
                            return
                    event, data = "message", ""


def _stable(stats: dict[str, Any]) -> dict[str, Any]:
    """The parts of /api/stats that depend only on the rows (not on the clock or the instance)."""
    keys = ("totalRequests", "errorCount", "errorRate", "tokens", "costUsd", "unpricedRequests",
            "byModel", "byDomain")
    return {k: stats.get(k) for k in keys}


async def test_two_instances_one_monitor(db_dsn: str, tmp_path: Path) -> None:
    async with MockUpstream(MockConfig(seed=7)) as mock:
        # No DASHBOARD_API_KEY: the first instance generates one, the database shares it.
        a = ProxyProcess(tmp_path / "a", db_dsn, mock.url, dashboard_api_key=None)
        b = ProxyProcess(tmp_path / "b", db_dsn, mock.url, dashboard_api_key=None)
        await asyncio.to_thread(a.start)
        await asyncio.to_thread(b.start)
        try:
            key_a = read_key_file(load_settings(a.env))
            key_b = read_key_file(load_settings(b.env))
            assert key_a and key_a == key_b
            assert (tmp_path / "a" / "dashboard.key").stat().st_mode & 0o077 == 0
            async with httpx.AsyncClient(timeout=10) as client:
                ids = {}
                for name, p in (("a", a), ("b", b)):
                    r = await client.get(p.dashboard_url + "/api/info", headers={"X-Dashboard-Key": key_a})
                    assert r.status_code == 200, r.text
                    ids[name] = r.json()["instanceId"]
            assert ids["a"] != ids["b"]

            # One monitor on each instance; each must see the traffic of both.
            events_a: list[dict[str, Any]] = []
            events_b: list[dict[str, Any]] = []
            ready_a, ready_b = asyncio.Event(), asyncio.Event()
            total = 2 * PER_INSTANCE
            mon_a = asyncio.create_task(_collect_sse(a.dashboard_url, key_a, total, events_a, ready_a))
            mon_b = asyncio.create_task(_collect_sse(b.dashboard_url, key_b, total, events_b, ready_b))
            await asyncio.wait_for(asyncio.gather(ready_a.wait(), ready_b.wait()), 15)

            async with httpx.AsyncClient(timeout=30) as client:
                async def send(p: ProxyProcess, domain: str, i: int) -> None:
                    r = await client.post(p.proxy_url + "/v1/messages", json=message_body(stream=i % 2 == 0),
                                          headers=api_headers(key=f"sk-ant-{domain}-{i % 3}", host=domain))
                    assert r.status_code == 200, r.text

                await asyncio.gather(*(send(a, "team-a.example", i) for i in range(PER_INSTANCE)),
                                     *(send(b, "team-b.example", i) for i in range(PER_INSTANCE)))
            try:
                await asyncio.wait_for(asyncio.gather(mon_a, mon_b), 20)
            finally:
                for t in (mon_a, mon_b):
                    t.cancel()
                    with contextlib.suppress(BaseException):
                        await t

            for seen in (events_a, events_b):
                assert len(seen) == total
                assert len({e["id"] for e in seen}) == total  # no duplicates
                by_instance = {iid: sum(1 for e in seen if e["instanceId"] == iid) for iid in ids.values()}
                assert by_instance == {ids["a"]: PER_INSTANCE, ids["b"]: PER_INSTANCE}
                assert {e["domain"] for e in seen} == {"team-a.example", "team-b.example"}
                assert all(e["tokens"]["output"] > 0 for e in seen)
            assert {e["id"] for e in events_a} == {e["id"] for e in events_b}

            # Stats come from the shared database: identical on both instances.
            assert await wait_rows(db_dsn, total) == total
            async with httpx.AsyncClient(timeout=10) as client:
                stats = []
                for p in (a, b):
                    r = await client.get(p.dashboard_url + "/api/stats", params={"since": "1h"},
                                         headers={"Authorization": f"Bearer {key_a}"})
                    assert r.status_code == 200, r.text
                    stats.append(r.json())
            assert stats[0]["totalRequests"] == total
            assert _stable(stats[0]) == _stable(stats[1])
            domains = {d["domain"]: d["requests"] for d in stats[0]["byDomain"]}
            assert domains == {"team-a.example": PER_INSTANCE, "team-b.example": PER_INSTANCE}
        finally:
            await asyncio.gather(asyncio.to_thread(a.stop), asyncio.to_thread(b.stop))


async def test_partition_creation_is_race_free(db_dsn: str) -> None:
    """Every instance creates partitions ahead at start and hourly: concurrent callers must all succeed."""
    conns = [await asyncpg.connect(db_dsn) for _ in range(4)]
    try:
        results = await asyncio.gather(*(ensure_partitions_around(c) for c in conns), return_exceptions=True)
        assert [r for r in results if isinstance(r, BaseException)] == []
        assert sum(results) == 2 * 9  # two tables x (1 back + today + 7 ahead), made once each
    finally:
        for c in conns:
            await c.close()


async def test_instances_starting_together_share_one_key(db_dsn: str, tmp_path: Path) -> None:
    """Instances started at the same moment (systemd, a deploy) agree on the dashboard key."""
    ps = [ProxyProcess(tmp_path / f"i{i}", db_dsn, "http://127.0.0.1:9", dashboard_api_key=None) for i in range(3)]
    try:
        await asyncio.gather(*(asyncio.to_thread(p.start) for p in ps))
        deadline = time.monotonic() + 15
        while True:
            # An instance that lost a start-up race catches up once its database check passes.
            keys = [read_key_file(load_settings(p.env)) for p in ps]
            if len(set(keys)) == 1 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert len(set(keys)) == 1 and None not in keys
        for p in ps:
            assert p.health()["database"] == "connected"
    finally:
        await asyncio.gather(*(asyncio.to_thread(p.stop) for p in ps))


async def test_listener_skips_own_batches_and_publishes_others(db_dsn: str, tmp_path: Path) -> None:
    """A writer's NOTIFY reaches every instance; only the *other* instances re-publish it.

    The own-batch check is a prefix match on the payload, so an instance id that needs JSON
    escaping must still be recognised (and must not be mistaken for another instance).
    """
    from nexus.core.records import Record
    from nexus.core.settings import Settings
    from nexus.store.pool import create_pool
    from proxy.recorder.journal import Journal
    from proxy.recorder.notify import NotifyListener
    from proxy.recorder.recorder import Recorder
    from proxy.runtime import Runtime

    settings = Settings.of(database_url=db_dsn, nexus_data_dir=tmp_path)
    writer_rt = Runtime(settings, instance_id='host "a"\\1')
    other_rt = Runtime(settings, instance_id="host-b")
    writer_rt.pool = await create_pool(db_dsn)
    writer_rt.db_connected = True
    listeners = [NotifyListener(writer_rt, db_dsn), NotifyListener(other_rt, db_dsn)]
    for listener in listeners:
        await listener.start()
    try:
        for listener in listeners:
            await asyncio.wait_for(listener.connected.wait(), 10)
        recorder = Recorder(writer_rt, Journal(tmp_path / "journal.jsonl"))
        batch = [Record(domain="api.anthropic.com", model="claude-sonnet-4-5", status_code=200,
                        instance_id=writer_rt.instance_id) for _ in range(300)]  # several NOTIFYs
        assert await recorder._write(batch, [None] * len(batch))  # events built by the writer
        deadline = time.monotonic() + 10
        while other_rt.broker.published < len(batch) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # the writer's own copy would have arrived by now too
        assert other_rt.broker.published == len(batch)
        assert [e.data["id"] for e in other_rt.broker.recent(len(batch))] == [str(r.id) for r in batch]
        assert writer_rt.broker.published == 0
        assert listeners[0].received == 0 and listeners[1].received == len(batch)
    finally:
        for listener in listeners:
            await listener.stop()
        await writer_rt.pool.close()
