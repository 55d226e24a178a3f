"""Make ``screenshots/*.svg`` and ``*.png`` from a real ``nexus demo`` run.

Starts the demo's server child (embedded PostgreSQL, simulated upstream, proxy, dashboard API,
traffic generator — the same one ``nexus demo`` starts), lets traffic build up, then renders every
screen of the monitor headlessly against it at 80×24 and 120×40:

- ``main-WxH``        the dashboard
- ``filter-WxH``      ``/`` with ``sonnet`` typed (live narrowing, match count)
- ``zoom-log-WxH``    ``5``: the live log full-screen
- ``alerts-WxH``      ``a``: the live alerts screen
- ``limits-WxH``      Enter on the limits panel: one account's windows, history, headers
- ``sessions-WxH``    ``s``: live Claude Code sessions (cost, tokens, quota share, agents, tags)
- ``session-WxH``     Enter on the busiest session: its agent tree and requests
- ``alert-errors-WxH`` Enter on an alert: the errors of its window
- ``drill-down-WxH``  Enter on the newest error
- ``help-WxH``        the ``?`` screen
- ``web.png``         ``nexus web`` in a headless Chromium (the browser view)

Each SVG also becomes a PNG (Chromium renders the SVG), so the README shows them everywhere.
Without Chromium only the SVGs are written.

    python scripts/make_screenshots.py [--warmup 120] [--rate 6] [--range auto] [--out screenshots]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nexus.cli.demo import start_demo_servers  # noqa: E402
from tests.support.browser import find_chromium, screenshot  # noqa: E402
from tui.api.query import Query  # noqa: E402
from tui.app import NexusApp  # noqa: E402
from tui.screens.request import RequestScreen  # noqa: E402

SIZES = [(80, 24), (120, 40)]


async def settle(pilot, app: NexusApp, seconds: float = 2.0) -> None:
    deadline = time.monotonic() + 20
    while app.updated_at is None and time.monotonic() < deadline:
        await pilot.pause(0.1)
    await pilot.pause(seconds)


async def open_error(pilot, app: NexusApp) -> None:
    errors = app.w_errors
    if not errors.row_count:
        return
    errors.focus()
    errors.move_cursor(row=0)
    await pilot.press("enter")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (isinstance(app.screen, RequestScreen) and app.screen.detail):
        await pilot.pause(0.1)


async def wait_for(pilot, cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        await pilot.pause(0.1)


async def open_sessions(pilot, app: NexusApp) -> None:
    from tui.screens.sessions import SessionsScreen

    await pilot.press("s")
    await wait_for(pilot, lambda: isinstance(app.screen, SessionsScreen) and app.screen.loads > 0)


async def open_session(pilot, app: NexusApp) -> None:
    await open_sessions(pilot, app)
    await pilot.press("enter")
    await pilot.pause(1.5)


async def open_alert_errors(pilot, app: NexusApp) -> None:
    from tui.screens.alert_errors import AlertErrorsScreen

    await pilot.press("a")
    await pilot.pause(0.3)
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(app.screen, AlertErrorsScreen) and app.screen.loads > 0)


def keys(*names: str) -> Callable:
    async def run(pilot, app: NexusApp) -> None:
        for k in names:
            await pilot.press(k)
            await pilot.pause(0.1)
    return run


SCREENS: list[tuple[str, Callable]] = [
    ("main", keys()),
    ("filter", keys("slash", *"sonnet")),
    ("zoom-log", keys("5")),
    ("alerts", keys("a")),
    ("limits", keys("3", "enter")),
    ("sessions", open_sessions),
    ("session", open_session),
    ("alert-errors", open_alert_errors),
    ("drill-down", open_error),
    ("help", keys("question_mark")),
]


async def shoot(url: str, key: str, out: Path, time_range: str) -> list[Path]:
    written: list[Path] = []
    for w, h in SIZES:
        for name, action in SCREENS:
            query = None if time_range == "auto" else Query(time_range=time_range)
            app = NexusApp(url, key, watch_terminal=False, poll_interval=1.0, query=query)
            async with app.run_test(size=(w, h)) as pilot:
                await settle(pilot, app, 3.0)
                await action(pilot, app)
                await pilot.pause(0.5)
                path = out / f"{name}-{w}x{h}.svg"
                path.write_text(app.export_screenshot(title="Claude Nexus Monitor"))
                written.append(path)
                print(f"wrote {path}", file=sys.stderr)
    return written


async def to_png(svgs: list[Path]) -> None:
    for svg in svgs:
        text = svg.read_text()
        box = re.search(r'viewBox="0 0 ([0-9.]+) ([0-9.]+)"', text)
        width, height = (int(float(box.group(1))), int(float(box.group(2)))) if box else (1280, 800)
        png = svg.with_suffix(".png")
        # The SVG names a web font; offline, text stays invisible until its fetch gives up, so the
        # PNG is rendered from a copy without it (the local monospace fallback).
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / svg.name
            local.write_text(re.sub(r"@font-face\s*\{[^}]*\}", "", text))
            await screenshot(local.as_uri(), png, width=width, height=height, settle_s=2.0,
                             ready="document.fonts.status === 'loaded'", after_ready_s=0.3)
        print(f"wrote {png}", file=sys.stderr)


async def web_png(url: str, key: str, out: Path) -> None:
    """``nexus web`` on a free loopback port, opened in headless Chromium."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "nexus.cli", "web", "--port", str(port), "--url", url, "--key", key, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, stdin=asyncio.subprocess.DEVNULL)
    try:
        await asyncio.sleep(3)
        await screenshot(f"http://127.0.0.1:{port}/", out / "web.png", width=1280, height=800, settle_s=30,
                         ready="document.body.classList.contains('-first-byte')", after_ready_s=5.0)
        print(f"wrote {out / 'web.png'}", file=sys.stderr)
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 15)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--warmup", type=float, default=120.0, help="seconds of demo traffic before shooting")
    p.add_argument("--range", dest="time_range", default="auto",
                   help="time range shown (auto: what the monitor picks by itself, 15m after the warmup)")
    p.add_argument("--rate", type=float, default=6.0)
    p.add_argument("--out", default=str(ROOT / "screenshots"))
    p.add_argument("--data-dir", default=None, help="demo data dir (default: a fresh temporary one)")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = None
    data_dir = Path(args.data_dir) if args.data_dir else Path(tmp := tempfile.mkdtemp(prefix="nexus-shots-"))
    print(f"starting demo servers in {data_dir} …", file=sys.stderr)
    demo = start_demo_servers(data_dir, args.rate, seed=42)
    try:
        print(f"letting traffic build up for {args.warmup:.0f}s …", file=sys.stderr)
        time.sleep(args.warmup)
        url, key = demo.info["dashboard_url"], demo.info["dashboard_key"]
        svgs = asyncio.run(shoot(url, key, out, args.time_range))
        if find_chromium() is None:
            print("no Chromium: SVGs only (apt-get install chromium for the PNGs)", file=sys.stderr)
        else:
            asyncio.run(to_png(svgs))
            asyncio.run(web_png(url, key, out))
    finally:
        demo.stop()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
