"""The version, read once from the installed distribution's metadata (``pyproject.toml``)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

DISTRIBUTION = "claude-nexus-monitor"

try:
    VERSION = version(DISTRIBUTION)
except PackageNotFoundError:  # pragma: no cover - run from a checkout without `pip install -e .`
    VERSION = "0.0.0+unknown"
