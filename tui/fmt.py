"""Number and time formatting shared by the panels and the exports.

Kept apart from the widgets so the same spelling of "1.2M tokens" or "unpriced" appears
everywhere, and so it can be tested without a terminal.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from rich.text import Text

from nexus.core.models import model_family

UNPRICED = "unpriced"
DASH = "–"


def tokens(n: float | None) -> str:
    if n is None:
        return DASH
    n = float(n)
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            v = n / size
            return f"{v:.1f}{unit}" if v < 100 else f"{v:.0f}{unit}"
    return f"{n:.0f}"


def usd(v: float | None, *, unpriced: bool = False) -> str:
    """A dollar amount; ``None`` is an unpriced model, never shown as $0."""
    if v is None:
        return UNPRICED if unpriced or v is None else DASH
    if abs(v) >= 1000:
        return f"${v:,.0f}"
    if abs(v) >= 1:
        return f"${v:.2f}"
    if v == 0:
        return "$0"
    if abs(v) >= 0.01:
        return f"${v:.3f}"
    return f"${v:.4f}"


def ms(v: float | None) -> str:
    if v is None:
        return DASH
    if v >= 10_000:
        return f"{v / 1000:.0f}s"
    if v >= 1000:
        return f"{v / 1000:.1f}s"
    return f"{v:.0f}ms"


def pct(v: float | None, *, ratio: bool = False) -> str:
    if v is None:
        return DASH
    if ratio:
        v *= 100.0
    return f"{v:.1f}%" if v < 10 else f"{v:.0f}%"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return DASH
    s = int(max(0, seconds))
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    if d:
        return f"{d}d{h:02d}h"
    if h:
        return f"{h}h{m:02d}m"
    if m:
        return f"{m}m{s:02d}s"
    return f"{s}s"


def clock(dt: datetime | None) -> str:
    """Local wall-clock time, what a person watching a monitor reads."""
    if dt is None:
        return DASH
    return dt.astimezone().strftime("%H:%M:%S")


def until(dt: datetime | None, now: datetime | None = None) -> str:
    if dt is None:
        return DASH
    now = now or datetime.now(UTC)
    secs = (dt - now).total_seconds()
    if secs <= 0:
        return "now"
    return f"{dt.astimezone().strftime('%H:%M')} ({short_duration(secs)})"


def short_duration(seconds: float) -> str:
    """Minutes resolution: "57m", "2h05m", "3d04h" — for columns that must stay narrow."""
    m = int(max(0, seconds)) // 60
    d, m = divmod(m, 1440)
    h, m = divmod(m, 60)
    if d:
        return f"{d}d{h:02d}h"
    if h:
        return f"{h}h{m:02d}m"
    return f"{m}m"


def short_model(model: str | None) -> str:
    """``claude-sonnet-4-5-20250929`` → ``sonnet-4-5``: the family, the part that tells models apart."""
    return model_family(model) or DASH


# Colours by meaning, as RGB: Textual maps the ANSI names ("red") through its theme, and in a
# 16-colour terminal that red came out magenta while the orange focus accent became red.
ERROR_COLOR = "#ff5f5f"
OK_COLOR = "#5fd75f"
ERR_STYLE = f"bold {ERROR_COLOR}"
ERROR_MARK = "✖"  # errors carry a symbol, not only a colour (NO_COLOR, 16 colours, colour-blind eyes)


def no_color() -> bool:
    """The NO_COLOR convention (no-color.org): Textual then draws in grey levels, where red is
    darker than green; meaning must come from shape and weight."""
    return bool(os.environ.get("NO_COLOR"))


def status_cell(ev: Any) -> Text:
    """``200``; ``✖529`` for an error; ``200✖`` for a stream that failed after its 200 (mid-stream).
    Errors are bold red, and under NO_COLOR bold reverse (red alone would turn a dim grey)."""
    err = "bold reverse" if no_color() else ERR_STYLE
    if ev.status < 400 and ev.error_type:
        return Text(f"{ev.status}{ERROR_MARK}", style=err)
    if ev.is_error:
        return Text(f"{ERROR_MARK}{ev.status}", style=err)
    return Text(str(ev.status), style="" if no_color() else OK_COLOR)


# Every error type the proxy or Anthropic records, in at most 11 cells, so the errors table never
# cuts one; the drill-down shows the full name. Unknown types lose their "_error" suffix.
_KINDS = {
    "invalid_request_error": "invalid_req", "invalid_request": "invalid_req", "authentication_error": "auth",
    "permission_error": "permission", "not_found_error": "not_found", "request_too_large": "too_large",
    "rate_limit_error": "rate_limit", "overloaded_error": "overloaded", "timeout_error": "timeout",
    "api_error": "api", "upstream_tls_error": "up_tls", "upstream_dns_error": "up_dns",
    "upstream_unreachable": "up_unreach", "upstream_timeout": "up_timeout",
    "upstream_disconnected": "up_closed", "upstream_error": "upstream", "client_aborted": "aborted",
}


def error_kind(ev: Any) -> str:
    """``overloaded_error`` → ``overloaded`` (≤ 11 cells for every known type). A failure after a
    200 is told by its status cell, ``200✖`` (``status_cell``), and in words in the drill-down: a
    one-cell glyph for it here ("↯") is missing from too many terminal fonts."""
    raw = ev.error_type or DASH
    return _KINDS.get(raw, raw.removesuffix("_error"))


_CALLS = {"messages": "msg", "count_tokens": "count"}


def call_kind(request_type: str | None) -> str:
    return _CALLS.get(request_type or "messages", (request_type or "")[:5])
