"""Dashboard key check for every ``/api/*`` route: constant-time compare, failures rate-limited per IP.

The key may come as ``X-Dashboard-Key`` or ``Authorization: Bearer``. A missing key is 401, a wrong
one 403 (a bare ``Authorization: <key>`` without the ``Bearer`` scheme is a wrong key); both answer
JSON. Each failure is counted per client address, and a client with too many failures in the last
minute gets 429 + ``Retry-After`` instead of 401/403, so guessing is slowed to a crawl whatever the
key space. A request that presents the right key is never refused: otherwise anyone sharing the
address (a page in the user's browser firing no-cors requests) could lock the TUI out.
"""

from __future__ import annotations

import hmac
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

AUTH_ERROR = "authentication_error"


@dataclass
class FailureLimiter:
    """Sliding-window count of failed attempts per client; memory bounded by ``max_clients``."""

    max_failures: int = 20
    window_s: float = 60.0
    max_clients: int = 10_000
    clock: Callable[[], float] = time.monotonic
    _failures: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict)

    def _prune(self, client: str, now: float) -> deque[float] | None:
        q = self._failures.get(client)
        if q is None:
            return None
        while q and q[0] <= now - self.window_s:
            q.popleft()
        if not q:
            del self._failures[client]
            return None
        return q

    def retry_after(self, client: str) -> int | None:
        """Seconds until ``client`` may try again, or ``None`` when it is not blocked."""
        now = self.clock()
        q = self._prune(client, now)
        if q is None or len(q) < self.max_failures:
            return None
        # Blocked until enough failures age out of the window to drop below the limit.
        oldest_relevant = q[len(q) - self.max_failures]
        return max(1, math.ceil(oldest_relevant + self.window_s - now))

    def record_failure(self, client: str) -> None:
        now = self.clock()
        q = self._prune(client, now)
        if q is None:
            q = self._failures[client] = deque(maxlen=self.max_failures * 2)
        self._failures.move_to_end(client)
        q.append(now)
        while len(self._failures) > self.max_clients:
            self._failures.popitem(last=False)


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key the client sent, from ``X-Dashboard-Key`` or a bearer ``Authorization``."""
    key = headers.get("X-Dashboard-Key")
    if key:
        return key.strip()
    auth = headers.get("Authorization")
    if auth:
        scheme, _, token = auth.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return ""  # present but not `Bearer <key>`: a wrong key (never matches), not a missing one
    return None


def key_matches(given: str, expected: str) -> bool:
    """Constant-time comparison; an unset expected key never matches (the API is never open)."""
    if not expected or not given:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


@dataclass(frozen=True)
class AuthFailure:
    """Why a request was refused: HTTP status, JSON body and extra headers."""

    status: int
    body: dict
    headers: dict[str, str]


def _err(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> AuthFailure:
    return AuthFailure(status, {"error": {"type": kind, "message": message}}, headers or {})


def check_request(headers: Mapping[str, str], client: str, expected: str,
                  limiter: FailureLimiter) -> AuthFailure | None:
    """``None`` when the request may proceed, else the refusal to send.

    The right key always passes; only failing requests are counted and, past the limit, slowed.
    """
    given = presented_key(headers)
    if given is not None and key_matches(given, expected):
        return None
    wait = limiter.retry_after(client)
    if wait is not None:
        return _err(429, "rate_limit_error", "too many failed authentication attempts; retry later",
                    {"Retry-After": str(wait)})
    limiter.record_failure(client)
    if given is None:
        return _err(401, AUTH_ERROR, "missing dashboard key (X-Dashboard-Key or Authorization: Bearer)",
                    {"WWW-Authenticate": 'Bearer realm="nexus-dashboard"'})
    return _err(403, AUTH_ERROR, "invalid dashboard key")
