"""Graceful shutdown of a real ``nexus proxy``: finish what is in flight, flush every record, exit 0."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import pytest

from nexus.sim.mock import MockConfig, MockUpstream
from nexus.store.embedded import EmbeddedPostgres
from tests.support.proc import ProxyProcess, api_headers, count_rows, fetch_rows, message_body, wait_rows

pytestmark = pytest.mark.timeout(180)

STREAMS = 50


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_signal_with_open_streams_completes_and_records_all(sig: int, db_dsn: str, tmp_path: Path) -> None:
    """50 streams of ~2 s each are open when the signal arrives: all finish, all 50 are recorded."""
    async with MockUpstream(MockConfig(seed=2)) as mock:
        p = ProxyProcess(tmp_path / "data", db_dsn, mock.url, shutdown_grace_s=20)
        await asyncio.to_thread(p.start)
        try:
            first_bytes = asyncio.Semaphore(0)
            bodies: list[bytes] = []

            async def one(client: httpx.AsyncClient, i: int) -> None:
                async with client.stream("POST", p.proxy_url + "/v1/messages", json=message_body(stream=True),
                                         headers=api_headers(key=f"sk-ant-shutdown-{i}",
                                                             x_mock_event_delay_ms="150",
                                                             x_mock_events="10")) as s:
                    assert s.status_code == 200
                    body = b""
                    async for part in s.aiter_bytes():
                        if not body:
                            first_bytes.release()
                        body += part
                    bodies.append(body)

            async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=STREAMS + 5)) as client:
                tasks = [asyncio.create_task(one(client, i)) for i in range(STREAMS)]
                for _ in range(STREAMS):
                    await asyncio.wait_for(first_bytes.acquire(), 30)
                t_signal = time.monotonic()
                p.signal(sig)
                # The listening socket closes at once: a newcomer is not served.
                await asyncio.sleep(0.3)
                with pytest.raises(httpx.TransportError):
                    async with httpx.AsyncClient(timeout=3) as late:
                        await late.get(p.proxy_url + "/health")
                results = await asyncio.gather(*tasks, return_exceptions=True)
            errors = [r for r in results if isinstance(r, BaseException)]
            assert errors == [], errors[:3]
            assert len(bodies) == STREAMS
            assert all(b"event: message_stop" in b for b in bodies)
            code = await asyncio.to_thread(p.wait, 60)
            assert code == 0, p.log_text()[-3000:]
            assert time.monotonic() - t_signal < 15
            # Flushed before exit: the rows are there already, no waiting on a writer.
            assert await count_rows(db_dsn) == STREAMS
            rows = await fetch_rows(db_dsn)
            assert {r["status_code"] for r in rows} == {200}
            assert all(r["output_tokens"] > 0 and r["input_tokens"] > 0 for r in rows)
            assert "Traceback" not in p.log_text()
        finally:
            await asyncio.to_thread(p.stop)


async def test_grace_period_bounds_shutdown(db_dsn: str, tmp_path: Path) -> None:
    """A stream longer than SHUTDOWN_GRACE_S does not hold the process: it exits 0 and keeps the record."""
    async with MockUpstream(MockConfig(seed=3)) as mock:
        p = ProxyProcess(tmp_path / "data", db_dsn, mock.url, shutdown_grace_s=1.5)
        await asyncio.to_thread(p.start)
        try:
            async with httpx.AsyncClient(timeout=60) as client:
                async with client.stream("POST", p.proxy_url + "/v1/messages", json=message_body(stream=True),
                                         headers=api_headers(x_mock_event_delay_ms="500",
                                                             x_mock_events="60")) as s:
                    it = s.aiter_bytes()
                    await it.__anext__()
                    t0 = time.monotonic()
                    p.signal(signal.SIGTERM)
                    with pytest.raises(httpx.HTTPError):
                        async for _ in it:
                            pass
            code = await asyncio.to_thread(p.wait, 30)
            assert code == 0, p.log_text()[-3000:]
            assert time.monotonic() - t0 < 12
            assert await count_rows(db_dsn) == 1
        finally:
            await asyncio.to_thread(p.stop)




async def test_shutdown_without_database_journals_and_restart_replays(own_pg: EmbeddedPostgres,
                                                                      tmp_path: Path) -> None:
    """Records made while the database is down survive a shutdown on disk and land at next start."""
    n = 20
    dsn = own_pg.dsn()
    async with MockUpstream(MockConfig(seed=4)) as mock:
        p = ProxyProcess(tmp_path / "data", dsn, mock.url)
        await asyncio.to_thread(p.start)
        try:
            await asyncio.to_thread(own_pg.stop, "fast")
            async with httpx.AsyncClient(timeout=30) as client:
                for i in range(n):
                    r = await client.post(p.proxy_url + "/v1/messages", json=message_body(stream=i % 2 == 0),
                                          headers=api_headers())
                    assert r.status_code == 200
            p.signal(signal.SIGTERM)
            assert await asyncio.to_thread(p.wait, 60) == 0
        finally:
            await asyncio.to_thread(p.stop)
        journals = list((tmp_path / "data").glob("journal*"))
        assert journals and sum(j.stat().st_size for j in journals) > 0, "nothing journalled"

        await asyncio.to_thread(own_pg.start)
        again = ProxyProcess(tmp_path / "data", dsn, mock.url)
        again.env.update({k: p.env[k] for k in ("PROXY_PORT", "DASHBOARD_PORT")})
        await asyncio.to_thread(again.start)
        try:
            assert await wait_rows(dsn, n, timeout=30) == n
            deadline = time.monotonic() + 10
            while again.health()["journal_records"] and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert again.health()["journal_records"] == 0
            assert await count_rows(dsn) == n
        finally:
            await asyncio.to_thread(again.stop)
