"""Drill-down into one exchange: ``GET /api/requests/{id}``.

Status, error body, headers (secrets redacted — the server already does it; we do it again, with
the same rule from ``nexus.core.redact``, because a monitor screen gets screenshotted and pasted
into chats), token breakdown, timings and cost. Fetched in a worker, so a slow API never freezes the keyboard.
"""

from __future__ import annotations

import json
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from nexus.core.redact import redact_headers
from tui import fmt
from tui.api.client import DashboardClient
from tui.api.errors import ApiError
from tui.api.models import RequestDetail

MAX_BODY_CHARS = 4000


def _kv(rows: list[tuple[str, Any]]) -> Table:
    t = Table.grid(padding=(0, 2))
    t.add_column(style="dim", no_wrap=True)
    t.add_column(overflow="fold")
    for k, v in rows:
        t.add_row(k, v if isinstance(v, Text) else Text(str(v)))
    return t


def _pretty(body: Any) -> str:
    if body is None:
        return ""
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            return body[:MAX_BODY_CHARS]
    text = json.dumps(body, indent=2, ensure_ascii=False)
    return text if len(text) <= MAX_BODY_CHARS else text[:MAX_BODY_CHARS] + "\n… (truncated)"


def detail_renderable(d: RequestDetail) -> Group:
    ev = d.event
    parts: list[Any] = []
    status_style = fmt.ERR_STYLE if ev.is_error else f"bold {fmt.OK_COLOR}"
    parts.append(Text("Request", style="bold underline"))
    parts.append(_kv([
        ("status", Text(f"{ev.status}" + (f"  {ev.error_type}" if ev.error_type else "")
                        + ("  (failed mid-stream, after the 200 was sent)" if ev.status < 400 and ev.error_type
                           else ""), style=status_style)),
        ("time", ev.time.astimezone().isoformat(timespec="milliseconds") if ev.time else fmt.DASH),
        ("id", ev.id),
        ("request-id", d.request_id or fmt.DASH),
        ("endpoint", f"{d.method} {d.path}"),
        ("domain", ev.domain or fmt.DASH),
        ("account", ev.account_id or fmt.DASH),
        ("model", ev.model or fmt.DASH),
        ("stream", "yes" if ev.stream else "no"),
    ]))
    if ev.is_error or d.error_body or d.error_message:
        parts.append(Text("\nError", style="bold underline red"))
        if d.error_message:
            parts.append(Text(d.error_message, style="red"))
        if d.error_body is not None:
            parts.append(Text(_pretty(d.error_body)))
        elif not d.error_message:
            parts.append(Text("(no error body stored — see STORE_BODIES)", style="dim"))
    tk = ev.tokens
    timings = _kv([("total latency", fmt.ms(ev.latency_ms)), ("first token", fmt.ms(ev.ttft_ms))])
    tokens = _kv([("input (uncached)", f"{tk.input:,}"), ("output", f"{tk.output:,}"),
                  ("cache creation", f"{tk.cache_creation:,}"), ("cache read", f"{tk.cache_read:,}"),
                  ("total", f"{tk.total:,}")])
    cost = _kv([("cost", fmt.usd(ev.cost_usd) if ev.cost_usd is not None else fmt.UNPRICED)])
    grid = Table.grid(padding=(0, 4))
    for _ in range(3):
        grid.add_column(vertical="top")
    grid.add_row(Text("Timings", style="bold underline"), Text("Tokens", style="bold underline"),
                 Text("Cost", style="bold underline"))
    grid.add_row(timings, tokens, cost)
    parts.append(Text(""))
    parts.append(grid)
    parts.extend(billing_parts(d))
    for title, headers in (("Request headers", d.request_headers), ("Response headers", d.response_headers)):
        if headers:
            parts.append(Text(f"\n{title}", style="bold underline"))
            parts.append(_kv(sorted(redact_headers({str(k): str(v) for k, v in headers.items()}).items())))
    if d.request_body:
        parts.append(Text("\nRequest body", style="bold underline"))
        parts.append(Text(_pretty(d.request_body)))
    if d.response_body and d.response_body != d.error_body:
        parts.append(Text("\nResponse body", style="bold underline"))
        parts.append(Text(_pretty(d.response_body)))
    if not (d.request_headers or d.response_headers or d.request_body or d.response_body):
        # Not a fault: what is kept is the proxy's choice (STORE_BODIES: none | errors | all).
        why = ("STORE_BODIES=errors (the default) keeps them for failed exchanges only; =all keeps every one"
               if not ev.is_error else "STORE_BODIES=none keeps no bodies; =errors or =all keeps them for errors")
        parts.append(Text(f"\nNo headers or bodies stored for this request: {why}.", style="dim"))
    return Group(*parts)


_RATE_ROWS = (("input", "input"), ("output", "output"), ("cache write 5m", "cacheWrite5m"),
              ("cache write 1h", "cacheWrite1h"), ("cache read", "cacheRead"))


def billing_parts(d: RequestDetail) -> list[Any]:
    """Each billing dimension as recorded, and the rates applied with the cost of each part.

    Nothing at all for an exchange that reported no billing field and has no price (e.g. a 429).
    """
    if not (d.pricing or d.service_tier or d.speed or d.inference_geo or d.web_search_requests
            or d.web_fetch_requests or d.thinking_tokens or d.price_source):
        return []
    out: list[Any] = [Text("\nBilling", style="bold underline")]
    out.append(_kv([
        ("service tier", d.service_tier or fmt.DASH),
        ("speed", Text(d.speed or fmt.DASH, style="magenta" if d.speed == "fast" else "")),
        ("inference geo", d.inference_geo or fmt.DASH),
        ("web searches", f"{d.web_search_requests:,}"),
        ("web fetches", f"{d.web_fetch_requests:,}"),
        ("thinking tokens", f"{d.thinking_tokens:,} (part of output)"),
        ("price source", d.price_source or fmt.DASH),
    ]))
    p = d.pricing
    if not p:
        return out
    rates = p.get("ratesPerMillionTokens") or {}
    costs = p.get("partsUsd") or {}
    t = Table(box=None, padding=(0, 2), show_edge=False)
    t.add_column("rates applied", style="dim", no_wrap=True)
    t.add_column("$ / MTok", justify="right")
    t.add_column("cost", justify="right")
    for label, key in _RATE_ROWS:
        t.add_row(label, f"{rates.get(key, 0):g}", fmt.usd(costs.get(key)))
    t.add_row("web search", f"{p.get('webSearchPer1000', 0):g} / 1k", fmt.usd(costs.get("webSearch")))
    t.add_row(Text("total", style="bold"), "", Text(fmt.usd(p.get("totalUsd")), style="bold"))
    out.append(t)
    notes = [f"{m.get('name')} x{m.get('factor')}" for m in p.get("multipliers") or []]
    if p.get("longPromptAbove"):
        notes.append(f"long-prompt tier (> {p['longPromptAbove']:,} prompt tokens)")
    if not p.get("matchesStored", True):
        notes.append("differs from the recorded cost: `nexus db reprice` would update it")
    if notes:
        out.append(Text("; ".join(notes), style="dim"))
    return out


class RequestScreen(Screen):
    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back", key_display="q/Esc"),
        Binding("j", "scroll_down", "Down", show=False),
        Binding("k", "scroll_up", "Up", show=False),
        Binding("down", "scroll_down", "Down", show=False),
        Binding("up", "scroll_up", "Up", show=False),
    ]

    def __init__(self, client: DashboardClient, request_id: str) -> None:
        super().__init__()
        self.client = client
        self.request_id = request_id
        self.detail: RequestDetail | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="detail-scroll"):
            yield Static(Text(f"loading {self.request_id} …", style="dim"), id="detail")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#detail-scroll").border_title = f"Request {self.request_id}"
        self.query_one("#detail-scroll").focus()
        self.run_worker(self._load(), exclusive=True, group="detail")

    async def _load(self) -> None:
        body = self.query_one("#detail", Static)
        try:
            self.detail = await self.client.request(self.request_id)
        except ApiError as exc:
            body.update(Text(f"could not load request: {exc}", style=fmt.ERR_STYLE))
            return
        body.update(detail_renderable(self.detail))

    def export_document(self) -> tuple[str, dict[str, Any]] | None:
        """``e``: this request's record, as the API gave it."""
        return None if self.detail is None else (f"request-{self.request_id}", {"request": self.detail.raw})

    def action_scroll_down(self) -> None:
        self.query_one("#detail-scroll", VerticalScroll).scroll_down(animate=False)

    def action_scroll_up(self) -> None:
        self.query_one("#detail-scroll", VerticalScroll).scroll_up(animate=False)
