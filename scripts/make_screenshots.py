"""Make ``screenshots/*.svg`` from a real ``nexus demo`` run.

Starts the demo's server child (embedded PostgreSQL, simulated upstream, proxy, dashboard API,
traffic generator — the same one ``nexus demo`` starts), lets traffic build up, then renders the
monitor headlessly against it at the sizes the README shows:

- ``main-120x40.svg``   the dashboard at a comfortable size
- ``main-80x24.svg``    the same at the smallest supported terminal
- ``drill-down.svg``    Enter on the newest error
- ``help.svg``          the ``?`` screen

    python scripts/make_screenshots.py [--warmup 300] [--rate 6] [--range 15m] [--out screenshots]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nexus.cli.demo import start_demo_servers  # noqa: E402
from tui.api.query import Query  # noqa: E402
from tui.app import NexusApp  # noqa: E402
from tui.screens.request import RequestScreen  # noqa: E402


async def settle(pilot, app: NexusApp, seconds: float = 2.0) -> None:
    deadline = time.monotonic() + 20
    while (app.polls == 0 or "costs" not in app.data or "windows" not in app.data) and time.monotonic() < deadline:
        await pilot.pause(0.1)
    await pilot.pause(seconds)


async def shoot(url: str, key: str, out: Path, time_range: str = "15m") -> list[Path]:
    written: list[Path] = []

    def save(app: NexusApp, name: str) -> None:
        path = out / name
        path.write_text(app.export_screenshot(title="Claude Nexus Monitor"))
        written.append(path)
        print(f"wrote {path}", file=sys.stderr)

    app = NexusApp(url, key, watch_terminal=False, poll_interval=1.0, query=Query(time_range=time_range))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, app, 4.0)
        save(app, "main-120x40.svg")
        errors = app.w_errors
        if errors.row_count:
            errors.focus()
            errors.move_cursor(row=0)
            await pilot.press("enter")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not (
                    isinstance(app.screen, RequestScreen) and app.screen.detail is not None):
                await pilot.pause(0.1)
            await pilot.pause(0.3)
            save(app, "drill-down.svg")
            await pilot.press("escape")
        await pilot.press("question_mark")
        await pilot.pause(0.3)
        save(app, "help.svg")

    app = NexusApp(url, key, watch_terminal=False, poll_interval=1.0, query=Query(time_range=time_range))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app, 4.0)
        save(app, "main-80x24.svg")
    return written


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--warmup", type=float, default=300.0, help="seconds of demo traffic before shooting")
    p.add_argument("--range", dest="time_range", default="15m", help="time range shown (15m shows the warmup best)")
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
        asyncio.run(shoot(demo.info["dashboard_url"], demo.info["dashboard_key"], out, args.time_range))
    finally:
        demo.stop()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
