"""``nexus demo``: one command, real processes, nothing left running afterwards.

These run the real command line: the server child (embedded PostgreSQL, simulated upstream,
proxy, dashboard, traffic) and, for the interactive case, the TUI in a pseudo-terminal.
One data dir is shared by the module so the embedded database is initialised only once —
which also checks that the demo's database persists between runs.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.support.env import clean_env
from tests.support.pty import PtyProcess

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo-data")


def demo_env(data_dir: Path) -> dict[str, str]:
    env = clean_env()
    env.update({"NEXUS_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1", "TERM": "xterm-256color"})
    return env


def leftovers(data_dir: Path) -> list[psutil.Process]:
    """Processes whose command line mentions this data dir (the server child, postgres)."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(str(data_dir) in part for part in (p.info["cmdline"] or [])):
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def wait_gone(data_dir: Path, timeout: float = 30.0) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = leftovers(data_dir)
        if not left:
            return []
        time.sleep(0.2)
    return leftovers(data_dir)


def test_headless_runs_traffic_and_stops_cleanly(data_dir: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "nexus.cli", "demo", "--headless", "--duration", "6", "--rate", "10"],
                         capture_output=True, text=True, env=demo_env(data_dir), timeout=200,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    m = re.search(r"requests\s+(\d+) recorded", out.stdout)
    assert m and int(m.group(1)) > 10, out.stdout
    sent = re.search(r"traffic\s+sent (\d+)", out.stdout)
    assert sent and int(sent.group(1)) > 10, out.stdout
    assert (data_dir / "demo" / "dashboard.key").exists()
    assert wait_gone(data_dir, 10) == []


def test_parent_killed_hard_leaves_nothing_running(data_dir: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "nexus.cli", "demo", "--headless"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=demo_env(data_dir), stdin=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 120
        line = ""
        assert proc.stderr is not None
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if "dashboard http" in line or not line:
                break
        assert "dashboard http" in line, line
        children = psutil.Process(proc.pid).children(recursive=True)
        assert children
        proc.send_signal(signal.SIGKILL)  # no chance to clean up: the child must notice by itself
        proc.wait(timeout=10)
        gone, alive = psutil.wait_procs(children, timeout=45)
        assert not alive, alive
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in leftovers(data_dir):
            p.kill()


def test_interactive_demo_shows_live_traffic_and_q_stops_everything(data_dir: Path) -> None:
    p = PtyProcess([sys.executable, "-m", "nexus.cli", "demo", "--rate", "8"], demo_env(data_dir), cols=120, rows=40)
    try:
        assert p.wait_for("● live", timeout=120), p.text()[-3000:]
        assert p.wait_for("Live requests", timeout=30)
        # the log fills with requests that went through the proxy
        assert p.wait_for(" 200 ", timeout=30), p.text()[-3000:]
        assert leftovers(data_dir), "server child should be running"
        p.send(b"q")  # nexus demo asks once before stopping its servers too
        assert p.wait_for("stop the demo servers?", timeout=30), p.text()[-3000:]
        p.send(b"y")
        assert p.proc.wait(timeout=60) == 0
        assert wait_gone(data_dir, 30) == []
    finally:
        p.kill()
        for proc in leftovers(data_dir):
            proc.kill()
