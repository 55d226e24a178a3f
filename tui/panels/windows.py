"""Limits per account: the 5-hour, weekly and per-model windows, as Anthropic measures them.

Per account one row: a bar and % for the 5-hour window, when it resets, the weekly (``7d``) %,
the status colour (allowed / warning / rejected) and, on wide screens, the weekly top-model window
(``7d_oi``). Numbers come from the rate-limit headers of the latest answer (``/api/limits``,
measured). Accounts without those headers fall back to the estimate of
``/api/token-usage/current`` (tokens over a configured or learned limit), marked ``~`` and
``est``; API keys show their per-minute headroom (tokens used of the minute, requests used %),
marked ``key``. Enter opens the account (``tui/screens/limits.py``).

A virtual list rather than a DataTable: the DataTable's per-cell render caches key on an update
counter, so a table updated every poll fills them (tens of MB over an hour) before they cycle.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.text import Text

from tui import fmt
from tui.api.reports import LimitAccount, LimitBucket, LimitWindow, TokenWindow
from tui.panels import Panel, filter_note
from tui.widgets.vlist import VirtualTable

COLUMNS = [
    ("account", "account", 12),
    ("5h", "5h", 9),
    ("reset", "reset", 5),
    ("7d", "7d", 4),
    ("st", "status", 4),
    ("7d_oi", "7d_oi", 5),
]

BLOCKS = " ▏▎▍▌▋▊▉█"


def bar(fraction: float | None, width: int) -> str:
    """A bar of ``width`` cells, eighth-cell precision, full at 1.0 (more is still full)."""
    if fraction is None:
        return "·" * width
    f = min(max(fraction, 0.0), 1.0) * width
    full = int(f)
    part = int((f - full) * 8)
    out = "█" * full + (BLOCKS[part] if full < width and part else "")
    return out + "░" * (width - len(out))


def status_style(status: str | None, fraction: float | None = None) -> str:
    if status == "rejected" or (fraction is not None and fraction >= 1.0):
        return "bold red"
    if status == "allowed_warning" or (fraction is not None and fraction >= 0.8):
        return "yellow"
    return "green"


STATUS_LABEL = {"allowed": "ok", "allowed_warning": "warn", "rejected": "REJ"}


def pct_text(fraction: float | None) -> str:
    return fmt.DASH if fraction is None else f"{fraction * 100:.0f}%"


def window_cell(win: LimitWindow | None, width: int = 4) -> Text | str:
    if win is None or win.utilization is None:
        return fmt.DASH
    return Text(f"{bar(win.utilization, width)}{pct_text(win.utilization):>5}".rstrip(),
                style=status_style(win.status, win.utilization))


def countdown(at: datetime | None, now: datetime) -> str:
    if at is None:
        return fmt.DASH
    secs = (at - now).total_seconds()
    if secs <= 0:
        return "now"
    return f"{int(secs)}s" if secs < 60 else fmt.short_duration(secs)


def _used(b: LimitBucket | None) -> float | None:
    if b is None or not b.limit or b.remaining is None:
        return None
    return max(0.0, 1.0 - b.remaining / b.limit)


def short_account(account: str | None) -> str:
    """``acct_1a2b3c4d5e6f`` → ``1a2b3c4d5e6f``: the part that tells accounts apart, in 12 cells."""
    return (account or "(no account)").removeprefix("acct_")


def limit_cells(a: LimitAccount, now: datetime) -> tuple:
    """One measured account: subscription windows, or an API key's per-minute headroom."""
    if a.kind == "api_key" or (not a.windows and a.buckets):
        tokens = next((b for b in a.buckets if b.kind == "tokens"), None)
        requests = next((b for b in a.buckets if b.kind == "requests"), None)
        used = _used(tokens)
        cell: Text | str = fmt.DASH if used is None else Text(
            f"{bar(used, 4)}{pct_text(used):>5}".rstrip(), style=status_style(None, used))
        return (short_account(a.account_id), cell, countdown(tokens.resets_at if tokens else None, now),
                pct_text(_used(requests)), Text("key", style="dim"), "")
    five = a.window("5h")
    week = a.window("7d")
    oi = a.window("7d_oi")
    status = a.status or (five.status if five else None)
    label = Text(STATUS_LABEL.get(status or "", (status or fmt.DASH)[:4]),
                 style=status_style(status))
    week_cell: Text | str = fmt.DASH if week is None or week.utilization is None else Text(
        pct_text(week.utilization), style=status_style(week.status, week.utilization))
    oi_cell: Text | str = fmt.DASH if oi is None or oi.utilization is None else Text(
        pct_text(oi.utilization), style=status_style(oi.status, oi.utilization))
    return (short_account(a.account_id), window_cell(five), countdown(five.resets_at if five else a.resets_at, now),
            week_cell, label, oi_cell)


def estimated_cells(w: TokenWindow, now: datetime) -> tuple:
    """An account without rate-limit headers: the token-count estimate, marked ``~`` / ``est``."""
    frac = None if w.percent_of_limit is None else w.percent_of_limit / 100.0
    if frac is None:
        cell: Text | str = Text(f"~{fmt.tokens(w.total_tokens)}", style="dim")
    else:
        cell = Text(f"{bar(frac, 3)}~{pct_text(frac):>4}", style=status_style(None, frac))
    return (short_account(w.account_id), cell, countdown(w.window_end, now) if w.active else fmt.DASH,
            fmt.DASH, Text("est", style="dim"), "")


class TokenWindowsPanel(VirtualTable, Panel):
    """The limits panel (it grew out of the token-window panel and keeps its id, ``windows``)."""

    SOURCES = ("limits", "windows")
    PANEL_TITLE = "Limits"
    COLUMNS = COLUMNS
    # account, 5h, status, reset, 7d, 7d_oi: a narrow panel keeps the 5-hour bar and whether the
    # account is being refused before when it resets and the weekly figures.
    PRIORITY = (0, 1, 4, 2, 3, 5)
    MAX_ROWS = 500

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.border_title = self.PANEL_TITLE
        self.now = lambda: datetime.now(UTC)

    def show(self, data: dict[str, Any]) -> None:
        limits: list[LimitAccount] | None = data.get("limits")
        windows: list[TokenWindow] | None = data.get("windows")
        if limits is None and windows is None:
            return
        now = self.now()
        q = data.get("query")
        account_filter = getattr(q, "account", None)
        measured = {a.account_id: a for a in limits or []
                    if a.account_id and (account_filter is None or a.account_id == account_filter)}
        rows: list[tuple[float, str, tuple]] = []
        for a in measured.values():
            five = a.window("5h")
            key = five.utilization if five and five.utilization is not None else (
                _used(next((b for b in a.buckets if b.kind == "tokens"), None)) or 0.0)
            rows.append((-(key or 0.0), a.account_id, limit_cells(a, now)))
        estimated = 0
        for w in windows or []:
            if (w.account_id or "-") in measured:
                continue
            estimated += 1
            frac = (w.percent_of_limit or 0.0) / 100.0
            rows.append((-frac, w.account_id or "-", estimated_cells(w, now)))
        rows.sort(key=lambda r: (r[0], r[1]))
        self.set_rows([(rid, cells) for _, rid, cells in rows])
        parts = [f"{len(measured)} measured"] if measured else []
        if estimated:
            parts.append(f"{estimated} ~est")
        self.set_title(self.PANEL_TITLE, ", ".join(parts),
                       filter_note(q, ("domain", "account")).removeprefix(" · "))
