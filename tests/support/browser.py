"""A headless Chromium, driven over the DevTools protocol, to screenshot a page after it has
really rendered (``chromium --screenshot`` fires at load, before a websocket app has drawn).

Used by the ``nexus web`` test and ``scripts/make_screenshots.py``. Nothing but the standard
library and aiohttp (already a dependency); Chromium from the distribution (``apt-get install chromium``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_chromium() -> str | None:
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


async def screenshot(url: str, out: Path, *, width: int = 1280, height: int = 800, settle_s: float = 6.0,
                     ready: str | None = None, after_ready_s: float = 1.0, timeout_s: float = 40.0) -> Path:
    """Open ``url``, wait until ``ready`` (a JS expression) is true or ``settle_s`` passed, then
    ``after_ready_s`` more (the app's first poll), and save a PNG."""
    import aiohttp

    exe = find_chromium()
    if exe is None:
        raise RuntimeError("no Chromium on this machine (apt-get install chromium)")
    profile = Path(tempfile.mkdtemp(prefix="nexus-chromium-"))
    proc = await asyncio.create_subprocess_exec(
        exe, *["--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
         "--disable-extensions", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
         f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank"],
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, stdin=asyncio.subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout_s
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline or proc.returncode is not None:
                raise RuntimeError("Chromium did not open its DevTools port")
            await asyncio.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as r:
                page = next(t for t in await r.json() if t.get("type") == "page")
            async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                ids = itertools.count(1)

                async def call(method: str, **params: Any) -> dict[str, Any]:
                    n = next(ids)
                    await ws.send_json({"id": n, "method": method, "params": params})
                    async for msg in ws:
                        data = msg.json()
                        if data.get("id") == n:
                            if "error" in data:
                                raise RuntimeError(f"{method}: {data['error']}")
                            return data.get("result", {})
                    raise RuntimeError("DevTools connection closed")

                await call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                           deviceScaleFactor=1, mobile=False)
                await call("Page.navigate", url=url)
                start = time.monotonic()
                while time.monotonic() - start < settle_s:
                    if ready:
                        res = await call("Runtime.evaluate", expression=ready, returnByValue=True)
                        if res.get("result", {}).get("value") is True:
                            await asyncio.sleep(after_ready_s)
                            break
                    await asyncio.sleep(0.25)
                shot = await call("Page.captureScreenshot", format="png")
        await asyncio.to_thread(out.write_bytes, base64.b64decode(shot["data"]))
        return out
    finally:
        if proc.returncode is None:
            proc.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 10)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await asyncio.to_thread(shutil.rmtree, profile, True)
