"""Which account an exchange belongs to.

Order: a credential file ``CREDENTIALS_DIR/<host>.credentials.json`` for the request's Host
(Claude Nexus Proxy's format ``{"type": "api_key"|"oauth", "accountId": ..., ...}``), else a
stable hash of the client's key (``acct_`` + 12 hex), never the key itself.

The Host header is attacker-controlled, so it is validated as a hostname before it becomes part
of a path, and the resolved path must stay inside ``CREDENTIALS_DIR``.
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path

from nexus.core.redact import key_fingerprint

log = logging.getLogger("nexus.core.accounts")

# A DNS name or IPv4 literal, optional port; nothing that can walk a path.
_HOST = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62})(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}))*(?::\d{1,5})?$")
_CACHE_TTL_S = 5.0
_MAX_CRED_FILE = 64 * 1024


def normalize_host(host: str | None) -> str:
    """Lower-cased host without port, or '' when the header is missing or not a valid hostname."""
    if not host or len(host) > 253:
        return ""
    if not _HOST.match(host):
        return ""
    return host.split(":", 1)[0].lower().rstrip(".")


def anonymous_account(api_key: str | None) -> str | None:
    return f"acct_{key_fingerprint(api_key)}" if api_key else None


class AccountResolver:
    """Resolves account ids, caching credential-file reads for a few seconds."""

    def __init__(self, credentials_dir: Path | None) -> None:
        self.credentials_dir = credentials_dir.resolve() if credentials_dir else None
        self._cache: dict[str, tuple[float, str | None]] = {}

    def credential_path(self, host: str) -> Path | None:
        """The credential file for ``host``, or None if the host is invalid or would escape the dir."""
        if self.credentials_dir is None:
            return None
        name = normalize_host(host)
        if not name or ".." in name:
            return None
        candidate = (self.credentials_dir / f"{name}.credentials.json").resolve()
        if candidate.parent != self.credentials_dir:
            return None
        return candidate

    def _from_file(self, host: str) -> str | None:
        now = time.monotonic()
        hit = self._cache.get(host)
        if hit and now - hit[0] < _CACHE_TTL_S:
            return hit[1]
        account: str | None = None
        path = self.credential_path(host)
        if path is not None and path.is_file():
            try:
                if path.stat().st_size <= _MAX_CRED_FILE:
                    data = json.loads(path.read_text())
                    value = data.get("accountId") if isinstance(data, dict) else None
                    if isinstance(value, str) and value.strip():
                        account = value.strip()[:200]
            except (OSError, ValueError) as exc:
                log.warning("unreadable credential file %s: %s", path.name, exc.__class__.__name__)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[host] = (now, account)
        return account

    def account_for(self, host: str | None, api_key: str | None) -> str | None:
        return (self._from_file(host) if host else None) or anonymous_account(api_key)


def account_for(host: str, api_key: str | None, credentials_dir: Path | None) -> str | None:
    """One-shot form of ``AccountResolver.account_for``."""
    return AccountResolver(credentials_dir).account_for(host, api_key)
