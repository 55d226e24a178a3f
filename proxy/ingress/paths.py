"""Which ``/v1`` paths the proxy relays, and the upstream URL it builds for them.

A transparent proxy must not let a client walk out of ``/v1`` (docs/security.md): a path whose
decoded segments hold ``.`` or ``..``, or that carries an encoded slash or backslash (``%2F``,
``%5C``), is refused with 400 before anything is sent; ``//`` is a 404 (never a redirect built from
the client's ``Host``). The upstream URL is the configured base plus the path, re-quoted and
marked as already encoded, so no URL library resolves dot segments afterwards, and it is checked
to extend the base (``CLAUDE_API_BASE_URL`` may carry a prefix such as ``/gw/anthropic``).
"""

from __future__ import annotations

import functools
from urllib.parse import quote

from yarl import URL

# RFC 3986 pchar minus nothing: what a path segment may hold unencoded, plus the separator
_SAFE = "/!$&'()*+,;=:@-._~"


def path_problem(path: str, raw_path: bytes | None = None) -> str | None:
    """Why ``path`` (decoded, as in the ASGI scope) must not be relayed, or ``None``."""
    if any(seg in (".", "..") for seg in path.split("/")):
        return "path segments '.' and '..' are not allowed"
    raw = (raw_path or b"").lower()
    if b"%2f" in raw or b"%5c" in raw or "\\" in path:
        return "encoded slashes are not allowed in the path"
    return None


@functools.lru_cache(maxsize=8)
def _base(base_url: str) -> tuple[str, str, str | None, int | None]:
    """(origin, path prefix without trailing slash, host, port) of the configured base."""
    base = URL(base_url)
    origin = str(base.with_path("", encoded=True).with_query(None).with_fragment(None))
    return origin, base.raw_path.rstrip("/"), base.host, base.port


def upstream_url(base_url: str, full_path: str, query: str = "") -> URL:
    """``base_url`` extended by ``full_path`` (decoded ``/v1/...``); never anything outside the base.

    Raises ``ValueError`` for a path that would leave the base (callers check ``path_problem``
    first; this is the second lock).
    """
    if path_problem(full_path) is not None or not full_path.startswith("/"):
        raise ValueError("unsafe upstream path")
    origin, prefix, host, port = _base(base_url)
    target = f"{origin}{prefix}{quote(full_path, safe=_SAFE)}" + (f"?{query}" if query else "")
    url = URL(target, encoded=True)
    if not url.raw_path.startswith(prefix + "/") or url.host != host or url.port != port:
        raise ValueError("upstream URL leaves the configured base")
    return url
