"""The live stream (``/api/sse``): one task that reconnects with backoff and fills a bounded buffer."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
from httpx_sse import EventSource, SSEError

from tui.api.errors import ApiAuthError, ApiError, ApiUnreachable, auth_message
from tui.api.models import Alert, RequestEvent

if TYPE_CHECKING:
    from tui.api.client import DashboardClient


@dataclass(slots=True)
class StreamState:
    """What the header shows about the stream."""

    connected: bool = False
    message: str = "connecting…"
    retry_at: float | None = None  # monotonic time of the next attempt
    auth_failed: bool = False
    last_event_id: str | None = None
    received: int = 0
    reconnects: int = 0
    dropped: int = 0  # events pushed out of the bounded buffer before anyone read them


class EventStream:
    """``/api/sse`` with reconnect, exponential backoff with jitter, and ``Last-Event-ID`` resume.

    Events land in a bounded deque; the UI drains it on its own clock (so 200 events/s cost one
    redraw per tick, not 200) and, when paused, simply stops draining. Old events fall off the
    far end, so memory is bounded however long the monitor runs.
    """

    def __init__(self, client: DashboardClient, *, buffer: int = 5000, min_backoff: float = 0.5,
                 max_backoff: float = 15.0, read_timeout: float = 45.0,
                 on_change: Callable[[StreamState], None] | None = None,
                 on_alert: Callable[[Alert], Awaitable[None] | None] | None = None) -> None:
        self.client = client
        self.requests: deque[RequestEvent] = deque(maxlen=buffer)
        self.alerts: deque[Alert] = deque(maxlen=200)
        self.state = StreamState()
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.read_timeout = read_timeout  # > the server's 15 s heartbeat, so silence means trouble
        self.on_change = on_change
        self.on_alert = on_alert
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="nexus-sse")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None

    def retry_now(self) -> None:
        """Skip the rest of the backoff (e.g. the user pressed a key after fixing the key)."""
        self._wake.set()

    def drain(self, limit: int | None = None) -> list[RequestEvent]:
        out: list[RequestEvent] = []
        while self.requests and (limit is None or len(out) < limit):
            out.append(self.requests.popleft())
        return out

    def _changed(self) -> None:
        if self.on_change is not None:
            with contextlib.suppress(Exception):
                self.on_change(self.state)

    def _push(self, ev: RequestEvent) -> None:
        if len(self.requests) == self.requests.maxlen:
            self.state.dropped += 1
        self.requests.append(ev)

    async def _run(self) -> None:
        backoff = self.min_backoff
        while True:
            try:
                got_any = await self._connect_once()
                if got_any:
                    backoff = self.min_backoff
                self.state.message = "stream ended"
            except ApiAuthError as exc:
                self.state.auth_failed = True
                self.state.message = str(exc)
                backoff = self.max_backoff
            except (httpx.TransportError, httpx.TimeoutException, ApiUnreachable, SSEError, ApiError) as exc:
                self.state.message = f"disconnected ({exc.__class__.__name__})"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never let the stream task die silently
                self.state.message = f"stream error: {exc}"
            self.state.connected = False
            self.state.reconnects += 1
            delay = backoff * (0.8 + 0.4 * random.random())
            self.state.retry_at = time.monotonic() + delay
            self._changed()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            self.state.retry_at = None
            backoff = min(self.max_backoff, backoff * 2)

    async def _connect_once(self) -> bool:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.state.last_event_id:
            headers["Last-Event-ID"] = self.state.last_event_id
        got_any = False
        timeout = httpx.Timeout(connect=3.0, read=self.read_timeout, write=5.0, pool=5.0)
        async with self.client._http.stream("GET", "/api/sse", headers=headers, timeout=timeout) as resp:
            if resp.status_code in (401, 403):
                raise ApiAuthError(auth_message(resp.status_code), resp.status_code)
            if resp.status_code != 200:
                raise ApiError(f"/api/sse: HTTP {resp.status_code}", resp.status_code)
            self.state.connected = True
            self.state.auth_failed = False
            self.state.message = "live"
            self._changed()
            async for sse in EventSource(resp).aiter_sse():
                if sse.id:
                    self.state.last_event_id = sse.id
                if sse.event == "request":
                    try:
                        data = sse.json()
                    except ValueError:
                        continue
                    if isinstance(data, Mapping):
                        self._push(RequestEvent.parse(data))
                        self.state.received += 1
                        got_any = True
                elif sse.event == "alert":
                    try:
                        data = sse.json()
                    except ValueError:
                        continue
                    if isinstance(data, Mapping):
                        alert = Alert.parse(data)
                        self.alerts.append(alert)
                        got_any = True
                        if self.on_alert is not None:
                            res = self.on_alert(alert)
                            if asyncio.iscoroutine(res):
                                await res
                else:
                    got_any = True  # heartbeats prove the link works; reset the backoff
        return got_any
