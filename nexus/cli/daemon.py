"""``nexus proxy --daemon``, ``nexus stop`` and ``nexus status``: a proxy that lives in the background.

The pid, log and status files that describe a background proxy are ``nexus.core.runfiles``. The
launcher holds the pid file with its *own* pid while it spawns, so two concurrent ``--daemon``
launches cannot both win.

Daemonising re-executes ``python -m nexus.cli proxy …`` in a new session rather than forking the
current interpreter: the child starts from a clean interpreter (no inherited threads, locks, event
loop or half-initialised logging), which is the robust choice for a process that imports asyncio,
uvloop and a PostgreSQL wheel. The launcher waits until the child's status file appears — i.e.
the servers really listen — and only then reports success, so ``nexus proxy --daemon && curl …``
works in scripts. This module imports no web framework; ``nexus status`` stays instant.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from argparse import Namespace
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nexus.core.errors import CommandError
from nexus.core.runfiles import (
    DAEMON_ENV,
    PID_FILE,
    STATUS_FILE,
    atomic_write,
    file_mtime,
    find_running,
    live_nexus_pid,
    log_path,
    pid_alive,
    pid_path,
    read_pid_file,
    read_status_file,
    status_path,
)
from nexus.core.settings import Settings, process_environment

EXIT_RUNNING = 0
EXIT_NOT_RUNNING = 3  # LSB init-script convention for "program is not running"

# -- daemonize ---------------------------------------------------------------------------------------


def _claim_pid_file(settings: Settings) -> None:
    """Create the pid file exclusively (holding our own pid for now) or refuse: already running."""
    path = pid_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            pid = read_pid_file(settings)
            live = live_nexus_pid(pid, file_mtime(path))
            if live is not None:
                raise CommandError(f"already running (pid {live})") from None
            if pid is None:
                # Maybe being written right now by a concurrent launcher: give it a moment.
                time.sleep(0.2)
                pid = read_pid_file(settings)
                if live_nexus_pid(pid, file_mtime(path)) is not None:
                    raise CommandError(f"already running (pid {pid})") from None
            with contextlib.suppress(OSError):
                path.unlink()  # stale
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{os.getpid()}\n")
        return
    raise CommandError(f"cannot claim pid file {path}")


def _child_argv(argv: Sequence[str] | None) -> list[str]:
    args = list(sys.argv[1:] if argv is None else argv)
    args = [a for a in args if a != "--daemon"]
    if "proxy" not in args:
        args.insert(0, "proxy")
    return [sys.executable, "-m", "nexus.cli", *args]


def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:] if line.strip())


def daemonize(settings: Settings, argv: Sequence[str] | None = None, ready_timeout_s: float = 90.0,
              out: Any = None) -> None:
    """Start ``nexus proxy`` detached and wait until it serves (pid, URLs and log path printed).

    Called by the launching process only (``nexus proxy --daemon``); the caller returns 0 right
    after — the server itself runs in the re-executed child, never in the caller. The daemon is ``python -m nexus.cli proxy <argv without --daemon>`` in a new
    session (no controlling terminal, immune to the shell's SIGHUP), stdin from /dev/null,
    stdout+stderr appended to the log file, ``NEXUS_DATA_DIR`` made absolute. ``argv`` defaults to
    ``sys.argv[1:]``. Refuses with "already running (pid N)" when a live proxy owns the pid file
    or the status file; stale files are cleaned. Raises ``CommandError`` if the child exits or
    does not become ready in ``ready_timeout_s`` (the log's last lines are in the message).
    """
    out = out or sys.stdout
    data_dir = Path(settings.data_dir).expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    running = find_running(settings)
    if running is not None:
        raise CommandError(f"already running (pid {running[0]})")
    _claim_pid_file(settings)
    try:
        with contextlib.suppress(OSError):
            status_path(settings).unlink()  # stale: we are about to wait for a fresh one
        log = log_path(settings)
        env = process_environment(NEXUS_DATA_DIR=str(data_dir), **{DAEMON_ENV: "1"})
        env.setdefault("PYTHONUNBUFFERED", "1")
        with open(log, "ab", buffering=0) as logfh:
            logfh.write(f"--- {datetime.now(UTC).isoformat()} starting nexus proxy daemon\n".encode())
            proc = subprocess.Popen(
                _child_argv(argv), stdin=subprocess.DEVNULL, stdout=logfh, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True, env=env,
            )
        atomic_write(pid_path(settings), f"{proc.pid}\n")
        deadline = time.monotonic() + ready_timeout_s
        status: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            code = proc.poll()
            if code is not None:
                raise CommandError(f"daemon exited with code {code} during start-up: {_log_tail(log)} "
                                     f"(log: {log})")
            status = read_status_file(settings)
            if status and int(status.get("pid") or 0) == proc.pid:
                break
            time.sleep(0.05)
        else:
            raise CommandError(f"daemon (pid {proc.pid}) not ready after {ready_timeout_s:.0f} s; "
                                 f"see {log}")
    except BaseException:
        # Leave no half-started daemon and no pid file naming a dead process behind.
        if "proc" in locals() and proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if read_pid_file(settings) in (os.getpid(), locals().get("proc") and proc.pid):
            with contextlib.suppress(OSError):
                pid_path(settings).unlink()
        raise
    # The daemon outlives us on purpose: tell Popen not to warn about it at interpreter exit.
    proc.returncode = 0
    out.write(f"nexus proxy started (pid {proc.pid})\n"
              f"  proxy:     {status.get('proxy_url')}\n"
              f"  dashboard: {status.get('dashboard_url')}\n"
              f"  log:       {log}\n")
    out.flush()


# -- nexus stop ------------------------------------------------------------------------------------------


def stop(settings: Settings, timeout_s: float = 60.0) -> tuple[int, float]:
    """SIGTERM the running proxy and wait for it to exit; return (pid, seconds taken)."""
    running = find_running(settings)
    if running is None:
        raise CommandError(f"not running (no live proxy for data dir {settings.data_dir})")
    pid = running[0]
    t0 = time.monotonic()
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = t0 + timeout_s
    while pid_alive(pid):
        if time.monotonic() > deadline:
            raise CommandError(f"pid {pid} still running {timeout_s:g} s after SIGTERM "
                                 "(in-flight streams?); try again with a longer --timeout")
        time.sleep(0.05)
    elapsed = time.monotonic() - t0
    # A clean exit removed them; after a crash they would be stale.
    for path in (pid_path(settings), status_path(settings)):
        with contextlib.suppress(OSError, ValueError):
            if path.name == PID_FILE and read_pid_file(settings) != pid:
                continue
            if path.name == STATUS_FILE and int((read_status_file(settings) or {}).get("pid") or 0) != pid:
                continue
            path.unlink()
    return pid, elapsed


def cli_stop(args: Namespace, settings: Settings) -> int:
    pid, elapsed = stop(settings, float(getattr(args, "timeout", 60.0) or 60.0))
    print(f"stopped (pid {pid}) in {elapsed:.1f} s")
    return 0


# -- nexus status ------------------------------------------------------------------------------------------


def fetch_health(url: str, timeout_s: float = 2.0) -> dict[str, Any] | None:
    """GET ``<url>/health`` → its JSON (also for a 503 "degraded" answer), or None if unreachable."""
    req = urllib.request.Request(url.rstrip("/") + "/health", headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 - loopback URL we wrote
            body = resp.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()
    except (OSError, ValueError):
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _format_duration(seconds: float) -> str:
    seconds = int(seconds)
    d, rem = divmod(seconds, 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    if d:
        return f"{d}d {h}h {m}m"
    if h:
        return f"{h}h {m}m {s}s"
    if m:
        return f"{m}m {s}s"
    return f"{s}s"


def _format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def status(settings: Settings, timeout_s: float = 2.0) -> dict[str, Any]:
    """Everything ``nexus status`` reports, as one dict (``running`` says whether a proxy is up)."""
    running = find_running(settings)
    if running is None:
        return {"running": False, "data_dir": str(settings.data_dir)}
    pid, info = running
    info = info or {}
    report: dict[str, Any] = {
        "running": True,
        "pid": pid,
        "proxy_url": info.get("proxy_url"),
        "dashboard_url": info.get("dashboard_url"),
        "started_at": info.get("started_at"),
        "instance_id": info.get("instance_id"),
        "database_kind": info.get("database"),
        "log_file": info.get("log_file") or (str(log_path(settings)) if log_path(settings).exists() else None),
        "data_dir": str(settings.data_dir),
    }
    health = fetch_health(info["proxy_url"], timeout_s) if info.get("proxy_url") else None
    if health is None and info.get("dashboard_url"):
        health = fetch_health(info["dashboard_url"], timeout_s)
    report["responding"] = health is not None
    health = health or {}
    uptime = health.get("uptime_s")
    if uptime is None and info.get("started_at"):
        with contextlib.suppress(ValueError, TypeError):
            uptime = (datetime.now(UTC) - datetime.fromisoformat(info["started_at"])).total_seconds()
    report["uptime_s"] = uptime
    report["health"] = health.get("status")
    report["database"] = health.get("database")
    for key in ("queue_depth", "journal_records", "journal_bytes"):
        report[key] = health.get(key)
    return report


def cli_status(args: Namespace, settings: Settings) -> int:
    report = status(settings)
    if getattr(args, "json", False):
        print(json.dumps(report, indent=2, default=str))
        return EXIT_RUNNING if report["running"] else EXIT_NOT_RUNNING
    if not report["running"]:
        print(f"nexus proxy: not running (data dir {report['data_dir']})")
        return EXIT_NOT_RUNNING

    def show(value: Any, fmt: Any = str) -> str:
        return "?" if value is None else fmt(value)

    db = report.get("database")
    if isinstance(db, dict):
        db = db.get("status") or json.dumps(db)
    kind = report.get("database_kind")
    lines = [
        f"nexus proxy: running (pid {report['pid']})" + ("" if report["responding"] else ", NOT RESPONDING"),
        f"  proxy:      {show(report['proxy_url'])}",
        f"  dashboard:  {show(report['dashboard_url'])}",
        f"  uptime:     {show(report['uptime_s'], _format_duration)}",
        f"  health:     {show(report['health'])}",
        f"  database:   {show(db)}" + (f" ({kind})" if kind else ""),
        f"  queue:      {show(report['queue_depth'])} record(s) waiting",
        f"  journal:    {show(report['journal_records'])} record(s), "
        f"{show(report['journal_bytes'], _format_bytes)}",
    ]
    if report.get("log_file"):
        lines.append(f"  log:        {report['log_file']}")
    print("\n".join(lines))
    return EXIT_RUNNING
