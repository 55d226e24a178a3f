"""The TUI's HTTP layer without a terminal: parsing, the stream's resume and backoff, formatting.

The SSE server here is an ``httpx.MockTransport`` so the test can see exactly which headers each
reconnect sends; the real server is exercised in ``test_tui_live.py``.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx

from tui import fmt
from tui.api.client import DashboardClient
from tui.api.errors import ApiAuthError, ApiUnreachable
from tui.api.models import RequestEvent, parse_alerts
from tui.api.query import Query, next_range
from tui.api.reports import Costs, Stats, parse_windows

EVENT = {"id": "r1", "time": "2026-11-27T05:45:01.120000+00:00", "domain": "example.com",
         "accountId": "acct_1", "model": "claude-sonnet-4-5", "stream": True, "status": 200, "errorType": None,
         "latencyMs": 1530.2, "ttftMs": 410.7,
         "tokens": {"input": 12, "output": 345, "cacheCreation": 0, "cacheRead": 20480, "total": 20837},
         "costUsd": 0.011319, "requestType": "messages"}


def test_request_event_parses_the_stream_shape() -> None:
    ev = RequestEvent.parse(EVENT)
    assert ev.tokens.total == 20837 and ev.cost_usd == 0.011319 and not ev.is_error
    assert RequestEvent.parse({**EVENT, "status": 200, "errorType": "overloaded_error"}).is_error
    assert RequestEvent.parse({"id": "x"}).tokens.total == 0  # tolerant of missing fields


def test_stats_costs_windows_alerts_parse_docs_shapes() -> None:
    s = Stats.parse({"totalRequests": 10, "errorCount": 2, "errorRate": 0.2,
                     "latencyMs": {"p50": 640.0, "p95": 2100.5, "p99": None},
                     "tokens": {"input": 1, "output": 2, "cacheCreation": 3, "cacheRead": 4, "total": 10},
                     "costUsd": 1.5, "requestsPerMinute": 3, "byModel": [{"model": "m", "requests": 10}]})
    assert (s.total_requests, s.errors, s.latency_p95, s.tokens.total) == (10, 2, 2100.5, 10)
    assert s.by_model[0].key == "m"
    c = Costs.parse({"todayUsd": 4.2, "monthToDateUsd": 98.7, "monthEndProjectionUsd": 112.84,
                     "byModel": [{"model": "x", "costUsd": 0.0, "requests": 3, "unpricedRequests": 3}],
                     "unpriced": [{"model": "x", "requests": 3}]})
    assert c.unpriced_models == ["x"] and c.projection_usd == 112.84
    w = parse_windows({"accounts": [{"accountId": "a", "totalTokens": 5, "tokenLimit": 10, "percentOfLimit": 50.0,
                                     "projectedExhaustion": "2026-11-27T07:22:49+00:00"}]})
    assert w[0].percent_of_limit == 50.0 and w[0].exhaustion_time is not None
    alerts = parse_alerts({"active": [{"id": 1, "rule": "error_rate", "title": "Error rate", "status": "firing",
                                       "summary": "6% > 5%"}],
                           "recent": [{"id": 1, "status": "firing"}, {"id": 2, "status": "resolved",
                                                                       "resolvedAt": "2026-11-27T05:00:00Z"}]})
    assert [a.firing for a in alerts] == [True, False] and alerts[0].message == "6% > 5%"


def test_formatting_never_shows_unpriced_as_zero() -> None:
    assert fmt.usd(None) == "unpriced"
    assert fmt.usd(0.0) == "$0"
    assert fmt.usd(12.3456) == "$12.35"
    assert fmt.tokens(1_234_567) == "1.2M"
    assert fmt.ms(2100.5) == "2.1s" and fmt.ms(640) == "640ms"
    assert fmt.short_model("claude-sonnet-4-5-20250929") == "sonnet-4-5"
    assert fmt.short_duration(57 * 60) == "57m"


def test_query_and_ranges() -> None:
    q = Query(time_range="1h", domain="a.example")
    assert q.params() == {"domain": "a.example", "accountId": None, "model": None, "sessionId": None, "tag": None}
    assert q.matches(RequestEvent.parse({**EVENT, "domain": "a.example"}))
    assert not q.matches(RequestEvent.parse({**EVENT, "domain": "b.example"}))
    seen = ["15m"]
    for _ in range(5):
        seen.append(next_range(seen[-1]))
    assert seen == ["15m", "1h", "6h", "24h", "7d", "15m"]


async def test_stream_resumes_with_last_event_id_and_backs_off() -> None:
    calls: list[tuple[float, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append((time.monotonic(), request.headers.get("last-event-id")))
        n = len(calls)
        if n == 1:
            body = "".join(f"id: {i}\nevent: request\ndata: {json.dumps({**EVENT, 'id': f'r{i}'})}\n\n"
                           for i in (1, 2, 3))
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body.encode())
        if n in (2, 3):
            raise httpx.ConnectError("refused")
        if n > 4:
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=b": idle\n\n")
        body = f"id: 4\nevent: request\ndata: {json.dumps({**EVENT, 'id': 'r4'})}\n\n"
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body.encode())

    client = DashboardClient("http://t", "k", transport=httpx.MockTransport(handler))
    stream = client.stream(min_backoff=0.05, max_backoff=1.0, buffer=2)
    stream.start()
    try:
        deadline = time.monotonic() + 5
        while len(calls) < 4 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
    finally:
        await stream.stop()
        await client.aclose()
    assert [h for _, h in calls[:4]] == [None, "3", "3", "3"]
    gaps = [b[0] - a[0] for a, b in zip(calls, calls[1:4], strict=False)]
    assert gaps[1] > gaps[0] * 1.2  # exponential backoff while refused
    # bounded buffer: only the newest 2 kept, the overflow counted
    assert [e.id for e in stream.requests] == ["r3", "r4"]
    assert stream.state.dropped == 2 and stream.state.received == 4


async def test_auth_and_unreachable_errors_are_typed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers.get("x-dashboard-key") != "good":
            return httpx.Response(403, json={"error": {"type": "authentication_error", "message": "invalid"}})
        raise httpx.ConnectError("refused")

    for key, exc in (("bad", ApiAuthError), ("good", ApiUnreachable)):
        async with DashboardClient("http://t", key, transport=httpx.MockTransport(handler)) as c:
            try:
                await c.info()
            except exc as e:
                assert isinstance(e, exc)
            else:
                raise AssertionError("no error")
    async with DashboardClient("http://t", "bad", transport=httpx.MockTransport(handler)) as c:
        s = c.stream(min_backoff=0.01, max_backoff=0.02)
        s.start()
        await asyncio.sleep(0.2)
        await s.stop()
        assert s.state.auth_failed and "403" in s.state.message


def test_error_status_meaning_in_every_colour_mode(monkeypatch) -> None:
    """An error is marked by ✖ and weight, not colour alone; under NO_COLOR (grey levels, where red
    is darker than green) it is bold reverse; with colour, an RGB red that stays red in 16 colours."""
    from tui import fmt
    from tui.api.models import RequestEvent

    err = RequestEvent(id="e", time=None, status=529, error_type="overloaded_error")
    mid = RequestEvent(id="m", time=None, status=200, error_type="overloaded_error")
    ok = RequestEvent(id="o", time=None, status=200)
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert fmt.status_cell(err).plain == "✖529" and fmt.status_cell(mid).plain == "200✖"
    assert str(fmt.status_cell(err).style) == fmt.ERR_STYLE and fmt.ERROR_COLOR.startswith("#")
    assert fmt.error_kind(mid) == "overloaded" and str(fmt.status_cell(mid)) == "200✖" and fmt.error_kind(err) == "overloaded"
    monkeypatch.setenv("NO_COLOR", "1")
    assert str(fmt.status_cell(err).style) == "bold reverse" and str(fmt.status_cell(ok).style) == ""


def test_every_known_error_type_fits_the_errors_table_uncut() -> None:
    """The type column is 12 cells: every type the proxy or Anthropic records fits."""
    from types import SimpleNamespace

    known = ["invalid_request_error", "invalid_request", "authentication_error", "permission_error",
             "not_found_error", "request_too_large", "rate_limit_error", "overloaded_error", "timeout_error",
             "api_error", "upstream_tls_error", "upstream_dns_error", "upstream_unreachable", "upstream_timeout",
             "upstream_disconnected", "upstream_error", "client_aborted", "http_502"]
    # and whatever the proxy's failure classifier can record, should it grow a new type
    import re
    from pathlib import Path

    import proxy.ingress.failures as failures
    known += [t for pair in re.findall(r'return \d+, "([a-z_]+)", "([a-z_]+)"',
                                       Path(failures.__file__).read_text()) for t in pair]
    for t in known:
        err = fmt.error_kind(SimpleNamespace(status=529, error_type=t))
        mid = fmt.error_kind(SimpleNamespace(status=200, error_type=t))
        assert len(err) <= 11 and mid == err, (t, err, mid)



def test_alert_values_read_in_their_rules_units() -> None:
    """error_rate is a share, token_window a percent, p95 milliseconds, daily_cost dollars; a firing
    alert shows the message it fired with and what it says now."""
    from datetime import UTC, datetime, timedelta

    from tui.panels.costs import to_plain
    from tui.screens.alerts import alerts_renderable

    now = datetime(2030, 1, 1, 10, 0, tzinfo=UTC)

    def alert(rule: str, peak: float, threshold: float, **kw: object) -> dict:
        return {"id": rule, "rule": rule, "title": rule, "status": "firing", "summary": "now text",
                "firedSummary": "fired text", "value": peak, "peakValue": peak, "threshold": threshold,
                "startedAt": (now - timedelta(minutes=2)).isoformat(), **kw}

    alerts = parse_alerts({"active": [alert("error_rate", 0.262, 0.05), alert("token_window", 97.5, 80.0),
                                      alert("p95_latency", 12500.0, 10000.0), alert("daily_cost", 123.4, 100.0)]})
    text = to_plain(alerts_renderable(alerts, True, now), width=200)
    for expected in ("peak 26.2% (threshold 5.0%)", "peak 98% (threshold 80%)", "peak 12.5s (threshold 10.0s)",
                     "peak $123.40 (threshold $100.00)", "fired text", "now: now text"):
        assert expected in text, (expected, text)


def test_the_drill_down_says_when_a_stream_failed_after_its_200() -> None:
    from tui.api.models import RequestDetail
    from tui.panels.costs import to_plain
    from tui.screens.request import detail_renderable

    def text(status: int) -> str:
        d = RequestDetail.parse({"request": {"id": "r1", "status": status, "errorType": "overloaded_error",
                                             "model": "claude-sonnet-4-5", "createdAt": "2030-01-01T10:00:00Z"}})
        return to_plain(detail_renderable(d), width=120)

    assert "200  overloaded_error  (failed mid-stream, after the 200 was sent)" in text(200)
    assert "mid-stream" not in text(529) and "529  overloaded_error" in text(529)


def test_sparkline_steps() -> None:
    """0 is the lowest block, anything above zero at least the next, the top the full block; the
    error series is drawn on the requests' scale (one error in 100 requests is a low bar)."""
    from tui.panels.sparks import sparkline

    assert sparkline([0, 1, 50, 100, None], 5) == "▁▂▅█ "
    assert sparkline([0, 1, 0], 3, top=100) == "▁▂▁"
    assert sparkline([1, 2, 3], 2) == "▆█"  # the last ``width`` values


def test_a_detail_without_bodies_says_why() -> None:
    from tui.api.models import RequestDetail
    from tui.panels.costs import to_plain
    from tui.screens.request import detail_renderable

    ok = RequestDetail.parse({"request": {"id": "r1", "status": 200, "model": "claude-sonnet-4-5"}})
    assert "STORE_BODIES=errors (the default) keeps them for failed exchanges only" in to_plain(
        detail_renderable(ok), width=200)
    stored = RequestDetail.parse({"request": {"id": "r2", "status": 529, "errorType": "overloaded_error"},
                                  "bodies": {"requestHeaders": {"anthropic-version": "2023-06-01"}}})
    assert "No headers or bodies stored" not in to_plain(detail_renderable(stored), width=200)
