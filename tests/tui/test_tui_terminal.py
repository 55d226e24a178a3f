"""``nexus tui`` as a user runs it: in a real pseudo-terminal, as a separate process.

What only a real terminal shows: it draws, it says when the API is away (and keeps retrying
instead of crashing), ``q`` quits, and when the terminal goes away (an SSH drop: the pty master
closes, or SIGHUP) it exits by itself instead of spinning.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.env import clean_env
from tests.support.pty import PtyProcess, closed_port

pytestmark = pytest.mark.process  # the monitor as its own process, in a pty


def tui_env(tmp_path: Path) -> dict[str, str]:
    env = clean_env()
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
