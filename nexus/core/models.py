"""Model names as people read them: the family ``sonnet-4-5`` of ``claude-sonnet-4-5-20250929``.

One owner for the rule: the monitor shows family names, and the dashboard API's ``model`` filter
matches a full name or its family (``nexus.store.read.base.MODEL_FAMILY_SQL`` is the same rule in SQL),
so what a person types from the screen finds the rows the screen showed.
"""

from __future__ import annotations

import re

_DATE_SUFFIX = re.compile(r"-[0-9]{8}$")


def model_family(model: str | None) -> str:
    """``claude-sonnet-4-5-20250929`` → ``sonnet-4-5``; a name without the prefix/date stays as is."""
    if not model:
        return ""
    return _DATE_SUFFIX.sub("", model.removeprefix("claude-"))


def model_matches(model: str | None, wanted: str) -> bool:
    """The API's ``model`` filter: the exact name, or its family."""
    return bool(model) and (model == wanted or model_family(model) == wanted)
