"""``GET /api/sse``: the live stream — every finished exchange, alerts, and a heartbeat.

One subscription on the broker per client. Events already queued go out in one write (at 1,000
events/s one send per event per subscriber is what makes fan-out fall behind); a heartbeat goes
out whenever nothing else did for ``heartbeat_s``; a client the broker drops for being too slow
sees its stream end and reconnects with ``Last-Event-ID``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
from quart import Response

from nexus.core.timebuckets import iso
from proxy.api.broker import Broker
from proxy.runtime import utc_now

DEFAULT_HEARTBEAT_S = 15.0
SSE_BATCH_MAX = 500  # events written to one subscriber in a single chunk


def sse_response(broker: Broker, last_event_id: int | None, heartbeat_s: float) -> Response:
    sub = broker.subscribe(last_event_id)

    def heartbeat() -> bytes:
        data = orjson.dumps({"time": iso(utc_now()), "lastEventId": broker.last_id})
        return b"event: heartbeat\ndata: " + data + b"\n\n"

    async def stream() -> AsyncIterator[bytes]:
        try:
            # retry in the same block as the first heartbeat: some clients (httpx-sse) would
            # report a lone retry block as an empty "message" event.
            yield b"retry: 2000\n" + heartbeat()
            while True:
                try:
                    event = await sub.get(heartbeat_s)
                except StopAsyncIteration:
                    return  # closed by the broker (too slow, or shutting down)
                if event is None:
                    yield heartbeat()
                    continue
                more, closed = sub.drain(SSE_BATCH_MAX)
                yield event.frame + b"".join(e.frame for e in more)
                if closed:
                    return
        except asyncio.CancelledError:
            raise
        finally:
            sub.close()

    response = Response(stream(), status=200, content_type="text/event-stream; charset=utf-8",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    response.timeout = None  # a stream is as long as the client wants it
    return response
