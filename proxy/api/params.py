"""Query parameters of the dashboard API: each parser validates one and raises ``BadParam`` naming it.

Every route parses its parameters here before touching the database, so a bad value is a 400 that
says which parameter and why (``docs/api.md``, "Conventions"), never a 500 from deep inside.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from nexus.core.durations import looks_like_duration, parse_duration
from nexus.core.sessions import parse_tag_filter, valid_id
from nexus.store.read import Filters

T = TypeVar("T")

MAX_FILTER_LEN = 512
MAX_LOOKBACK = timedelta(days=400)


class BadParam(ValueError):
    """A query parameter that cannot be used; becomes a 400 naming it."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param


def raw_param(args: Mapping[str, str], name: str) -> str | None:
    value = args.get(name)
    if value is None or value.strip() == "":
        return None
    if "\x00" in value:
        raise BadParam(name, "must not contain NUL characters")
    return value.strip()


def parse_time(args: Mapping[str, str], name: str, now: datetime, default: str | None) -> datetime | None:
    """ISO-8601 (naive = UTC, a bare date = its midnight) or a relative duration back from now."""
    raw = raw_param(args, name) or default
    if raw is None:
        return None
    msg = "expected ISO-8601 time or relative duration like 15m, 1h, 24h, 7d"
    try:
        if looks_like_duration(raw):
            value = now - parse_duration(raw, unit_required=True)
        else:
            text = raw[:-1] + "+00:00" if raw.endswith(("z", "Z")) else raw
            value = datetime.fromisoformat(text)
            if value.tzinfo is None:
                value = value.replace(tzinfo=UTC)
            value = value.astimezone(UTC)
    except (ValueError, OverflowError):
        raise BadParam(name, msg) from None
    try:
        too_old = value < now - MAX_LOOKBACK
        too_new = value > now + MAX_LOOKBACK
    except OverflowError:  # pragma: no cover - datetimes near year 1/9999
        too_old = too_new = True
    if too_old:
        raise BadParam(name, "must be within the last 400 days")
    if too_new:
        raise BadParam(name, "must not be more than 400 days in the future")
    return value


def parse_range(args: Mapping[str, str], now: datetime, default_since: str) -> tuple[datetime, datetime]:
    since = parse_time(args, "since", now, default_since)
    until = parse_time(args, "until", now, None) or now
    assert since is not None
    if since >= until:
        raise BadParam("since", "must be before until")
    return since, until


def parse_int(args: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = raw_param(args, name)
    if raw is None:
        return default
    if not re.fullmatch(r"[+-]?[0-9]{1,12}", raw):
        raise BadParam(name, f"expected an integer from {lo} to {hi}")
    value = int(raw)
    if not lo <= value <= hi:
        raise BadParam(name, f"must be from {lo} to {hi}")
    return value


def parse_bool(args: Mapping[str, str], name: str, default: bool) -> bool:
    raw = raw_param(args, name)
    if raw is None:
        return default
    low = raw.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise BadParam(name, "expected true or false")


def parse_text(args: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        raw = raw_param(args, name)
        if raw is not None:
            if len(raw) > MAX_FILTER_LEN:
                raise BadParam(name, f"at most {MAX_FILTER_LEN} characters")
            return raw
    return None


def parse_session_id(args: Mapping[str, str], name: str = "sessionId") -> str | None:
    raw = raw_param(args, name)
    if raw is None:
        return None
    sid = valid_id(raw)
    if sid is None:
        raise BadParam(name, "expected a session id (1-128 characters of A-Z a-z 0-9 . _ : @ + = -)")
    return sid


def parse_tag(args: Mapping[str, str], name: str = "tag") -> tuple[str, str] | None:
    raw = raw_param(args, name)
    if raw is None:
        return None
    try:
        return parse_tag_filter(raw)
    except ValueError as exc:
        raise BadParam(name, str(exc)) from None


def parse_filters(args: Mapping[str, str], model: bool = True, session: bool = True) -> Filters:
    return Filters(domain=parse_text(args, "domain"),
                   account=parse_text(args, "accountId", "account"),
                   model=parse_text(args, "model") if model else None,
                   session=parse_session_id(args) if session else None,
                   tag=parse_tag(args) if session else None)


def check_known(args: Mapping[str, str], allowed: frozenset[str]) -> None:
    """A 400 naming the first query parameter the route does not take (silently ignoring a filter
    would answer a question nobody asked: ``/api/stats?tag=…`` returning everything)."""
    for name in args:
        if name not in allowed:
            hint = ", ".join(sorted(allowed)) or "none"
            raise BadParam(name, f"unknown query parameter (this route takes: {hint})")


def parse_status(args: Mapping[str, str]) -> str | int | None:
    raw = raw_param(args, "status")
    if raw is None:
        return None
    low = raw.lower()
    if low in ("error", "errors"):
        return "error"
    if low == "ok":
        return "ok"
    if re.fullmatch(r"[0-9]{3}", raw) and 100 <= int(raw) <= 599:
        return int(raw)
    raise BadParam("status", "expected error, ok or an HTTP status code 100..599")


def parse_cursor(args: Mapping[str, str], decode: Callable[[str], T], name: str = "before") -> T | None:
    """``before=``: a ``nextCursor`` this API handed out, decoded by ``decode`` (which raises
    ``ValueError`` for anything else), or ``None`` when absent."""
    raw = raw_param(args, name)
    if raw is None:
        return None
    try:
        return decode(raw)
    except ValueError:
        raise BadParam(name, "not a cursor returned by this API (use nextCursor)") from None


def parse_event_id(value: str | None, name: str) -> int | None:
    if value is None or value.strip() == "":
        return None
    if not re.fullmatch(r"[0-9]{1,18}", value.strip()):
        raise BadParam(name, "expected a non-negative integer event id")
    return int(value.strip())


_WINDOW_NAME = re.compile(r"[A-Za-z0-9_.-]{1,32}")


def parse_window_name(args: Mapping[str, str], name: str, default: str | None) -> str | None:
    """A rate-limit window as Anthropic names it (``5h``, ``7d``, ``7d_oi``, …); ``all`` = every window."""
    raw = raw_param(args, name)
    if raw is None:
        return default
    if raw == "all":
        return None
    if not _WINDOW_NAME.fullmatch(raw):
        raise BadParam(name, "expected a window name like 5h, 7d, 7d_oi (or all)")
    return raw
