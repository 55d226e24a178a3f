"""``nexus tui`` as a user runs it: in a real pseudo-terminal, as a separate process.

What only a real terminal shows: it draws, it says when the API is away (and keeps retrying
instead of crashing), ``q`` quits, and when the terminal goes away (an SSH drop: the pty master
closes, or SIGHUP) it exits by itself instead of spinning.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest

ANSI = re.compile(r"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]|\x1b\][^\x07]*\x07")


def closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PtyProcess:
    """A child on a pty of a given size; output collected by a reader thread."""

    def __init__(self, argv: list[str], env: dict[str, str], cols: int = 100, rows: int = 30) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     start_new_session=True, close_fds=True)
        os.close(slave)
        self.buf = bytearray()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            with self._lock:
                self.buf += chunk
                if len(self.buf) > 4_000_000:
                    del self.buf[:2_000_000]

    def text(self) -> str:
        with self._lock:
            raw = bytes(self.buf)
        return ANSI.sub("", raw.decode(errors="replace"))

    def wait_for(self, needle: str, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text():
                return True
            if self.proc.poll() is not None:
                return needle in self.text()
            time.sleep(0.1)
        return False

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def close_master(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.master)

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.close_master()


def tui_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DASHBOARD_API_KEY", "DATABASE_URL", "NEXUS_CONFIG")}
    env.update({"NEXUS_DATA_DIR": str(tmp_path), "TERM": "xterm-256color", "PYTHONUNBUFFERED": "1",
                "TEXTUAL_ANIMATIONS": "none"})
    return env


@pytest.fixture
def tui_unreachable(tmp_path: Path):
    port = closed_port()
    p = PtyProcess([sys.executable, "-m", "nexus.cli", "tui", "--url", f"http://127.0.0.1:{port}",
                    "--key", "k"], tui_env(tmp_path))
    try:
        yield p
    finally:
        p.kill()


def test_draws_says_disconnected_and_q_quits(tui_unreachable: PtyProcess) -> None:
    p = tui_unreachable
    assert p.wait_for("Nexus"), p.text()[-2000:]
    assert p.wait_for("retrying in"), p.text()[-2000:]
    time.sleep(1.0)
    assert p.proc.poll() is None  # still running, still retrying
    p.send(b"q")
    assert p.proc.wait(timeout=15) == 0


def test_exits_when_the_terminal_goes_away(tui_unreachable: PtyProcess) -> None:
    p = tui_unreachable
    assert p.wait_for("Nexus"), p.text()[-2000:]
    p.close_master()  # what sshd does when the connection drops
    assert p.proc.wait(timeout=15) is not None


def test_exits_on_sighup(tui_unreachable: PtyProcess) -> None:
    p = tui_unreachable
    assert p.wait_for("Nexus"), p.text()[-2000:]
    p.proc.send_signal(signal.SIGHUP)
    assert p.proc.wait(timeout=15) is not None


def test_without_a_terminal_or_key_it_says_so(tmp_path: Path) -> None:
    env = tui_env(tmp_path)
    out = subprocess.run([sys.executable, "-m", "nexus.cli", "tui", "--url", "http://127.0.0.1:9"],
                         capture_output=True, text=True, env=env, timeout=30, stdin=subprocess.DEVNULL)
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "no dashboard key" in out.stderr
    out = subprocess.run([sys.executable, "-m", "nexus.cli", "tui", "--key", "k", "--url", "http://127.0.0.1:9"],
                         capture_output=True, text=True, env=env, timeout=30, stdin=subprocess.DEVNULL)
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "needs a terminal" in out.stderr
    assert "Traceback" not in out.stderr
