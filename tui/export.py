"""``nexus export`` and the ``e`` key: a snapshot of what the monitor shows, for scripts and bug reports.

- ``json``: stats, token windows, costs, recent errors and the sessions active in a time range,
  exactly as the API returned them (raw JSON, so nothing is lost in our parsing), plus the range.
- ``csv``: every request of the range, paging through ``/api/requests`` with its cursor.
- ``--session ID``: one session — its summary, agent tree and every request (json), or every
  request (csv), whatever the time range.
- ``svg``: the TUI itself rendered headlessly (``tui.cli.render_svg``) against the live API.

No Textual here, so JSON/CSV exports start fast and work without a UI stack.
"""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tui.api.client import DashboardClient
from tui.api.query import Query
from tui.poller import Window, fetch_raw, requests_for

CSV_COLUMNS = [
    "id", "time", "requestId", "domain", "accountId", "method", "path", "model", "stream", "status",
    "errorType", "errorMessage", "latencyMs", "ttftMs", "inputTokens", "outputTokens",
    "cacheCreationTokens", "cacheReadTokens", "totalTokens", "costUsd", "requestType",
    "serviceTier", "speed", "inferenceGeo", "webSearchRequests", "webFetchRequests", "thinkingTokens",
    "webSearchCostUsd", "priceSource", "sessionId", "agentId", "parentAgentId", "client", "tags",
]


def snapshot_document(source_url: str, q: Query, window: Window | None, raw: dict[str, Any],
                      exported_at: datetime | None = None) -> dict[str, Any]:
    """The JSON export of one snapshot: the API's answers as returned, over one window."""
    params = {k: v for k, v in q.params().items() if v}
    return {
        "exportedAt": (exported_at or datetime.now(UTC)).isoformat(),
        "source": source_url,
        "timeRange": {"name": q.time_range, "seconds": q.seconds,
                      "since": None if window is None else window.since.isoformat(),
                      "until": None if window is None else window.until.isoformat()},
        "filters": {**params, **({"status": q.status} if q.status else {})},
        "info": raw.get("info"),
        "stats": raw.get("stats"),
        "timeseries": raw.get("timeseries"),
        "tokenWindows": raw.get("windows"),
        "limits": raw.get("limits"),
        "costs": raw.get("costs"),
        "errors": raw.get("errors"),
        "alerts": raw.get("alerts"),
        **({"sessions": raw["sessions"]} if "sessions" in raw else {}),
    }


async def snapshot_json(client: DashboardClient, q: Query) -> dict[str, Any]:
    """What the dashboard shows for ``q`` now, fetched the way the monitor polls: one window."""
    window = Window.ending(datetime.now(UTC), q)
    reqs = requests_for(q, window)
    sources = ("stats", "timeseries", "windows", "limits", "costs", "errors", "info", "alerts")
    answers = await asyncio.gather(*(fetch_raw(client, s, *reqs[s]) for s in sources),
                                   client.get_json("/api/sessions", {"since": q.time_range,
                                                                     "accountId": q.account, "limit": 500}))
    raw = dict(zip(sources, answers[:-1], strict=True))
    raw["sessions"] = answers[-1].get("sessions", [])
    return snapshot_document(client.base_url, q, window, raw)


async def session_json(client: DashboardClient, session_id: str) -> dict[str, Any]:
    """One session: what ``/api/sessions/{id}`` says, with every request (not only the latest)."""
    from urllib.parse import quote

    detail = await client.get_json(f"/api/sessions/{quote(session_id, safe='')}", {"limit": 1})
    requests: list[dict[str, Any]] = []
    async for row in _pages(client, {"sessionId": session_id}):
        requests.append(row)
    return {"exportedAt": datetime.now(UTC).isoformat(), "source": client.base_url,
            "session": detail.get("session"), "agents": detail.get("agents", []),
            "quotaShare": detail.get("quotaShare"), "requests": requests}


async def _pages(client: DashboardClient, params: dict[str, Any], page: int = 500) -> AsyncIterator[dict[str, Any]]:
    before: str | None = None
    while True:
        data = await client.get_json("/api/requests", {"limit": page, "before": before, **params})
        rows = data.get("requests") or []
        for r in rows:
            yield r
        before = data.get("nextCursor")
        if not before or not rows:
            return


def write_json(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    return path.resolve()


def _csv_row(r: dict[str, Any]) -> list[Any]:
    t = r.get("tokens") or {}
    return [r.get("id"), r.get("time"), r.get("requestId"), r.get("domain"), r.get("accountId"),
            r.get("method"), r.get("path"), r.get("model"), r.get("stream"), r.get("status"),
            r.get("errorType"), r.get("errorMessage"), r.get("latencyMs"), r.get("ttftMs"),
            t.get("input"), t.get("output"), t.get("cacheCreation"), t.get("cacheRead"), t.get("total"),
            r.get("costUsd"), r.get("requestType"), r.get("serviceTier"), r.get("speed"), r.get("inferenceGeo"),
            r.get("webSearchRequests"), r.get("webFetchRequests"), r.get("thinkingTokens"),
            r.get("webSearchCostUsd"), r.get("priceSource"), r.get("sessionId"), r.get("agentId"),
            r.get("parentAgentId"), r.get("client"),
            json.dumps(r["tags"], ensure_ascii=False, sort_keys=True) if r.get("tags") else ""]


async def write_csv(client: DashboardClient, q: Query, path: Path, page: int = 500,
                    max_rows: int | None = None, session_id: str | None = None) -> int:
    """Requests of the range (or of one session, whenever they were), newest first; the row count."""
    if session_id is not None:
        params: dict[str, Any] = {"sessionId": session_id}
    else:
        params = {"since": q.time_range, **{k: v for k, v in q.params().items() if v}}
    count = 0
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(CSV_COLUMNS)
        async for r in _pages(client, params, page):
            w.writerow(_csv_row(r))
            count += 1
            if max_rows is not None and count >= max_rows:
                break
    return count


def default_path(fmt: str, now: datetime | None = None) -> Path:
    stamp = (now or datetime.now(UTC)).astimezone().strftime("%Y%m%d-%H%M%S")
    return Path(f"nexus-snapshot-{stamp}.{fmt}")
