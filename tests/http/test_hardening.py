"""Issue 14, items 2-9 (docs/security.md): each as an attacker on loopback would try it.

Real parts only: a ProxyService on loopback ports in front of a real upstream (the mock, or a
recording aiohttp server for "did it reach the upstream?"), real PostgreSQL, raw sockets where an
HTTP client would normalise what we want to send.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from nexus.core.logs import JsonFormatter, TextFormatter
from nexus.core.records import Record
from nexus.core.redact import REDACTED, header_names, is_secret_header, redact_headers
from proxy.ingress.metrics import MAX_SERIES_PER_METRIC, OTHER, Metrics, TopValues, model_label
from proxy.ingress.request_log import log_record
from tests.support.api import Api, rec
from tests.support.db import stack_settings

pytestmark = pytest.mark.timeout(180)

BODY = {"model": "claude-sonnet-4-6", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


# --- helpers ---------------------------------------------------------------------------------------


@dataclass
class Recording:
    """A real upstream that answers 200 to anything and remembers each raw path it saw."""

    url: str
    seen: list[str]


@contextlib.asynccontextmanager
async def recording_upstream(prefix: str = "") -> AsyncIterator[Recording]:
    seen: list[str] = []

    async def any_path(request: web.Request) -> web.Response:
        seen.append(request.raw_path)
        await request.read()
        return web.json_response({"type": "message", "usage": {"input_tokens": 1, "output_tokens": 1}})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", any_path)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield Recording(f"http://127.0.0.1:{port}{prefix}", seen)
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def service(tmp_path: Path, dsn: str, upstream: str, **env: str) -> AsyncIterator[Any]:
    from proxy.service import ProxyService

    svc = ProxyService(stack_settings(tmp_path, dsn, upstream, **env))
    info = await svc.start()
    try:
        yield svc, info
    finally:
        await svc.stop()


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def raw(url: str, data: bytes, read_timeout: float = 10.0) -> bytes:
    """Send ``data`` as is on a fresh connection and read until the server closes or goes quiet."""
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(url))
    try:
        writer.write(data)
        await writer.drain()
        out = b""
        with contextlib.suppress(TimeoutError, ConnectionError):
            while True:
                chunk = await asyncio.wait_for(reader.read(65536), read_timeout)
                if not chunk:
                    break
                out += chunk
                if b"\r\n\r\n" in out:
                    head, _, rest = out.partition(b"\r\n\r\n")
                    length = [ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length:")]
                    if length and len(rest) >= int(length[0].split(b":")[1]):
                        break
        return out
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def body_of(response: bytes) -> dict:
    return orjson.loads(response.partition(b"\r\n\r\n")[2])


def get(target: str, host: str = "localhost", extra: str = "") -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: {host}\r\nx-api-key: sk-test\r\n{extra}Connection: close\r\n\r\n".encode()


# --- 2. the path cannot leave /v1, nor the configured base ------------------------------------------

ESCAPES = [
    "/v1/%2E%2E/%2E%2E/etc/passwd",
    "/v1/../_mock/reset",
    "/v1/./messages",
    "/v1/messages/%2e%2e/%2e%2e/%2e%2e/_mock/incident",
    "/v1/a%2Fb/messages",
    "/v1/a%2fb",
    "/v1/a%5C..%5Cb",
    "/v1/..",
]


async def test_dot_segments_and_encoded_slashes_are_400_and_never_reach_upstream(db_dsn, tmp_path):
    async with recording_upstream("/gw/anthropic") as up, service(tmp_path, db_dsn, up.url) as (_, info):
        for target in ESCAPES:
            for method in ("GET", "POST"):
                req = (f"{method} {target} HTTP/1.1\r\nHost: localhost\r\nx-api-key: sk-test\r\n"
                       "Content-Length: 2\r\nConnection: close\r\n\r\n{}").encode()
                resp = await raw(info["proxy_url"], req)
                assert status_of(resp) == 400, (target, resp[:200])
                err = body_of(resp)
                assert err["type"] == "error" and err["error"]["type"] == "invalid_request_error", target
        assert up.seen == []
        # the ordinary path still goes through, under the configured prefix, unchanged
        resp = await raw(info["proxy_url"], get("/v1/messages/count_tokens?beta=true"))
        assert status_of(resp) == 200
        assert up.seen == ["/gw/anthropic/v1/messages/count_tokens?beta=true"]
        # characters that are not separators keep their encoding upstream (no new query or segment)
        resp = await raw(info["proxy_url"], get("/v1/models/a%3Fb%23c%20d"))
        assert status_of(resp) == 200 and up.seen[-1] == "/gw/anthropic/v1/models/a%3Fb%23c%20d"


async def test_mock_reset_is_not_reachable_through_the_proxy(stack):
    async with httpx.AsyncClient(base_url=stack.proxy_url, timeout=10) as c:
        assert (await c.post("/v1/messages", json=BODY, headers={"x-api-key": "sk-a"})).status_code == 200
    before = len(stack.mock.requests)
    resp = await raw(stack.proxy_url, b"POST /v1/../_mock/reset HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                                      b"Connection: close\r\n\r\n")
    assert status_of(resp) == 400
    assert len(stack.mock.requests) == before >= 1  # not reset


# --- 10. `//` never redirects; a bare Authorization is a wrong key; h2c off ------------------------


async def test_double_slash_is_404_never_a_host_built_redirect(stack):
    for url, target in ((stack.proxy_url, "/v1//x/messages"), (stack.proxy_url, "//health"),
                        (stack.dashboard_url, "//api/stats"), (stack.dashboard_url, "/api//stats")):
        resp = await raw(url, get(target, host="attacker.example"))
        assert status_of(resp) == 404, (target, resp[:300])
        resp = await raw(url, get(target, host="attacker.example", extra=f"X-Dashboard-Key: {stack.key}\r\n"))
        assert status_of(resp) == 404, (target, resp[:300])
        assert b"location:" not in resp.lower() and b"attacker.example" not in resp


async def test_bare_authorization_is_a_wrong_key(stack):
    async with httpx.AsyncClient(base_url=stack.dashboard_url, timeout=10) as c:
        assert (await c.get("/api/stats", headers={"Authorization": stack.key})).status_code == 403
        assert (await c.get("/api/stats", headers={"Authorization": f"Bearer {stack.key}"})).status_code == 200


H2C_UPGRADE = (b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings\r\n"
               b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000")


async def test_h2c_is_off_by_default(stack):
    for url in (stack.proxy_url, stack.dashboard_url):
        resp = await raw(url, H2C_UPGRADE, read_timeout=3)
        assert resp.startswith(b"HTTP/1.1 200"), resp[:100]
        resp = await raw(url, H2_PREFACE, read_timeout=3)
        # an HTTP/2 server answers the preface with a SETTINGS frame (type 4), not an HTTP/1.1 line
        assert resp.startswith(b"HTTP/1.1 4"), resp[:100]


async def test_h2c_on_when_enabled(db_dsn, tmp_path, mock_upstream):
    async with service(tmp_path, db_dsn, mock_upstream.url, ENABLE_H2C="1") as (_, info):
        resp = await raw(info["proxy_url"], H2C_UPGRADE, read_timeout=2)
        assert resp.startswith(b"HTTP/1.1 101"), resp[:100]


# --- 6 (issue). closed connections give their descriptor back at once -------------------------------


async def test_connect_close_churn_leaves_no_descriptors_behind(db_dsn, tmp_path, mock_upstream):
    me = psutil.Process()
    async with service(tmp_path, db_dsn, mock_upstream.url, KEEP_ALIVE_TIMEOUT_S="75") as (_, info):
        port = _port(info["proxy_url"])
        async with httpx.AsyncClient(timeout=5) as c:  # warm up (lazy imports, pools)
            assert (await c.get(info["proxy_url"] + "/health")).status_code == 200
        baseline = me.num_fds()
        for i in range(2000):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            if i % 2:  # half of them after a request, half without one
                writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                await writer.drain()
                await reader.readuntil(b"\r\n\r\n")
            writer.close()
            await writer.wait_closed()
        deadline = time.monotonic() + 10
        while me.num_fds() > baseline + 20 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert me.num_fds() <= baseline + 20, (baseline, me.num_fds())


# --- 3. stalled uploads are cut; the bytes in flight are capped -----------------------------------


async def _stalled_upload(url: str, declared: int, sent: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(url))
    writer.write(f"POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: sk-stall\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {declared}\r\n\r\n".encode() + b" " * sent)
    await writer.drain()
    return reader, writer


async def test_stalled_upload_gets_408_and_frees_its_bytes(db_dsn, tmp_path, mock_upstream):
    async with service(tmp_path, db_dsn, mock_upstream.url, CLIENT_BODY_TIMEOUT_S="1") as (svc, info):
        before = len(mock_upstream.requests)
        t0 = time.monotonic()
        reader, writer = await _stalled_upload(info["proxy_url"], 4 * 1024 * 1024, 3 * 1024 * 1024)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)
        took = time.monotonic() - t0
        writer.close()
        assert head.startswith(b"HTTP/1.1 408"), head
        assert 0.9 <= took < 10
        assert svc.runtime.inflight_body_bytes == 0
        assert len(mock_upstream.requests) == before
        # a client that keeps sending, however slowly, is not cut
        reader, writer = await asyncio.open_connection("127.0.0.1", _port(info["proxy_url"]))
        body = orjson.dumps(BODY)
        writer.write(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: sk-slow\r\nContent-Type: application/json\r\n"
                     b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body))
        for i in range(0, len(body), 16):
            writer.write(body[i:i + 16])
            await writer.drain()
            await asyncio.sleep(0.1)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)
        writer.close()
        assert head.startswith(b"HTTP/1.1 200"), head


async def test_bytes_in_flight_are_capped_with_503_and_retry_after(db_dsn, tmp_path, mock_upstream):
    cap = 4 * 1024 * 1024
    async with service(tmp_path, db_dsn, mock_upstream.url, MAX_INFLIGHT_BODY_BYTES=str(cap),
                       CLIENT_BODY_TIMEOUT_S="30") as (svc, info):
        stalled = [await _stalled_upload(info["proxy_url"], 1024 * 1024 + 10, 1024 * 1024) for _ in range(3)]
        deadline = time.monotonic() + 10
        while svc.runtime.inflight_body_bytes < 3 * (1024 * 1024 + 10) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert svc.runtime.inflight_body_bytes == 3 * (1024 * 1024 + 10)
        async with httpx.AsyncClient(base_url=info["proxy_url"], timeout=10) as c:
            # declared: refused before a byte is read
            r = await c.post("/v1/messages", content=b"x" * (2 * 1024 * 1024), headers={"x-api-key": "sk-b"})
            assert r.status_code == 503 and r.headers["retry-after"] == "1"
            assert r.json()["error"]["type"] == "overloaded_error"
            # chunked (no Content-Length): refused when its chunks pass the cap
            async def chunks():
                for _ in range(4):
                    yield b"y" * (512 * 1024)
            r = await c.post("/v1/messages", content=chunks(), headers={"x-api-key": "sk-b"})
            assert r.status_code == 503
            # a small request still fits
            assert (await c.post("/v1/messages", json=BODY, headers={"x-api-key": "sk-b"})).status_code == 200
            for _, w in stalled:
                w.close()
            deadline = time.monotonic() + 10
            while svc.runtime.inflight_body_bytes and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert svc.runtime.inflight_body_bytes == 0
            r = await c.post("/v1/messages", content=orjson.dumps({**BODY, "pad": "z" * (2 * 1024 * 1024)}),
                             headers={"x-api-key": "sk-b", "content-type": "application/json"})
            assert r.status_code == 200


# --- 4. the auth limiter never refuses the right key -----------------------------------------------


async def test_failed_attempts_from_the_same_ip_do_not_lock_out_the_right_key(stack):
    async with httpx.AsyncClient(base_url=stack.dashboard_url, timeout=10) as c:
        for _ in range(25):
            assert (await c.get("/api/stats")).status_code in (401, 429)
        r = await c.get("/api/stats", headers={"X-Dashboard-Key": "wrong-key"})
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        for _ in range(3):
            assert (await c.get("/api/stats", headers={"X-Dashboard-Key": stack.key})).status_code == 200
            assert (await c.get("/api/stats", headers={"Authorization": f"Bearer {stack.key}"})).status_code == 200


# --- 5. label values and breakdowns from client input are bounded ----------------------------------


def test_model_label_is_a_family_or_other():
    assert model_label("claude-sonnet-4-5-20250929") == "claude-sonnet-4-5"
    assert model_label("claude-3-5-haiku-20241022") == "claude-3-5-haiku"
    assert model_label("us.anthropic.claude-opus-4-1-20250805-v1:0") == "claude-opus-4-1"
    assert model_label("claude-sonnet-4-5-20250929[1m]") == "claude-sonnet-4-5"
    assert model_label("gpt-4o") == OTHER
    assert model_label("claude-sonnet-4-5-x" + "9" * 50) == OTHER
    assert model_label(None) == "unknown"


def test_top_values_admit_n_and_rotate_to_the_busiest():
    now = [0.0]
    top = TopValues(n=3, window_s=100, clock=lambda: now[0])
    assert [top.label(v) for v in ("a", "b", "c", "d", "a")] == ["a", "b", "c", OTHER, "a"]
    for _ in range(5):
        top.label("d")
    now[0] = 101
    assert top.label("d") == "d"  # the busiest of the last window
    assert top.admitted == {"a", "d", "b"} or top.admitted == {"a", "d", "c"}
    assert top.evicted() <= {"b", "c"} and top.evicted() == set()
    for i in range(10_000):
        top.label(f"flood-{i}")
    assert len(top.counts) <= 24


def test_metrics_series_stay_bounded_under_distinct_models_and_hosts():
    m = Metrics()
    small = len(m.render())
    for i in range(9000):
        m.observe(Record(domain=f"h{i}.attacker.example", model=f"model-{i}", status_code=200 + i % 3,
                         response_time_ms=1.0, input_tokens=1, error_type=f"err_{i}" if i % 2 else None,
                         request_type="messages"))
    fams = {f.name: f for f in text_string_to_metric_families(m.render().decode())}
    reqs = [s for s in fams["claude_proxy_requests"].samples if s.name == "claude_proxy_requests_total"]
    assert sum(s.value for s in reqs) == 9000  # nothing lost
    assert len(reqs) <= 50 * 3 + 3
    assert {s.labels["model"] for s in reqs} == {OTHER}
    assert len({s.labels["domain"] for s in reqs}) == 51  # 50 admitted + other
    errs = [s for s in fams["claude_proxy_errors"].samples if s.name == "claude_proxy_errors_total"]
    assert len(errs) <= MAX_SERIES_PER_METRIC + 1 and sum(s.value for s in errs) == 4500
    assert len(m.render()) < small + 300_000


async def test_stats_breakdowns_are_capped_with_other(api: Api):
    records = [rec(api.now, timedelta(minutes=1 + i % 50), domain=f"d{i:03d}.example",
                   model=f"model-{i:03d}", input_tokens=1) for i in range(120)]
    records += [rec(api.now, timedelta(minutes=2), domain="busy.example",
                    model="claude-sonnet-4-5", input_tokens=1) for _ in range(5)]
    await api.insert(records)
    body = (await api.get("/api/stats", since="24h", top="10")).json()
    assert body["totalRequests"] == 125
    for key, name in (("byModel", "model"), ("byDomain", "domain")):
        groups = body[key]
        assert len(groups) == 11 and groups[-1][name] == "other"
        assert groups[0][name] in ("claude-sonnet-4-5", "busy.example") and groups[0]["requests"] == 5
        assert sum(g["requests"] for g in groups) == 125 and groups[-1]["requests"] == 125 - 5 - 9
    default = (await api.get("/api/stats", since="24h")).json()
    assert len(default["byModel"]) == 51
    assert (await api.get("/api/stats", top="0")).status_code == 400


# --- 7. a crafted cursor is a 400 ------------------------------------------------------------------


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


async def test_crafted_cursor_out_of_range_is_400(api: Api):
    for when in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+00:00",
                 "9999-12-31T00:00:00+00:00"):
        cur = _cursor(f"{when}|00000000-0000-0000-0000-000000000001")
        r = await api.get("/api/requests", before=cur)
        assert r.status_code == 400, (when, r.text)
        assert "before" in r.text
    # the literal one from the issue
    r = await api.get("/api/requests", before="MDAwMS0wMS0wMVQwMDowMDowMCswMTowMHwwMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDE")
    assert r.status_code == 400


# --- 8. control characters never reach the text log raw ---------------------------------------------

HOSTILE_MODEL = "\u001b[2J\u001b[31mPWNED\r\nFAKE 2026-01-01T00:00:00Z INFO nexus.request api_request ok"


def _format(formatter: logging.Formatter, record: Record) -> str:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    lg = logging.getLogger("nexus.request")
    lg.addHandler(handler)
    old = lg.level
    lg.setLevel(logging.INFO)
    try:
        log_record(record)
    finally:
        lg.removeHandler(handler)
        lg.setLevel(old)
    return out.getvalue()


def test_control_characters_are_escaped_in_the_text_log():
    r = Record(domain="evil\x1b]0;title\x07.example", model=HOSTILE_MODEL, path="/v1/messages\x85x",
               status_code=200, response_time_ms=1.0)
    text = _format(TextFormatter(), r)
    assert text.count("\n") == 1 and text.endswith("\n")
    assert not any(ord(ch) < 0x20 and ch != "\n" or 0x7F <= ord(ch) <= 0x9F for ch in text)
    assert "\\x1b[2J\\x1b[31mPWNED\\x0d\\x0aFAKE" in text and "\\x85" in text
    js = _format(JsonFormatter(), r)
    assert js.count("\n") == 1 and "\x1b" not in js
    assert orjson.loads(js)["model"] == HOSTILE_MODEL  # JSON keeps the value, escaped by construction


async def test_hostile_model_end_to_end_is_one_log_line(stack, caplog):
    caplog.set_level(logging.INFO, logger="nexus.request")
    async with httpx.AsyncClient(base_url=stack.proxy_url, timeout=10) as c:
        r = await c.post("/v1/messages", json={**BODY, "model": HOSTILE_MODEL}, headers={"x-api-key": "sk-l"})
    assert r.status_code in (200, 400, 404)
    lines = [TextFormatter().format(x) for x in caplog.records if x.name == "nexus.request"]
    assert lines and all("\n" not in ln and "\r" not in ln and "\x1b" not in ln for ln in lines)


# --- 9. credential headers with other names are redacted; counts stay visible ------------------------


def test_redaction_by_rule_and_by_user_list():
    for name in ("cf-aig-authorization", "helicone-auth", "x-custom-auth", "X-Custom-Auth", "x-amz-security-token",
                 "x-auth-token", "x-goog-api-key", "anthropic-session-token", "x-client-secret", "x-db-password"):
        assert is_secret_header(name), name
    for name in ("anthropic-ratelimit-input-tokens-remaining", "anthropic-ratelimit-tokens-limit",
                 "anthropic-ratelimit-output-tokens-reset", "x-claude-code-session-id", "request-id",
                 "anthropic-version", "content-type"):
        assert not is_secret_header(name), name
    extra = header_names("X-Tenant, x-internal-route  x-other")
    assert extra == {"x-tenant", "x-internal-route", "x-other"}
    out = redact_headers({"X-Tenant": "t1", "x-internal-route": "r", "x-plain": "p"}, extra)
    assert out == {"x-tenant": REDACTED, "x-internal-route": REDACTED, "x-plain": "p"}


async def test_stored_error_record_redacts_new_names(db_dsn, tmp_path, mock_upstream):
    import asyncpg

    async with service(tmp_path, db_dsn, mock_upstream.url, STORE_BODIES="errors",
                       REDACT_HEADERS="x-tenant-ref") as (_, info):
        async with httpx.AsyncClient(base_url=info["proxy_url"], timeout=10) as c:
            r = await c.post("/v1/messages", json=BODY, headers={
                "x-api-key": "sk-r", "x-mock-status": "529", "X-Custom-Auth": "SECRET-CUSTOM-AUTH",
                "helicone-auth": "Bearer SECRET-HELICONE", "cf-aig-authorization": "SECRET-CF",
                "x-tenant-ref": "SECRET-TENANT", "x-visible": "kept"})
        assert r.status_code == 529
        conn = await asyncpg.connect(db_dsn)
        try:
            row = None
            for _ in range(100):
                row = await conn.fetchrow("SELECT request_headers FROM api_request_bodies"
)
                if row:
                    break
                await asyncio.sleep(0.05)
        finally:
            await conn.close()
        assert row is not None
        headers = orjson.loads(row["request_headers"]) if isinstance(row["request_headers"], str) else row["request_headers"]
        for name in ("x-custom-auth", "helicone-auth", "cf-aig-authorization", "x-tenant-ref", "x-api-key"):
            assert headers[name] == REDACTED, name
        assert headers["x-visible"] == "kept"
        assert "SECRET" not in orjson.dumps(headers).decode()

