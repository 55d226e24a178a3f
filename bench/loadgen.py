"""Python load generator (aiohttp, uvloop) for what wrk cannot measure: streams and SSE delivery.

Run as its own process; prints one JSON object on stdout::

    python -m bench.loadgen ttft URL --n 300
    python -m bench.loadgen stamp URL --n 40 --events 50 --delay-ms 2
    python -m bench.loadgen open URL --streams 1000 --events 20 --delay-ms 400
    python -m bench.loadgen fanout DASH_URL KEY PROXY_URL --subs 100 --rate 1000 --seconds 10
    python -m bench.loadgen subs DASH_URL KEY --subs 100 --seconds 12     (with ``notify`` alongside)
    python -m bench.loadgen notify DSN --rate 1000 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import datetime
from typing import Any

import aiohttp
import orjson

API_KEY = "sk-ant-bench-0000000000000000"
HEADERS = {"content-type": "application/json", "x-api-key": API_KEY, "anthropic-version": "2023-06-01"}
BODY = orjson.dumps({"model": "claude-sonnet-4-5-20250929", "max_tokens": 64, "stream": True,
                     "messages": [{"role": "user", "content": "Say hello to the benchmark"}]})
PLAIN = orjson.dumps({"model": "claude-sonnet-4-5-20250929", "max_tokens": 64,
                      "messages": [{"role": "user", "content": "Say hello to the benchmark"}]})


def _session(limit: int = 0) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit), auto_decompress=False,
                                 timeout=aiohttp.ClientTimeout(total=300))


def _quantiles(xs: list[float], points: int = 1001) -> list[float]:
    """``points`` evenly spaced order statistics of ``xs`` (min … max): enough for p50/p99, and
    small on the pipe — 100,000 raw samples made a multi-megabyte line the parent could lose."""
    if len(xs) <= points:
        return sorted(xs)
    s = sorted(xs)
    return [s[round(i * (len(s) - 1) / (points - 1))] for i in range(points)]


async def ttft(url: str, n: int) -> dict[str, Any]:
    """Sequential streams: time to the first content_block_delta, and to the end."""
    first: list[float] = []
    total: list[float] = []
    async with _session() as s:
        for i in range(n + 20):
            t0 = time.perf_counter()
            got = None
            async with s.post(url + "/v1/messages", data=BODY, headers=HEADERS) as r:
                assert r.status == 200, r.status
                buf = b""
                async for chunk in r.content.iter_any():
                    if got is None:
                        buf += chunk
                        if b"content_block_delta" in buf:
                            got = time.perf_counter()
            t1 = time.perf_counter()
            if i >= 20:  # warm-up
                first.append((got - t0) * 1000)
                total.append((t1 - t0) * 1000)
    return {"ttft_ms": first, "total_ms": total}


async def stamp(url: str, n: int, events: int, delay_ms: float, conc: int) -> dict[str, Any]:
    """Per event: client arrival time minus the upstream's send stamp (same host clock)."""
    lags: list[float] = []
    errors = 0
    hdrs = {**HEADERS, "x-mock-events": str(events), "x-mock-event-delay-ms": str(delay_ms)}

    async def one(s: aiohttp.ClientSession) -> None:
        nonlocal errors
        async with s.post(url + "/v1/messages", data=BODY, headers=hdrs) as r:
            if r.status != 200:
                errors += 1
                return
            buf = b""
            async for chunk in r.content.iter_any():
                now = time.time_ns()
                buf += chunk
                while b"\n\n" in buf:
                    ev, buf = buf.split(b"\n\n", 1)
                    i = ev.find(b'"text_delta","text":"')
                    if i >= 0:
                        j = i + len(b'"text_delta","text":"')
                        sent = int(ev[j:ev.index(b'"', j)])
                        lags.append((now - sent) / 1e6)

    async with _session() as s:
        await one(s)  # warm-up
        lags.clear()
        for _ in range(max(1, n // conc)):
            await asyncio.gather(*(one(s) for _ in range(conc)))
    return {"lag_ms": lags, "errors": errors}


async def open_streams(url: str, streams: int, events: int, delay_ms: float) -> dict[str, Any]:
    """Open ``streams`` concurrent slow streams; report when all are open; count complete ones."""
    hdrs = {**HEADERS, "x-mock-events": str(events), "x-mock-event-delay-ms": str(delay_ms)}
    opened = 0
    finished = 0
    all_open = asyncio.Event()
    complete = 0
    errors: dict[str, int] = {}

    async def one(s: aiohttp.ClientSession) -> None:
        nonlocal opened, complete, finished
        try:
            async with s.post(url + "/v1/messages", data=BODY, headers=hdrs) as r:
                if r.status != 200:
                    errors[f"http_{r.status}"] = errors.get(f"http_{r.status}", 0) + 1
                    return
                first = True
                tail = b""
                async for chunk in r.content.iter_any():
                    if first:
                        first = False
                        opened += 1
                        if opened == streams:
                            all_open.set()
                    tail = (tail + chunk)[-200:]
                if b"message_stop" in tail:
                    complete += 1
                else:
                    errors["truncated"] = errors.get("truncated", 0) + 1
        except Exception as exc:  # noqa: BLE001
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
        finally:
            finished += 1

    t0 = time.perf_counter()
    async with _session() as s:
        tasks = [asyncio.create_task(one(s)) for _ in range(streams)]
        try:
            await asyncio.wait_for(all_open.wait(), 120)
            sys.stdout.write(orjson.dumps({"all_open_s": time.perf_counter() - t0,
                                           "open_now": opened - finished}).decode() + "\n")
            sys.stdout.flush()
        except TimeoutError:
            sys.stdout.write(orjson.dumps({"all_open_s": None, "opened": opened}).decode() + "\n")
            sys.stdout.flush()
        await asyncio.gather(*tasks)
    return {"streams": streams, "opened": opened, "complete": complete, "errors": errors,
            "seconds": time.perf_counter() - t0}


async def _subscribe(s: aiohttp.ClientSession, dash: str, key: str, i: int, parse: bool, ready: asyncio.Event,
                     counts: list[int], delivery: list[float], ended: list[bool]) -> None:
    """One /api/sse subscriber: counts ``request`` events; if ``parse``, times each one.

    Delivery = arrival − (event time + its latencyMs): from the moment the exchange finished (or,
    for ``notify``'s synthetic events with latency 0, from the NOTIFY). ``ended`` marks a stream
    the server closed (a subscriber cut off for being slow), not one cancelled at the end.
    """
    async with s.get(dash + "/api/sse", headers={"Authorization": f"Bearer {key}"}) as r:
        assert r.status == 200, r.status
        buf = b""
        async for chunk in r.content.iter_any():
            ready.set()
            now = time.time()
            buf += chunk
            cut = buf.rfind(b"\n\n")
            if cut < 0:
                continue
            complete, buf = buf[:cut], buf[cut + 2:]
            counts[i] += complete.count(b"event: request\n")
            if parse:
                for ev in complete.split(b"\n\n"):
                    k = ev.find(b"\ndata: ")
                    if k < 0 or b"event: request" not in ev:
                        continue
                    d = orjson.loads(ev[k + 7:])
                    delivery.append((now - datetime.fromisoformat(d["time"]).timestamp()) * 1000
                                    - d.get("latencyMs", 0))
    ended[i] = True


async def fanout(dash: str, key: str, proxy: str, subs: int, rate: float, seconds: float,
                 parsers: int) -> dict[str, Any]:
    """``subs`` SSE subscribers on /api/sse while requests flow at ``rate``/s through the proxy.

    Delivery latency = arrival - (event time + its latency), i.e. from the moment the exchange
    finished in the proxy. The first ``parsers`` subscribers parse every event; the rest count them.
    """
    delivery: list[float] = []
    counts = [0] * subs
    ended = [False] * subs

    sent = 0
    failed = 0

    async def driver(s: aiohttp.ClientSession) -> None:
        nonlocal sent, failed
        workers = 32
        per = workers / rate
        t_end = time.perf_counter() + seconds

        async def worker(k: int) -> None:
            nonlocal sent, failed
            nxt = time.perf_counter() + k * per / workers
            while nxt < t_end:
                await asyncio.sleep(max(0.0, nxt - time.perf_counter()))
                nxt += per
                try:
                    async with s.post(proxy + "/v1/messages", data=PLAIN, headers=HEADERS) as r:
                        await r.read()
                        sent += 1
                except aiohttp.ClientError:
                    failed += 1

        await asyncio.gather(*(worker(k) for k in range(workers)))

    async with _session() as ss, _session() as ps:
        readies = [asyncio.Event() for _ in range(subs)]
        tasks = [asyncio.create_task(_subscribe(ss, dash, key, i, i < parsers, readies[i], counts, delivery, ended))
                 for i in range(subs)]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in readies)), 30)
        t0 = time.perf_counter()
        await driver(ps)
        elapsed = time.perf_counter() - t0
        await asyncio.sleep(1.0)  # let the tail arrive
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {"delivery_ms": _quantiles(delivery), "delivery_n": len(delivery), "sent": sent, "failed": failed, "rate": sent / elapsed,
            "min_received": min(counts), "max_received": max(counts),
            "disconnected": sum(1 for e in ended if e)}


async def notify_driver(dsn: str, rate: float, seconds: float) -> dict[str, Any]:
    """Another proxy instance's writer, as seen by ours: NOTIFY ``nexus_events`` at ``rate`` events/s.

    Batches of 10 events per NOTIFY every 10 ms (the recorder sends several per NOTIFY too); each
    event's ``time`` is its send time and ``latencyMs`` 0, so subscribers measure delivery alone.
    """
    import asyncpg

    conn = await asyncpg.connect(dsn)
    per, tick = max(1, int(rate / 100)), 0.01
    sent = 0
    t0 = time.perf_counter()
    nxt = t0
    try:
        while time.perf_counter() - t0 < seconds:
            ts = datetime.now().astimezone().isoformat()
            ev = [{"id": f"bench-{sent + k}", "time": ts, "latencyMs": 0, "domain": "bench", "status": 200,
                   "model": "claude-sonnet-4-5-20250929", "tokens": {"input": 1, "output": 1, "total": 2}}
                  for k in range(per)]
            await conn.execute("SELECT pg_notify('nexus_events', $1)", orjson.dumps({"i": "bench-other", "e": ev}).decode())
            sent += per
            nxt += tick
            await asyncio.sleep(max(0.0, nxt - time.perf_counter()))
    finally:
        await conn.close()
    return {"sent": sent, "rate": sent / (time.perf_counter() - t0)}


async def subscribers(dash: str, key: str, subs: int, seconds: float, parsers: int) -> dict[str, Any]:
    """``subs`` SSE subscribers for ``seconds``; the first ``parsers`` time every event."""
    delivery: list[float] = []
    counts = [0] * subs
    ended = [False] * subs

    async with _session() as ss:
        readies = [asyncio.Event() for _ in range(subs)]
        tasks = [asyncio.create_task(_subscribe(ss, dash, key, i, i < parsers, readies[i], counts, delivery, ended))
                 for i in range(subs)]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in readies)), 30)
        sys.stdout.write('{"ready": true}\n')
        sys.stdout.flush()
        await asyncio.sleep(seconds)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {"delivery_ms": _quantiles(delivery), "delivery_n": len(delivery), "min_received": min(counts), "max_received": max(counts),
            "disconnected": sum(1 for e in ended if e)}


def main() -> None:
    p = argparse.ArgumentParser(prog="bench.loadgen")
    p.add_argument("mode", choices=("ttft", "stamp", "open", "fanout", "notify", "subs"))
    p.add_argument("url")
    p.add_argument("key", nargs="?")
    p.add_argument("proxy", nargs="?")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--conc", type=int, default=1)
    p.add_argument("--events", type=int, default=20)
    p.add_argument("--delay-ms", type=float, default=2.0)
    p.add_argument("--streams", type=int, default=1000)
    p.add_argument("--subs", type=int, default=100)
    p.add_argument("--parsers", type=int, default=10)
    p.add_argument("--rate", type=float, default=1000)
    p.add_argument("--seconds", type=float, default=10)
    a = p.parse_args()
    import uvloop

    url = a.url.rstrip("/")
    if a.mode == "ttft":
        out = uvloop.run(ttft(url, a.n))
    elif a.mode == "stamp":
        out = uvloop.run(stamp(url, a.n, a.events, a.delay_ms, a.conc))
    elif a.mode == "open":
        out = uvloop.run(open_streams(url, a.streams, a.events, a.delay_ms))
    elif a.mode == "notify":
        out = uvloop.run(notify_driver(a.url, a.rate, a.seconds))
    elif a.mode == "subs":
        out = uvloop.run(subscribers(url, a.key, a.subs, a.seconds, a.parsers))
    else:
        out = uvloop.run(fanout(url, a.key, a.proxy.rstrip("/"), a.subs, a.rate, a.seconds, a.parsers))
    os.set_blocking(sys.stdout.fileno(), True)  # the event loop may have left the pipe non-blocking
    sys.stdout.write(orjson.dumps(out).decode() + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
