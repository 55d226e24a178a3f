"""``nexus web`` as a user starts it: a subprocess serving the monitor to a browser (textual-serve),
against a real proxy + dashboard API; a headless Chromium opens it and the monitor draws."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from nexus.cli.web import is_loopback
from tests.support.browser import find_chromium, screenshot
from tests.support.env import clean_env
from tests.support.proc import free_port
from tests.support.traffic import send


@contextlib.asynccontextmanager
async def nexus_web(stack: Any, tmp_path: Path, *args: str) -> Any:
    port = free_port()
    env = clean_env()
    env["NEXUS_DATA_DIR"] = str(tmp_path / "nodata")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "nexus.cli", "web", "--port", str(port), "--url", stack.dashboard_url,
        "--key", stack.key, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(timeout=5) as c:
            for _ in range(200):  # until it listens (or died)
                if proc.returncode is not None:
                    raise AssertionError((await proc.stderr.read()).decode())
                with contextlib.suppress(httpx.TransportError):
                    await c.get(base + "/")
                    break
                await asyncio.sleep(0.05)
        yield base, proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 15)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_loopback_rule() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10") and not is_loopback("example.com")


async def test_nexus_web_serves_the_monitor_on_loopback(stack: Any, tmp_path: Path) -> None:
    async with nexus_web(stack, tmp_path) as (base, _):
        async with httpx.AsyncClient(timeout=10) as c:
            r = await c.get(base + "/")
            assert r.status_code == 200
            assert "Claude Nexus Monitor" in r.text and "/ws" in r.text


async def test_off_loopback_it_warns_and_wants_the_key(stack: Any, tmp_path: Path) -> None:
    # 0.0.0.0 is "elsewhere"; asked over 127.0.0.1 it is the same server.
    async with nexus_web(stack, tmp_path, "--host", "0.0.0.0") as (base, proc):
        async with httpx.AsyncClient(timeout=10) as c:
            assert (await c.get(base + "/")).status_code == 401
            assert (await c.get(base + "/?key=wrong")).status_code == 401
            r = await c.get(base + f"/?key={stack.key}")
            assert r.status_code == 200 and "Claude Nexus Monitor" in r.text
            assert (await c.get(base + "/static/js/textual.js")).status_code == 200  # the cookie
        proc.terminate()
        _, err = await proc.communicate()
        assert "WARNING: bound to 0.0.0.0, not loopback" in err.decode()


@pytest.mark.slow
@pytest.mark.skipif(find_chromium() is None, reason="no Chromium here (apt-get install chromium)")
async def test_a_headless_browser_sees_the_monitor(stack: Any, tmp_path: Path) -> None:
    await send(stack, 5, domain="team-web.example")
    async with nexus_web(stack, tmp_path) as (base, _):
        out = await screenshot(base + "/", tmp_path / "web.png", settle_s=30,
                               ready="document.body.classList.contains('-first-byte')", after_ready_s=5.0)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    # the drawn monitor, not the splash: a splash page is a few kB of flat colour
    assert len(data) > 40_000, len(data)
