"""``nexus proxy --daemon``, ``nexus stop`` and ``nexus status`` as a user runs them (real processes)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from nexus.core.runfiles import (
    find_running,
    pid_alive,
    read_pid_file,
    read_status_file,
    remove_status_file,
    write_status_file,
)
from nexus.core.settings import load_settings
from nexus.sim.mock import MockConfig, MockUpstream
from tests.support.proc import api_headers, message_body, proxy_env, run_nexus, wait_rows

pytestmark = pytest.mark.timeout(180)


def _settings(env: dict[str, str]):
    return load_settings(env)


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


async def _nexus(*args: str, env: dict[str, str], timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """Run the CLI without blocking the loop (the in-process mock upstream must keep serving)."""
    return await asyncio.to_thread(run_nexus, *args, env=env, timeout=timeout)


async def test_daemon_lifecycle(db_dsn: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with MockUpstream(MockConfig(seed=1)) as mock:
        env = proxy_env(data, db_dsn, mock.url, proxy_port=0, dashboard_port=0)
        started = await _nexus("proxy", "--daemon", env=env)
        assert started.returncode == 0, started.stderr
        m = re.search(r"started \(pid (\d+)\)", started.stdout)
        assert m, started.stdout
        pid = int(m.group(1))
        try:
            # Detached: alive after the launcher returned, in a session of its own.
            assert pid_alive(pid)
            assert os.getsid(pid) == pid != os.getsid(0)
            settings = _settings(env)
            assert read_pid_file(settings) == pid
            info = read_status_file(settings)
            assert info and info["pid"] == pid
            assert str(data / "nexus-proxy.log") in started.stdout
            assert info["proxy_url"] in started.stdout and info["dashboard_url"] in started.stdout
            assert (data / "nexus-proxy.json").stat().st_mode & 0o077 == 0

            st = await _nexus("status", env=env)
            assert st.returncode == 0, st.stderr
            assert f"running (pid {pid})" in st.stdout
            assert info["proxy_url"] in st.stdout and "database:   connected" in st.stdout
            js = json.loads((await _nexus("status", "--json", env=env)).stdout)
            assert js["running"] is True and js["pid"] == pid and js["responding"] is True
            assert js["database"] == "connected" and js["queue_depth"] == 0 and js["journal_records"] == 0
            assert js["uptime_s"] >= 0

            # It proxies.
            async with httpx.AsyncClient(timeout=30) as client:
                r = await client.post(info["proxy_url"] + "/v1/messages", json=message_body(),
                                      headers=api_headers())
                assert r.status_code == 200, r.text

            again = await _nexus("proxy", "--daemon", env=env)
            assert again.returncode == 1
            assert f"already running (pid {pid})" in again.stderr
            assert read_pid_file(settings) == pid  # the refused launch left the files alone

            # Graceful stop: a stream that is open when `nexus stop` runs still completes.
            async with httpx.AsyncClient(timeout=30) as client:
                async with client.stream("POST", info["proxy_url"] + "/v1/messages",
                                         json=message_body(stream=True),
                                         headers=api_headers(x_mock_event_delay_ms="150",
                                                             x_mock_events="8")) as s:
                    it = s.aiter_bytes()
                    body = await it.__anext__()
                    stopping = asyncio.create_task(_nexus("stop", "--timeout", "30", env=env))
                    async for part in it:
                        body += part
            assert b"message_stop" in body
            stopped = await stopping
            assert stopped.returncode == 0, stopped.stderr
            assert re.search(rf"stopped \(pid {pid}\) in \d+\.\d s", stopped.stdout), stopped.stdout
            assert not pid_alive(pid)
            assert not (data / "nexus-proxy.pid").exists() and not (data / "nexus-proxy.json").exists()
            assert await wait_rows(db_dsn, 2) == 2

            st = await _nexus("status", env=env)
            assert st.returncode == 3
            assert "not running" in st.stdout
            assert json.loads((await _nexus("status", "--json", env=env)).stdout)["running"] is False
            again = await _nexus("stop", env=env)
            assert again.returncode == 1 and "not running" in again.stderr
            assert "Traceback" not in again.stderr
        finally:
            if pid_alive(pid):
                os.kill(pid, 9)


async def test_stale_pid_file_is_cleaned(db_dsn: str, tmp_path: Path) -> None:
    """A pid file naming a dead process, or a live process that is not nexus, is stale."""
    data = tmp_path / "data"
    data.mkdir()
    env = proxy_env(data, db_dsn, "http://127.0.0.1:9", proxy_port=0, dashboard_port=0)
    settings = _settings(env)
    (data / "nexus-proxy.pid").write_text(f"{_dead_pid()}\n")
    write_status_file(settings, {"pid": _dead_pid(), "proxy_url": "http://127.0.0.1:9"})
    st = await _nexus("status", env=env)
    assert st.returncode == 3, st.stdout + st.stderr
    assert not (data / "nexus-proxy.pid").exists() and not (data / "nexus-proxy.json").exists()

    # pid reuse: the file names a live process that is not a nexus proxy.
    sleeper = subprocess.Popen(["sleep", "60"])  # noqa: ASYNC220 - returns at once
    try:
        (data / "nexus-proxy.pid").write_text(f"{sleeper.pid}\n")
        assert find_running(settings) is None
        (data / "nexus-proxy.pid").write_text(f"{sleeper.pid}\n")
        started = await _nexus("proxy", "--daemon", env=env)
        assert started.returncode == 0, started.stderr
        pid = read_pid_file(settings)
        assert pid is not None and pid != sleeper.pid and pid_alive(pid)
        stopped = await _nexus("stop", env=env)
        assert stopped.returncode == 0, stopped.stderr
        assert sleeper.poll() is None  # never signalled
    finally:
        sleeper.kill()
        sleeper.wait()

    # A daemon killed hard leaves its files behind: status reports it gone and cleans up.
    started = await _nexus("proxy", "--daemon", env=env)
    assert started.returncode == 0, started.stderr
    pid = read_pid_file(settings)
    assert pid is not None
    os.kill(pid, 9)
    for _ in range(100):
        if not pid_alive(pid):
            break
        await asyncio.sleep(0.05)
    st = await _nexus("status", env=env)
    assert st.returncode == 3
    assert not (data / "nexus-proxy.pid").exists()


async def test_daemon_that_cannot_start_reports_why(db_dsn: str, tmp_path: Path) -> None:
    """The port is taken: the launcher says so (from the log), exits 1, and leaves no pid file."""
    data = tmp_path / "data"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        env = proxy_env(data, db_dsn, "http://127.0.0.1:9", proxy_port=busy.getsockname()[1])
        r = await _nexus("proxy", "--daemon", env=env)
    assert r.returncode == 1
    assert "daemon exited" in r.stderr and "Traceback" not in r.stderr.splitlines()[0]
    assert not (data / "nexus-proxy.pid").exists()
    assert (data / "nexus-proxy.log").exists()


def test_status_file_helpers(tmp_path: Path) -> None:
    settings = load_settings({"NEXUS_DATA_DIR": str(tmp_path)})
    assert read_status_file(settings) is None
    path = write_status_file(settings, {"proxy_url": "http://127.0.0.1:1", "dashboard_url": None,
                                        "instance_id": "abc", "database": "external"})
    info = read_status_file(settings)
    assert info is not None and info["pid"] == os.getpid() and info["started_at"]
    assert path.stat().st_mode & 0o777 == 0o600
    (tmp_path / "nexus-proxy.pid").write_text(f"{os.getpid()}\n")
    remove_status_file(settings)
    assert not path.exists() and not (tmp_path / "nexus-proxy.pid").exists()
    # Another live process's files are not ours to remove.
    write_status_file(settings, {"pid": 1})
    remove_status_file(settings)
    assert path.exists() == pid_alive(1)
    (tmp_path / "nexus-proxy.json").write_text("{not json")
    assert read_status_file(settings) is None


async def test_daemon_with_embedded_database(tmp_path: Path) -> None:
    """The zero-config path: no DATABASE_URL, the daemon owns an embedded PostgreSQL and stops it."""
    from nexus.store.embedded import EmbeddedPostgres

    data = tmp_path / "data"
    env = proxy_env(data, None, "http://127.0.0.1:9", proxy_port=0, dashboard_port=0)
    pg = EmbeddedPostgres(data)
    try:
        started = await _nexus("proxy", "--daemon", env=env)
        assert started.returncode == 0, started.stderr
        assert pg.is_running()
        js = json.loads((await _nexus("status", "--json", env=env)).stdout)
        assert js["running"] and js["database"] == "connected" and js["database_kind"] == "embedded"
        stopped = await _nexus("stop", env=env)
        assert stopped.returncode == 0, stopped.stderr
        assert not pg.is_running()  # whoever started it stops it
        assert (await _nexus("status", env=env)).returncode == 3
    finally:
        if pg.is_running():
            await asyncio.to_thread(pg.stop, "immediate")
        pid = read_pid_file(load_settings(env))
        if pid and pid_alive(pid):
            os.kill(pid, 9)


async def test_status_reports_database_outage_queue_and_journal(tmp_path: Path) -> None:
    """`nexus status` shows what an operator needs during an outage: DB state, queue, journal size."""
    import shutil
    import tempfile

    from nexus.store.embedded import EmbeddedPostgres
    from tests.support.proc import ProxyProcess

    pg_dir = Path(tempfile.mkdtemp(prefix="nexus-status-pg-"))
    pg = EmbeddedPostgres(pg_dir)
    pg.start()
    try:
        async with MockUpstream(MockConfig(seed=9)) as mock:
            p = ProxyProcess(tmp_path / "data", pg.dsn(), mock.url, journal_high_water=1)
            await asyncio.to_thread(p.start)
            try:
                await asyncio.to_thread(pg.stop, "fast")
                async with httpx.AsyncClient(timeout=30) as client:
                    for _ in range(5):
                        r = await client.post(p.proxy_url + "/v1/messages", json=message_body(),
                                              headers=api_headers())
                        assert r.status_code == 200
                js: dict = {}
                for _ in range(100):
                    js = json.loads((await _nexus("status", "--json", env=p.env)).stdout)
                    if js.get("journal_records") == 5:
                        break
                    await asyncio.sleep(0.1)
                assert js["running"] and js["pid"] == p.pid
                assert js["database"] == "disconnected"
                assert js["journal_records"] == 5 and js["journal_bytes"] > 0 and js["queue_depth"] == 0
                text = (await _nexus("status", env=p.env)).stdout
                assert "database:   disconnected" in text and "journal:    5 record(s)" in text
            finally:
                await asyncio.to_thread(p.stop)
    finally:
        pg.destroy()
        shutil.rmtree(pg_dir, ignore_errors=True)
