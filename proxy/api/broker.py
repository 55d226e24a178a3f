"""In-process event fan-out for ``/api/sse``: a ring buffer for ``Last-Event-ID`` and bounded queues.

Every subscriber has its own bounded queue. A subscriber that cannot keep up is disconnected
(its queue is closed) rather than allowed to grow the proxy's memory. Events from other proxy
instances arrive through PostgreSQL NOTIFY (see ``proxy.recorder.notify``) and are published here too.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import orjson

from nexus.core.records import Event

_CLOSED = object()


def sse_frame(event_id: int, event_type: str, data: dict[str, Any], data_json: bytes | None = None) -> bytes:
    """One ``text/event-stream`` frame (id, event, data), built once per event, not per subscriber.

    ``data_json`` is ``data`` already serialised (the recorder reuses it for NOTIFY).
    """
    payload = orjson.dumps(data) if data_json is None else data_json
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event_id, event_type.encode(), payload)


class Subscription:
    """One SSE client's view of the stream."""

    def __init__(self, broker: Broker, maxsize: int) -> None:
        self._broker = broker
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=maxsize)
        self.dropped = False  # True when disconnected for being too slow

    def _offer(self, event: Event) -> bool:
        try:
            self._queue.put_nowait(event)
            return True
        except asyncio.QueueFull:
            self.dropped = True
            self._close()
            return False

    def _close(self) -> None:
        # Make room so the sentinel always fits.
        while True:
            try:
                self._queue.put_nowait(_CLOSED)
                return
            except asyncio.QueueFull:
                try:
                    self._queue.get_nowait()
                except asyncio.QueueEmpty:  # pragma: no cover
                    pass

    async def get(self, timeout: float | None = None) -> Event | None:
        """Next event; ``None`` on timeout. Raises ``StopAsyncIteration`` once closed."""
        try:
            # asyncio.timeout, not wait_for: no extra task per event on a busy stream.
            async with asyncio.timeout(timeout):
                item = await self._queue.get()
        except TimeoutError:
            return None
        if item is _CLOSED:
            raise StopAsyncIteration
        return item

    def drain(self, limit: int) -> tuple[list[Event], bool]:
        """Events already queued (up to ``limit``) without waiting, and whether the stream closed."""
        out: list[Event] = []
        while len(out) < limit:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            if item is _CLOSED:
                return out, True
            out.append(item)
        return out, False

    def close(self) -> None:
        self._broker._unsubscribe(self)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        event = await self.get()
        assert event is not None
        return event


class Broker:
    """Publish/subscribe with replay from a bounded history."""

    def __init__(self, history: int = 2000, subscriber_queue: int = 1000) -> None:
        # Ids start at the current time in ms so they keep increasing across restarts: a monitor
        # reconnecting with an old Last-Event-ID then gets the new process's history, not nothing.
        self._ids = itertools.count(int(time.time() * 1000))
        self._history: deque[Event] = deque(maxlen=history)
        self._subs: set[Subscription] = set()
        self._subscriber_queue = subscriber_queue
        self.published = 0
        self.slow_disconnects = 0

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)

    @property
    def last_id(self) -> int:
        return self._history[-1].id if self._history else 0

    def publish(self, event_type: str, data: dict[str, Any], data_json: bytes | None = None) -> Event:
        event_id = next(self._ids)
        event = Event(id=event_id, type=event_type, data=data, frame=sse_frame(event_id, event_type, data, data_json))
        self._history.append(event)
        self.published += 1
        for sub in list(self._subs):
            if not sub._offer(event):
                self._subs.discard(sub)
                self.slow_disconnects += 1
        return event

    def subscribe(self, last_event_id: int | None = None) -> Subscription:
        """Subscribe; with ``last_event_id``, first replay what came after it (as far as history goes)."""
        sub = Subscription(self, self._subscriber_queue)
        if last_event_id is not None:
            for event in self._history:
                if event.id > last_event_id and not sub._offer(event):
                    break
        if not sub.dropped:
            self._subs.add(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    def recent(self, limit: int = 100) -> list[Event]:
        return list(self._history)[-limit:]

    def close_all(self) -> None:
        for sub in list(self._subs):
            sub._close()
        self._subs.clear()
