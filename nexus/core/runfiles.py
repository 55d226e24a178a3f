"""The files that describe a running proxy, in its data dir: pid file, status file, log file.

``nexus-proxy.pid``
    the daemon's pid, written by the launching process (``nexus proxy --daemon``);
``nexus-proxy.log``
    the daemon's stdout and stderr (appended, so a crash loop leaves a history);
``nexus-proxy.json``
    the *status file*, written by the running server itself once both ports listen
    (:func:`write_status_file`) and removed on a clean exit (:func:`remove_status_file`). A
    foreground ``nexus proxy`` writes it too, so ``nexus status`` and ``nexus stop`` see it.

The server (``proxy.service``) writes and removes the status file; the CLI (``nexus.cli.daemon``)
reads all three. Both need the same names and the same liveness checks, so they live here.
"""

from __future__ import annotations

import contextlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nexus.core.settings import Settings

PID_FILE = "nexus-proxy.pid"
LOG_FILE = "nexus-proxy.log"
STATUS_FILE = "nexus-proxy.json"

# Environment marker set for the re-executed child, so it can tell it runs detached.
DAEMON_ENV = "NEXUS_DAEMON_CHILD"


# -- paths -----------------------------------------------------------------------------------


def pid_path(settings: Settings) -> Path:
    return Path(settings.data_dir) / PID_FILE


def log_path(settings: Settings) -> Path:
    return Path(settings.data_dir) / LOG_FILE


def status_path(settings: Settings) -> Path:
    return Path(settings.data_dir) / STATUS_FILE


# -- process checks ----------------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie (a zombie has exited, it only awaits reaping)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        import psutil

        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except Exception:  # psutil missing or the process vanished between the two checks
        return True


def is_nexus_cmdline(argv: list[str]) -> bool:
    """Whether ``argv`` is a nexus server: ``python -m nexus[.cli] …``, the ``nexus`` script, or
    ``proxy.service``. An empty argv is not: the kernel shows one for a process between ``exec``
    and its new image (a freshly started ``sleep`` looked like ours), and for zombies."""
    for i, arg in enumerate(argv):
        if os.path.basename(arg) == "nexus" or "proxy.service" in arg:
            return True
        if i > 0 and argv[i - 1] == "-m" and (arg == "nexus" or arg.startswith("nexus.")):
            return True
        if arg.startswith("-mnexus"):
            return True
    return False


def looks_like_nexus(pid: int, written_at: float | None = None) -> bool:
    """Guard against pid reuse: a stale pid file may name some unrelated process by now.

    Ours only if its command line says so (read, not guessed: unreadable or empty is not ours)
    and, when ``written_at`` (the pid file's mtime) is given, it existed before the file was
    written — the launcher writes the file after starting the daemon, so a process created later
    reuses the pid.
    """
    try:
        import psutil

        proc = psutil.Process(pid)
        argv = proc.cmdline()
        created = proc.create_time()
    except Exception:
        return False  # gone, a zombie, or not ours to read
    if written_at is not None and created > written_at + 2.0:
        return False
    return is_nexus_cmdline(argv)


def live_nexus_pid(pid: int | None, written_at: float | None = None) -> int | None:
    if pid is not None and pid != os.getpid() and pid_alive(pid) and looks_like_nexus(pid, written_at):
        return pid
    return None


def file_mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def read_pid_file(settings: Settings) -> int | None:
    try:
        return int(pid_path(settings).read_text().strip())
    except (OSError, ValueError):
        return None


def atomic_write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    os.replace(tmp, path)


# -- the status file (written by the running server) -----------------------------------------------


def write_status_file(settings: Settings, info: dict[str, Any]) -> Path:
    """Write the running server's status file atomically; return its path.

    ``info`` should carry ``proxy_url``, ``dashboard_url``, ``instance_id`` and ``database``
    (``"embedded"`` or ``"external"``); ``pid`` and ``started_at`` default to this process and now.
    Written with ``os.replace`` so a concurrent ``nexus status`` never reads half a file. Call it
    once both servers listen: the ``--daemon`` launcher treats its appearance as "ready".
    """
    data = dict(info)
    data.setdefault("pid", os.getpid())
    started = data.get("started_at") or datetime.now(UTC)
    data["started_at"] = started.isoformat() if isinstance(started, datetime) else str(started)
    path = status_path(settings)
    # 0600: the server may include its database URL, which can carry a password.
    atomic_write(path, json.dumps(data, indent=2, default=str) + "\n", mode=0o600)
    return path


def read_status_file(settings: Settings) -> dict[str, Any] | None:
    """The status file's contents, or ``None`` when absent or unreadable (never raises)."""
    try:
        data = json.loads(status_path(settings).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def remove_status_file(settings: Settings) -> None:
    """Remove the status file, and the pid file too when it names this process (clean exit).

    Files that name *another* live process are left alone, so a second proxy that failed to
    start cannot erase the running one's files.
    """
    me = os.getpid()
    status = read_status_file(settings)
    try:
        status_pid = int((status or {}).get("pid") or 0)
    except (TypeError, ValueError):
        status_pid = 0
    if status_pid in (me, 0) or not pid_alive(status_pid):
        with contextlib.suppress(OSError):
            status_path(settings).unlink()
    pid = read_pid_file(settings)
    if pid is not None and (pid == me or not pid_alive(pid)):
        with contextlib.suppress(OSError):
            pid_path(settings).unlink()


def find_running(settings: Settings) -> tuple[int, dict[str, Any] | None] | None:
    """(pid, status-file contents) of the proxy running on this data dir, or ``None``.

    Stale pid and status files (their process is gone) are cleaned up on the way.
    """
    status = read_status_file(settings)
    pid_from_file = read_pid_file(settings)
    status_pid = int(status["pid"]) if status and str(status.get("pid", "")).isdigit() else None
    for pid, path in ((pid_from_file, pid_path(settings)), (status_pid, status_path(settings))):
        live = live_nexus_pid(pid, file_mtime(path))
        if live is not None:
            return live, (status if status_pid == live else None)
    # Nothing alive: whatever files remain are stale.
    if pid_from_file is not None:
        with contextlib.suppress(OSError):
            pid_path(settings).unlink()
    if status is not None:
        with contextlib.suppress(OSError):
            status_path(settings).unlink()
    return None
