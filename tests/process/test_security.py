"""Secrets, path safety, brute force, exposure and resource caps (docs/reliability.md, security table)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import pathlib
import subprocess
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest
from aiohttp import web

from nexus.core.accounts import AccountResolver, account_for
from nexus.core.redact import REDACTED, key_fingerprint, redact_headers
from nexus.core.settings import Settings
from nexus.sim.mock import MockConfig, MockUpstream
from nexus.store.embedded import bin_path
from proxy.api.broker import Broker
from tests.support.proc import DASHBOARD_KEY, ProxyProcess, api_headers, fetch_rows, message_body, wait_rows

pytestmark = pytest.mark.timeout(180)

API_KEYS = [f"sk-ant-api03-SECRETKEY{i:02d}-{'x' * 20}" for i in range(5)]
BEARERS = [f"sk-ant-oat01-SECRETBEARER{i:02d}-{'y' * 20}" for i in range(3)]
OTHER_SECRETS = {
    "cookie": "session=SECRETCOOKIEVALUE42",
    "x-auth-token": "SECRETXAUTHTOKEN42",
    "x-client-secret": "SECRETCLIENTSECRET42",
    "anthropic-session-token": "SECRETSESSIONTOKEN42",
}


def _pg_dump(dsn: str) -> str:
    proc = subprocess.run([str(bin_path("pg_dump")), "--data-only", "--inserts", dsn], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _all_text_under(root: Path) -> str:
    parts = []
    for path in root.rglob("*"):
        if path.is_file():
            parts.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(parts)


async def test_keys_never_reach_database_or_log(db_dsn: str, tmp_path: Path) -> None:
    """A full run with every body and header stored and DEBUG logging: no key in dump, logs or files."""
    async with MockUpstream(MockConfig(seed=11)) as mock:
        p = ProxyProcess(tmp_path / "data", db_dsn, mock.url, store_bodies="all", log_level="DEBUG")
        await asyncio.to_thread(p.start)
        sent = 0
        try:
            async with httpx.AsyncClient(timeout=30) as client:
                cases = []
                for i, key in enumerate(API_KEYS):
                    cases.append(({"x-api-key": key}, i))
                for i, token in enumerate(BEARERS):
                    cases.append(({"authorization": f"Bearer {token}"}, i + 10))
                for extra, _i in cases:
                    headers = {"anthropic-version": "2023-06-01", "content-type": "application/json",
                               **extra, **OTHER_SECRETS}
                    variants = [
                        ("/v1/messages", message_body(), {}),
                        ("/v1/messages", message_body(stream=True), {}),
                        ("/v1/messages", message_body(), {"x-mock-status": "429"}),
                        ("/v1/messages", message_body(stream=True), {"x-mock-drop": "mid-stream"}),
                        ("/v1/messages/count_tokens", {"model": "claude-sonnet-4-5-20250929",
                                                       "messages": [{"role": "user", "content": "hi"}]}, {}),
                    ]
                    for path, body, steer in variants:
                        r = await client.post(p.proxy_url + path, json=body, headers={**headers, **steer})
                        assert r.status_code in (200, 429), r.text
                        await r.aread()
                        sent += 1
                    r = await client.get(p.proxy_url + "/v1/models", headers=headers)
                    assert r.status_code == 200
                # The dashboard shows records and their stored headers, never a key.
                assert await wait_rows(db_dsn, sent) == sent
                listing = await client.get(p.dashboard_url + "/api/requests", params={"limit": 100},
                                           headers={"X-Dashboard-Key": DASHBOARD_KEY})
                assert listing.status_code == 200
                items = listing.json()["requests"]
                assert len(items) == sent
                details = [await client.get(p.dashboard_url + f"/api/requests/{it['id']}",
                                            headers={"X-Dashboard-Key": DASHBOARD_KEY}) for it in items[:10]]
                assert all(d.status_code == 200 for d in details)
                api_text = listing.text + "".join(d.text for d in details)
                metrics_text = (await client.get(p.proxy_url + "/metrics")).text
        finally:
            assert await asyncio.to_thread(p.stop) == 0

    dump = _pg_dump(db_dsn)
    log = p.log_text()
    files = _all_text_under(tmp_path / "data")
    assert "api_request_bodies" in dump and len(log) > 0
    secrets = API_KEYS + BEARERS + [v.split("=", 1)[-1] for v in OTHER_SECRETS.values()]
    for secret in secrets:
        for where, text in (("pg_dump", dump), ("log", log), ("data dir", files), ("dashboard API", api_text),
                            ("metrics", metrics_text)):
            assert secret not in text, f"{secret[:24]}… found in {where}"
    # Keys appear only as their one-way fingerprints.
    rows = await fetch_rows(db_dsn)
    accounts = {r["account_id"] for r in rows}
    assert accounts == {f"acct_{key_fingerprint(k)}" for k in API_KEYS + BEARERS}
    assert "[REDACTED]" in dump  # headers were stored (STORE_BODIES=all), redacted


class HeaderEchoUpstream:
    """An upstream that answers 500 with secret-bearing response headers (set-cookie, tokens)."""

    def __init__(self) -> None:
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def __aenter__(self) -> HeaderEchoUpstream:
        async def handle(request: web.Request) -> web.Response:
            await request.read()
            body = {"type": "error", "error": {"type": "api_error", "message": "boom"}}
            return web.json_response(body, status=500, headers={
                "set-cookie": "sid=SECRETSETCOOKIE; HttpOnly",
                "x-refresh-token": "SECRETREFRESHTOKEN",
                "x-upstream-secret": "SECRETUPSTREAMSECRET",
                "request-id": "req_headers",
                "x-plain": "visible",
            })

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def test_stored_headers_are_redacted(db_dsn: str, tmp_path: Path) -> None:
    async with HeaderEchoUpstream() as up:
        p = ProxyProcess(tmp_path / "data", db_dsn, up.url, store_bodies="errors")
        await asyncio.to_thread(p.start)
        try:
            async with httpx.AsyncClient(timeout=30) as client:
                r = await client.post(p.proxy_url + "/v1/messages", json=message_body(), headers={
                    **api_headers(key="sk-ant-REDACTME-1"),
                    "authorization": "Bearer sk-ant-REDACTME-2",
                    "cookie": "a=SECRETCOOKIE",
                    "x-my-token": "SECRETTOKENHDR",
                    "x-client-secret": "SECRETSECRETHDR",
                    "x-request-note": "visible",
                })
            assert r.status_code == 500
            assert r.headers["set-cookie"].startswith("sid=")  # the client still gets its headers
            assert await wait_rows(db_dsn, 1) == 1
        finally:
            await asyncio.to_thread(p.stop)
    conn = await asyncpg.connect(db_dsn)
    try:
        row = await conn.fetchrow("SELECT request_headers, response_headers FROM api_request_bodies")
    finally:
        await conn.close()
    assert row is not None, "STORE_BODIES=errors stored nothing for a 500"
    req = json.loads(row["request_headers"]) if isinstance(row["request_headers"], str) else row["request_headers"]
    resp = json.loads(row["response_headers"]) if isinstance(row["response_headers"], str) else row["response_headers"]
    req = {k.lower(): v for k, v in req.items()}
    resp = {k.lower(): v for k, v in resp.items()}
    for name in ("x-api-key", "authorization", "cookie", "x-my-token", "x-client-secret"):
        assert req[name] == REDACTED, (name, req.get(name))
    for name in ("set-cookie", "x-refresh-token", "x-upstream-secret"):
        assert resp[name] == REDACTED, (name, resp.get(name))
    assert req["x-request-note"] == "visible" and resp["x-plain"] == "visible"
    assert resp["request-id"] == "req_headers"
    blob = json.dumps(req) + json.dumps(resp)
    assert "SECRET" not in blob and "REDACTME" not in blob


def test_redaction_rules() -> None:
    headers = [("X-Api-Key", "k"), ("Authorization", "Bearer t"), ("Cookie", "c"), ("Set-Cookie", "s"),
               ("X-CSRF-Token", "t"), ("Client-Secret", "s"), ("Proxy-Authorization", "p"),
               ("Content-Type", "application/json"), ("anthropic-beta", "x")]
    out = redact_headers(headers)
    assert all(out[k.lower()] == REDACTED for k, _ in headers[:7])
    assert out["content-type"] == "application/json" and out["anthropic-beta"] == "x"


HOSTILE_HOSTS = [
    "..", "../outside", "../../etc/passwd", "/etc/passwd", "/tmp/outside", "good.example/../../outside",
    "good.example/../outside", "..%2f..%2foutside", "%2e%2e/outside", "good.example\x00", "\x00",
    "good.example\x00/../../outside", "a" * 10_000, "x." * 200 + "example", "ünïcödé.example", "xn--../outside",
    "\\..\\outside", "good.example\\..\\..\\outside", " good.example", "good.example/", "good.example:99999999",
    "~root", "$HOME", "outside", "*.example", "good.example:80/../x", "[::1]/../outside", "",
]


@pytest.fixture
def cred_dirs(tmp_path: Path) -> tuple[Path, Path]:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "good.example.credentials.json").write_text(json.dumps(
        {"type": "api_key", "accountId": "acct-good", "api_key": "sk-ant-file-key"}))
    # Bait outside the directory that a traversal would find.
    (tmp_path / "outside.credentials.json").write_text(json.dumps({"type": "api_key", "accountId": "ESCAPED"}))
    (tmp_path / "..credentials.json").write_text(json.dumps({"type": "api_key", "accountId": "ESCAPED"}))
    (tmp_path / "creds.credentials.json").write_text(json.dumps({"type": "api_key", "accountId": "ESCAPED"}))
    return creds, tmp_path


def test_credential_lookup_cannot_escape_dir(cred_dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    creds, _ = cred_dirs
    touched: list[Path] = []
    for name in ("read_text", "read_bytes", "open", "is_file", "exists", "stat"):
        original = getattr(pathlib.Path, name)

        def spy(self: pathlib.Path, *a: object, _orig=original, **kw: object) -> object:
            touched.append(Path(self))
            return _orig(self, *a, **kw)

        monkeypatch.setattr(pathlib.Path, name, spy)
    anon = f"acct_{key_fingerprint('sk-ant-client')}"
    for host in HOSTILE_HOSTS:
        assert account_for(host, "sk-ant-client", creds) == anon, repr(host[:40])
        assert account_for(host, None, creds) is None, repr(host[:40])
        path = AccountResolver(creds).credential_path(host)
        assert path is None or path.resolve().parent == creds.resolve(), repr(host[:40])
    # The legitimate forms still work.
    for host in ("good.example", "GOOD.EXAMPLE", "good.example:443", "good.example:3000"):
        assert account_for(host, "sk-ant-client", creds) == "acct-good", host
    monkeypatch.undo()
    root = creds.resolve()
    seen = {str(t) for t in touched}
    assert any("good.example.credentials.json" in t for t in seen)
    outside = sorted(t for t in seen if root not in Path(t).resolve().parents and Path(t).resolve() != root)
    assert outside == [], outside[:5]


async def test_hostile_host_headers_end_to_end(db_dsn: str, cred_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    """Raw requests with odd Host headers: the proxy answers, stays up, and never picks the bait."""
    creds, _ = cred_dirs
    async with MockUpstream(MockConfig(seed=12)) as mock:
        p = ProxyProcess(tmp_path / "data", db_dsn, mock.url, credentials_dir=creds)
        await asyncio.to_thread(p.start)
        try:
            port = int(p.env["PROXY_PORT"])
            body = json.dumps(message_body()).encode()
            statuses = []
            for host in ["good.example", "../outside", "/tmp/outside", "..", "a" * 8000, "ünïcödé.example",
                         "good.example/../../outside", "outside", "\\..\\outside"]:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                head = (f"POST /v1/messages HTTP/1.1\r\nHost: {host}\r\nx-api-key: sk-ant-raw\r\n"
                        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
                        "connection: close\r\n\r\n").encode()
                writer.write(head + body)
                await writer.drain()
                answer = await asyncio.wait_for(reader.read(), 30)
                writer.close()
                statuses.append(int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1") else 0)
            assert statuses[0] == 200
            assert all(s in (200, 400, 431) for s in statuses), statuses
            assert p.health()["status"] == "ok"
            assert await wait_rows(db_dsn, statuses.count(200)) == statuses.count(200)
            rows = await fetch_rows(db_dsn)
            accounts = {r["account_id"] for r in rows}
            assert "ESCAPED" not in accounts
            assert "acct-good" in accounts
            assert all(len(r["domain"]) <= 253 for r in rows)
        finally:
            await asyncio.to_thread(p.stop)


async def test_dashboard_wrong_keys_are_rate_limited(db_dsn: str, tmp_path: Path) -> None:
    p = ProxyProcess(tmp_path / "data", db_dsn, "http://127.0.0.1:9")
    await asyncio.to_thread(p.start)
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            ok = await client.get(p.dashboard_url + "/api/stats", headers={"X-Dashboard-Key": DASHBOARD_KEY})
            assert ok.status_code == 200
            missing = await client.get(p.dashboard_url + "/api/stats")
            assert missing.status_code == 401 and missing.json()["error"]["type"]
            statuses = []
            for i in range(40):
                r = await client.get(p.dashboard_url + "/api/stats",
                                     headers={"X-Dashboard-Key": f"{DASHBOARD_KEY[:-1]}{i % 10}"})
                statuses.append(r.status_code)
                if r.status_code == 429:
                    assert int(r.headers["Retry-After"]) >= 1
                    assert r.json()["error"]["type"]
                    break
            assert statuses[0] == 403
            assert statuses[-1] == 429, statuses
            assert len(statuses) <= 30  # blocked after a small number of failures
            # While blocked, even a Bearer attempt is refused before the key is looked at.
            again = await client.get(p.dashboard_url + "/api/stats", headers={"Authorization": "Bearer nope"})
            assert again.status_code == 429
            # The open health endpoint and the proxy are unaffected.
            assert (await client.get(p.dashboard_url + "/health")).status_code == 200
            assert (await client.get(p.proxy_url + "/health")).status_code == 200
    finally:
        await asyncio.to_thread(p.stop)


def _listening(pid: int) -> set[tuple[str, int]]:
    proc = psutil.Process(pid)
    conns = proc.net_connections(kind="inet") if hasattr(proc, "net_connections") else proc.connections("inet")
    return {(c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN}


async def test_servers_bind_loopback_by_default(db_dsn: str, tmp_path: Path) -> None:
    assert Settings().proxy.host == "127.0.0.1"
    p = ProxyProcess(tmp_path / "a", db_dsn, "http://127.0.0.1:9")
    await asyncio.to_thread(p.start)
    try:
        listening = _listening(p.pid)
        assert {port for _, port in listening} >= {int(p.env["PROXY_PORT"]), int(p.env["DASHBOARD_PORT"])}
        assert {ip for ip, _ in listening} == {"127.0.0.1"}, listening
        assert "without TLS" not in p.log_text()
    finally:
        await asyncio.to_thread(p.stop)
    # Told otherwise, it binds there and warns that it is exposed without TLS.
    exposed = ProxyProcess(tmp_path / "b", db_dsn, "http://127.0.0.1:9", proxy_host="0.0.0.0")
    await asyncio.to_thread(exposed.start)
    try:
        assert {ip for ip, _ in _listening(exposed.pid)} == {"0.0.0.0"}
        assert "without TLS" in exposed.log_text()
    finally:
        await asyncio.to_thread(exposed.stop)


async def test_slow_sse_subscriber_is_disconnected() -> None:
    """A subscriber that does not read is cut off when its queue is full; memory stays bounded."""
    broker = Broker(history=50, subscriber_queue=8)
    slow = broker.subscribe()
    fast = broker.subscribe()
    got_fast = []
    for i in range(100):
        broker.publish("request", {"n": i})
        event = await fast.get(timeout=0.1)
        assert event is not None
        got_fast.append(event.data["n"])
    assert got_fast == list(range(100))  # a reader that keeps up loses nothing
    assert slow.dropped is True
    assert broker.subscriber_count == 1 and broker.slow_disconnects == 1
    assert slow._queue.qsize() <= 8  # bounded: never more than its queue
    received = []
    with pytest.raises(StopAsyncIteration):
        while True:
            event = await slow.get(timeout=1)
            assert event is not None
            received.append(event.data["n"])
    # What it got before the cut is in order and without gaps (the oldest may make room for the close).
    assert 0 < len(received) < 8 and received == list(range(received[0], received[0] + len(received)))
    # Replay of a long history into a small queue disconnects too, instead of growing.
    late = broker.subscribe(last_event_id=0)
    assert late.dropped and broker.subscriber_count == 1


async def test_oversized_body_is_413(db_dsn: str, tmp_path: Path) -> None:
    """A 33 MB body: 413 request_too_large, never forwarded, and never held in the proxy's memory.

    The proxy drains what the client is still sending (discarding it) so the client can read the
    413 instead of a reset connection; its resident memory must not grow by anything like 33 MB.
    """
    async with MockUpstream(MockConfig(seed=13)) as mock:
        p = ProxyProcess(tmp_path / "data", db_dsn, mock.url)
        await asyncio.to_thread(p.start)
        try:
            rss_before = psutil.Process(p.pid).memory_info().rss
            size = 33 * 1024 * 1024
            reader, writer = await asyncio.open_connection("127.0.0.1", int(p.env["PROXY_PORT"]))
            writer.write((f"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: sk-ant-big\r\n"
                          f"content-type: application/json\r\ncontent-length: {size}\r\n\r\n").encode())
            block = b"a" * (1024 * 1024)

            async def send_body() -> None:
                with contextlib.suppress(ConnectionError):
                    for _ in range(size // len(block)):
                        writer.write(block)
                        await writer.drain()

            sender = asyncio.create_task(send_body())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 60)
            await asyncio.wait_for(sender, 60)
            assert head.startswith(b"HTTP/1.1 413"), head[:200]
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            payload = json.loads(await asyncio.wait_for(reader.readexactly(length), 15))
            assert payload["type"] == "error" and payload["error"]["type"] == "request_too_large"
            writer.close()
            assert psutil.Process(p.pid).memory_info().rss - rss_before < 16 * 1024 * 1024
            assert not [r for r in mock.requests if r["path"] == "/v1/messages"]  # never forwarded

            # Without a Content-Length (chunked), the cap applies while reading.
            async def chunks():
                block = b"a" * (1024 * 1024)
                yield b'{"model":"x","messages":[{"role":"user","content":"'
                for _ in range(34):
                    yield block

            async with httpx.AsyncClient(timeout=60) as client:
                try:
                    r = await client.post(p.proxy_url + "/v1/messages", content=chunks(),
                                          headers=api_headers(key="sk-ant-big"))
                    assert r.status_code == 413 and r.json()["error"]["type"] == "request_too_large"
                except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
                    pass  # the proxy may close before the client finished sending: also a refusal
                ok = await client.post(p.proxy_url + "/v1/messages", json=message_body(), headers=api_headers())
                assert ok.status_code == 200  # and it carries on
            assert not [r for r in mock.requests if r["body_size"] > 32 * 1024 * 1024]
        finally:
            await asyncio.to_thread(p.stop)
