"""LISTEN for other instances' records so every instance's ``/api/sse`` carries all traffic.

The writer of each instance NOTIFYs ``nexus_events`` with ``{"i": instance_id, "e": [events]}``
after a batch is committed; here we re-publish events of *other* instances on the local broker.
The listener holds its own connection and reconnects with backoff when the database goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
import orjson

from proxy.recorder.recorder import NOTIFY_CHANNEL
from proxy.runtime import Runtime

log = logging.getLogger("nexus.notify")


class NotifyListener:
    def __init__(self, runtime: Runtime, dsn: str) -> None:
        self.runtime = runtime
        self.dsn = dsn
        self.received = 0
        self._task: asyncio.Task | None = None
        self._conn: asyncpg.Connection | None = None
        self.connected = asyncio.Event()
        self._own_prefix = '{"i":' + orjson.dumps(runtime.instance_id).decode() + ","

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        # Our own writer's batches come back on this channel too; the recorder puts the instance
        # id first, so they are skipped without parsing (~7 KB of JSON per NOTIFY).
        if payload.startswith(self._own_prefix):
            return
        try:
            msg = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if not isinstance(msg, dict) or msg.get("i") == self.runtime.instance_id:
            return
        for event in msg.get("e") or []:
            if isinstance(event, dict):
                self.received += 1
                self.runtime.broker.publish("request", event)

    async def _run(self) -> None:
        backoff = 0.5
        while True:
            try:
                self._conn = await asyncpg.connect(self.dsn, timeout=5)
                await self._conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
                self.connected.set()
                backoff = 0.5
                while not self._conn.is_closed():
                    await asyncio.sleep(1.0)
                    with contextlib.suppress(Exception):
                        await self._conn.execute("SELECT 1", timeout=5)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep listening whatever happens
                log.debug("notify listener: %s", exc)
            finally:
                self.connected.clear()
                if self._conn is not None:
                    with contextlib.suppress(Exception):
                        await self._conn.close(timeout=2)
                    self._conn = None
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="nexus-notify-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
