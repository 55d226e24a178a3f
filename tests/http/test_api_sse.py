"""/api/sse over a real Hypercorn: order, Last-Event-ID replay, heartbeats, unsubscribe, slow clients."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import httpx
from httpx_sse import aconnect_sse

from nexus.core.settings import Settings
from proxy.api.app import create_dashboard_app
from proxy.api.broker import Broker
from proxy.runtime import Runtime
from tests.support.api import KEY, rec, start_api, stop_api


async def _wait_for(cond, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.01)


async def test_events_arrive_in_order_with_ids(api):
    records = [rec(api.now, timedelta(seconds=i), model=f"m{i}") for i in range(3)]
    got = []
    async with asyncio.timeout(10), aconnect_sse(api.client, "GET", "/api/sse") as es:
        assert es.response.headers["content-type"].startswith("text/event-stream")
        it = es.aiter_sse()
        first = await anext(it)
        assert first.event == "heartbeat" and first.id in ("", None)
        for r in records:
            api.runtime.broker.publish("request", r.to_event())
        api.runtime.broker.publish("alert", {"rule": "error_rate", "state": "firing"})
        async for ev in it:
            if ev.event == "heartbeat":
                continue
            got.append(ev)
            if len(got) == 4:
                break
    assert [e.event for e in got] == ["request", "request", "request", "alert"]
    ids = [int(e.id) for e in got]
    assert ids == sorted(ids) and len(set(ids)) == 4
    assert [json.loads(e.data)["model"] for e in got[:3]] == ["m0", "m1", "m2"]
    assert json.loads(got[0].data) == records[0].to_event()
    assert json.loads(got[3].data) == {"rule": "error_rate", "state": "firing"}


async def _collect(client: httpx.AsyncClient, n: int, **kw) -> list:
    out = []
    async with asyncio.timeout(10), aconnect_sse(client, "GET", "/api/sse", **kw) as es:
        async for ev in es.aiter_sse():
            if ev.event != "heartbeat":
                out.append(ev)
                if len(out) == n:
                    break
    return out


async def test_last_event_id_replays_what_was_missed(api):
    events = [api.runtime.broker.publish("request", {"n": i}) for i in range(5)]
    after = events[1].id
    got = await _collect(api.client, 3, headers={"Last-Event-ID": str(after)})
    assert [int(e.id) for e in got] == [e.id for e in events[2:]]
    assert [json.loads(e.data)["n"] for e in got] == [2, 3, 4]
    got = await _collect(api.client, 1, params={"lastEventId": str(events[3].id)})
    assert json.loads(got[0].data) == {"n": 4}


async def test_heartbeat_at_configured_interval(db_dsn):
    a = await start_api(db_dsn, sse_heartbeat_s=0.2)
    try:
        beats = []
        async with asyncio.timeout(5), aconnect_sse(a.client, "GET", "/api/sse") as es:
            async for ev in es.aiter_sse():
                assert ev.event == "heartbeat"
                beats.append((asyncio.get_running_loop().time(), json.loads(ev.data)))
                if len(beats) == 4:
                    break
        gaps = [b[0] - a_[0] for a_, b in zip(beats, beats[1:], strict=False)]
        assert all(g < 1.0 for g in gaps), gaps
        assert "time" in beats[0][1] and "lastEventId" in beats[0][1]
    finally:
        await stop_api(a)


async def test_disconnect_unsubscribes(api):
    broker = api.runtime.broker
    assert broker.subscriber_count == 0
    async with httpx.AsyncClient(base_url=api.url, headers={"X-Dashboard-Key": KEY}, timeout=5) as c:
        async with aconnect_sse(c, "GET", "/api/sse") as es:
            await anext(es.aiter_sse())
            assert broker.subscriber_count == 1
    # the server notices the closed connection and drops the subscription
    await _wait_for(lambda: broker.subscriber_count == 0)


async def test_slow_client_is_disconnected_not_buffered(api):
    api.runtime.broker = Broker(subscriber_queue=4)
    broker = api.runtime.broker
    async with asyncio.timeout(10), aconnect_sse(api.client, "GET", "/api/sse") as es:
        it = es.aiter_sse()
        await anext(it)  # connected
        for i in range(50):  # a burst the subscriber's bounded queue cannot hold
            broker.publish("request", {"n": i})
        seen = [ev async for ev in it if ev.event != "heartbeat"]  # ends when the server closes
    assert broker.slow_disconnects == 1 and broker.subscriber_count == 0
    assert len(seen) <= 4


def test_no_response_timeout_cuts_the_stream():
    # Quart's default RESPONSE_TIMEOUT (60 s) would silently end a long-lived monitor stream.
    app = create_dashboard_app(Runtime(settings=Settings(), dashboard_key=KEY))
    assert app.config["RESPONSE_TIMEOUT"] is None
