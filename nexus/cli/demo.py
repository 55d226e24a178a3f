"""``nexus demo``: the whole product in one command, with nothing to configure.

The parent (this module) starts ``python -m nexus.cli.demo_child`` — embedded PostgreSQL,
simulated upstream, traffic generator, proxy and dashboard API on free ports — waits for its one
"ready" JSON line, then runs the TUI in the foreground (or, ``--headless``, just waits). On ``q``,
Ctrl+C, SIGTERM or the end of ``--duration`` the child gets SIGTERM and is waited for; if the
parent dies abruptly the child sees its stdin close and stops itself. Nothing is left running.

Kept free of module-level web/UI imports (``nexus/`` rule): Textual is imported only when the
TUI is about to start, Quart only ever in the child.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from nexus.core.errors import CommandError

READY_TIMEOUT_S = 180.0  # first run: initdb of the embedded PostgreSQL takes a while
STOP_TIMEOUT_S = 45.0


def demo_data_dir(settings: Any) -> Path:
    """Under NEXUS_DATA_DIR, apart from a real proxy's data: the demo DB persists but never mixes."""
    return Path(settings.data_dir) / "demo"


@dataclass
class DemoProcess:
    """The running server child and what it announced."""

    proc: subprocess.Popen[bytes]
    info: dict[str, Any] = field(default_factory=dict)
    log_path: Path | None = None
    final: dict[str, Any] | None = None

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> dict[str, Any] | None:
        """SIGTERM, wait, SIGKILL as a last resort; return the child's closing JSON line."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            out, _ = self.proc.communicate(timeout=10)
        for line in (out or b"").decode(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                obj = json.loads(line)
                if isinstance(obj, dict) and obj.get("event") in ("stopped", "error"):
                    self.final = obj
        return self.final


def _tail(path: Path | None, lines: int = 5) -> str:
    if path is None:
        return ""
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    return ""


def start_demo_servers(data_dir: Path, rate: float, *, seed: int | None = None,
                       timeout: float = READY_TIMEOUT_S, log: IO[str] | None = None,
                       env: dict[str, str] | None = None, extra_args: list[str] | None = None) -> DemoProcess:
    """Start the child and block until it is ready (or raise CommandError with the reason)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "demo.log"
    cmd = [sys.executable, "-m", "nexus.cli.demo_child", "--data-dir", str(data_dir), "--rate", str(rate)]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    cmd += extra_args or []
    with log_path.open("ab") as log_fh:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_fh,
                                start_new_session=True, env=env)
    demo = DemoProcess(proc=proc, log_path=log_path)
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    buf = b""
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                demo.stop(timeout=10)
                raise CommandError(f"demo servers not ready after {timeout:.0f}s (log: {log_path})")
            if not sel.select(min(left, 0.5)):
                if proc.poll() is not None:
                    raise CommandError(f"demo servers exited ({proc.returncode}): "
                                       f"{_tail(log_path, 1) or 'see ' + str(log_path)}")
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                proc.wait(timeout=5)
                raise CommandError(f"demo servers exited ({proc.returncode}): "
                                   f"{_tail(log_path, 1) or 'see ' + str(log_path)}")
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if obj.get("event") == "ready":
                    demo.info = obj
                    return demo
                if obj.get("event") == "error":
                    demo.stop(timeout=10)
                    raise CommandError(f"demo servers failed: {obj.get('message')}")
    finally:
        sel.close()
        if log is not None and demo.info:
            log.write(f"nexus demo: proxy {demo.info['proxy_url']}  dashboard {demo.info['dashboard_url']}\n"
                      f"nexus demo: force an error burst (alerts fire within ~1 min): "
                      f"curl -X POST '{demo.info.get('upstream_url')}/_mock/incident?rate=0.5&seconds=90'\n")


def _summary(demo: DemoProcess, stats: dict[str, Any] | None, duration: float,
             alerts: dict[str, Any] | None = None, hooks: list[Any] | None = None) -> str:
    info = demo.info
    lines = [f"nexus demo: ran {duration:.0f}s",
             f"  proxy      {info.get('proxy_url')}",
             f"  dashboard  {info.get('dashboard_url')}",
             f"  data       {info.get('data_dir')}"]
    if stats:
        lat = stats.get("latencyMs") or {}
        tokens = (stats.get("tokens") or {}).get("total", 0)
        lines.append(f"  requests   {stats.get('totalRequests', 0)} recorded in the last 15m, "
                     f"{stats.get('errorCount', 0)} errors ({100 * float(stats.get('errorRate') or 0):.1f}%)")
        p50, p95 = lat.get("p50"), lat.get("p95")
        lines.append("  latency    p50 " + (f"{p50:.0f}ms" if p50 is not None else "-") +
                     "  p95 " + (f"{p95:.0f}ms" if p95 is not None else "-"))
        lines.append(f"  tokens     {tokens}   cost ${float(stats.get('costUsd') or 0):.4f}")
    if alerts is not None:
        recent = alerts.get("recent") or []
        fired = sorted({a.get("rule", "?") for a in recent})
        lines.append(f"  alerts     {len(alerts.get('active') or [])} active, {len(recent)} recent"
                     + (f" ({', '.join(fired)})" if fired else ""))
    if hooks is not None:
        lines.append(f"  webhooks   {len(hooks)} alert notifications delivered to the demo's capture endpoint")
    traffic = (demo.final or {}).get("traffic") or {}
    if traffic:
        lines.append(f"  traffic    sent {traffic.get('sent', 0)}, ok {traffic.get('ok', 0)}, "
                     f"errors {traffic.get('errors', 0)}, streams {traffic.get('streams', 0)}")
    return "\n".join(lines)


def _fetch_stats(url: str, key: str) -> dict[str, Any] | None:
    import httpx

    with contextlib.suppress(httpx.HTTPError, ValueError):
        r = httpx.get(f"{url}/api/stats", params={"since": "15m"}, headers={"X-Dashboard-Key": key},
                      timeout=10)
        if r.status_code == 200:
            return r.json()
    return None


def _fetch_alerts(url: str | None, key: str | None) -> dict[str, Any] | None:
    import httpx

    if not url or not key:
        return None
    with contextlib.suppress(httpx.HTTPError, ValueError):
        r = httpx.get(f"{url}/api/alerts", headers={"X-Dashboard-Key": key}, timeout=10)
        if r.status_code == 200:
            return r.json()
    return None


def _fetch_webhooks(upstream_url: str | None) -> list[Any] | None:
    import httpx

    if not upstream_url:
        return None
    with contextlib.suppress(httpx.HTTPError, ValueError):
        r = httpx.get(f"{upstream_url}/_mock/webhook", timeout=10)
        if r.status_code == 200:
            return r.json()
    return None


def _wait_headless(duration: float | None) -> None:
    """Sleep until the duration ends, Ctrl+C or SIGTERM."""
    stop_at = None if duration is None else time.monotonic() + duration
    got_term = False

    def on_term(signum: int, frame: Any) -> None:
        nonlocal got_term
        got_term = True

    old = signal.signal(signal.SIGTERM, on_term)
    try:
        while not got_term and (stop_at is None or time.monotonic() < stop_at):
            time.sleep(0.2 if stop_at is None else max(0.0, min(0.2, stop_at - time.monotonic())))
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, old)


def cli_main(args: Any, settings: Any) -> int:
    headless = bool(getattr(args, "headless", False))
    duration = getattr(args, "duration", None)
    rate = float(getattr(args, "rate", 4.0) or 4.0)
    if not headless and not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise CommandError("nexus demo needs a terminal for the monitor; use --headless --duration N")
    data_dir = demo_data_dir(settings)
    sys.stderr.write(f"nexus demo: starting embedded PostgreSQL, simulated upstream, proxy and "
                     f"dashboard (data in {data_dir}) …\n")
    sys.stderr.flush()
    extra: list[str] = []
    if getattr(args, "incident_at", None) is not None:
        extra += ["--incident-at", str(args.incident_at)]
    demo = start_demo_servers(data_dir, rate, log=sys.stderr, extra_args=extra)
    started = time.monotonic()
    code = 0
    alerts: dict[str, Any] | None = None
    hooks: list[Any] | None = None
    try:
        if headless:
            _wait_headless(duration)
            stats = _fetch_stats(demo.info["dashboard_url"], demo.info["dashboard_key"])
            # read while the servers still run; the summary is printed after they stop
            alerts = _fetch_alerts(demo.info["dashboard_url"], demo.info["dashboard_key"])
            hooks = _fetch_webhooks(demo.info.get("upstream_url"))
        else:
            from tui.cli import run_attached

            code = run_attached(demo.info["dashboard_url"], demo.info["dashboard_key"], duration=duration)
            stats = None
    except KeyboardInterrupt:
        stats = None
    finally:
        sys.stderr.write("nexus demo: stopping …\n")
        sys.stderr.flush()
        demo.stop()
    if headless:
        print(_summary(demo, stats, time.monotonic() - started, alerts, hooks))
        if stats is None:
            raise CommandError("demo ran but its dashboard API did not answer (see "
                               f"{demo.log_path})")
    else:
        sys.stderr.write(f"nexus demo: stopped; data kept in {data_dir}\n")
    return code
