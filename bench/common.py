"""Shared plumbing: child processes, the benchmark's PostgreSQL, wrk, medians and RSS."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

BENCH_DIR = Path(__file__).resolve().parent
DATA_DIR = BENCH_DIR / ".data"
PY = sys.executable
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


@dataclass
class Child:
    """A server child process that announced itself with one JSON line."""

    proc: subprocess.Popen
    info: dict[str, Any]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss(self) -> int:
        return psutil.Process(self.proc.pid).memory_info().rss

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _tree(pid: int) -> list[psutil.Process]:
    proc = psutil.Process(pid)
    return [proc, *proc.children(recursive=True)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children (LiteLLM may run workers)."""
    total = 0.0
    for proc in _tree(pid):
        t = proc.cpu_times()
        total += t.user + t.system
    return total


def settle(pids: Sequence[int], idle_pct: float = 5.0, window_s: float = 0.5, timeout_s: float = 90.0) -> float:
    """Wait until every process tree in ``pids`` uses < ``idle_pct`` % of a core for two windows.

    LiteLLM keeps a core busy for a while after it answers (model cost map, background jobs); on
    2 cores that work slowed the first figure's rounds of *every* target ~×2 (CPU per request of
    the bare references included). Returns the seconds waited.
    """
    t0 = time.monotonic()
    calm = 0
    while time.monotonic() - t0 < timeout_s and calm < 2:
        before = [cpu_seconds(pid) for pid in pids]
        time.sleep(window_s)
        after = [cpu_seconds(pid) for pid in pids]
        busiest = max((a - b) / window_s * 100 for a, b in zip(after, before, strict=True))
        calm = calm + 1 if busiest < idle_pct else 0
    return time.monotonic() - t0


@contextlib.contextmanager
def paused(pids: Sequence[int]) -> Iterator[None]:
    """SIGSTOP these process trees for the duration (a peer's background jobs must not share the
    cores with another target's measurement); SIGCONT them afterwards, whatever happens."""
    procs: list[psutil.Process] = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            procs += _tree(pid)
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.suspend()
    try:
        yield
    finally:
        for p in procs:
            with contextlib.suppress(psutil.Error):
                p.resume()


def spawn(args: Sequence[str], timeout: float = 60.0, env: dict[str, str] | None = None,
          marker: str | None = None) -> Child:
    """Start ``args``; wait for its JSON announcement line (or a line containing ``marker``)."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    log = open(DATA_DIR / f"{Path(args[-1]).name if len(args) < 4 else args[3]}.log", "a")  # noqa: SIM115
    proc = subprocess.Popen(list(args), stdout=subprocess.PIPE, stderr=log, text=True, env=env or ENV,
                            cwd=BENCH_DIR.parent)
    log.close()
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                raise RuntimeError(f"{args[:4]} exited with {proc.returncode} before announcing")
            continue
        line = line.strip()
        if marker is None and line.startswith("{"):
            return Child(proc, json.loads(line))
        if marker is not None and marker in line:
            return Child(proc, {"line": line})
    proc.kill()
    raise RuntimeError(f"{args[:4]} did not announce within {timeout}s")


@contextlib.contextmanager
def children() -> Iterator[list[Child]]:
    started: list[Child] = []
    try:
        yield started
    finally:
        for c in reversed(started):
            with contextlib.suppress(Exception):
                c.stop()


def start_mock(kind: str = "mock") -> Child:
    return spawn([PY, "-m", "bench.servers", kind])


def start_proxy(upstream: str, dsn: str, data_dir: Path, *flags: str, **env: str) -> Child:
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    args = [PY, "-m", "bench.servers", "proxy", upstream, "--dsn", dsn, "--data-dir", str(data_dir), *flags]
    for k, v in env.items():
        args += ["--env", f"{k}={v}"]
    return spawn(args, timeout=90)


# -- PostgreSQL ---------------------------------------------------------------------------------

_PG: Any = None


def postgres() -> Any:
    """The benchmark's own embedded PostgreSQL under bench/.data/pg (kept between runs)."""
    global _PG
    if _PG is None:
        from nexus.store.embedded import EmbeddedPostgres

        _PG = EmbeddedPostgres(DATA_DIR / "pg")
        _PG.start()
    return _PG


def stop_postgres() -> None:
    """Stop the benchmark's PostgreSQL at the end of a run (its data stays cached on disk)."""
    global _PG
    if _PG is not None:
        with contextlib.suppress(Exception):
            _PG.stop()
        _PG = None


def dsn(database: str) -> str:
    return postgres().dsn(database)


async def create_database(name: str, fresh: bool) -> str:
    """Create database ``name`` (dropping it first if ``fresh``), migrated; return its DSN."""
    import asyncpg

    from nexus.store.migrate import migrate

    admin = await asyncpg.connect(dsn("postgres"))
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists and fresh:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            exists = False
        if not exists:
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    conn = await asyncpg.connect(dsn(name))
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return dsn(name)


# -- wrk ---------------------------------------------------------------------------------------

def wrk(url: str, connections: int, seconds: float, threads: int = 1) -> dict[str, Any]:
    """Run wrk with bench/post.lua against ``url``/v1/messages; return its JSON summary."""
    out = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--timeout", "10s",
         "-s", str(BENCH_DIR / "post.lua"), url.rstrip("/") + "/v1/messages"],
        capture_output=True, text=True, timeout=seconds + 60, check=True)
    for line in out.stdout.splitlines():
        if line.startswith("WRKJSON "):
            d = json.loads(line[8:])
            d["rps"] = d["requests"] / (d["duration_us"] / 1e6)
            return d
    raise RuntimeError(f"wrk printed no summary: {out.stdout[-500:]} {out.stderr[-500:]}")


# -- numbers -----------------------------------------------------------------------------------

def median(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def pct(xs: Sequence[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = (len(s) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


@dataclass
class Figure:
    """One row of the results table."""

    fig: str
    name: str
    target: str
    measured: str
    baseline: str = "—"
    ratio: str = "—"
    ok: bool | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return "—" if self.ok is None else ("PASS" if self.ok else "FAIL")
