"""Which pid is a running nexus (issue 14: the `sleep 60` sentinel was once taken for ours).

``find_running`` must never take an unrelated process for the proxy: not one whose command line
is empty or unreadable (a process between ``exec`` and its new image shows an empty one), not one
started after the pid file was written (the pid was reused).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from nexus.core.runfiles import find_running, is_nexus_cmdline, looks_like_nexus
from nexus.core.settings import load_settings


def test_nexus_command_lines():
    assert is_nexus_cmdline([sys.executable, "-m", "nexus.cli", "proxy"])
    assert is_nexus_cmdline([sys.executable, "-m", "nexus", "proxy", "--daemon"])
    assert is_nexus_cmdline(["/usr/bin/python3", "/venv/bin/nexus", "proxy"])
    assert not is_nexus_cmdline([])
    assert not is_nexus_cmdline(["sleep", "60"])
    assert not is_nexus_cmdline(["/usr/bin/python3", "/srv/nexus-tools/run.py"])  # a path is not the program


def test_empty_or_unreadable_cmdline_is_not_ours(monkeypatch):
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        monkeypatch.setattr(psutil.Process, "cmdline", lambda self: [])
        assert not looks_like_nexus(sleeper.pid)

        def denied(self):
            raise psutil.AccessDenied(self.pid)

        monkeypatch.setattr(psutil.Process, "cmdline", denied)
        assert not looks_like_nexus(sleeper.pid)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_process_younger_than_the_pid_file_is_not_ours(tmp_path: Path):
    pid_file = tmp_path / "nexus-proxy.pid"
    pid_file.write_text("0\n")
    past = time.time() - 600
    os.utime(pid_file, (past, past))
    lookalike = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "-m", "nexus.cli"])
    try:
        deadline = time.monotonic() + 30
        while not is_nexus_cmdline(psutil.Process(lookalike.pid).cmdline()):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert looks_like_nexus(lookalike.pid)  # its command line alone would pass
        assert not looks_like_nexus(lookalike.pid, written_at=past)  # but it started after the file
        assert looks_like_nexus(lookalike.pid, written_at=time.time())
    finally:
        lookalike.kill()
        lookalike.wait()


@pytest.mark.parametrize("round_", range(3))
def test_fresh_sentinels_are_never_taken_for_a_running_proxy(tmp_path: Path, round_: int):
    """The race of the old flake, exercised on purpose: check right after each spawn."""
    data = tmp_path / "data"
    data.mkdir()
    settings = load_settings({"NEXUS_DATA_DIR": str(data)})
    for _ in range(30):
        sleeper = subprocess.Popen(["sleep", "60"])
        try:
            (data / "nexus-proxy.pid").write_text(f"{sleeper.pid}\n")
            assert find_running(settings) is None
        finally:
            sleeper.kill()
            sleeper.wait()
