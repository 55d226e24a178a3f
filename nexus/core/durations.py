"""Durations as users type them: ``30s``, ``15m``, ``1h``, ``24h``, ``7d``, ``2w``.

One parser for the command line (``nexus db prune --older-than 30d``) and the dashboard API
(``?since=1h``), so both accept exactly the same spellings.
"""

from __future__ import annotations

import re
from datetime import timedelta

UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*([0-9]{1,9})\s*([smhdw]?)\s*$", re.IGNORECASE)


def parse_duration(text: str, *, unit_required: bool = False) -> timedelta:
    """``<n><unit>`` (unit one of s m h d w; plain seconds unless ``unit_required``) → timedelta.

    Raises ``ValueError`` for anything else, including values too large to represent.
    """
    m = _DURATION.match(text or "")
    if not m or (unit_required and not m.group(2)):
        raise ValueError(f"invalid duration {text!r} (use e.g. 30s, 15m, 1h, 7d)")
    seconds = int(m.group(1)) * UNIT_SECONDS[(m.group(2) or "s").lower()]
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"duration {text!r} is too large") from None


def looks_like_duration(text: str) -> bool:
    """True when ``text`` is spelt like a duration with a unit (cheap test before parsing)."""
    m = _DURATION.match(text or "")
    return bool(m and m.group(2))
