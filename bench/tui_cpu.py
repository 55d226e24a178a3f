"""TUI cost: CPU of the ``nexus tui`` process at idle and while 200 events/s stream in; RSS growth.

Why a separate process in a real pseudo-terminal: that is how people run the monitor (over SSH),
and only then does the measurement include Textual's rendering and terminal writes. The bench
process itself runs the real proxy service (embedded PostgreSQL unless ``DATABASE_URL`` is set,
recorder, broker, dashboard API) and feeds it records through the recorder — the same path a
proxied exchange takes after the upstream answered — so the TUI sees real SSE events and real
poll answers. Only the TUI process's CPU time is measured (``psutil``), as % of one core.

    python bench/tui_cpu.py                      # 60 s idle, 60 s at 200/s, RSS at 1 and 30 min
    python bench/tui_cpu.py --rss-minutes 5      # shorter RSS run
    python bench/tui_cpu.py --markdown           # print a RESULTS.md section
    TUI_PROFILE=/tmp/tui.prof python bench/tui_cpu.py …   # cProfile the TUI process
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nexus.core.records import Record  # noqa: E402
from nexus.core.settings import load_settings  # noqa: E402

KEY = "bench-tui-key-0123456789"
DOMAINS = ["team-alpha.example.com", "team-beta.example.com", "ci.example.com", "research.example.com"]
MODELS = ["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1"]
ACCOUNTS = [f"acct_{i:012x}" for i in range(6)]


def fake_record(rng: random.Random) -> Record:
    err = rng.random() < 0.03
    return Record(
        id=uuid.uuid4(), created_at=datetime.now(UTC), domain=rng.choice(DOMAINS),
        account_id=rng.choice(ACCOUNTS), model=rng.choice(MODELS), stream=rng.random() < 0.6,
        status_code=529 if err else 200, error_type="overloaded_error" if err else None,
        input_tokens=0 if err else rng.randint(5, 2000), output_tokens=0 if err else rng.randint(10, 1500),
        cache_read_input_tokens=0 if err else rng.choice([0, 0, 4096, 20480]),
        response_time_ms=rng.uniform(200, 4000), ttft_ms=None if err else rng.uniform(80, 900),
        cost_usd=Decimal("0") if err else Decimal(str(round(rng.uniform(0.0005, 0.05), 6))),
    )


class PtyTui:
    """``nexus tui`` on a 120x40 pty; a thread drains its output like a terminal would."""

    def __init__(self, url: str, cols: int = 120, rows: int = 40) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        env = {k: v for k, v in os.environ.items() if k != "DASHBOARD_API_KEY"}
        env.update({"TERM": "xterm-256color", "TEXTUAL_ANIMATIONS": "none"})
        prof = ["-m", "cProfile", "-o", os.environ["TUI_PROFILE"]] if os.environ.get("TUI_PROFILE") else []
        self.proc = subprocess.Popen([sys.executable, *prof, "-m", "nexus.cli", "tui", "--url", url, "--key", KEY],
                                     stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
        os.close(slave)
        self.bytes_out = 0
        threading.Thread(target=self._drain, daemon=True).start()
        self.ps = psutil.Process(self.proc.pid)

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.bytes_out += len(chunk)

    def cpu_s(self) -> float:
        t = self.ps.cpu_times()
        return t.user + t.system

    def rss_mb(self) -> float:
        return self.ps.memory_info().rss / 1e6

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            os.write(self.master, b"q")
            self.proc.wait(timeout=10)
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        with contextlib.suppress(OSError):
            os.close(self.master)


async def measure(tui: PtyTui, seconds: float) -> float:
    c0, t0 = tui.cpu_s(), time.monotonic()
    await asyncio.sleep(seconds)
    return 100.0 * (tui.cpu_s() - c0) / (time.monotonic() - t0)


async def feed(recorder: Any, rate: float, stop: asyncio.Event, counter: list[int]) -> None:
    """``rate`` records per second in 20 ms slices, through the recorder (DB + broker)."""
    rng = random.Random(7)
    tick = 0.02
    start = time.monotonic()
    sent = 0
    while not stop.is_set():
        due = int((time.monotonic() - start) * rate)
        for _ in range(due - sent):
            recorder.submit(fake_record(rng))
        sent = due
        counter[0] = sent
        await asyncio.sleep(tick)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from proxy.service import ProxyService

    tmp = Path(tempfile.mkdtemp(prefix="nexus-bench-tui-"))
    env = {"NEXUS_DATA_DIR": str(tmp), "PROXY_PORT": "0", "DASHBOARD_PORT": "0", "DASHBOARD_API_KEY": KEY,
           "LOG_LEVEL": "WARNING"}
    if os.environ.get("DATABASE_URL"):
        env["DATABASE_URL"] = os.environ["DATABASE_URL"]
    service = ProxyService(load_settings(env))
    info = await service.start()
    rt = service.runtime
    assert rt is not None and rt.recorder is not None
    rng = random.Random(1)
    for _ in range(2000):  # an hour's worth of history so the panels have something to draw
        rt.recorder.submit(fake_record(rng))
    await asyncio.sleep(2)
    tui = PtyTui(info["dashboard_url"])
    result: dict[str, Any] = {"rate": args.rate, "idle_s": args.idle, "load_s": args.load}
    try:
        await asyncio.sleep(args.warmup)
        print(f"idle: measuring {args.idle:.0f}s …", file=sys.stderr)
        result["idle_cpu"] = await measure(tui, args.idle)
        stop = asyncio.Event()
        counter = [0]
        feeder = asyncio.create_task(feed(rt.recorder, args.rate, stop, counter))
        await asyncio.sleep(args.warmup)
        print(f"load: measuring {args.load:.0f}s at {args.rate:.0f} events/s …", file=sys.stderr)
        sent0 = counter[0]
        t0 = time.monotonic()
        result["load_cpu"] = await measure(tui, args.load)
        result["achieved_rate"] = (counter[0] - sent0) / (time.monotonic() - t0)
        # RSS: after 1 minute of load, and after --rss-minutes
        elapsed = args.warmup + args.load
        if elapsed < 60:
            await asyncio.sleep(60 - elapsed)
            elapsed = 60
        result["rss_1min_mb"] = tui.rss_mb()
        remaining = args.rss_minutes * 60 - elapsed
        if remaining > 0:
            print(f"rss: running {remaining / 60:.1f} more minutes at {args.rate:.0f}/s …", file=sys.stderr)
            end = time.monotonic() + remaining
            trace: list[tuple[float, float]] = []
            while time.monotonic() < end:
                await asyncio.sleep(min(60.0, max(0.0, end - time.monotonic())))
                trace.append((round((time.monotonic() - end + remaining + elapsed) / 60, 1), tui.rss_mb()))
                print(f"  {trace[-1][0]:5.1f} min  rss {trace[-1][1]:.1f} MB", file=sys.stderr)
            result["rss_trace"] = trace
        result["rss_end_mb"] = tui.rss_mb()
        result["rss_minutes"] = args.rss_minutes
        result["rss_growth_pct"] = 100.0 * (result["rss_end_mb"] - result["rss_1min_mb"]) / result["rss_1min_mb"]
        result["tui_alive"] = tui.proc.poll() is None
        stop.set()
        await feeder
    finally:
        tui.stop()
        await service.stop()
    return result


def markdown(r: dict[str, Any]) -> str:
    cpu = os.cpu_count()
    return "\n".join([
        "## TUI",
        "",
        f"`python bench/tui_cpu.py --rss-minutes {r['rss_minutes']:g}` — `nexus tui` in a 120×40 pty (output "
        f"drained like a terminal), fed by the real proxy service (recorder → PostgreSQL + broker → "
        f"`/api/sse`, polls of the stats routes every 4–30 s). {cpu}-core machine. CPU is the TUI "
        f"process only, % of one core.",
        "",
        "| measure | result | target |",
        "|---|---|---|",
        f"| CPU at idle ({r['idle_s']:.0f} s, no traffic) | {r['idle_cpu']:.1f} % | ≤ 2 % |",
        f"| CPU at {r['rate']:.0f} events/s ({r['load_s']:.0f} s; achieved {r['achieved_rate']:.0f}/s) | "
        f"{r['load_cpu']:.1f} % | ≤ 20 % |",
        f"| RSS after 1 min at {r['rate']:.0f}/s | {r['rss_1min_mb']:.1f} MB | |",
        f"| RSS after {r['rss_minutes']:g} min at {r['rate']:.0f}/s | {r['rss_end_mb']:.1f} MB "
        f"({r['rss_growth_pct']:+.1f} %) | growth ≤ 10 % (over 30 min) |",
        "",
    ])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--idle", type=float, default=60.0)
    p.add_argument("--load", type=float, default=60.0)
    p.add_argument("--rate", type=float, default=200.0)
    p.add_argument("--warmup", type=float, default=5.0)
    p.add_argument("--rss-minutes", type=float, default=30.0)
    p.add_argument("--markdown", action="store_true", help="print a RESULTS.md section")
    args = p.parse_args()
    r = asyncio.run(run(args))
    if args.markdown:
        print(markdown(r))
    else:
        for k, v in r.items():
            print(f"{k:16} {v:.2f}" if isinstance(v, float) else f"{k:16} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
