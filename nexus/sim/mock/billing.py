"""The billing dimensions of a mock answer, from the request's own parameters as the real API reads them.

* ``speed: "fast"`` (fast mode) on the models that offer it -> ``usage.speed: "fast"``; elsewhere a 400.
* ``inference_geo: "us"`` on Opus 4.6 and later -> ``usage.inference_geo: "us"`` (``"global"`` when not
  asked); older models reject the parameter with a 400 and report no geo.
* ``service_tier: "auto"`` -> ``"priority"`` (the mock's organisation has Priority capacity),
  ``"standard_only"`` or nothing -> ``"standard"``.
* server tools ``web_search_*`` / ``web_fetch_*`` -> ``usage.server_tool_use`` counts (at most the tool's
  ``max_uses``), deterministic per prompt.
* ``thinking: {"type": "enabled", "budget_tokens": N}`` (or ``adaptive``) ->
  ``usage.output_tokens_details.thinking_tokens``, part of ``output_tokens``.

Refs: https://platform.claude.com/docs/en/api/messages (request and usage fields),
https://platform.claude.com/docs/en/build-with-claude/fast-mode,
https://platform.claude.com/docs/en/build-with-claude/data-residency.
"""

from __future__ import annotations

from typing import Any

from nexus.sim.mock.cache import PromptUsage
from nexus.sim.mock.config import MODELS

FAST_MODELS = frozenset({"claude-opus-4-8", "claude-opus-5", "claude-opus-5-5", "claude-fable-5-2", "claude-mythos-5-2"})
_GEO_SINCE = "2026-02-01T00:00:00Z"  # Opus 4.6 and Sonnet 4.6


def _base(model: str) -> str:
    """``claude-opus-5-5-20261001`` -> ``claude-opus-5-5`` for the capability tables."""
    parts = model.split("-")
    if parts and len(parts[-1]) == 8 and parts[-1].isdigit():
        parts = parts[:-1]
    return "-".join(parts)


_CREATED = {_base(m["id"]): m["created_at"] for m in MODELS}


def supports_geo(model: str) -> bool:
    created = _CREATED.get(_base(model))
    return created is None or created >= _GEO_SINCE  # unknown ids: assume a newer model


def _tools(payload: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    tools = payload.get("tools")
    if not isinstance(tools, list):
        return []
    return [t for t in tools if isinstance(t, dict) and str(t.get("type", "")).startswith(prefix)]


def _uses(tools: list[dict[str, Any]], seed: int) -> int:
    if not tools:
        return 0
    cap = min((t["max_uses"] for t in tools if isinstance(t.get("max_uses"), int) and t["max_uses"] > 0), default=5)
    return min(cap, 1 + seed % 3)


def apply_billing(payload: dict[str, Any], usage: PromptUsage) -> str | None:
    """Fill the billing fields of ``usage`` from ``payload``; an error message when the API would refuse."""
    model = str(payload.get("model", ""))
    speed = payload.get("speed")
    if speed is not None:
        if speed not in ("standard", "fast"):
            return "speed: Input should be 'standard' or 'fast'"
        if speed == "fast" and _base(model) not in FAST_MODELS:
            return f"speed: fast mode is not available for {model}"
        usage.speed = speed
    geo = payload.get("inference_geo")
    if geo is not None:
        if not supports_geo(model):
            return f"inference_geo: not supported for {model}"
        if geo not in ("us", "global"):
            return "inference_geo: Input should be 'us' or 'global'"
        usage.inference_geo = geo
    elif supports_geo(model):
        usage.inference_geo = "global"
    tier = payload.get("service_tier")
    if tier is not None and tier not in ("auto", "standard_only"):
        return "service_tier: Input should be 'auto' or 'standard_only'"
    usage.service_tier = "priority" if tier == "auto" else "standard"
    seed = usage.input_tokens + usage.cache_read
    usage.web_search = _uses(_tools(payload, "web_search"), seed)
    usage.web_fetch = _uses(_tools(payload, "web_fetch"), seed + 1)
    thinking = payload.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"):
        budget = thinking.get("budget_tokens")
        usage.thinking_budget = budget if isinstance(budget, int) and budget > 0 else 1024
    return None
