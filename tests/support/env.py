"""A clean environment for a child ``nexus`` process: none of the developer's settings leak in."""

from __future__ import annotations

import os

from nexus.core.settings import NOT_SETTINGS, env_names

SCRUB = frozenset(env_names()) | NOT_SETTINGS


def clean_env(**extra: str) -> dict[str, str]:
    """``os.environ`` without any setting of ours (derived from the settings table), plus ``extra``."""
    return {**{k: v for k, v in os.environ.items() if k not in SCRUB}, **extra}
