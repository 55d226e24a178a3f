"""The upstream HTTP client, behind one small seam so it can be swapped.

aiohttp is used because it measured fastest here (bench/RESULTS.md: 69 % of direct throughput vs
10 % for httpx's default transport). Bodies are relayed raw (``auto_decompress=False``) so a
gzip response reaches the client byte for byte; the proxy decodes a copy for usage parsing.
"""

from __future__ import annotations

import aiohttp

from nexus.core.settings import Settings

# aiohttp would otherwise add its own; the client's own values (if any) are forwarded instead.
SKIP_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")


def create_session(settings: Settings) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=0,  # no global cap: concurrency is the clients'
        limit_per_host=0,
        ttl_dns_cache=300,
        keepalive_timeout=60,
        enable_cleanup_closed=True,
    )
    return aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,
        skip_auto_headers=SKIP_AUTO_HEADERS,
        cookie_jar=aiohttp.DummyCookieJar(),  # never keep cookies between clients
        timeout=request_timeout(settings),
        read_bufsize=2**16,
    )


def request_timeout(settings: Settings) -> aiohttp.ClientTimeout:
    """Overall deadline per request, per-gap read timeout (pings reset it), connect timeout."""
    return aiohttp.ClientTimeout(
        total=settings.upstream.request_deadline_s,
        sock_connect=settings.upstream.connect_timeout_s,
        sock_read=settings.upstream.read_timeout_s,
    )


# Exceptions grouped by what the client is told.
CONNECT_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientConnectorError, aiohttp.ClientOSError)
TLS_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientSSLError, aiohttp.ServerFingerprintMismatch)
DISCONNECT_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientResponseError,
    ConnectionResetError,
)
