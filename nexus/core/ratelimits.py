"""Anthropic's rate-limit headers → a typed snapshot per answer (pure; docs/limits.md).

Two families arrive on every upstream answer, errors and 429s included:

* **Subscriptions** (Claude Pro/Max OAuth tokens, ``sk-ant-oat…``): ``anthropic-ratelimit-unified-*``
  — ``status`` (``allowed`` / ``allowed_warning`` / ``rejected``), ``reset`` (Unix epoch seconds),
  ``representative-claim`` (the binding window: ``five_hour``, ``seven_day``, …),
  ``fallback-percentage``, ``overage-{status,reset,disabled-reason}`` and, per window ``<w>``
  (``5h``, ``7d``, ``7d_oi``, whatever else comes), ``<w>-utilization`` (a fraction, **can exceed
  1**), ``<w>-reset``, ``<w>-status``, ``<w>-surpassed-threshold``. Undocumented: unknown windows
  are kept under their own name, unknown fields in ``extra``.
* **API keys**: ``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}``
  (reset in RFC 3339), ``anthropic-priority-{input,output}-tokens-*`` (Priority Tier) and
  ``retry-after`` (seconds) on 429s.

Nothing here raises on a hostile value: a malformed number, time or over-long string is dropped
and the rest of the snapshot is kept. :func:`pick_headers` is the only part on the request path:
it copies the few matching headers (a prefix test per header) and parsing happens later, in the
recorder.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from nexus.core.timebuckets import iso

__all__ = [
    "KIND_API_KEY",
    "KIND_SUBSCRIPTION",
    "Bucket",
    "RateLimitSnapshot",
    "Window",
    "parse_headers",
    "pick_headers",
    "window_length",
]

KIND_SUBSCRIPTION = "subscription"
KIND_API_KEY = "api_key"

_RL = "anthropic-ratelimit-"
_UNIFIED = "anthropic-ratelimit-unified-"
_PRIORITY = "anthropic-priority-"
_RETRY_AFTER = "retry-after"
_PREFIXES = (_RL, _PRIORITY, _RETRY_AFTER)

_MAX_HEADERS = 64  # an answer carrying more than this many matching headers is cut off there
_MAX_VALUE = 200  # longer values are not something Anthropic sends: dropped
_MAX_NAME = 120
_MAX_TEXT = 64  # status, claim, reason

# API-key buckets: header stem → JSON key.
_BUCKETS = {"requests": "requests", "tokens": "tokens", "input-tokens": "inputTokens",
            "output-tokens": "outputTokens"}
_PRIORITY_BUCKETS = {"input-tokens": "inputTokens", "output-tokens": "outputTokens"}
_WINDOW_FIELDS = ("-surpassed-threshold", "-utilization", "-reset", "-status")
# Epoch seconds accepted as a reset: 2001-09-09 .. 2286-11-20 (anything else is garbage).
_EPOCH_MIN, _EPOCH_MAX = 1e9, 1e10


def pick_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str] | None:
    """The rate-limit headers of an answer (names lower-cased), or None if it has none.

    Hot path: one ``startswith`` on the lower-cased name per header, nothing parsed.
    """
    out: dict[str, str] | None = None
    for name, value in headers:
        low = name.lower()
        if low.startswith(_PREFIXES):
            if out is None:
                out = {}
            elif len(out) >= _MAX_HEADERS:
                break
            out[low] = value
    return out


@dataclass(slots=True)
class Window:
    """One unified window (``5h``, ``7d``, ``7d_oi``, …) as the answer reported it."""

    utilization: float | None = None
    resets_at: datetime | None = None
    status: str | None = None
    surpassed_threshold: float | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"utilization": self.utilization, "resetsAt": _iso(self.resets_at),
                               "status": self.status}
        if self.surpassed_threshold is not None:
            out["surpassedThreshold"] = self.surpassed_threshold
        return out


@dataclass(slots=True)
class Bucket:
    """One API-key bucket (requests, tokens, input/output tokens): limit, remaining, reset."""

    limit: int | None = None
    remaining: int | None = None
    resets_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {"limit": self.limit, "remaining": self.remaining, "resetsAt": _iso(self.resets_at)}


@dataclass(slots=True)
class RateLimitSnapshot:
    """Everything one answer said about its account's limits."""

    kind: str | None = None  # KIND_SUBSCRIPTION | KIND_API_KEY | None (only retry-after)
    status: str | None = None
    resets_at: datetime | None = None
    representative_claim: str | None = None
    fallback_percentage: float | None = None
    windows: dict[str, Window] = field(default_factory=dict)
    overage_status: str | None = None
    overage_resets_at: datetime | None = None
    overage_disabled_reason: str | None = None
    rate_limits: dict[str, Bucket] = field(default_factory=dict)
    priority: dict[str, Bucket] = field(default_factory=dict)
    retry_after_s: float | None = None
    extra: dict[str, str] = field(default_factory=dict)  # unified fields we do not know, as sent

    def utilization(self) -> dict[str, float]:
        """``{window: fraction}`` of the windows that reported one."""
        return {w: v.utilization for w, v in self.windows.items() if v.utilization is not None}

    def to_json(self) -> dict[str, Any]:
        """The snapshot as ``/api/limits`` shows it (without account and time; see the store)."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "status": self.status,
            "representativeClaim": self.representative_claim,
            "resetsAt": _iso(self.resets_at),
            "fallbackPercentage": self.fallback_percentage,
            "windows": {w: v.to_json() for w, v in self.windows.items()},
            "overage": {"status": self.overage_status, "resetsAt": _iso(self.overage_resets_at),
                        "disabledReason": self.overage_disabled_reason},
            "rateLimits": {k: b.to_json() for k, b in self.rate_limits.items()},
            "retryAfterS": self.retry_after_s,
        }
        if self.priority:
            out["priority"] = {k: b.to_json() for k, b in self.priority.items()}
        if self.extra:
            out["extra"] = dict(self.extra)
        return out


def parse_headers(headers: Mapping[str, str] | None, now: datetime | None = None) -> RateLimitSnapshot | None:
    """Parse the headers :func:`pick_headers` kept (any case); None when no rate-limit header is there.

    ``now`` turns an HTTP-date ``retry-after`` into seconds (default: the current time).
    """
    if not headers:
        return None
    snap = RateLimitSnapshot()
    unified = api = False
    for raw_name, raw_value in list(headers.items())[:_MAX_HEADERS]:
        if not isinstance(raw_name, str) or not isinstance(raw_value, str):
            continue
        name = raw_name.lower()
        if len(name) > _MAX_NAME or len(raw_value) > _MAX_VALUE:
            continue
        value = raw_value.strip()
        if name.startswith(_UNIFIED):
            unified = True
            _unified_field(snap, name[len(_UNIFIED):], value)
        elif name.startswith(_RL):
            if _bucket_field(snap.rate_limits, _BUCKETS, name[len(_RL):], value):
                api = True
        elif name.startswith(_PRIORITY):
            if _bucket_field(snap.priority, _PRIORITY_BUCKETS, name[len(_PRIORITY):], value):
                api = True
        elif name == _RETRY_AFTER:
            snap.retry_after_s = _retry_after(value, now)
    if unified:
        snap.kind = KIND_SUBSCRIPTION
    elif api:
        snap.kind = KIND_API_KEY
    elif snap.retry_after_s is None:
        return None
    return snap


def _unified_field(snap: RateLimitSnapshot, key: str, value: str) -> None:
    if key == "status":
        snap.status = _text(value)
    elif key == "reset":
        snap.resets_at = _epoch(value)
    elif key == "representative-claim":
        snap.representative_claim = _text(value)
    elif key == "fallback-percentage":
        snap.fallback_percentage = _fraction(value)
    elif key == "overage-status":
        snap.overage_status = _text(value)
    elif key == "overage-reset":
        snap.overage_resets_at = _epoch(value)
    elif key == "overage-disabled-reason":
        snap.overage_disabled_reason = _text(value)
    else:
        for suffix in _WINDOW_FIELDS:
            if key.endswith(suffix) and len(key) > len(suffix):
                name = key[: -len(suffix)]
                if not _window_name_ok(name):
                    break
                win = snap.windows.get(name)
                if win is None:
                    win = snap.windows[name] = Window()
                if suffix == "-utilization":
                    win.utilization = _fraction(value)
                elif suffix == "-reset":
                    win.resets_at = _epoch(value)
                elif suffix == "-status":
                    win.status = _text(value)
                else:
                    win.surpassed_threshold = _fraction(value)
                return
        if _text(value) is not None and len(snap.extra) < 16:
            snap.extra[key] = value


def _bucket_field(into: dict[str, Bucket], stems: dict[str, str], key: str, value: str) -> bool:
    """``<stem>-limit|remaining|reset`` into ``into[stems[stem]]``; False if the name is not one."""
    stem, sep, part = key.rpartition("-")
    json_key = stems.get(stem) if sep else None
    if json_key is None or part not in ("limit", "remaining", "reset"):
        return False
    bucket = into.get(json_key)
    if bucket is None:
        bucket = into[json_key] = Bucket()
    if part == "reset":
        bucket.resets_at = _rfc3339(value)
    elif part == "limit":
        bucket.limit = _count(value)
    else:
        bucket.remaining = _count(value)
    return True


def _window_name_ok(name: str) -> bool:
    return 0 < len(name) <= 32 and all(c.isalnum() or c in "_-." for c in name) and name.isascii()


def _text(value: str) -> str | None:
    if not value or len(value) > _MAX_TEXT or not value.isprintable():
        return None
    return value


def _float(value: str) -> float | None:
    try:
        f = float(value)
    except (ValueError, OverflowError):
        return None
    return f if math.isfinite(f) else None


def _fraction(value: str) -> float | None:
    """A non-negative finite number (utilization may exceed 1: kept as sent)."""
    f = _float(value)
    return f if f is not None and f >= 0 else None


def _count(value: str) -> int | None:
    if not value.isdigit() or len(value) > 18:
        return None
    return int(value)


def _epoch(value: str) -> datetime | None:
    f = _float(value)
    if f is None or not _EPOCH_MIN <= f < _EPOCH_MAX:
        return None
    return datetime.fromtimestamp(f, UTC)


def _rfc3339(value: str) -> datetime | None:
    if not 10 <= len(value) <= 40:
        return None
    text = value[:-1] + "+00:00" if value[-1] in "zZ" else value
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        return None  # RFC 3339 always has an offset; a naive time is ambiguous
    return dt.astimezone(UTC)


def _retry_after(value: str, now: datetime | None) -> float | None:
    f = _float(value)
    if f is not None:
        return f if 0 <= f < 10 * 365 * 86400 else None
    try:
        dt = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if dt is None or dt.tzinfo is None:
        return None
    delta = (dt - (now or datetime.now(UTC))).total_seconds()
    return max(round(delta, 3), 0.0)


_iso = iso  # the API's one time format


def window_length(name: str) -> timedelta | None:
    """How long a window named like ``5h``, ``7d``, ``7d_oi`` lasts (None if the name says not)."""
    head = name.split("_", 1)[0]
    if len(head) < 2 or not head[:-1].isdigit():
        return None
    n, unit = int(head[:-1]), head[-1]
    if unit == "h":
        return timedelta(hours=n)
    if unit == "d":
        return timedelta(days=n)
    if unit == "m":
        return timedelta(minutes=n)
    return None


_VIEW_KEYS = ("status", "representativeClaim", "resetsAt", "fallbackPercentage", "windows", "overage",
              "rateLimits", "retryAfterS", "priority", "extra")


def account_view(account_id: str, observed_at: datetime | None, snapshot: Mapping[str, Any],
                 request_id: str | None = None, status_code: int | None = None,
                 headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    """One account of ``/api/limits`` (and of an SSE ``limits`` event) from ``RateLimitSnapshot.to_json()``."""
    out: dict[str, Any] = {"accountId": account_id, "kind": snapshot.get("kind"), "observedAt": _iso(observed_at),
                           "requestId": request_id, "statusCode": status_code}
    for key in _VIEW_KEYS:
        if key in snapshot:
            out[key] = snapshot[key]
    out["headers"] = dict(headers or {})
    return out


MIN_BURN_SPAN = timedelta(minutes=1)


def utilization_burn(points: Iterable[tuple[datetime, float, datetime | None]], now: datetime) -> dict[str, Any]:
    """Burn and exhaustion of one window from its utilization samples ``(time, fraction, resets_at)``.

    Only the samples of the window's current period count: those after the last reset (a drop in
    utilization or a later ``resets_at``). The rate is the rise per hour between the first and
    the last of them (None with less than ``MIN_BURN_SPAN`` between them); the window is full at
    ``last + (1 - u) / rate``. ``minutesBeforeReset`` > 0 says by how much the limit comes before
    the reset ("at this pace you hit the limit 47 min before reset"); None if it does not.
    """
    ordered = sorted((p for p in points if p[1] is not None and math.isfinite(p[1])), key=lambda p: p[0])
    period: list[tuple[datetime, float, datetime | None]] = []
    for p in ordered:
        if period and (p[1] < period[-1][1] or (p[2] is not None and period[-1][2] is not None
                                                and p[2] > period[-1][2] + timedelta(minutes=1))):
            period = []
        period.append(p)
    out: dict[str, Any] = {"utilization": None, "ratePerHour": None, "resetsAt": None, "projectedFullAt": None,
                           "minutesBeforeReset": None, "hitsLimitBeforeReset": False}
    if not period:
        return out
    last_t, last_u, reset = period[-1]
    out["utilization"], out["resetsAt"] = last_u, _iso(reset)
    if reset is not None and now >= reset:
        out["utilization"] = None  # the window has reset since: nothing is known of the new one
        return out
    first_t, first_u, _ = period[0]
    span = last_t - first_t
    rate = None
    if span >= MIN_BURN_SPAN:
        rate = max((last_u - first_u) / (span.total_seconds() / 3600.0), 0.0)
        out["ratePerHour"] = round(rate, 6)
    full_at: datetime | None = None
    if last_u >= 1.0:
        full_at = last_t
    elif rate:
        hours = (1.0 - last_u) / rate
        if hours < 24 * 400:
            full_at = last_t + timedelta(hours=hours)
    if full_at is not None:
        out["projectedFullAt"] = _iso(full_at)
        if reset is None or full_at < reset:
            out["hitsLimitBeforeReset"] = True
            if reset is not None:
                out["minutesBeforeReset"] = round((reset - full_at).total_seconds() / 60.0, 1)
    return out
