"""Token counting and the prompt cache: how many input tokens a request has, and which of them are cached.

The mock keeps the prefixes it has seen (per credential) so a repeated system prompt is a cache read
the second time, as with Anthropic's prompt caching.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from nexus.sim.mock.config import MockState
from nexus.sim.mock.wire import int_header


def _dumps_len(obj: Any) -> int:
    return len(orjson.dumps(obj))


def _prompt_segments(payload: dict[str, Any]) -> list[bytes]:
    """The prompt in cache order (tools, system, messages), one serialised piece per block."""
    segments: list[bytes] = []
    tools = payload.get("tools")
    if isinstance(tools, list):
        segments.extend(orjson.dumps(t) for t in tools)
    system = payload.get("system")
    if isinstance(system, list):
        segments.extend(orjson.dumps(b) for b in system)
    elif system:
        segments.append(orjson.dumps(system))
    messages = payload.get("messages")
    if isinstance(messages, list):
        segments.extend(orjson.dumps(m) for m in messages)
    return segments


@dataclass
class PromptUsage:
    input_tokens: int
    output_tokens: int
    cache_write_5m: int = 0
    cache_write_1h: int = 0
    cache_read: int = 0
    # Billing dimensions (nexus/sim/mock/billing.py); None / 0 = not reported.
    service_tier: str = "standard"
    speed: str | None = None
    inference_geo: str | None = None
    web_search: int = 0
    web_fetch: int = 0
    thinking_budget: int = 0

    @property
    def thinking_tokens(self) -> int:
        """Part of output_tokens: the thinking the budget allowed, at most half of the answer."""
        return min(self.thinking_budget, max(1, self.output_tokens // 2)) if self.thinking_budget else 0

    def billing(self, final: bool = True) -> dict[str, Any]:
        """The usage fields beyond tokens; ``final=False`` for ``message_start`` (no tool use yet)."""
        out: dict[str, Any] = {"service_tier": self.service_tier}
        if self.speed is not None:
            out["speed"] = self.speed
        if self.inference_geo is not None:
            out["inference_geo"] = self.inference_geo
        if self.web_search or self.web_fetch:
            out["server_tool_use"] = {"web_search_requests": self.web_search if final else 0,
                                      "web_fetch_requests": self.web_fetch if final else 0}
        if self.thinking_budget and final:
            out["output_tokens_details"] = {"thinking_tokens": self.thinking_tokens}
        return out

    @property
    def cache_write(self) -> int:
        return self.cache_write_5m + self.cache_write_1h

    def as_dict(self, output_tokens: int | None = None) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_write,
            "cache_read_input_tokens": self.cache_read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.cache_write_5m,
                "ephemeral_1h_input_tokens": self.cache_write_1h,
            },
            "output_tokens": self.output_tokens if output_tokens is None else output_tokens,
            **self.billing(final=output_tokens is None),
        }


def count_prompt(state: MockState, payload: dict[str, Any], raw: bytes, use_cache: bool) -> PromptUsage:
    """Deterministic token counts: ~4 bytes of JSON per token, like a rough tokenizer.

    With ``cache_control`` present, everything up to the last breakpoint is the cached prefix:
    the first time a prefix is seen it is a cache write (5m or 1h bucket by its ``ttl``), later
    within the TTL it is a cache read — so repeated conversations show cache hits as they would
    against the real API.
    """
    if not use_cache or b"cache_control" not in raw:
        n = sum(len(s) for s in _prompt_segments(payload))
        return PromptUsage(input_tokens=max(1, n // 4), output_tokens=0)
    segments = _prompt_segments(payload)
    last_cc = -1
    for i, seg in enumerate(segments):
        if b"cache_control" in seg:
            last_cc = i
    total = sum(len(s) for s in segments)
    prefix = segments[: last_cc + 1]
    prefix_len = sum(len(s) for s in prefix)
    cached = prefix_len // 4
    usage = PromptUsage(input_tokens=max(1, (total - prefix_len) // 4), output_tokens=0)
    if cached <= 0:
        return usage
    one_hour = b'"ttl":"1h"' in segments[last_cc]
    h = hashlib.blake2b(digest_size=16)
    h.update(str(payload.get("model")).encode())
    for seg in prefix:
        h.update(seg)
    key = h.digest()
    now = time.monotonic()
    expiry = state.cache.get(key)
    ttl = (3600.0 if one_hour else 300.0) * state.config.cache_ttl_scale
    if expiry is not None and expiry > now:
        usage.cache_read = cached
        state.cache[key] = now + ttl  # a hit refreshes the TTL, as documented
        state.cache.move_to_end(key)
    else:
        if one_hour:
            usage.cache_write_1h = cached
        else:
            usage.cache_write_5m = cached
        state.cache[key] = now + ttl
        if len(state.cache) > 10_000:
            state.cache.popitem(last=False)
    return usage


def steer_usage(request: web.Request, usage: PromptUsage) -> None:
    hdr = request.headers
    if "x-mock-input-tokens" in hdr:
        usage.input_tokens = int_header(request, "x-mock-input-tokens") or 0
    if "x-mock-cache-read" in hdr:
        usage.cache_read = int_header(request, "x-mock-cache-read") or 0
    if "x-mock-cache-write" in hdr:
        usage.cache_write_5m = int_header(request, "x-mock-cache-write") or 0
        usage.cache_write_1h = 0
