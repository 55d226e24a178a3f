"""Upstream and database faults against a real ``nexus proxy`` process (docs/reliability.md).

Each test starts the real command line in a subprocess with a loopback upstream that misbehaves
on purpose, and checks the three things the fault table promises: what the client sees (an
Anthropic-shaped 502/504 or an in-band error event), that the upstream connection is closed,
and what lands in ``api_requests``. Timeouts are shortened through the environment so the whole
file runs in well under a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from nexus.sim.mock import MockConfig, MockUpstream
from nexus.store.embedded import EmbeddedPostgres
from nexus.store.supervisor import PostgresSupervisor
from tests.support.proc import ProxyProcess, api_headers, closed_port, fetch_rows, message_body, wait_rows

pytestmark = pytest.mark.timeout(180)


def _sse_events(text: str) -> list[tuple[str, dict]]:
    out: list[tuple[str, dict]] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        event, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if data:
            with contextlib.suppress(ValueError):
                out.append((event, json.loads("\n".join(data))))
    return out


def _assert_anthropic_error(resp: httpx.Response, status: int, error_type: str | tuple[str, ...]) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["type"] == "error"
    types = (error_type,) if isinstance(error_type, str) else error_type
    assert body["error"]["type"] in types, body
    assert body["error"]["message"]


@pytest.fixture
def tmp_data(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
async def mock() -> AsyncIterator[MockUpstream]:
    async with MockUpstream(MockConfig(seed=5)) as m:
        yield m


@pytest.fixture
async def proxy_on_mock(mock: MockUpstream, db_dsn: str, tmp_data: Path) -> AsyncIterator[ProxyProcess]:
    """One proxy with a 1 s read timeout and a 4 s overall deadline in front of the mock."""
    p = ProxyProcess(tmp_data, db_dsn, mock.url, upstream_read_timeout_s=1, request_deadline_s=4,
                     store_bodies="errors")
    await asyncio.to_thread(p.start)
    try:
        yield p
    finally:
        await asyncio.to_thread(p.stop)


# -- failures before any response ----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["refused", "dns", "tls"])
async def test_unreachable_upstreams_are_502_and_recorded(kind: str, db_dsn: str, tmp_data: Path,
                                                          mock: MockUpstream) -> None:
    """Connection refused, DNS failure, TLS error: 502 api_error to the client, one error record."""
    upstream = {
        "refused": f"http://127.0.0.1:{closed_port()}",
        "dns": "http://nonexistent.invalid",
        # TLS to a plain-HTTP server: the handshake gets an HTTP answer and fails.
        "tls": mock.url.replace("http://", "https://"),
    }[kind]
    expected = {
        "refused": ("upstream_unreachable",),
        "dns": ("upstream_dns_error", "upstream_unreachable"),
        "tls": ("upstream_tls_error", "upstream_unreachable", "upstream_disconnected", "upstream_error"),
    }[kind]
    p = ProxyProcess(tmp_data, db_dsn, upstream, upstream_connect_timeout_s=5)
    await asyncio.to_thread(p.start)
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            t0 = time.monotonic()
            r = await client.post(p.proxy_url + "/v1/messages", json=message_body(), headers=api_headers())
            elapsed = time.monotonic() - t0
        _assert_anthropic_error(r, 502, "api_error")
        assert elapsed < 10
        assert await wait_rows(db_dsn, 1) == 1
        (row,) = await fetch_rows(db_dsn)
        assert row["status_code"] == 502
        assert row["error_type"] in expected
        assert row["model"] == "claude-sonnet-4-5-20250929"
        assert row["output_tokens"] == 0
    finally:
        await asyncio.to_thread(p.stop)


async def test_drop_before_headers_is_502(proxy_on_mock: ProxyProcess, db_dsn: str) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        r = await client.post(proxy_on_mock.proxy_url + "/v1/messages", json=message_body(),
                              headers=api_headers(x_mock_drop="before-headers"))
    _assert_anthropic_error(r, 502, "api_error")
    assert await wait_rows(db_dsn, 1) == 1
    (row,) = await fetch_rows(db_dsn)
    assert row["status_code"] == 502
    assert row["error_type"] == "upstream_disconnected"


@pytest.mark.parametrize(("status", "etype"), [(429, "rate_limit_error"), (529, "overloaded_error"),
                                               (500, "api_error")])
async def test_upstream_error_statuses_pass_through(proxy_on_mock: ProxyProcess, db_dsn: str,
                                                    status: int, etype: str) -> None:
    """The upstream's own errors are relayed unchanged (status, retry-after, request-id, body)."""
    async with httpx.AsyncClient(timeout=30) as client:
        r = await client.post(proxy_on_mock.proxy_url + "/v1/messages", json=message_body(),
                              headers=api_headers(x_mock_status=str(status)))
    _assert_anthropic_error(r, status, etype)
    assert r.headers.get("request-id", "").startswith("req_")
    if status in (429, 529):
        assert r.headers.get("retry-after")
    assert await wait_rows(db_dsn, 1) == 1
    (row,) = await fetch_rows(db_dsn)
    assert (row["status_code"], row["error_type"]) == (status, etype)
    assert row["request_id"] == r.headers["request-id"]


# -- failures in the middle of a stream ----------------------------------------------------------------


async def test_reset_mid_stream_is_recorded_with_partial_usage(proxy_on_mock: ProxyProcess, db_dsn: str) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        async with client.stream("POST", proxy_on_mock.proxy_url + "/v1/messages", json=message_body(stream=True),
                                 headers=api_headers(x_mock_drop="mid-stream", x_mock_events="10")) as r:
            assert r.status_code == 200
            text = (await r.aread()).decode()
    events = _sse_events(text)
    names = [name for name, _ in events]
    assert names[0] == "message_start"
    assert "message_stop" not in names
    assert names[-1] == "error", names  # told in-band: headers were already sent
    assert events[-1][1]["error"]["type"] == "api_error"
    assert await wait_rows(db_dsn, 1) == 1
    (row,) = await fetch_rows(db_dsn)
    assert row["status_code"] == 502
    assert row["error_type"] == "upstream_disconnected"
    # message_start carried the input tokens: the partial usage is kept.
    assert row["input_tokens"] == events[0][1]["message"]["usage"]["input_tokens"] > 0


async def test_read_stall_times_out(proxy_on_mock: ProxyProcess, db_dsn: str) -> None:
    """A stall longer than UPSTREAM_READ_TIMEOUT_S (1 s here): 504 before headers, error event after."""
    async with httpx.AsyncClient(timeout=30) as client:
        t0 = time.monotonic()
        r = await client.post(proxy_on_mock.proxy_url + "/v1/messages", json=message_body(),
                              headers=api_headers(x_mock_latency_ms="3000"))
        before_headers_s = time.monotonic() - t0
        _assert_anthropic_error(r, 504, "timeout_error")
        assert before_headers_s < 2.8

        t0 = time.monotonic()
        async with client.stream("POST", proxy_on_mock.proxy_url + "/v1/messages", json=message_body(stream=True),
                                 headers=api_headers(x_mock_stall_ms="3000", x_mock_events="4")) as s:
            assert s.status_code == 200
            text = (await s.aread()).decode()
        mid_stream_s = time.monotonic() - t0
    events = _sse_events(text)
    assert events[-1][0] == "error"
    assert events[-1][1]["error"]["type"] == "timeout_error"
    assert mid_stream_s < 2.8
    assert await wait_rows(db_dsn, 2) == 2
    rows = await fetch_rows(db_dsn)
    assert [(r["status_code"], r["error_type"]) for r in rows] == [(504, "upstream_timeout")] * 2
    assert rows[1]["stream"] is True and rows[1]["input_tokens"] > 0


async def test_request_deadline_ends_a_slow_stream(proxy_on_mock: ProxyProcess, db_dsn: str) -> None:
    """Events every 0.5 s never trip the 1 s read timeout, but the 4 s overall deadline ends it."""
    async with httpx.AsyncClient(timeout=30) as client:
        t0 = time.monotonic()
        async with client.stream("POST", proxy_on_mock.proxy_url + "/v1/messages", json=message_body(stream=True),
                                 headers=api_headers(x_mock_event_delay_ms="500", x_mock_events="40")) as s:
            text = (await s.aread()).decode()
        elapsed = time.monotonic() - t0
    events = _sse_events(text)
    assert 3.5 < elapsed < 8, elapsed
    assert events[-1][0] == "error" and events[-1][1]["error"]["type"] == "timeout_error"
    assert await wait_rows(db_dsn, 1) == 1
    (row,) = await fetch_rows(db_dsn)
    assert (row["status_code"], row["error_type"]) == (504, "upstream_timeout")


class SlowStreamUpstream:
    """A raw-TCP upstream that streams forever and notes when the proxy closes the connection.

    aiohttp's server does not tell a handler the moment its peer goes away; a raw socket does
    (the read side sees EOF), which is exactly what "upstream closed within 1 s" needs.
    """

    INPUT_TOKENS = 25

    def __init__(self) -> None:
        self.server: asyncio.base_events.Server | None = None
        self.connected = asyncio.Event()
        self.closed_at: float | None = None
        self.port = 0

    async def __aenter__(self) -> SlowStreamUpstream:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.server.wait_closed(), 2)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.decode("latin-1").split("\r\n"):
            if line.lower().startswith("content-length:"):
                length = int(line.split(":", 1)[1])
        if length:
            await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"
                     b"request-id: req_slowstream\r\n\r\n")

        def chunk(event: str, data: dict) -> bytes:
            payload = f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()
            return f"{len(payload):x}\r\n".encode() + payload + b"\r\n"

        start = {"type": "message_start", "message": {
            "id": "msg_slow", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
            "content": [], "stop_reason": None,
            "usage": {"input_tokens": self.INPUT_TOKENS, "output_tokens": 1}}}
        writer.write(chunk("message_start", start))
        writer.write(chunk("content_block_start", {"type": "content_block_start", "index": 0,
                                                   "content_block": {"type": "text", "text": ""}}))
        await writer.drain()
        self.connected.set()
        eof = asyncio.ensure_future(reader.read(1))
        try:
            while True:
                done, _ = await asyncio.wait({eof}, timeout=0.1)
                if done:
                    break
                writer.write(chunk("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                           "delta": {"type": "text_delta", "text": "word "}}))
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self.closed_at = time.monotonic()
            eof.cancel()
            writer.close()


async def test_client_disconnect_closes_upstream_and_records_499(db_dsn: str, tmp_data: Path) -> None:
    async with SlowStreamUpstream() as up:
        p = ProxyProcess(tmp_data, db_dsn, up.url)
        await asyncio.to_thread(p.start)
        try:
            async with httpx.AsyncClient(timeout=30) as client:
                async with client.stream("POST", p.proxy_url + "/v1/messages", json=message_body(stream=True),
                                         headers=api_headers()) as s:
                    assert s.status_code == 200
                    seen = b""
                    async for part in s.aiter_bytes():
                        seen += part
                        if b"content_block_delta" in seen:
                            break
                    assert up.connected.is_set()
                    gone_at = time.monotonic()
                # leaving the block closes the client connection mid-stream
            for _ in range(50):
                if up.closed_at is not None:
                    break
                await asyncio.sleep(0.05)
            assert up.closed_at is not None, "upstream connection still open 2.5 s after the client left"
            assert up.closed_at - gone_at < 1.0
            assert await wait_rows(db_dsn, 1) == 1
            (row,) = await fetch_rows(db_dsn)
            assert row["status_code"] == 499
            assert row["error_type"] == "client_aborted"
            assert row["input_tokens"] == SlowStreamUpstream.INPUT_TOKENS
            assert row["stream"] is True
        finally:
            await asyncio.to_thread(p.stop)


# -- the database goes away ----------------------------------------------------------------------------




async def _metric(url: str, name: str) -> float:
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(url + "/metrics")).text
    total = 0.0
    for line in text.splitlines():
        metric = line.split("{", 1)[0].split(" ", 1)[0]
        if metric in (name, name + "_total"):
            total += float(line.rsplit(" ", 1)[1])
    return total




@pytest.mark.parametrize("how", ["stop", "kill"])
async def test_db_restart_mid_load_loses_nothing(how: str, own_pg: EmbeddedPostgres, mock: MockUpstream,
                                                 tmp_data: Path) -> None:
    """2,000 requests at concurrency 32; PostgreSQL stopped (or SIGKILLed) after 400, started after 1,200."""
    total, concurrency = 2000, 32
    dsn = own_pg.dsn()
    p = ProxyProcess(tmp_data, dsn, mock.url, journal_high_water=100, record_batch_size=200)
    await asyncio.to_thread(p.start)
    done = 0
    failures: list[str] = []
    latencies: list[float] = []
    phases: dict[str, float] = {}
    counter = iter(range(total))

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal done
        for i in counter:
            stream = i % 4 == 0
            t0 = time.monotonic()
            try:
                r = await client.post(p.proxy_url + "/v1/messages", json=message_body(stream=stream),
                                      headers=api_headers(key=f"sk-ant-load-{i % 7}"))
                if r.status_code != 200:
                    failures.append(f"{i}: {r.status_code} {r.text[:200]}")
            except httpx.HTTPError as exc:
                failures.append(f"{i}: {exc!r}")
            latencies.append((t0, time.monotonic() - t0))
            done += 1

    async def chaos() -> None:
        while done < 400:
            await asyncio.sleep(0.01)
        phases["stop"] = time.monotonic()
        if how == "kill":
            await asyncio.to_thread(own_pg.kill)
        else:
            await asyncio.to_thread(own_pg.stop, "fast")
        phases["stopped"] = time.monotonic()
        async with httpx.AsyncClient(timeout=5) as hc:
            while done < 1200:
                # The dashboard says so while it lasts (503, disconnected); the proxy keeps serving.
                if "degraded" not in phases:
                    r = await hc.get(p.dashboard_url + "/health")
                    if r.status_code == 503 and r.json().get("database") == "disconnected":
                        phases["degraded"] = time.monotonic()
                await asyncio.sleep(0.05)
            phases["start"] = time.monotonic()
            await asyncio.to_thread(own_pg.start)
            phases["started"] = time.monotonic()
            while (await hc.get(p.dashboard_url + "/health")).status_code != 200:
                assert time.monotonic() - phases["started"] < 30, "dashboard /health did not recover"
                await asyncio.sleep(0.1)

    try:
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:
            chaos_task = asyncio.create_task(chaos())
            await asyncio.gather(*(worker(client) for _ in range(concurrency)))
            await asyncio.wait_for(chaos_task, 60)
        assert failures == [], failures[:5]
        assert done == total
        assert phases["stopped"] < phases["start"], "the database was not down during the load"
        assert "degraded" in phases, "dashboard /health never reported the outage"
        # Not slowed: the median latency while the database was down is in line with before.
        before = statistics.median(lat for t, lat in latencies if t < phases["stop"])
        down = statistics.median(lat for t, lat in latencies if phases["stopped"] <= t < phases["start"])
        assert down <= 3 * before + 0.2, (before, down)
        # Records waited in the queue or the journal, then landed: exactly once each.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, asyncpg.PostgresError):
                h = p.health()
                conn = await asyncpg.connect(dsn)
                try:
                    n, distinct = await conn.fetchrow("SELECT count(*), count(DISTINCT id) FROM api_requests")
                finally:
                    await conn.close()
                if n >= total and h.get("journal_records") == 0 and h.get("queue_depth") == 0:
                    break
            await asyncio.sleep(0.2)
        assert (n, distinct) == (total, total)
        assert h["journal_records"] == 0 and h["queue_depth"] == 0
        assert h.get("records_dropped", 0) == 0
        assert await _metric(p.proxy_url, "claude_proxy_records_journalled") > 0, "journal never used"
        assert await _metric(p.proxy_url, "claude_proxy_records_dropped") == 0
        # The minute rollups count every record once, replay included.
        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetchval("SELECT sum(requests) FROM api_requests_minute") == total
        finally:
            await conn.close()
    finally:
        await asyncio.to_thread(p.stop)


async def test_supervisor_restarts_killed_embedded_postgres(own_pg: EmbeddedPostgres) -> None:
    """SIGKILL of the postmaster: the supervisor notices within ~1 s and the server comes back."""
    restarted: list[str] = []
    sup = PostgresSupervisor(own_pg, interval_s=0.2, on_restart=restarted.append)
    stop = asyncio.Event()
    task = asyncio.create_task(sup.run(stop))
    await asyncio.sleep(0.3)
    assert sup.restarts == 0
    old_pid = own_pg.pid()
    await asyncio.to_thread(own_pg.kill)
    deadline = time.monotonic() + 60
    while sup.restarts < 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert own_pg.pid() != old_pid
    conn = await asyncpg.connect(own_pg.dsn())
    try:
        assert await conn.fetchval("SELECT 1") == 1
    finally:
        await conn.close()
    assert sup.restarts == 1 and sup.healthy
    assert restarted == [own_pg.dsn()]
    assert sup.snapshot()["restarts"] == 1


async def test_proxy_restarts_its_killed_embedded_postgres(mock: MockUpstream, tmp_data: Path) -> None:
    """No DATABASE_URL: the proxy's own PostgreSQL is SIGKILLed under load; the proxy restarts it.

    Clients notice nothing, and every record made while it was down lands once it is back.
    """
    p = ProxyProcess(tmp_data, None, mock.url)
    await asyncio.to_thread(p.start)
    pg = EmbeddedPostgres(tmp_data)
    sent = 0
    failures: list[str] = []
    try:
        assert pg.is_running()
        old_pid = pg.pid()
        async with httpx.AsyncClient(timeout=30) as client:
            async def burst(n: int) -> None:
                nonlocal sent
                for i in range(n):
                    r = await client.post(p.proxy_url + "/v1/messages", json=message_body(stream=i % 2 == 0),
                                          headers=api_headers())
                    if r.status_code != 200:
                        failures.append(r.text[:200])
                    sent += 1

            await burst(20)
            await asyncio.to_thread(pg.kill)
            assert not pg.is_running()
            await burst(40)  # while it is down / restarting
            deadline = time.monotonic() + 60
            while not (pg.is_running() and pg.pid() != old_pid and p.health()["database"] == "connected"):
                assert time.monotonic() < deadline, "embedded PostgreSQL was not restarted"
                await asyncio.sleep(0.2)
            await burst(20)
        assert failures == []
        dsn = pg.dsn()
        deadline = time.monotonic() + 30
        while (n := await wait_rows(dsn, sent, timeout=1)) < sent and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert n == sent
        assert "restarted" in p.log_text()
    finally:
        code = await asyncio.to_thread(p.stop)
        if pg.is_running():  # the proxy stops what it started; never leave a server behind
            await asyncio.to_thread(pg.stop, "immediate")
    assert code == 0
    assert not pg.is_running()
