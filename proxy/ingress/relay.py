"""What crosses the ingress boundary: the client's request as ``forward`` needs it, and the relay back.

Also the header rules of a transparent proxy (hop-by-hop headers stay on their hop, RFC 9110
§7.6.1), the Anthropic-shaped errors the proxy itself produces, and the decoder that reads a copy
of a gzip/deflate body for usage without touching the bytes relayed to the client.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from quart import Response

from nexus.core.sessions import TAG_PREFIX

log = logging.getLogger("nexus.forward")

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
    "transfer-encoding", "upgrade", "host", "content-length", "proxy-connection",
})

@dataclass(slots=True)
class Incoming:
    """What ``forward`` needs of the client's request, whichever server layer received it.

    ``headers`` is any case-insensitive mapping with ``get``/``items`` (werkzeug ``Headers`` under
    Quart, ``CIMultiDict`` on the ASGI fast path); ``body`` yields the body's chunks as they arrive.
    """

    method: str
    headers: Any
    query_string: bytes
    body: AsyncIterable[bytes]


@dataclass(slots=True)
class Relay:
    """What goes back to the client: status, headers in order, and a body or a stream of chunks.

    ``after`` (if set) finishes the record — usage parsing, pricing, hand-off to the recorder. The
    ASGI fast path runs it once the body is on its way (also if the client left meanwhile), so
    that work is off the client's latency; the Quart path runs it before responding, as before.
    Either way the record is the same: its response time is taken before ``after`` runs.
    """

    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    stream: AsyncIterator[bytes] | None = None
    never_time_out: bool = False
    after: Callable[[], None] | None = None

    def run_after(self) -> None:
        after, self.after = self.after, None
        if after is not None:
            try:
                after()
            except Exception:  # noqa: BLE001 - recording must never fail the exchange
                log.exception("finishing a record failed")


def error_relay(status: int, error_type: str, message: str) -> Relay:
    """The same bytes and headers as ``anthropic_error`` (Quart's Content-Type, Content-Length)."""
    body = orjson.dumps({"type": "error", "error": {"type": error_type, "message": message}})
    return Relay(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))], body)


def anthropic_error(status: int, error_type: str, message: str) -> Response:
    """A Quart response in Anthropic's error shape (for the routes Quart serves)."""
    return to_quart_response(error_relay(status, error_type, message))


def to_quart_response(relay: Relay) -> Response:
    out = Response(relay.stream if relay.stream is not None else relay.body, status=relay.status)
    if relay.never_time_out:
        out.timeout = None  # never cut a long stream (Quart's default is 60 s)
    out.headers.clear()
    for name, value in relay.headers:
        out.headers.add(name, value)
    return out


class BodyDecoder:
    """Incremental decoder for a copy of the response body (gzip/deflate/identity)."""

    def __init__(self, encoding: str) -> None:
        enc = encoding.lower().strip()
        if enc in ("gzip", "x-gzip"):
            self._z: Any = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif enc == "deflate":
            self._z = zlib.decompressobj()
        else:
            self._z = None
        self.failed = False

    def feed(self, chunk: bytes) -> bytes:
        if self._z is None or self.failed:
            return b"" if self.failed else chunk
        try:
            return self._z.decompress(chunk, 8 * 1024 * 1024)
        except zlib.error:
            self.failed = True
            return b""


def outgoing_headers(raw: Any) -> dict[str, str] | list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    connection_tokens = {t.strip().lower() for t in raw.get("connection", "").split(",") if t.strip()}
    for name, value in raw.items():
        low = name.lower()
        if low in HOP_BY_HOP or low in connection_tokens or low.startswith(TAG_PREFIX):
            continue  # tags (x-nexus-tag-*) are ours alone: never forwarded upstream
        out.append((name, value))
    return out


def response_headers(resp: aiohttp.ClientResponse, streaming: bool) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for name, value in resp.headers.items():
        low = name.lower()
        if low in HOP_BY_HOP and not (low == "content-length" and not streaming):
            continue
        out.append((name, value))
    return out
