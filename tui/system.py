"""The monitor's relationship with its process: give freed memory back, notice a vanished terminal."""

from __future__ import annotations

import asyncio
import contextlib
import select
import signal
import sys
from collections.abc import Callable
from typing import Any


def _load_malloc_trim() -> Callable[[int], int] | None:
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _load_malloc_trim() if sys.platform.startswith("linux") else None


def release_freed_memory() -> None:
    """Hand freed heap pages back to the OS (glibc only; a no-op elsewhere).

    A monitor left open for days churns through millions of short-lived strings. Measured at
    200 events/s: the Python heap stays flat (tracemalloc, gc counts) while RSS creeps ~0.5 MB/min,
    i.e. pages glibc keeps after they were freed; trimming once a minute costs a few ms.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def terminal_gone(fd: int | None = None) -> bool:
    """True when our controlling terminal hung up (or stdin hit EOF / was closed)."""
    if fd is None:
        try:
            fd = sys.__stdin__.fileno() if sys.__stdin__ else 0
        except (ValueError, OSError):
            return True
    try:
        p = select.poll()
        p.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR | select.POLLNVAL)
        for _, ev in p.poll(0):
            if ev & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                return True
    except (OSError, ValueError):
        return True
    return False


def watch_terminal(app: Any) -> None:
    """Make ``app`` (a Textual App) exit when its terminal goes away — SIGHUP, SIGTERM, or a hung-up
    stdin noticed every 2 s — so an SSH drop never leaves a monitor spinning."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGHUP, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, app.exit, 0)

    def check() -> None:
        if terminal_gone():
            app.exit(0)

    app.set_interval(2.0, check, name="terminal-watch")
