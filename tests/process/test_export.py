"""``nexus export`` as a script runs it: a subprocess against a real proxy + dashboard API.

The files must hold what the API says; failures must be one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import asyncio
import csv
import json
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.support.env import clean_env
from tests.support.traffic import api_get, send, wait_total


def _env(tmp_path: Path) -> dict[str, str]:
    env = clean_env()
    env["NEXUS_DATA_DIR"] = str(tmp_path / "nodata")
    return env


async def nexus(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "nexus.cli", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL, env=_env(tmp_path))
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    return proc.returncode or 0, out.decode(), err.decode()


def _read(path: Path) -> str:
    return path.read_text()


async def test_json_csv_svg_match_the_api(stack: Any, tmp_path: Path) -> None:
    await send(stack, 5, domain="team-a.example")
    await send(stack, 2, domain="team-b.example", status=529, key="sk-ant-export-b")
    await wait_total(stack, 7)
    target = ["--url", stack.dashboard_url, "--key", stack.key]

    out = tmp_path / "snap.json"
    code, stdout, stderr = await nexus(tmp_path, "export", "--format", "json", "--out", str(out), *target)
    assert code == 0, stderr
    assert str(out) in stdout
    snap = json.loads(_read(out))
    stats = await api_get(stack, "/api/stats", since="1h")
    assert snap["timeRange"]["name"] == "1h"
    for k in ("totalRequests", "errorCount", "tokens", "costUsd"):
        assert snap["stats"][k] == stats[k], k
    errors = await api_get(stack, "/api/errors", since="1h", limit=100)
    assert snap["errors"]["groups"] == errors["groups"]
    windows = await api_get(stack, "/api/token-usage/current")
    assert [a["accountId"] for a in snap["tokenWindows"]["accounts"]] == [a["accountId"] for a in windows["accounts"]]
    costs = await api_get(stack, "/api/costs", days=31)
    assert snap["costs"]["todayUsd"] == costs["todayUsd"]

    out_csv = tmp_path / "req.csv"
    code, stdout, stderr = await nexus(tmp_path, "export", "--format", "csv", "--out", str(out_csv),
                                       "--range", "15m", *target)
    assert code == 0, stderr
    rows = list(csv.DictReader(_read(out_csv).splitlines()))
    listed = await api_get(stack, "/api/requests", since="15m", limit=500)
    assert [r["id"] for r in rows] == [r["id"] for r in listed["requests"]]
    assert sum(1 for r in rows if r["status"] == "529") == 2

    out_svg = tmp_path / "screen.svg"
    code, stdout, stderr = await nexus(tmp_path, "export", "--format", "svg", "--out", str(out_svg), *target)
    assert code == 0, stderr
    svg = _read(out_svg)
    assert svg.startswith("<svg") and "Requests" in svg and "Limits" in svg  # the limits panel (it was the token-window panel)


async def test_failures_are_one_line(stack: Any, tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    cases = [
        (["export", "--url", f"http://127.0.0.1:{dead}", "--key", "k"], 1, "unreachable"),
        (["export", "--url", stack.dashboard_url, "--key", "wrong"], 1, "403"),
        (["export", "--url", stack.dashboard_url], 1, "no dashboard key"),
        (["export", "--url", stack.dashboard_url, "--key", stack.key, "--range", "2y"], 2, "--range"),
        (["export", "--url", stack.dashboard_url, "--key", stack.key, "--out", str(tmp_path / "no/such/x.json")],
         1, "does not exist"),
    ]
    for args, want_code, needle in cases:
        code, stdout, stderr = await nexus(tmp_path, *args)
        assert code == want_code, (args, stderr)
        assert stderr.count("\n") == 1 and needle in stderr, (args, stderr)
        assert "Traceback" not in stderr


async def test_default_out_path_is_in_cwd(stack: Any, tmp_path: Path) -> None:
    from tui.export import default_path

    p = default_path("json")
    assert p.parent == Path(".") and p.name.startswith("nexus-snapshot-") and p.suffix == ".json"
    async with httpx.AsyncClient() as c:  # the stack is up: sanity for the next test's URL
        assert (await c.get(f"{stack.dashboard_url}/health")).status_code == 200
