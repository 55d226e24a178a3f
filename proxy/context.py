"""The runtime shared by the proxy app and the dashboard app of one process.

Built once by ``proxy.server`` and handed to both app factories; background tasks (writer,
NOTIFY listener, alert evaluator) hang off it and are started/stopped in one place.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

from nexus.config import Settings
from proxy.broker import Broker


@dataclass
class Runtime:
    settings: Settings
    broker: Broker = field(default_factory=Broker)
    pool: asyncpg.Pool | None = None
    recorder: Any = None  # proxy.recorder.Recorder
    metrics: Any = None  # proxy.metrics.Metrics
    pricing: Any = None  # nexus.pricing.PriceTable
    dashboard_key: str = ""
    instance_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started_monotonic: float = field(default_factory=time.monotonic)
    db_connected: bool = False
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def uptime_s(self) -> float:
        return time.monotonic() - self.started_monotonic
