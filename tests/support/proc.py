"""Real ``nexus proxy`` processes for the reliability, security and scale-out tests.

These tests are about what happens to a *process* (signals, detaching, a database that goes away
under it), so they run the real command line in a subprocess rather than the apps in-process.
Every process gets its own data dir, loopback ports, an explicit ``DATABASE_URL`` and upstream,
and is killed at the end whatever happened.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from tests.support.env import clean_env

DASHBOARD_KEY = "test-dashboard-key-0123456789abcdef"

# Environment variables of the developer's shell that must not leak into a test proxy.


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def closed_port() -> int:
    """A loopback port nobody listens on (connection refused)."""
    return free_port()


def proxy_env(data_dir: Path, database_url: str | None, upstream: str, **extra: Any) -> dict[str, str]:
    env = clean_env()
    env.update({
        "NEXUS_DATA_DIR": str(data_dir),
        "CLAUDE_API_BASE_URL": upstream,
        "PROXY_PORT": str(free_port()),
        "DASHBOARD_PORT": str(free_port()),
        "DASHBOARD_API_KEY": DASHBOARD_KEY,
        "PYTHONUNBUFFERED": "1",
        "RECORD_FLUSH_INTERVAL_S": "0.05",
    })
    if database_url:
        env["DATABASE_URL"] = database_url
    for key, value in extra.items():
        if value is None:
            env.pop(key.upper(), None)
        else:
            env[key.upper()] = str(value)
    return env


def nexus_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "nexus.cli", *args]


def run_nexus(*args: str, env: Mapping[str, str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(nexus_cmd(*args), env=dict(env), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def wait_http(url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None,
              log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"nexus proxy exited with {proc.returncode} during start-up:\n{tail}")
        try:
            r = httpx.get(url, timeout=1.0)
            if r.status_code < 500 or r.status_code == 503:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise TimeoutError(f"{url} not answering after {timeout} s ({last}):\n{tail}")


class ProxyProcess:
    """A foreground ``nexus proxy`` in a subprocess, stdout+stderr to ``<data_dir>/test-proxy.log``."""

    def __init__(self, data_dir: Path, database_url: str | None, upstream: str, **env_extra: Any) -> None:
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.env = proxy_env(data_dir, database_url, upstream, **env_extra)
        self.log_path = data_dir / "test-proxy.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.env['PROXY_PORT']}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.env['DASHBOARD_PORT']}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 90.0) -> ProxyProcess:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(nexus_cmd("proxy"), env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        wait_http(self.proxy_url + "/health", timeout, self.proc, self.log_path)
        wait_http(self.dashboard_url + "/health", timeout, self.proc, self.log_path)
        return self

    def signal(self, sig: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, wait, SIGKILL as a last resort; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        with contextlib.suppress(Exception):
            self._log.close()
        return self.proc.returncode

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def health(self) -> dict[str, Any]:
        return httpx.get(self.proxy_url + "/health", timeout=5.0).json()

    def dashboard(self, path: str, key: str = DASHBOARD_KEY, **params: Any) -> httpx.Response:
        return httpx.get(self.dashboard_url + path, headers={"X-Dashboard-Key": key}, params=params, timeout=10.0)

    def __enter__(self) -> ProxyProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def message_body(stream: bool = False, max_tokens: int = 64, model: str = "claude-sonnet-4-5-20250929") -> dict:
    return {"model": model, "max_tokens": max_tokens, "stream": stream,
            "messages": [{"role": "user", "content": "Hello, proxy."}]}


def api_headers(key: str = "sk-ant-test-key-0000", **extra: str) -> dict[str, str]:
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01", "content-type": "application/json"}
    headers.update({k.replace("_", "-"): v for k, v in extra.items()})
    return headers


async def count_rows(dsn: str, where: str = "TRUE", *args: Any) -> int:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM api_requests WHERE {where}", *args))
    finally:
        await conn.close()


async def wait_rows(dsn: str, expected: int, timeout: float = 30.0, where: str = "TRUE") -> int:
    """Poll until ``api_requests`` holds ``expected`` rows (the writer batches asynchronously)."""
    import asyncio

    deadline = time.monotonic() + timeout
    n = -1
    while time.monotonic() < deadline:
        n = await count_rows(dsn, where)
        if n >= expected:
            return n
        await asyncio.sleep(0.1)
    return n


async def fetch_rows(dsn: str, where: str = "TRUE") -> list[dict[str, Any]]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(f"SELECT * FROM api_requests WHERE {where} ORDER BY created_at")
        return [dict(r) for r in rows]
    finally:
        await conn.close()
