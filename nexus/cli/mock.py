"""``nexus mock-upstream``: the simulated Anthropic API alone, until Ctrl+C / SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from nexus.core.errors import CommandError
from nexus.core.settings import Settings
from nexus.sim.mock import MockConfig, MockUpstream
from nexus.sim.mock.server import serve_forever


def cli_main(args: argparse.Namespace, settings: Settings | None) -> int:
    """``nexus mock-upstream``: serve until Ctrl+C / SIGTERM (``settings`` is not needed)."""
    error_rate = float(getattr(args, "error_rate", 0.0) or 0.0)
    if not 0.0 <= error_rate <= 1.0:
        raise CommandError(f"--error-rate must be between 0 and 1, got {error_rate}")
    latency = float(getattr(args, "latency_ms", 0.0) or 0.0)
    if latency < 0:
        raise CommandError(f"--latency-ms must be >= 0, got {latency}")
    config = MockConfig(latency_ms=latency, error_rate=error_rate)
    mock = MockUpstream(config, host=getattr(args, "host", "127.0.0.1"), port=int(getattr(args, "port", 8787)))
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        runner = asyncio.run
    try:
        runner(serve_forever(mock))
    except KeyboardInterrupt:
        pass
    sys.stdout.flush()
    return 0
