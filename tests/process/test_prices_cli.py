"""``nexus prices show|update`` and ``nexus db reprice`` as a user runs them: real subprocesses, a real
local HTTP server for the dataset (there is no internet here), one-line errors, exit codes.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest

from nexus.core.records import Record
from nexus.pricing.dataset import store_path
from nexus.store.write import PartitionCache, insert_records
from tests.process.test_cli import assert_one_line_error, run
from tests.support.capture import refused_url
from tests.support.prices import newer_dataset, write


def _show(model: str, *args: str, env: dict[str, str] | None = None) -> str:
    proc = run("prices", "show", model, *args, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _rate(out: str, label: str) -> str:
    line = next(x for x in out.splitlines() if x.strip().startswith(label))
    return line.split()[-1]


def test_show_lists_the_rates_and_their_source() -> None:
    out = _show("claude-fable-5-1")
    assert "source: genai-prices " in out and "bundled" in out
    for label, value in (("input", "$10"), ("output", "$50"), ("cache write 5m", "$12.5"), ("cache write 1h", "$20"),
                         ("cache read", "$0.25")):
        assert _rate(out, label) == value, label
    assert "web search / 1,000" in out and "$10" in out.split("web search / 1,000")[1].splitlines()[0]
    fast_us = _show("claude-opus-5-5", "--speed", "fast", "--geo", "us")
    assert _rate(fast_us, "input") == "$8.8" and _rate(fast_us, "output") == "$44"
    assert "inference_geo us x1.1" in fast_us and "+overlay" in fast_us
    haiku = _show("claude-haiku-5-5")
    assert "> 100,000" in haiku and "$0.5" in next(x for x in haiku.splitlines() if x.strip().startswith("input"))
    dated = _show("claude-sonnet-5-5", "--at", "2026-10-01")
    assert _rate(dated, "cache read") == "$0.2"
    assert _rate(_show("claude-sonnet-5-5", "--at", "2026-11-01"), "cache read") == "$0.1"
    assert "no fast-mode price" in _show("claude-sonnet-4-5", "--speed", "fast")


@pytest.mark.parametrize(("args", "code", "needle"), [
    (["prices", "show", "gpt-5"], 1, "no price known for 'gpt-5'"),
    (["prices", "show", "claude-opus-5-5", "--at", "yesterday"], 2, "--at"),
    (["prices", "show", "claude-opus-5-5", "--speed", "warp"], 2, "invalid choice"),
    (["prices", "show", "x" * 300], 2, "MODEL"),
    (["prices", "update", "--from", "/nonexistent/data.json"], 1, "keeping the prices in use"),
])
def test_show_and_update_errors_are_one_line(args: list[str], code: int, needle: str, tmp_path: Path) -> None:
    assert_one_line_error(run(*args, env={"NEXUS_DATA_DIR": str(tmp_path)}), code, needle)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def http_dir(tmp_path: Path):
    """A real HTTP server on loopback serving a directory (``python -m http.server``)."""
    root = tmp_path / "www"
    root.mkdir()
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                             "--directory", str(root)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)
    try:
        yield root, f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_update_from_a_url_and_from_files_valid_and_corrupt(tmp_path: Path, http_dir) -> None:
    root, base = http_dir
    env = {"NEXUS_DATA_DIR": str(tmp_path / "data")}
    write(root / "data.json", newer_dataset())
    proc = run("prices", "update", "--from", f"{base}/data.json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "validated" in proc.stdout and "+ claude-nova-6" in proc.stdout
    assert "~ claude-fable-5-1 (standard): in 10" in proc.stdout
    stored = store_path(tmp_path / "data")
    kept = stored.read_bytes()
    out = _show("claude-fable-5-1", env=env)
    assert _rate(out, "input") == "$9" and "genai-prices data " in out and "updated copy" in out

    # A corrupt file, a 404 and a dead server are refused; the copy in use stays byte for byte.
    corrupt = write(tmp_path / "corrupt.json", '[{"id": "anthropic", "name": "A", "api_pattern": "x", "models": [{')
    assert_one_line_error(run("prices", "update", "--from", str(corrupt), env=env), 1, "refused: not JSON")
    bad = newer_dataset()
    bad[1]["models"][0]["prices"] = {"input_mtok": "-3", "output_mtok": "1"}
    assert_one_line_error(run("prices", "update", "--from", str(write(tmp_path / "neg.json", bad)), env=env), 1,
                          "non-negative")
    assert_one_line_error(run("prices", "update", "--from", f"{base}/missing.json", env=env), 1, "HTTP 404")
    dead = refused_url().rsplit("/", 1)[0] + "/data.json"  # held, so no server started meanwhile answers
    assert_one_line_error(run("prices", "update", "--from", dead, env=env), 1, "keeping the prices in use")
    assert stored.read_bytes() == kept
    assert _rate(_show("claude-fable-5-1", env=env), "input") == "$9"

    # --dry-run validates and shows, stores nothing.
    write(root / "data.json", newer_dataset()[1:])
    proc = run("prices", "update", "--from", f"{base}/data.json", "--dry-run", env=env)
    assert proc.returncode == 0 and "dry run: nothing stored" in proc.stdout
    assert stored.read_bytes() == kept


def test_db_reprice_command(db_dsn: str, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    wrong = [Record(created_at=now - timedelta(minutes=i), domain="a.example", model="claude-opus-5-5",
                    status_code=200, input_tokens=1000, output_tokens=1000, speed="fast",
                    cost_usd=Decimal("0.024")) for i in range(5)]  # fast priced at standard: right is 0.048

    async def seed() -> None:
        conn = await asyncpg.connect(db_dsn)
        try:
            await insert_records(conn, wrong, PartitionCache())
        finally:
            await conn.close()

    asyncio.run(seed())
    env = {"DATABASE_URL": db_dsn, "NEXUS_DATA_DIR": str(tmp_path)}
    dry = run("db", "reprice", "--since", "1d", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "cost would change: 5" in dry.stdout and "$0.120000 -> $0.240000" in dry.stdout
    proc = run("db", "reprice", "--since", "1d", "--model", "claude-opus-5-5", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "cost changed: 5" in proc.stdout and "rollups refreshed" in proc.stdout
    assert "5/5 records" in proc.stderr  # the progress (not a terminal: one line per 10 %)
    again = run("db", "reprice", env=env)
    assert "cost changed: 0" in again.stdout
    assert_one_line_error(run("db", "reprice", "--since", "soon", env=env), 2, "invalid duration")
    assert_one_line_error(run("db", "reprice", env={**env, "PRICING_FILE": str(tmp_path / "nope.json")}), 2,
                          "PRICING_FILE")
