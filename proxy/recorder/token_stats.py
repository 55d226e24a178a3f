"""In-memory token totals since process start, for the proxy's ``GET /token-stats``.

The shape is the Monitoring Guide's: totals plus ``by_domain``. It costs a few dict updates per
request and needs no database, so it keeps answering while the database is away.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nexus.core.records import Record

MAX_DOMAINS = 10_000  # a hostile client inventing Host headers must not grow memory forever


def _tokens() -> dict[str, int]:
    return {"input": 0, "output": 0, "cache_creation": 0, "cache_read": 0, "total": 0}


@dataclass
class TokenStats:
    total_requests: int = 0
    tokens: dict[str, int] = field(default_factory=_tokens)
    by_domain: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, r: Record) -> None:
        self.total_requests += 1
        _add(self.tokens, r)
        domain = r.domain or "unknown"
        entry = self.by_domain.get(domain)
        if entry is None:
            if len(self.by_domain) >= MAX_DOMAINS:
                domain = "other"
                entry = self.by_domain.get(domain)
            if entry is None:
                entry = self.by_domain[domain] = {"requests": 0, "tokens": _tokens()}
        entry["requests"] += 1
        _add(entry["tokens"], r)

    def to_json(self) -> dict[str, Any]:
        return {
            "total_requests": self.total_requests,
            "total_tokens": dict(self.tokens),
            "by_domain": {d: {"requests": e["requests"], "tokens": dict(e["tokens"])}
                          for d, e in self.by_domain.items()},
        }


def _add(t: dict[str, int], r: Record) -> None:
    t["input"] += r.input_tokens
    t["output"] += r.output_tokens
    t["cache_creation"] += r.cache_creation_input_tokens
    t["cache_read"] += r.cache_read_input_tokens
    t["total"] += r.input_tokens + r.output_tokens
