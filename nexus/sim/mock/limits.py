"""The rate-limit headers the mock sends, per credential, like Anthropic (docs/limits.md).

* **Subscription credentials** (OAuth tokens, ``sk-ant-oat…``, in ``x-api-key`` or
  ``Authorization: Bearer``) get the ``anthropic-ratelimit-unified-*`` family. Each credential has a
  5-hour window (``5h``), a weekly one (``7d``) and, for Opus models, the weekly top-model window
  (``7d_oi``). Utilization = tokens served in the window (input + cache writes + output; cache reads
  are free) / the window's budget — it rises with use and can exceed 1 on the answer that crosses
  the line. At 80 % a window turns ``allowed_warning``; once a window is full the next request is a
  429 ``rate_limit_error`` with status ``rejected`` and ``retry-after`` until its reset. A window
  opens with its first request and resets on schedule (``reset`` = open + length, epoch seconds).
* **API keys** get ``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-*``: per
  credential, per minute, counting down, reset in RFC 3339.

Budgets and window lengths come from ``MockConfig`` (the demo shrinks them so bars move in
minutes). What was last sent per credential is kept for tests and shown at ``GET /_mock/limits``.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

OAUTH_PREFIX = "sk-ant-oat"
WARNING_AT = 0.8
FALLBACK_PERCENTAGE = "0.5"
# Window name → the representative-claim Anthropic uses for it.
CLAIMS = {"5h": "five_hour", "7d": "seven_day", "7d_oi": "seven_day_opus"}


def credential_of(request: web.Request) -> str:
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() if auth[:7].lower() == "bearer " else auth.strip()


def credential_id(credential: str) -> str:
    """What ``/_mock/limits`` calls a credential (never the credential itself)."""
    return hashlib.sha256(credential.encode()).hexdigest()[:12]


def is_subscription(credential: str) -> bool:
    return credential.startswith(OAUTH_PREFIX)


@dataclass
class UnifiedWindow:
    length_s: float
    budget: int
    used: int = 0
    reset: int = 0  # epoch seconds; 0 = not open

    def roll(self, now: float) -> None:
        if self.reset and now >= self.reset:
            self.used, self.reset = 0, 0

    def open(self, now: float) -> None:
        if not self.reset:
            self.reset = int(math.ceil(now + self.length_s))

    @property
    def utilization(self) -> float:
        return self.used / self.budget if self.budget > 0 else 0.0

    def status(self) -> str:
        u = self.utilization
        return "rejected" if u >= 1.0 else "allowed_warning" if u >= WARNING_AT else "allowed"


@dataclass
class ApiKeyMinute:
    minute: int = 0
    requests: int = 0
    input: int = 0
    output: int = 0


@dataclass
class Credential:
    windows: dict[str, UnifiedWindow] = field(default_factory=dict)
    minute: ApiKeyMinute = field(default_factory=ApiKeyMinute)
    last_headers: dict[str, str] = field(default_factory=dict)
    last_at: float = 0.0


def _windows(cfg: Any, credential: str) -> dict[str, UnifiedWindow]:
    five = cfg.unified_budgets.get(credential, cfg.unified_5h_tokens)
    return {"5h": UnifiedWindow(cfg.unified_5h_seconds, five),
            "7d": UnifiedWindow(cfg.unified_7d_seconds, cfg.unified_7d_tokens),
            "7d_oi": UnifiedWindow(cfg.unified_7d_seconds, cfg.unified_7d_oi_tokens)}


def _fmt(u: float) -> str:
    return f"{round(u, 4):.4f}".rstrip("0").rstrip(".") if u else "0"


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _is_opus(model: str | None) -> bool:
    return bool(model) and "opus" in str(model)


class Limits:
    """Per-credential windows of one mock app (``MockState.limits``)."""

    def __init__(self, cfg: Any, clock: Any = time.time) -> None:
        self.cfg = cfg
        self.clock = clock
        self.creds: dict[str, Credential] = {}

    def _cred(self, credential: str) -> Credential:
        c = self.creds.get(credential)
        if c is None:
            if len(self.creds) > 10_000:
                self.creds.clear()
            c = self.creds[credential] = Credential(windows=_windows(self.cfg, credential))
        return c

    def rejection(self, request: web.Request, model: str | None) -> tuple[dict[str, str], int] | None:
        """For a subscription whose window is full: the 429's headers and its retry-after seconds."""
        credential = credential_of(request)
        if not is_subscription(credential):
            return None
        c = self._cred(credential)
        now = self.clock()
        full: list[tuple[str, UnifiedWindow]] = []
        for name, w in self._relevant(c, model):
            w.roll(now)
            if w.reset and w.utilization >= 1.0:
                full.append((name, w))
        if not full:
            return None
        name, w = max(full, key=lambda nw: nw[1].reset)
        retry = max(int(w.reset - now), 1)
        headers = self._unified(c, model, now, claim=name)
        headers["retry-after"] = str(retry)
        c.last_headers, c.last_at = dict(headers), now
        return headers, retry

    def _relevant(self, c: Credential, model: str | None) -> list[tuple[str, UnifiedWindow]]:
        return [(n, w) for n, w in c.windows.items() if n != "7d_oi" or _is_opus(model)]

    def headers(self, request: web.Request, model: str | None, in_tok: int = 0, out_tok: int = 0) -> dict[str, str]:
        """The rate-limit headers of an answer that served ``in_tok`` + ``out_tok`` tokens."""
        credential = credential_of(request)
        c = self._cred(credential)
        now = self.clock()
        if is_subscription(credential):
            served = max(in_tok, 0) + max(out_tok, 0)
            for _name, w in self._relevant(c, model):
                w.roll(now)
                w.open(now)
                w.used += served
            headers = self._unified(c, model, now)
        else:
            headers = self._api_key(c, now, in_tok, out_tok)
        c.last_headers, c.last_at = dict(headers), now
        return headers

    def _unified(self, c: Credential, model: str | None, now: float, claim: str | None = None) -> dict[str, str]:
        p = "anthropic-ratelimit-unified-"
        out: dict[str, str] = {}
        shown = [(n, w) for n, w in c.windows.items() if w.reset and (n != "7d_oi" or _is_opus(model) or w.used)]
        for name, w in shown:
            w.roll(now)
            if not w.reset:
                continue
            out[f"{p}{name}-utilization"] = _fmt(w.utilization)
            out[f"{p}{name}-reset"] = str(w.reset)
            out[f"{p}{name}-status"] = w.status()
            if w.utilization >= WARNING_AT:
                out[f"{p}{name}-surpassed-threshold"] = str(WARNING_AT)
        live = [(n, w) for n, w in shown if w.reset]
        if claim is None and live:
            claim = max(live, key=lambda nw: (nw[1].utilization, nw[0] == "5h"))[0]
        statuses = [w.status() for _n, w in live]
        status = ("rejected" if "rejected" in statuses and claim and c.windows[claim].status() == "rejected"
                  else "allowed_warning" if any(s != "allowed" for s in statuses) else "allowed")
        head = {f"{p}status": status}
        if claim:
            head[f"{p}reset"] = str(c.windows[claim].reset)
            head[f"{p}representative-claim"] = CLAIMS.get(claim, claim)
        head[f"{p}fallback-percentage"] = FALLBACK_PERCENTAGE
        head.update(out)
        head[f"{p}overage-status"] = "rejected"
        head[f"{p}overage-disabled-reason"] = "org_level_disabled"
        return head

    def _api_key(self, c: Credential, now: float, in_tok: int, out_tok: int) -> dict[str, str]:
        cfg = self.cfg
        m = c.minute
        minute = int(now // 60)
        if minute != m.minute:
            m.minute, m.requests, m.input, m.output = minute, 0, 0, 0
        m.requests += 1
        m.input += max(in_tok, 0)
        m.output += max(out_tok, 0)
        reset = _rfc3339((minute + 1) * 60)
        in_left = max(0, cfg.rl_input_tokens - m.input)
        out_left = max(0, cfg.rl_output_tokens - m.output)
        return {
            "anthropic-ratelimit-requests-limit": str(cfg.rl_requests),
            "anthropic-ratelimit-requests-remaining": str(max(0, cfg.rl_requests - m.requests)),
            "anthropic-ratelimit-requests-reset": reset,
            "anthropic-ratelimit-tokens-limit": str(cfg.rl_input_tokens + cfg.rl_output_tokens),
            "anthropic-ratelimit-tokens-remaining": str(in_left + out_left),
            "anthropic-ratelimit-tokens-reset": reset,
            "anthropic-ratelimit-input-tokens-limit": str(cfg.rl_input_tokens),
            "anthropic-ratelimit-input-tokens-remaining": str(in_left),
            "anthropic-ratelimit-input-tokens-reset": reset,
            "anthropic-ratelimit-output-tokens-limit": str(cfg.rl_output_tokens),
            "anthropic-ratelimit-output-tokens-remaining": str(out_left),
            "anthropic-ratelimit-output-tokens-reset": reset,
        }

    def last(self, credential: str) -> dict[str, str]:
        """The rate-limit headers last sent to ``credential`` (a copy; empty if none)."""
        c = self.creds.get(credential)
        return dict(c.last_headers) if c is not None else {}

    def report(self) -> dict[str, Any]:
        return {credential_id(k): {"subscription": is_subscription(k), "at": c.last_at, "headers": c.last_headers}
                for k, c in self.creds.items()}

    def reset(self) -> None:
        self.creds.clear()
