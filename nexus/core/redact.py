"""Secret hygiene: which headers never leave the process, and how a key becomes an account id.

Keys, bearer tokens and cookies are never stored or logged. Stored headers go through
``redact_headers``; the only trace of a key is ``key_fingerprint`` (a one-way hash). Secret names
are matched by rule (docs/security.md): the known credential headers, any name containing
``auth``, ``secret``, ``password``, ``api-key``, ``credential``, ``cookie`` or ``private``, any
name with a word ``token``, ``key``, ``session`` (but not ``…-session-id``), ``sig`` or ``signature``,
and the names users add with ``REDACT_HEADERS``. Counts such as
``anthropic-ratelimit-input-tokens-remaining`` are not secrets and stay visible.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Collection, Iterable, Mapping

REDACTED = "[REDACTED]"
_ALWAYS_SECRET = frozenset({"x-api-key", "authorization", "proxy-authorization", "cookie", "set-cookie",
                            "x-dashboard-key"})
# Anywhere in the name: every credential header we know of has one of these.
_SECRET_PARTS = ("auth", "secret", "password", "passwd", "api-key", "apikey", "api_key", "credential", "cookie",
                 "private")
# Whole words of the name (split on '-' and '_'): `x-amz-security-token`, `x-session-key` are
# secrets, but `anthropic-ratelimit-input-tokens-remaining` (the plural, a count) is what a token
# monitor must show, and `x-claude-code-session-id` is an identifier, not a credential.
_SECRET_WORDS = frozenset({"token", "key", "session", "sig", "signature"})
_WORD_SPLIT = re.compile(r"[-_.]")
_NOT_SECRET = frozenset({"idempotency-key"})


@functools.lru_cache(maxsize=8)
def header_names(text: str | None) -> frozenset[str]:
    """``REDACT_HEADERS`` (comma- or space-separated header names) as a set of lower-case names."""
    return frozenset(n.strip().lower() for n in re.split(r"[,\s]+", text or "") if n.strip())


def is_secret_header(name: str, extra: Collection[str] = ()) -> bool:
    """Whether a header's value must never be stored or shown; ``extra``: more names (lower case)."""
    low = name.lower()
    if low in _ALWAYS_SECRET or low in extra:
        return True
    if low in _NOT_SECRET:
        return False
    if any(part in low for part in _SECRET_PARTS):
        return True
    words = _WORD_SPLIT.split(low)
    if "session" in words and words[-1] == "id":
        return False  # session ids name a conversation; a session token/key/secret is caught above
    return any(w in _SECRET_WORDS for w in words)


def redact_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]],
                   extra: Collection[str] = ()) -> dict[str, str]:
    """Headers as a plain dict with every secret value replaced by ``[REDACTED]``.

    ``extra``: more header names to redact (``REDACT_HEADERS``, via ``header_names``).
    """
    items = headers.items() if isinstance(headers, Mapping) else headers
    out: dict[str, str] = {}
    for name, value in items:
        low = name.lower()
        v = REDACTED if is_secret_header(low, extra) else value
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
