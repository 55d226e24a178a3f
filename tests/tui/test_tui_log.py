"""The live log as a person reads it: a following marker that says when it stopped following and
how many rows arrived below, g/G, rows in time order, count_tokens dimmed, errors marked with a
symbol, a stream that failed after its 200 marked as such. Real proxy, mock upstream and SSE."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.support.traffic import send
from tests.tui.screen import screen_text
from tests.tui.test_tui_live import make_app, until
from tui.panels.errors import ErrorsPanel
from tui.panels.log import RequestLog

HDR = {"x-api-key": "sk-ant-tui-test-a", "anthropic-version": "2023-06-01", "Host": "team-a.example"}
BODY = {"model": "claude-sonnet-4-5", "max_tokens": 32, "messages": [{"role": "user", "content": "hi"}]}


async def test_following_marker_g_and_G(stack: Any, tmp_path: Path) -> None:
    app = make_app(stack, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.stream is not None and app.stream.state.connected, what="stream")
        log = app.query_one(RequestLog)
        await send(stack, 4)
        await until(pilot, lambda: log.row_count >= 4, what="rows")
        assert "⤓ following" in str(log.border_title)
        log.focus()
        await pilot.press("k")
        assert not log.following
        await send(stack, 3)
        await until(pilot, lambda: log.row_count >= 7, what="more rows")
        await pilot.pause(0.1)
        assert "⏸ 3 new · G" in screen_text(app)
        assert log.cursor_row == 2  # still on the row being read
        await pilot.press("g")
        assert log.cursor_row == 0 and not log.following
        await pilot.press("G")
        assert log.cursor_row == log.row_count - 1 and log.following
        await pilot.pause(0.1)
        assert "⤓ following" in screen_text(app)


async def test_rows_in_time_order_count_tokens_dimmed_mid_stream_failures_marked(stack: Any,
                                                                                 tmp_path: Path) -> None:
    app = make_app(stack, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.stream is not None and app.stream.state.connected, what="stream")
        log = app.query_one(RequestLog)
        async with httpx.AsyncClient(base_url=stack.proxy_url, timeout=30) as c:
            r = await c.post("/v1/messages/count_tokens", json={k: v for k, v in BODY.items() if k != "max_tokens"},
                             headers=HDR)
            assert r.status_code == 200
            r = await c.post("/v1/messages", json={**BODY, "stream": True},
                             headers={**HDR, "x-mock-stream-error": "overloaded_error"})
            assert r.status_code == 200  # the failure comes after the 200, inside the stream
        await send(stack, 1, status=529)
        await until(pilot, lambda: len(log.events) >= 3, what="three rows")
        await pilot.pause(0.2)
        evs = list(log.events.values())
        ct = next(e for e in evs if e.request_type == "count_tokens")
        mid = next(e for e in evs if e.status == 200 and e.error_type)
        err = next(e for e in evs if e.status == 529)
        cells = log._rows
        assert cells[ct.id][6] == "count"
        assert cells[mid.id][1].plain == "200✖" and cells[err.id][1].plain == "✖529"
        # whole rows styled by meaning: the count_tokens row dim, the error rows bold
        lines = log.render().split("\n")  # header, then the rows from the top
        line = lines[1 + log.row_ids.index(ct.id) - log._top]
        assert any("dim" in str(span.style) for span in line.spans)
        line = lines[1 + log.row_ids.index(err.id) - log._top]
        assert any("bold" in str(span.style) for span in line.spans)
        errors = app.query_one(ErrorsPanel)
        await until(pilot, lambda: mid.id in errors.row_ids, what="mid-stream failure in errors")
        row = errors._rows[mid.id]
        assert row[1].plain == "200✖" and row[2] == "overloaded"  # a failure after the 200, typed
        # time order: an event that arrives late is put where it belongs
        late = type(err)(**{**{f: getattr(err, f) for f in err.__slots__}, "id": "late-1",
                            "time": evs[0].time - timedelta(seconds=30)})
        log.append([late])
        times = [e.time for e in log.events.values()]
        assert times == sorted(times) and log.row_ids[0] == "late-1"
        await asyncio.sleep(0)
