"""The ``nexus`` command line as a user runs it: real subprocesses, one-line errors, exit codes."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time

import asyncpg
import httpx
import pytest

from tests.support.env import clean_env

NEXUS = [sys.executable, "-m", "nexus"]


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    full_env = clean_env()
    full_env.update(env or {})
    return subprocess.run([*NEXUS, *args], capture_output=True, text=True, env=full_env, timeout=timeout)


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int, needle: str) -> None:
    assert proc.returncode == code, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert needle in lines[0]


def test_help_lists_every_command():
    proc = run("--help")
    assert proc.returncode == 0
    for cmd in ("demo", "proxy", "stop", "status", "tui", "export", "mock-upstream", "db"):
        assert cmd in proc.stdout
    for sub in (["proxy"], ["db"], ["db", "prune"], ["export"], ["tui"], ["demo"], ["mock-upstream"]):
        p = run(*sub, "--help")
        assert p.returncode == 0 and "usage:" in p.stdout


@pytest.mark.parametrize("args,needle", [
    (["proxy", "--port", "abc"], "invalid port"),
    (["proxy", "--port", "70000"], "out of range"),
    (["bogus"], "invalid choice"),
    (["export", "--format", "pdf"], "invalid choice"),
    (["db", "prune", "--older-than", "soon"], "invalid duration"),
    (["db", "prune"], "--older-than"),
    (["proxy", "--upstream", "ftp://x"], "--upstream"),
])
def test_bad_flags_give_one_line_and_exit_2(args, needle):
    assert_one_line_error(run(*args), 2, needle)


def test_bad_configuration_is_one_line():
    assert_one_line_error(run("db", "url", env={"STORE_BODIES": "sometimes"}), 2, "STORE_BODIES")
    assert_one_line_error(run("db", "url", env={"PROXY_PORT": "many"}), 2, "PROXY_PORT")


def test_db_url_prints_database_url():
    proc = run("db", "url", env={"DATABASE_URL": "postgresql://u@db.example:5432/n"})
    assert proc.returncode == 0 and proc.stdout.strip() == "postgresql://u@db.example:5432/n"


def test_unreachable_database_is_one_line(unused_tcp_port):
    dsn = f"postgresql://postgres@127.0.0.1:{unused_tcp_port}/nexus"
    assert_one_line_error(run("db", "status", env={"DATABASE_URL": dsn}), 1, "cannot connect")
    assert_one_line_error(run("db", "migrate", env={"DATABASE_URL": dsn}), 1, "cannot connect")


def test_db_migrate_status_and_prune(db_dsn):
    proc = run("db", "migrate", env={"DATABASE_URL": db_dsn})
    assert proc.returncode == 0 and "up to date" in proc.stdout
    proc = run("db", "status", env={"DATABASE_URL": db_dsn})
    assert proc.returncode == 0 and "pending" in proc.stdout and "partitions:" in proc.stdout
    proc = run("db", "prune", "--older-than", "30d", env={"DATABASE_URL": db_dsn})
    assert proc.returncode == 0 and "dropped" in proc.stdout
    assert_one_line_error(run("db", "prune", "--older-than", "2h", env={"DATABASE_URL": db_dsn}), 2, "at least 1d")


def test_proxy_port_in_use_is_one_line(db_dsn, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = run("proxy", "--port", str(port), "--dashboard-port", "0",
                   env={"DATABASE_URL": db_dsn, "NEXUS_DATA_DIR": str(tmp_path)})
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert f"cannot bind 127.0.0.1:{port}" in proc.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _wait_health(url: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2) as c:
        while time.monotonic() < deadline:
            try:
                r = await c.get(url + "/health")
                if r.status_code == 200:
                    return r.json()
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError("proxy did not come up")


async def test_zero_config_proxy_on_embedded_database_keeps_data_across_restarts(tmp_path, mock_upstream):
    """`nexus proxy` with no DATABASE_URL starts an embedded PostgreSQL, records, and stops cleanly."""
    data = tmp_path / "nexus-data"
    port, dport = _free_port(), _free_port()
    env = clean_env()
    env.update({"NEXUS_DATA_DIR": str(data), "CLAUDE_API_BASE_URL": mock_upstream.url,
                "PROXY_PORT": str(port), "DASHBOARD_PORT": str(dport)})
    body = {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}

    async def one_run(expected_rows: int) -> None:
        log_path = tmp_path / f"proxy-{expected_rows}.log"
        log = log_path.open("wb")
        proc = await asyncio.create_subprocess_exec(*NEXUS, "proxy", env=env, stdout=log, stderr=log)
        try:
            try:
                health = await _wait_health(f"http://127.0.0.1:{port}")
            except AssertionError:
                raise AssertionError(log_path.read_text()[-3000:]) from None
            assert health["database"] == "connected"
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
                r = await c.post("/v1/messages", json=body, headers={"x-api-key": "sk-zero-config"})
                assert r.status_code == 200
            key = (data / "dashboard.key").read_text().strip()
            assert oct((data / "dashboard.key").stat().st_mode & 0o777) == "0o600"
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{dport}", timeout=10) as c:
                for _ in range(50):
                    stats = (await c.get("/api/stats", headers={"X-Dashboard-Key": key})).json()
                    if stats.get("totalRequests") == expected_rows:
                        break
                    await asyncio.sleep(0.1)
                assert stats.get("totalRequests") == expected_rows
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 60)
            log.close()
        assert proc.returncode == 0, log_path.read_text()[-3000:]

    await one_run(1)
    assert (data / "pgdata" / "PG_VERSION").exists()
    assert not (data / "pgdata" / "postmaster.pid").exists()  # the embedded server was stopped
    await one_run(2)  # the first run's row survived the restart
    port_file = int((data / "postgres.port").read_text())
    with pytest.raises(OSError):
        await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{port_file}/nexus", timeout=2)


def test_mock_upstream_command_port_in_use(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = run("mock-upstream", "--port", str(port), timeout=30)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr


def test_import_of_cli_is_light():
    code = "import sys, nexus.cli; print('quart' in sys.modules, 'textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False False"


