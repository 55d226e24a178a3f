"""Experiment for figure 7: the SSE fan-out changes proposed in RESULTS.md, measured, not shipped.

``/api/sse`` lives in ``proxy/api.py`` (not the benchmark's to change). This module wraps the
dashboard app with a raw-ASGI ``/api/sse`` that does what the plan says — drain every queued event
per wake-up into one chunk, serialise each event once for all subscribers, wait with
``asyncio.timeout`` instead of ``wait_for`` — so the suite can show what the change would buy.
Everything else (auth failures, other routes) still goes to the real dashboard app.
Enabled in a bench proxy process with ``python -m bench.servers proxy ... --sse-batched``.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

import orjson

HEARTBEAT_S = 15.0
MAX_BATCH = 500


def install() -> None:
    """Make ``proxy.api.create_dashboard_app`` return the wrapped app (server.py looks it up late)."""
    import proxy.api as api

    original = api.create_dashboard_app

    def create(runtime: Any) -> Any:
        return BatchedSSE(original(runtime), runtime)

    api.create_dashboard_app = create


class BatchedSSE:
    def __init__(self, app: Any, runtime: Any) -> None:
        self.app = app
        self.runtime = runtime
        self.encoded: OrderedDict[int, bytes] = OrderedDict()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    def _encode(self, event: Any) -> bytes:
        data = self.encoded.get(event.id)
        if data is None:
            data = (f"id: {event.id}\nevent: {event.type}\ndata: ".encode() + orjson.dumps(event.data) + b"\n\n")
            self.encoded[event.id] = data
            if len(self.encoded) > 4096:
                self.encoded.popitem(last=False)
        return data

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/api/sse" or scope["method"] != "GET" \
                or scope.get("query_string") or not self._authorised(scope):
            await self.app(scope, receive, send)
            return
        from proxy.broker import _CLOSED

        sub = self.runtime.broker.subscribe(None)
        queue: asyncio.Queue = sub._queue
        task = asyncio.current_task()
        assert task is not None

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            task.cancel()

        watcher = asyncio.ensure_future(watch())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
                (b"x-accel-buffering", b"no")]})
            await send({"type": "http.response.body", "body": b"retry: 2000\n\n" + self._heartbeat(),
                        "more_body": True})
            while True:
                try:
                    async with asyncio.timeout(HEARTBEAT_S):
                        first = await queue.get()
                except TimeoutError:
                    await send({"type": "http.response.body", "body": self._heartbeat(), "more_body": True})
                    continue
                batch = [first]
                while len(batch) < MAX_BATCH:
                    try:
                        batch.append(queue.get_nowait())
                    except asyncio.QueueEmpty:
                        break
                closed = any(e is _CLOSED for e in batch)
                chunk = b"".join(self._encode(e) for e in batch if e is not _CLOSED)
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                if closed:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    return
        except asyncio.CancelledError:
            if task.uncancel() == 0:
                return
            raise
        finally:
            watcher.cancel()
            sub.close()

    def _authorised(self, scope: dict) -> bool:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        key = headers.get("x-dashboard-key")
        auth = headers.get("authorization", "")
        if key is None and auth.lower().startswith("bearer "):
            key = auth[7:].strip()
        return bool(key) and key == self.runtime.dashboard_key

    def _heartbeat(self) -> bytes:
        data = orjson.dumps({"time": datetime.now(UTC).isoformat(), "lastEventId": self.runtime.broker.last_id})
        return b"event: heartbeat\ndata: " + data + b"\n\n"
