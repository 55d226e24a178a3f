"""Stalled uploads cannot pin the proxy's memory (issue 14 item 3; docs/security.md).

Eight sockets each send 24 MiB of a declared 32 MiB body and stop, against a real ``nexus proxy``
process: the memory they pin is measured on the process, then every one gets 408 after
``CLIENT_BODY_TIMEOUT_S`` and the resident set comes back down.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import psutil
import pytest

from nexus.sim.mock import MockUpstream
from tests.support.proc import ProxyProcess

pytestmark = pytest.mark.timeout(240)

MiB = 1024 * 1024


async def _stall(port: int, declared: int, sent: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: sk-stall\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {declared}\r\n\r\n".encode())
    block = b" " * MiB
    for _ in range(sent // MiB):
        writer.write(block)
        await writer.drain()
    return reader, writer


async def test_stalled_uploads_are_cut_and_memory_returns(db_dsn: str, tmp_path: Path) -> None:
    async with MockUpstream() as mock:
        p = ProxyProcess(tmp_path / "data", db_dsn, mock.url, client_body_timeout_s=3)
        await asyncio.to_thread(p.start)
        try:
            proc = psutil.Process(p.pid)
            port = int(p.proxy_url.rsplit(":", 1)[1])
            baseline = proc.memory_info().rss
            conns = await asyncio.gather(*(_stall(port, 32 * MiB, 24 * MiB) for _ in range(8)))
            held = proc.memory_info().rss
            assert held - baseline > 100 * MiB  # they really were held (the probe saw +259 MB)
            t0 = time.monotonic()
            heads = await asyncio.gather(*(asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 30) for r, _ in conns))
            assert all(h.startswith(b"HTTP/1.1 408") for h in heads), heads
            assert time.monotonic() - t0 < 20
            for _, w in conns:
                w.close()
            deadline = time.monotonic() + 15
            while proc.memory_info().rss - baseline > 48 * MiB and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            after = proc.memory_info().rss
            assert after - baseline <= 48 * MiB, (baseline // MiB, held // MiB, after // MiB)
            assert p.health()["status"] == "ok"
        finally:
            p.stop()
