"""What the simulated upstream knows and remembers: its models, error types, rate-limit budgets, and state.

``MockConfig`` is fixed for a server's life (seed, think time, error rate); ``MockState`` is what changes
(prompt cache, counters, the requests it saw, injected incidents) and what ``/_mock/reset`` clears.
"""

from __future__ import annotations

import logging
import random
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from nexus.sim.mock.limits import Limits

MAX_BODY_BYTES = 32 * 1024 * 1024


ERROR_TYPES: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "There was an issue with the format or content of your request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "Not found"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}


TYPE_TO_STATUS = {etype: status for status, (etype, _msg) in ERROR_TYPES.items()}


MODELS: list[dict[str, str]] = [
    {"id": "claude-fable-5-2", "display_name": "Claude Fable 5.2", "created_at": "2026-11-09T00:00:00Z"},
    {"id": "claude-fable-5-1", "display_name": "Claude Fable 5.1", "created_at": "2026-09-01T00:00:00Z"},
    {"id": "claude-opus-5-5", "display_name": "Claude Opus 5.5", "created_at": "2026-10-07T00:00:00Z"},
    {"id": "claude-sonnet-5-5", "display_name": "Claude Sonnet 5.5", "created_at": "2026-10-07T00:00:00Z"},
    {"id": "claude-haiku-5-5", "display_name": "Claude Haiku 5.5", "created_at": "2026-10-07T00:00:00Z"},
    {"id": "claude-opus-5", "display_name": "Claude Opus 5", "created_at": "2026-07-01T00:00:00Z"},
    {"id": "claude-sonnet-5", "display_name": "Claude Sonnet 5", "created_at": "2026-07-01T00:00:00Z"},
    {"id": "claude-opus-4-8", "display_name": "Claude Opus 4.8", "created_at": "2026-05-01T00:00:00Z"},
    {"id": "claude-opus-4-7", "display_name": "Claude Opus 4.7", "created_at": "2026-03-01T00:00:00Z"},
    {"id": "claude-opus-4-6", "display_name": "Claude Opus 4.6", "created_at": "2026-02-01T00:00:00Z"},
    {"id": "claude-sonnet-4-6", "display_name": "Claude Sonnet 4.6", "created_at": "2026-02-01T00:00:00Z"},
    {"id": "claude-opus-4-5-20251101", "display_name": "Claude Opus 4.5", "created_at": "2025-11-01T00:00:00Z"},
    {"id": "claude-haiku-4-5-20251001", "display_name": "Claude Haiku 4.5", "created_at": "2025-10-01T00:00:00Z"},
    {"id": "claude-sonnet-4-5-20250929", "display_name": "Claude Sonnet 4.5", "created_at": "2025-09-29T00:00:00Z"},
    {"id": "claude-opus-4-1-20250805", "display_name": "Claude Opus 4.1", "created_at": "2025-08-05T00:00:00Z"},
]


# Rate-limit buckets the headers describe (per minute, like a mid-tier organisation).
RL_REQUESTS = 4_000


RL_INPUT_TOKENS = 2_000_000


RL_OUTPUT_TOKENS = 400_000


RL_TOKENS = RL_INPUT_TOKENS + RL_OUTPUT_TOKENS


log = logging.getLogger("nexus.mock_upstream")


@dataclass
class MockConfig:
    """Global behaviour; per-request ``x-mock-*`` headers override it.

    ``error_rate`` answers that share of message requests with a random 429/529/500 and
    ``stream_error_rate`` turns that share of streams into a 200 that ends in an ``error`` event —
    the demo uses them so the monitor has errors to show. ``seed`` makes that choice repeatable.
    ``max_recorded`` bounds the request log of ``/_mock/requests``; ``cache_ttl_scale`` shrinks the
    5 m / 1 h prompt-cache lifetimes so a test can watch an entry expire.
    """

    latency_ms: float = 0
    event_delay_ms: float = 0
    error_rate: float = 0.0
    stream_error_rate: float = 0.0
    gzip: bool = False
    require_auth: bool = True
    seed: int | None = None
    events: int = 5
    max_recorded: int = 1000
    cache_ttl_scale: float = 1.0
    # Subscription windows (nexus.sim.mock.limits): token budgets and lengths; API-key buckets per minute.
    unified_5h_tokens: int = 5_000_000
    unified_7d_tokens: int = 50_000_000
    unified_7d_oi_tokens: int = 20_000_000
    unified_budgets: dict[str, int] = field(default_factory=dict)  # credential -> its own 5h budget
    unified_5h_seconds: float = 5 * 3600
    unified_7d_seconds: float = 7 * 86400
    rl_requests: int = RL_REQUESTS
    rl_input_tokens: int = RL_INPUT_TOKENS
    rl_output_tokens: int = RL_OUTPUT_TOKENS


@dataclass
class MockState:
    """Mutable state of one mock app: recorded requests, the prompt cache, rate-limit window."""

    config: MockConfig
    requests: deque[dict[str, Any]] = field(init=False)
    rng: random.Random = field(init=False)
    # prefix hash -> expiry (monotonic); bounded so a long demo cannot grow it without limit.
    cache: OrderedDict[bytes, float] = field(default_factory=OrderedDict)
    limits: Limits = field(init=False)

    def __post_init__(self) -> None:
        self.requests = deque(maxlen=max(1, self.config.max_recorded))
        self.rng = random.Random(self.config.seed)
        self.limits = Limits(self.config)

    # An "incident": a higher error rate until a monotonic deadline (POST /_mock/incident), so a
    # demo can show an alert firing and resolving.
    incident_rate: float = 0.0
    incident_until: float = 0.0
    webhooks: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=200))

    def current_error_rate(self) -> float:
        if self.incident_until and time.monotonic() < self.incident_until:
            return max(self.config.error_rate, self.incident_rate)
        return self.config.error_rate

    def reset(self) -> None:
        self.requests.clear()
        self.cache.clear()
        self.webhooks.clear()
        self.limits.reset()
        self.incident_until = 0.0


STATE_KEY: web.AppKey[MockState] = web.AppKey("mock_state", MockState)
