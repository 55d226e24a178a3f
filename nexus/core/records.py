"""The types at the seams: what the proxy records, and what the API and the stream send.

A ``Record`` is one finished exchange. The recorder writes it to ``api_requests``; the broker
publishes its ``to_event()`` form on ``/api/sse``; the TUI parses that same JSON.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from nexus.core.ratelimits import RateLimitSnapshot, parse_headers

# Status used when the client went away before the exchange finished (nginx's convention).
CLIENT_ABORTED_STATUS = 499

REQUEST_TYPE_MESSAGES = "messages"
REQUEST_TYPE_COUNT_TOKENS = "count_tokens"
REQUEST_TYPE_OTHER = "other"


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class Record:
    """One proxied exchange, as stored in ``api_requests``."""

    id: uuid.UUID = field(default_factory=uuid.uuid4)
    created_at: datetime = field(default_factory=utcnow)
    request_id: str | None = None  # upstream ``request-id`` header
    domain: str = ""
    account_id: str | None = None
    method: str = "POST"
    path: str = "/v1/messages"
    model: str | None = None
    stream: bool = False
    status_code: int = 0
    error_type: str | None = None
    error_message: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_creation_5m_tokens: int = 0
    cache_creation_1h_tokens: int = 0
    cache_read_input_tokens: int = 0
    counted_tokens: int | None = None  # result of a count_tokens call; never billed
    response_time_ms: float = 0.0
    ttft_ms: float | None = None
    cost_usd: Decimal | None = None  # None = unpriced (unknown model), never a fake $0
    request_type: str = REQUEST_TYPE_MESSAGES
    # Billing dimensions as Anthropic reported them in ``usage`` (docs/pricing.md).
    service_tier: str | None = None  # standard | priority | batch
    speed: str | None = None  # fast = fast mode
    inference_geo: str | None = None  # us = US-only inference
    web_search_requests: int = 0
    web_fetch_requests: int = 0
    thinking_tokens: int = 0  # part of output_tokens
    price_source: str | None = None  # which price layer priced it ("genai-prices 0.2.3+overlay", "file")
    web_search_cost_usd: Decimal | None = None  # the web-search part of cost_usd
    instance_id: str | None = None
    # What the answer said of itself and the client's trace context: exported as OpenTelemetry span
    # attributes (docs/telemetry.md), not columns of api_requests.
    response_model: str | None = None
    response_id: str | None = None  # the message id (msg_…)
    stop_reason: str | None = None
    traceparent: str | None = None  # the client's W3C trace context, as it sent it
    tracestate: str | None = None
    # Who sent it (nexus/core/sessions.py): Claude Code's session and agent ids, the client, tags.
    session_id: str | None = None
    agent_id: str | None = None
    parent_agent_id: str | None = None
    client: str | None = None
    tags: dict[str, str] | None = None
    # The answer's rate-limit headers as they came (nexus.core.ratelimits.pick_headers), when they
    # arrived, and their parsed form (set by the recorder, off the request path).
    ratelimit_headers: dict[str, str] | None = None
    ratelimit_observed_at: datetime | None = None
    ratelimits: RateLimitSnapshot | None = None
    # Stored only per STORE_BODIES; secrets already redacted.
    request_headers: dict[str, str] | None = None
    response_headers: dict[str, str] | None = None
    request_body: str | None = None
    response_body: str | None = None

    @property
    def total_tokens(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_creation_input_tokens
            + self.cache_read_input_tokens
        )

    @property
    def is_error(self) -> bool:
        return self.status_code >= 400 or self.error_type is not None

    @property
    def has_bodies(self) -> bool:
        return any(
            v is not None
            for v in (self.request_headers, self.response_headers, self.request_body, self.response_body)
        )

    def to_event(self) -> dict[str, Any]:
        """The JSON sent on ``/api/sse`` as a ``request`` event (no bodies, no headers)."""
        return {
            "id": str(self.id),
            "time": self.created_at.isoformat(),
            "requestId": self.request_id,
            "domain": self.domain,
            "accountId": self.account_id,
            "method": self.method,
            "path": self.path,
            "model": self.model,
            "stream": self.stream,
            "status": self.status_code,
            "errorType": self.error_type,
            "latencyMs": round(self.response_time_ms, 3),
            "ttftMs": None if self.ttft_ms is None else round(self.ttft_ms, 3),
            "tokens": {
                "input": self.input_tokens,
                "output": self.output_tokens,
                "cacheCreation": self.cache_creation_input_tokens,
                "cacheRead": self.cache_read_input_tokens,
                "total": self.total_tokens,
            },
            "costUsd": None if self.cost_usd is None else float(self.cost_usd),
            "requestType": self.request_type,
            "instanceId": self.instance_id,
            "serviceTier": self.service_tier,
            "speed": self.speed,
            "inferenceGeo": self.inference_geo,
            "webSearchRequests": self.web_search_requests,
            "webFetchRequests": self.web_fetch_requests,
            "thinkingTokens": self.thinking_tokens,
            "priceSource": self.price_source,
            "webSearchCostUsd": None if self.web_search_cost_usd is None else float(self.web_search_cost_usd),
            "sessionId": self.session_id,
            "agentId": self.agent_id,
            "parentAgentId": self.parent_agent_id,
            "client": self.client,
            "tags": self.tags or {},
        }

    @classmethod
    def from_journal(cls, d: dict[str, Any]) -> Record:
        """Rebuild a record from its journal line (``orjson.dumps(record, default=str)``).

        Lines written before a field existed load with that field's default.
        """
        d = dict(d)
        d["id"] = uuid.UUID(d["id"])
        d["created_at"] = datetime.fromisoformat(d["created_at"])
        d.pop("ratelimits", None)  # parsed again from the headers below
        if d.get("ratelimit_observed_at"):
            d["ratelimit_observed_at"] = datetime.fromisoformat(d["ratelimit_observed_at"])
        for money in ("cost_usd", "web_search_cost_usd"):
            if d.get(money) is not None:
                d[money] = Decimal(d[money])
        known = set(cls.__dataclass_fields__)
        record = cls(**{k: v for k, v in d.items() if k in known})
        if record.ratelimit_headers:
            record.ratelimits = parse_headers(record.ratelimit_headers, record.ratelimit_observed_at)
        return record


@dataclass(slots=True, frozen=True)
class Event:
    """One message on the live stream: ``type`` is ``request`` or ``alert``; ``id`` orders them."""

    id: int
    type: str
    data: dict[str, Any]
    # The event as an SSE frame, serialised once at publish time and shared by every subscriber.
    frame: bytes = field(default=b"", compare=False, repr=False)
