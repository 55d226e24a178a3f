"""The runtime shared by the proxy app and the dashboard app of one process.

Built once by ``proxy.service.ProxyService`` and handed to both app factories. Its parts are typed
(the imports below are for the type checker only, so this module stays a leaf that every part of
the server can import); background tasks hang off the service, which starts and stops them in one
place (docs/architecture.md, "Background tasks").
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from nexus.core.settings import Settings
from proxy.api.broker import Broker

if TYPE_CHECKING:
    import asyncpg

    from nexus.pricing import PriceTable
    from nexus.store.supervisor import PostgresSupervisor
    from proxy.alerts.manager import AlertManager
    from proxy.ingress.metrics import Metrics
    from proxy.recorder.otel import Telemetry
    from proxy.recorder.recorder import Recorder


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    settings: Settings
    broker: Broker = field(default_factory=Broker)
    pool: asyncpg.Pool | None = None
    dsn: str = ""  # the database in use (may change when the embedded server comes back elsewhere)
    recorder: Recorder | None = None
    metrics: Metrics | None = None
    pricing: PriceTable | None = None
    alerts: AlertManager | None = None
    supervisor: PostgresSupervisor | None = None
    telemetry: Telemetry | None = None  # OpenTelemetry export, when configured (docs/telemetry.md)
    dashboard_key: str = ""
    instance_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    started_at: datetime = field(default_factory=utc_now)
    started_monotonic: float = field(default_factory=time.monotonic)
    db_connected: bool = False
    # Request-body bytes held right now by all exchanges (capped by MAX_INFLIGHT_BODY_BYTES).
    inflight_body_bytes: int = 0
    # "Now" for the dashboard API and the alert evaluator; tests and the demo drive it.
    clock: Callable[[], datetime] = utc_now
    # An account's token-window limit for "% of limit" (the alert manager sets its own, learned ones).
    token_limit_for: Callable[[str], int | None] | None = None

    @property
    def uptime_s(self) -> float:
        return time.monotonic() - self.started_monotonic

    def now(self) -> datetime:
        return self.clock()
