"""Model ids → price families: strip what does not change the price (case, ``[1m]``, provider prefixes,
Bedrock/Vertex version suffixes, ``-latest``, the date), then map old and new naming to one key.
"""

from __future__ import annotations

import re

_TIERS = "opus|sonnet|haiku|fable|mythos"


_NEW_STYLE = re.compile(rf"^claude-({_TIERS})-(\d{{1,2}})(?:[-.](\d{{1,2}}))?$")


_OLD_STYLE = re.compile(rf"^claude-(\d{{1,2}})(?:[-.](\d{{1,2}}))?-({_TIERS})$")


_PREFIX = re.compile(r"^(?:[a-z0-9_-]+/)*(?:(?:us|eu|apac|global|jp|au)\.)?(?:anthropic\.)?")


BRACKET_SUFFIX = re.compile(r"\[[^\]]*\]$")


_VERSION_SUFFIX = re.compile(r"(?:-v\d+(?::\d+)?|@[a-z0-9_-]+)$")


_DATE_SUFFIX = re.compile(r"-\d{8}$")


def strip_id(model: str) -> str:
    """Remove everything in an id that does not change its price (see module docstring)."""
    s = model.strip().lower()
    s = BRACKET_SUFFIX.sub("", s).strip()
    s = _PREFIX.sub("", s, count=1)
    for _ in range(2):  # Vertex can stack them: claude-3-5-sonnet-v2@20241022
        s = _VERSION_SUFFIX.sub("", s)
    if s.endswith("-latest"):
        s = s[: -len("-latest")]
    s = _DATE_SUFFIX.sub("", s)
    return s


def normalize_model_id(model: str) -> str:
    """The canonical family key for a model id (whether or not the family is priced).

    Claude 3.x families keep Anthropic's old naming (``claude-3-5-haiku``); 4.x and later use the
    new one (``claude-sonnet-4-5``). A ``-0`` minor version is dropped (``claude-opus-4-0`` is
    ``claude-opus-4``).
    """
    s = strip_id(model)
    m = _NEW_STYLE.match(s)
    if m:
        tier, major, minor = m.group(1), m.group(2), m.group(3)
    else:
        m = _OLD_STYLE.match(s)
        if not m:
            return s
        major, minor, tier = m.group(1), m.group(2), m.group(3)
    major = str(int(major))
    minor = str(int(minor)) if minor is not None else None
    version = major if minor in (None, "0") else f"{major}-{minor}"
    if int(major) <= 3:
        return f"claude-{version}-{tier}"
    return f"claude-{tier}-{version}"


def family_key(model: str) -> str:
    """``normalize_model_id``, except for ids it would strip to a bare ``claude`` (``claude-v1``)."""
    key = normalize_model_id(model)
    return key if key.startswith("claude-") or not model.lower().startswith("claude") else model.strip().lower()
