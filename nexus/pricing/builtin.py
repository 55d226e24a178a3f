"""The built-in price table, written in the same format a ``PRICING_FILE`` uses.

Keeping the built-in table in the user-facing format means the parser that reads users' files is
exercised on every start, and a user can copy any entry into their own file to change it.

Prices are US dollars per million tokens, from Anthropic's pricing pages as of 2026-11.
Numbers are strings so that they become exact ``Decimal`` values. When a price changes, add a
period with its ``effective_from`` date instead of editing the old one: records are priced with
the rate that was valid at their time.
"""

from __future__ import annotations

from typing import Any


def _r(input_: str, output: str, write_5m: str, write_1h: str, read: str) -> dict[str, str]:
    return {
        "input": input_,
        "output": output,
        "cache_write_5m": write_5m,
        "cache_write_1h": write_1h,
        "cache_read": read,
    }


_OPUS_NEW = _r("5", "25", "6.25", "10", "0.50")
_OPUS_OLD = _r("15", "75", "18.75", "30", "1.50")
_SONNET = _r("3", "15", "3.75", "6", "0.30")
# Sonnet 4 and 4.5 with a prompt (input + cache writes + cache reads) over 200k tokens: these
# rates apply to every token of that request, output included.
_SONNET_LONG = {"above": 200_000, **_r("6", "22.5", "7.5", "12", "0.60")}
_FRONTIER = _r("10", "50", "12.5", "20", "1.00")

BUILTIN_PRICES: dict[str, Any] = {
    "models": {
        # Opus
        "claude-opus-5-5": _r("4", "20", "5", "8", "0.20"),
        "claude-opus-5": _OPUS_NEW,
        "claude-opus-4-8": _OPUS_NEW,
        "claude-opus-4-7": _OPUS_NEW,
        "claude-opus-4-6": _OPUS_NEW,
        "claude-opus-4-5": _OPUS_NEW,
        "claude-opus-4-1": _OPUS_OLD,
        "claude-opus-4": _OPUS_OLD,
        "claude-3-opus": _OPUS_OLD,
        # Sonnet
        "claude-sonnet-5-5": {
            "periods": [
                _r("2", "10", "2.5", "4", "0.20"),
                {"effective_from": "2026-10-07", **_r("2", "10", "2.5", "4", "0.10")},
            ]
        },
        "claude-sonnet-5": _r("2", "10", "2.5", "4", "0.20"),
        "claude-sonnet-4-6": _SONNET,
        "claude-sonnet-4-5": {**_SONNET, "long_prompt": _SONNET_LONG},
        "claude-sonnet-4": {**_SONNET, "long_prompt": _SONNET_LONG},
        "claude-3-7-sonnet": _SONNET,
        # Not in the 2026-11 list (retired), but old records and old clients still name it;
        # Anthropic priced it like the other 3.x/4.x Sonnets.
        "claude-3-5-sonnet": _SONNET,
        # Haiku
        "claude-haiku-5-5": {
            **_r("0.10", "0.50", "0.125", "0.20", "0.01"),
            "long_prompt": {"above": 100_000, **_r("0.50", "2.50", "0.625", "1.00", "0.05")},
        },
        "claude-haiku-4-5": _r("1", "5", "1.25", "2", "0.10"),
        "claude-3-5-haiku": _r("0.80", "4", "1", "1.6", "0.08"),
        "claude-3-haiku": _r("0.25", "1.25", "0.30", "0.50", "0.03"),
        # New families
        "claude-fable-5": _FRONTIER,
        "claude-mythos-5": _FRONTIER,
    }
}
