"""The monitor's only door to the server: the dashboard API over HTTP (httpx + httpx-sse).

No Textual here, so the same code serves the TUI, ``nexus export`` and the tests, and the
headless paths never pay for importing a UI framework.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from tui.api.errors import ApiAuthError, ApiError, ApiUnreachable, auth_message
from tui.api.models import Alert, Info, RequestDetail, RequestEvent, field_of, parse_alerts
from tui.api.query import Query
from tui.api.reports import (
    Costs,
    ErrorsReport,
    LimitAccount,
    LimitSample,
    Stats,
    Timeseries,
    TokenWindow,
    parse_history,
    parse_limits,
    parse_windows,
)
from tui.api.sessions import Session, SessionDetail, SessionFilter, parse_sessions
from tui.api.stream import EventStream

DEFAULT_URL = "http://127.0.0.1:3001"






class DashboardClient:
    """Typed calls to the dashboard API. Every call has a timeout; none can hang the caller."""

    def __init__(self, base_url: str = DEFAULT_URL, key: str | None = None, *, timeout: float = 5.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = key
        headers = {"X-Dashboard-Key": key} if key else {}
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=headers,
                                       timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)),
                                       transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> DashboardClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        clean = {k: v for k, v in (params or {}).items() if v is not None and v != ""}
        try:
            resp = await self._http.get(path, params=clean)
        except httpx.TimeoutException as exc:
            raise ApiUnreachable(f"timeout talking to {self.base_url}") from exc
        except httpx.TransportError as exc:
            raise ApiUnreachable(f"cannot reach {self.base_url}: {exc.__class__.__name__}") from exc
        if resp.status_code in (401, 403):
            raise ApiAuthError(auth_message(resp.status_code), resp.status_code)
        if resp.status_code >= 400:
            msg = resp.text[:200]
            with contextlib.suppress(ValueError):
                body = resp.json()
                msg = str(field_of(body, "message", "error", default=msg))
                if isinstance(body.get("error"), Mapping):
                    msg = str(body["error"].get("message", msg))
            raise ApiError(f"{path}: HTTP {resp.status_code}: {msg}", resp.status_code)
        try:
            return resp.json()
        except ValueError as exc:
            raise ApiError(f"{path}: not JSON") from exc

    @staticmethod
    def _iso(dt: datetime) -> str:
        return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")

    async def info(self) -> Info:
        return Info.parse(await self.get_json("/api/info"))

    async def stats(self, q: Query) -> Stats:
        return Stats.parse(await self.get_json("/api/stats", {"since": q.time_range, **q.params()}))

    async def timeseries(self, q: Query) -> Timeseries:
        data = await self.get_json("/api/timeseries", {"since": q.time_range, "bucket": q.bucket,
                                                        **q.params()})
        return Timeseries.parse(data, q.bucket)

    async def token_windows(self, q: Query, window_minutes: int = 300) -> list[TokenWindow]:
        data = await self.get_json("/api/token-usage/current", {"window": window_minutes,
                                                                 "accountId": q.account,
                                                                 "domain": q.domain})
        return parse_windows(data)

    async def limits(self, q: Query | None = None) -> list[LimitAccount]:
        """Every account's rate limits as Anthropic's latest answer said them (``/api/limits``)."""
        params = {"accountId": q.account} if q is not None and q.account else None
        return parse_limits(await self.get_json("/api/limits", params))

    async def limits_history(self, account: str, window: str = "all", since: str = "24h") -> list[LimitSample]:
        return parse_history(await self.get_json("/api/limits/history", {
            "accountId": account, "window": window, "since": since}))

    async def costs(self, q: Query | None = None, days: int = 31) -> Costs:
        q = q or Query()
        return Costs.parse(await self.get_json("/api/costs", {"days": days, **q.params()}))

    async def errors(self, q: Query, limit: int = 50) -> ErrorsReport:
        return ErrorsReport.parse(await self.get_json("/api/errors", {
            "since": q.time_range, "limit": limit, **q.params()}))

    async def errors_between(self, since: datetime, until: datetime, limit: int = 200,
                             account: str | None = None) -> ErrorsReport:
        """The errors of one stretch of time (an alert's), newest first, with their counts by type."""
        return ErrorsReport.parse(await self.get_json("/api/errors", {
            "since": self._iso(since), "until": self._iso(until), "limit": limit, "accountId": account}))

    async def requests_page(self, q: Query | None = None, *, limit: int = 100, before: str | None = None,
                            errors_only: bool = False) -> tuple[list[RequestEvent], str | None]:
        """One page, newest first, and the cursor for the next (older) page."""
        q = q or Query()
        data = await self.get_json("/api/requests", {
            "limit": limit, "before": before, "status": "error" if errors_only else None,
            "since": q.time_range, **q.params()})
        rows = data if isinstance(data, list) else field_of(data, "requests", "items", "data", default=[])
        events = [RequestEvent.parse(r) for r in rows or [] if isinstance(r, Mapping)]
        cursor = None if isinstance(data, list) else field_of(data, "nextCursor", "next_cursor", "cursor",
                                                          "before")
        return events, (str(cursor) if cursor else None)

    async def request(self, request_id: str) -> RequestDetail:
        return RequestDetail.parse(await self.get_json(f"/api/requests/{request_id}"))

    async def sessions(self, f: SessionFilter | None = None, *, limit: int = 100,
                       active: bool | None = None) -> list[Session]:
        """Sessions by most recent activity (``/api/sessions``), filtered as the screen asks."""
        f = f or SessionFilter()
        data = await self.get_json("/api/sessions", {
            "limit": limit, "active": None if active is None else str(active).lower(), **f.params()})
        rows, _ = parse_sessions(data)
        return [s for s in rows if f.matches(s)]

    async def session(self, session_id: str, *, limit: int = 50) -> SessionDetail:
        from urllib.parse import quote

        return SessionDetail.parse(await self.get_json(f"/api/sessions/{quote(session_id, safe='')}",
                                                       {"limit": limit}))

    async def alerts(self) -> list[Alert]:
        return parse_alerts(await self.get_json("/api/alerts"))

    async def test_alerts(self, channel: str = "all", timeout: float = 180.0) -> dict[str, Any]:
        """``POST /api/alerts/test``: a marked test notification through the channels, per-channel outcome.

        The server answers when every channel has answered or given up (its retries included), so
        this call gets a long timeout of its own; callers run it in the background.
        """
        try:
            resp = await self._http.post("/api/alerts/test", params={"channel": channel}, timeout=timeout)
        except httpx.TimeoutException as exc:
            raise ApiUnreachable(f"timeout talking to {self.base_url}") from exc
        except httpx.TransportError as exc:
            raise ApiUnreachable(f"cannot reach {self.base_url}: {exc.__class__.__name__}") from exc
        if resp.status_code in (401, 403):
            raise ApiAuthError(auth_message(resp.status_code), resp.status_code)
        if resp.status_code >= 400:
            raise ApiError(f"/api/alerts/test: HTTP {resp.status_code}", resp.status_code)
        return resp.json()

    def stream(self, **kwargs: Any) -> EventStream:
        return EventStream(self, **kwargs)
