"""Reading a request body: the size cap, the gap between chunks, and the bytes all bodies hold.

``read_body`` returns the body or ``None`` above ``MAX_BODY_BYTES`` (413); it raises ``BodyRefused``
when the client stalls longer than ``CLIENT_BODY_TIMEOUT_S`` between two chunks (408) or when
``MAX_INFLIGHT_BODY_BYTES`` would be exceeded (503 + ``retry-after``): a handful of sockets that
send most of a 32 MB body and stop can no longer pin the process's memory (docs/security.md).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from proxy.ingress.relay import Incoming, Relay, error_relay
from proxy.runtime import Runtime


class BodyRefused(Exception):
    """The request body was not read: too slow (408) or no room for it right now (503)."""

    def __init__(self, relay: Relay, error_type: str) -> None:
        super().__init__(error_type)
        self.relay = relay
        self.error_type = error_type


@dataclass
class BodyHold:
    """The bytes one request's body holds of ``MAX_INFLIGHT_BODY_BYTES`` (``runtime.inflight_body_bytes``)."""

    runtime: Runtime
    held: int = 0

    def take(self, n: int) -> bool:
        cap = self.runtime.settings.proxy.max_inflight_body_bytes
        if cap > 0 and self.runtime.inflight_body_bytes + n > cap:
            return False
        self.runtime.inflight_body_bytes += n
        self.held += n
        return True

    def release(self) -> None:
        self.runtime.inflight_body_bytes -= self.held
        self.held = 0


def _busy() -> BodyRefused:
    relay = error_relay(503, "overloaded_error", "Too many request bytes in flight; retry shortly")
    relay.headers.append(("retry-after", "1"))
    return BodyRefused(relay, "inflight_bytes_exceeded")


async def read_body(incoming: Incoming, limit: int, idle_timeout_s: float = 0.0,
                     hold: BodyHold | None = None) -> bytes | None:
    """The request body, or None if it exceeds ``limit``.

    An oversized body is drained and discarded (never kept) up to a hard ceiling, so that the
    client, which is still sending, can read our 413 instead of seeing a reset connection. A gap
    longer than ``idle_timeout_s`` between two chunks raises ``BodyRefused`` (408); so does a body
    that does not fit in what ``hold`` may still take (503 + ``retry-after``), before it is read
    when its Content-Length says so, else as its chunks arrive.
    """
    drain_ceiling = 4 * limit
    length = incoming.headers.get("content-length")
    declared = None
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            declared = None
    if declared is not None and declared > drain_ceiling:
        return None  # not worth draining: the connection will be closed
    buf = bytearray()
    seen = 0
    too_big = declared is not None and declared > limit
    if hold is not None and declared is not None and not too_big and declared > 0 and not hold.take(declared):
        raise _busy()
    reserved = hold.held if hold is not None else 0
    chunks = aiter(incoming.body)
    while True:
        try:
            if idle_timeout_s > 0:
                chunk = await asyncio.wait_for(anext(chunks), idle_timeout_s)
            else:
                chunk = await anext(chunks)
        except StopAsyncIteration:
            break
        except TimeoutError:
            raise BodyRefused(error_relay(408, "timeout_error",
                                          f"Request body not received in time (no data for {idle_timeout_s:g} s)"),
                              "client_body_timeout") from None
        seen += len(chunk)
        if too_big or seen > limit:
            too_big = True
            buf.clear()
            if seen > drain_ceiling:
                break
            continue
        if hold is not None and seen > reserved:
            if not hold.take(seen - reserved):
                buf.clear()
                raise _busy()
            reserved = seen
        buf += chunk
    return None if too_big else bytes(buf)
