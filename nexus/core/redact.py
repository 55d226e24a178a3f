"""Secret hygiene: which headers never leave the process, and how a key becomes an account id.

Keys, bearer tokens and cookies are never stored or logged. Stored headers go through
``redact_headers``; the only trace of a key is ``key_fingerprint`` (a one-way hash).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

REDACTED = "[REDACTED]"
_ALWAYS_SECRET = {"x-api-key", "authorization", "proxy-authorization", "cookie", "set-cookie",
                  "x-dashboard-key"}
_SECRET_PARTS = ("token", "secret", "password", "api-key", "apikey", "session")


def is_secret_header(name: str) -> bool:
    low = name.lower()
    return low in _ALWAYS_SECRET or any(part in low for part in _SECRET_PARTS)


def redact_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers as a plain dict with every secret value replaced by ``[REDACTED]``."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    out: dict[str, str] = {}
    for name, value in items:
        low = name.lower()
        v = REDACTED if is_secret_header(low) else value
        out[low] = f"{out[low]}, {v}" if low in out and v != REDACTED else v
    return out


def key_fingerprint(secret: str) -> str:
    """12 hex characters of SHA-256: stable per key, useless to an attacker."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def client_secret(headers: Mapping[str, str]) -> str | None:
    """The client's credential: ``x-api-key``, else the bearer token of ``authorization``."""
    key = headers.get("x-api-key")
    if key:
        return key.strip()
    auth = headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        return (token if scheme.lower() == "bearer" and token else auth).strip()
    return None
