"""Rate limits through the real proxy: the official SDK -> proxy -> mock upstream -> database -> API.

Ground truth is the exact headers the mock sent on the latest answer of each credential (as the
SDK received them, relayed unchanged). ``/api/limits`` must equal them — utilization to the digit,
reset to the second, status, claim, overage — worked out here from the raw header strings, not
with our parser. Two proxy instances on one database must agree.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from nexus.core.accounts import anonymous_account
from nexus.sim.mock import MockConfig, MockUpstream
from tests.support.db import stack_settings

OAUTH_A = "sk-ant-oat01-limits-test-aaaaaaaaaaaa"  # sent as Authorization: Bearer (Claude Code's way)
OAUTH_B = "sk-ant-oat01-limits-test-bbbbbbbbbbbb"  # sent as x-api-key
API_KEY = "sk-ant-api03-limits-test-cccccccccccc"
STEER = {"x-mock-input-tokens": "400", "x-mock-output-tokens": "100"}  # 500 tokens an answer
BUDGET_5H = 3000  # six answers fill the 5-hour window
U = "anthropic-ratelimit-unified-"


def _iso(epoch: str) -> str:
    return datetime.fromtimestamp(int(epoch), UTC).isoformat()


def _rfc(value: str) -> str:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC).isoformat()


def expected_from_headers(h: dict[str, str]) -> dict[str, Any]:
    """What /api/limits must say, derived by hand from the raw headers of one answer."""
    h = {k.lower(): v for k, v in h.items()}
    if any(k.startswith(U) for k in h):
        windows = {}
        for k in h:
            if k.startswith(U) and k.endswith("-utilization"):
                w = k[len(U):-len("-utilization")]
                windows[w] = {"utilization": float(h[k]), "resetsAt": _iso(h[f"{U}{w}-reset"]),
                              "status": h[f"{U}{w}-status"]}
                if f"{U}{w}-surpassed-threshold" in h:
                    windows[w]["surpassedThreshold"] = float(h[f"{U}{w}-surpassed-threshold"])
        return {
            "kind": "subscription", "status": h[f"{U}status"],
            "representativeClaim": h[f"{U}representative-claim"], "resetsAt": _iso(h[f"{U}reset"]),
            "fallbackPercentage": float(h[f"{U}fallback-percentage"]), "windows": windows,
            "overage": {"status": h[f"{U}overage-status"], "resetsAt": None,
                        "disabledReason": h[f"{U}overage-disabled-reason"]},
            "rateLimits": {}, "retryAfterS": float(h["retry-after"]) if "retry-after" in h else None,
        }
    rl: dict[str, Any] = {}
    for stem, key in (("requests", "requests"), ("tokens", "tokens"), ("input-tokens", "inputTokens"),
                      ("output-tokens", "outputTokens")):
        p = f"anthropic-ratelimit-{stem}-"
        rl[key] = {"limit": int(h[p + "limit"]), "remaining": int(h[p + "remaining"]), "resetsAt": _rfc(h[p + "reset"])}
    return {"kind": "api_key", "rateLimits": rl, "windows": {}, "status": None,
            "retryAfterS": float(h["retry-after"]) if "retry-after" in h else None}


def _ratelimit_headers(headers: httpx.Headers) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.startswith(("anthropic-ratelimit-", "retry-after"))}


@pytest.fixture
async def services(db_dsn: str, tmp_path: Path) -> AsyncIterator[tuple[Any, list[dict[str, Any]]]]:
    """A mock with small subscription windows and two proxy instances on one database."""
    from proxy.service import ProxyService

    cfg = MockConfig(unified_5h_tokens=BUDGET_5H, unified_7d_tokens=100_000, unified_7d_oi_tokens=50_000)
    async with MockUpstream(cfg) as mock:
        svcs = [ProxyService(stack_settings(tmp_path / n, db_dsn, mock.url)) for n in ("a", "b")]
        infos = [await s.start() for s in svcs]
        try:
            yield mock, infos
        finally:
            for s in svcs:
                await s.stop()


async def _limits(info: dict[str, Any], **params: str) -> tuple[int, Any]:
    async with httpx.AsyncClient(base_url=info["dashboard_url"], headers={"X-Dashboard-Key": info["dashboard_key"]},
                                 timeout=10) as c:
        r = await c.get("/api/limits", params=params)
        return r.status_code, r.json()


async def _wait_observed(info: dict[str, Any], account: str, request_id: str, timeout: float = 10.0) -> dict:
    """The account's snapshot once the writer has stored the answer with ``request_id``."""
    deadline = time.monotonic() + timeout
    while True:
        _, body = await _limits(info, accountId=account)
        if body["accounts"] and body["accounts"][0]["requestId"] == request_id:
            return body["accounts"][0]
        if time.monotonic() > deadline:
            raise AssertionError(f"{account}: answer {request_id} never stored; have {body}")
        await asyncio.sleep(0.05)


def _same(got: dict[str, Any], want: dict[str, Any]) -> None:
    for key, value in want.items():
        assert got[key] == value, f"{key}: {got[key]!r} != {value!r}"


async def test_limits_equal_the_last_headers_the_mock_sent(services) -> None:
    mock, (a, b) = services
    sub_a = anthropic.AsyncAnthropic(auth_token=OAUTH_A, api_key=None, base_url=a["proxy_url"], max_retries=0)
    sub_b = anthropic.AsyncAnthropic(api_key=OAUTH_B, base_url=b["proxy_url"], max_retries=0)
    key_c = anthropic.AsyncAnthropic(api_key=API_KEY, base_url=a["proxy_url"], max_retries=0)
    msg = dict(model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}],
               extra_headers=STEER)
    acct_a, acct_b, acct_c = (anonymous_account(k) for k in (OAUTH_A, OAUTH_B, API_KEY))

    last: dict[str, tuple[str, dict[str, str]]] = {}
    for i in range(3):
        for name, client in (("a", sub_a), ("b", sub_b), ("c", key_c)):
            if i == 2 and name == "b":
                # a streamed answer carries its headers too
                async with client.messages.with_streaming_response.create(**msg, stream=True) as raw:
                    async for _ in raw.iter_bytes():
                        pass
                    last[name] = (raw.headers["request-id"], _ratelimit_headers(raw.headers))
                continue
            raw = await client.messages.with_raw_response.create(**msg)
            last[name] = (raw.headers["request-id"], _ratelimit_headers(raw.headers))

    # the mock's own record of what it sent agrees with what the client got
    assert mock.state.limits.last(OAUTH_A) == last["a"][1]
    assert mock.state.limits.last(API_KEY) == last["c"][1]
    assert float(last["a"][1][U + "5h-utilization"]) == 1500 / BUDGET_5H

    for name, acct in (("a", acct_a), ("b", acct_b), ("c", acct_c)):
        rid, headers = last[name]
        got = await _wait_observed(a, acct, rid)
        _same(got, expected_from_headers(headers))
        assert got["headers"] == headers  # the raw headers, as they came
        # the other instance reads the same database: the same answer
        _, other = await _limits(b, accountId=acct)
        assert other["accounts"][0] == got

    status, everything = await _limits(b)
    assert status == 200
    assert {x["accountId"] for x in everything["accounts"]} >= {acct_a, acct_b, acct_c}


async def test_full_window_is_rejected_and_recorded_as_such(services) -> None:
    mock, (a, b) = services
    client = anthropic.AsyncAnthropic(auth_token=OAUTH_A, api_key=None, base_url=a["proxy_url"], max_retries=0)
    msg = dict(model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}],
               extra_headers=STEER)
    statuses = []
    for _ in range(BUDGET_5H // 500):  # fills the window exactly: 3000 / 3000
        raw = await client.messages.with_raw_response.create(**msg)
        statuses.append(raw.headers[U + "5h-status"])
    assert statuses[0] == "allowed" and "allowed_warning" in statuses and statuses[-1] == "rejected"
    with pytest.raises(anthropic.RateLimitError) as exc:
        await client.messages.create(**msg)
    resp = exc.value.response
    assert resp.status_code == 429
    sent = _ratelimit_headers(resp.headers)
    assert sent[U + "status"] == "rejected" and int(sent["retry-after"]) > 0
    assert mock.state.limits.last(OAUTH_A) == sent

    acct = anonymous_account(OAUTH_A)
    got = await _wait_observed(b, acct, resp.headers["request-id"])
    _same(got, expected_from_headers(sent))
    assert got["status"] == "rejected" and got["statusCode"] == 429
    assert got["windows"]["5h"]["utilization"] == 1.0

    # history: one sample a minute at most, the latest of the minute
    async with httpx.AsyncClient(base_url=a["dashboard_url"], headers={"X-Dashboard-Key": a["dashboard_key"]},
                                 timeout=10) as c:
        h = (await c.get("/api/limits/history", params={"accountId": acct, "window": "5h", "since": "1h"})).json()
        assert h["window"] == "5h"
        assert 1 <= len(h["samples"]) <= 2
        assert h["samples"][-1]["utilization"] == 1.0
        assert h["projection"]["utilization"] == 1.0 and h["projection"]["hitsLimitBeforeReset"] is True
    async with httpx.AsyncClient(timeout=10) as c:
        text = (await c.get(a["proxy_url"] + "/metrics")).text
    assert f'claude_proxy_ratelimit_utilization{{account="{acct}",window="5h"}} 1.0' in text
    assert f'claude_proxy_ratelimit_status{{account="{acct}",status="rejected"}} 1.0' in text


@pytest.mark.parametrize(("path", "params", "param"), [
    ("/api/limits", {"bogus": "1"}, "bogus"),
    ("/api/limits", {"accountId": "a\x00b"}, "accountId"),
    ("/api/limits/history", {}, "accountId"),
    ("/api/limits/history", {"accountId": "acct_x", "window": "../etc"}, "window"),
    ("/api/limits/history", {"accountId": "acct_x", "since": "yesterday"}, "since"),
    ("/api/limits/history", {"accountId": "acct_x", "since": "1h", "until": "2h"}, "since"),
    ("/api/limits/history", {"accountId": "acct_x", "windw": "5h"}, "windw"),
])
async def test_bad_parameters_are_400_naming_them(services, path: str, params: dict[str, str], param: str) -> None:
    _mock, (a, _b) = services
    async with httpx.AsyncClient(base_url=a["dashboard_url"], headers={"X-Dashboard-Key": a["dashboard_key"]},
                                 timeout=10) as c:
        r = await c.get(path, params=params)
    assert r.status_code == 400, r.text
    assert param in r.text


async def test_unknown_account_is_empty_not_an_error(services) -> None:
    _mock, (a, _b) = services
    status, body = await _limits(a, accountId="acct_nobody")
    assert status == 200 and body["accounts"] == []


async def test_token_usage_current_uses_the_measured_window(services) -> None:
    _mock, (a, _b) = services
    sub = anthropic.AsyncAnthropic(auth_token=OAUTH_A, api_key=None, base_url=a["proxy_url"], max_retries=0)
    key = anthropic.AsyncAnthropic(api_key=API_KEY, base_url=a["proxy_url"], max_retries=0)
    msg = dict(model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}],
               extra_headers=STEER)
    for _ in range(2):
        raw = await sub.messages.with_raw_response.create(**msg)
    await key.messages.create(**msg)
    sent = _ratelimit_headers(raw.headers)
    acct = anonymous_account(OAUTH_A)
    await _wait_observed(a, acct, raw.headers["request-id"])
    async with httpx.AsyncClient(base_url=a["dashboard_url"], headers={"X-Dashboard-Key": a["dashboard_key"]},
                                 timeout=10) as c:
        deadline = time.monotonic() + 10
        while True:  # the writer stores the records and the snapshot in one transaction
            w = (await c.get("/api/token-usage/current", params={"accountId": acct})).json()
            if w["totalRequests"] == 2 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        other = (await c.get("/api/token-usage/current", params={"accountId": anonymous_account(API_KEY)})).json()
    reset = int(sent[U + "5h-reset"])
    assert w["limitSource"] == "headers" and w["limitWindow"] == "5h"
    assert sent[U + "5h-utilization"] == "0.3333"  # 1000 / 3000, as the mock rounds it
    assert w["utilization"] == 0.3333 and w["percentOfLimit"] == 33.33
    assert w["resetsAt"] == w["windowEnd"] == _iso(str(reset))
    assert w["windowStart"] == _iso(str(reset - 5 * 3600))  # reset - 5 h, not a guess from the first request
    assert w["totalTokens"] == 1000 and w["totalRequests"] == 2
    # an API key has no subscription window and no configured limit: nothing measured, nothing estimated
    assert other["limitSource"] is None and other["utilization"] is None and other["totalRequests"] == 1


async def test_sse_limits_event_carries_the_new_snapshot(services) -> None:
    import json

    from httpx_sse import aconnect_sse

    _mock, (a, _b) = services
    acct = anonymous_account(OAUTH_B)
    got: list[dict[str, Any]] = []
    ready = asyncio.Event()

    async def listen() -> None:
        async with httpx.AsyncClient(base_url=a["dashboard_url"], timeout=20,
                                     headers={"X-Dashboard-Key": a["dashboard_key"]}) as c, \
                aconnect_sse(c, "GET", "/api/sse") as es:
            async for ev in es.aiter_sse():
                ready.set()
                if ev.event == "limits":
                    got.append(json.loads(ev.data))
                    return

    task = asyncio.create_task(listen())
    await asyncio.wait_for(ready.wait(), 10)  # the heartbeat: subscribed
    client = anthropic.AsyncAnthropic(api_key=OAUTH_B, base_url=a["proxy_url"], max_retries=0)
    raw = await client.messages.with_raw_response.create(
        model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}], extra_headers=STEER)
    await asyncio.wait_for(task, 10)
    sent = _ratelimit_headers(raw.headers)
    (event,) = got
    assert event["accountId"] == acct and event["requestId"] == raw.headers["request-id"]
    _same(event, expected_from_headers(sent))


async def test_limits_events_are_coalesced_per_account() -> None:
    from nexus.core.records import Record
    from proxy.api.broker import Broker
    from proxy.recorder.limits import LimitsBoard

    t = [100.0]
    broker = Broker()
    board = LimitsBoard(broker, min_interval_s=1.0, clock=lambda: t[0])

    def answer(util: str, account: str = "acct_x") -> Record:
        return Record(account_id=account, ratelimit_headers={U + "5h-utilization": util, U + "status": "allowed"},
                      ratelimit_observed_at=datetime.now(UTC))

    board.observe(answer("0.1"))  # first: published at once
    board.observe(answer("0.2"))  # within the second: held
    board.observe(answer("0.3"))  # replaces the held one
    board.observe(answer("0.5", "acct_y"))  # another account: its own budget
    events = [e.data for e in broker.recent() if e.type == "limits"]
    assert [(e["accountId"], e["windows"]["5h"]["utilization"]) for e in events] == [("acct_x", 0.1), ("acct_y", 0.5)]
    assert set(board._scheduled) == {"acct_x"}  # held on a loop timer, due min_interval_s later
    t[0] += 1.0
    board.flush()  # what the timer does when it fires
    events = [e.data for e in broker.recent() if e.type == "limits"]
    assert [(e["accountId"], e["windows"]["5h"]["utilization"]) for e in events] == [
        ("acct_x", 0.1), ("acct_y", 0.5), ("acct_x", 0.3)]
    board.close()
