"""Supervision of the embedded PostgreSQL: if it dies, start it again and carry on.

The proxy never needs the database to answer a client (records queue and spill to the journal),
so a crashed embedded server is not fatal — but nobody would notice it is gone until the journal
fills a disk. The supervisor polls ``EmbeddedPostgres.is_running()`` (a ``kill(pid, 0)`` on the
postmaster's pid: cheap enough for once a second) and restarts the server with a capped
exponential backoff, so a cluster that cannot start (disk full, corrupted) is retried without
spinning. ``pg.start()`` blocks in ``pg_ctl``, so it runs in a worker thread.

Usage from the server's lifespan::

    supervisor = PostgresSupervisor(pg, on_restart=recorder.database_restarted)
    task = asyncio.create_task(supervisor.run(stop_event))
    ...
    stop_event.set(); await task      # before stopping PostgreSQL on shutdown

Stop the supervisor *before* stopping PostgreSQL on purpose, or it will start it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger("nexus.store.supervisor")


class Supervisable(Protocol):
    """What the supervisor needs of ``nexus.store.embedded.EmbeddedPostgres`` (fakes in tests)."""

    def is_running(self) -> bool: ...

    def start(self, timeout_s: float = 30.0) -> str: ...


RestartHook = Callable[[str], Awaitable[Any] | Any]


@dataclass
class PostgresSupervisor:
    """Keeps one embedded PostgreSQL alive while ``run()`` runs.

    ``on_restart(dsn)`` (sync or async) is called after every successful restart — the DSN can
    change if the old port was taken meanwhile, so the owner may rebuild its pool. Counters are
    public for ``/metrics`` and ``/health``.
    """

    pg: Supervisable
    interval_s: float = 1.0
    on_restart: RestartHook | None = None
    start_timeout_s: float = 30.0
    max_backoff_s: float = 30.0
    restarts: int = 0
    failed_starts: int = 0
    last_error: str | None = None
    last_restart_at: float | None = None  # time.time() of the last successful restart
    down_since: float | None = None  # time.monotonic() when it was found dead; None while up
    _backoff_s: float = field(default=0.0, repr=False)

    @property
    def healthy(self) -> bool:
        return self.down_since is None

    async def check_once(self) -> bool:
        """One supervision step: restart the server if it is down. Returns True when it is up."""
        try:
            running = await asyncio.to_thread(self.pg.is_running)
        except Exception as exc:  # a status check must never kill the supervisor
            log.warning("embedded PostgreSQL status check failed: %s", exc)
            return False
        if running:
            if self.down_since is not None:
                log.info("embedded PostgreSQL is up again")
            self.down_since = None
            self._backoff_s = 0.0
            return True
        if self.down_since is None:
            self.down_since = time.monotonic()
            log.error("embedded PostgreSQL is not running; restarting it")
        try:
            dsn = await asyncio.to_thread(self.pg.start, self.start_timeout_s)
        except Exception as exc:
            self.failed_starts += 1
            self.last_error = str(exc)[:500]
            self._backoff_s = min(self.max_backoff_s, max(1.0, self._backoff_s * 2 or 1.0))
            log.error("restarting embedded PostgreSQL failed (attempt %d, next in %.0f s): %s",
                      self.failed_starts, self._backoff_s, self.last_error)
            return False
        downtime = time.monotonic() - self.down_since
        self.restarts += 1
        self.last_restart_at = time.time()
        self.last_error = None
        self.down_since = None
        self._backoff_s = 0.0
        log.warning("embedded PostgreSQL restarted after %.1f s down (restart #%d)", downtime, self.restarts)
        if self.on_restart is not None:
            try:
                result = self.on_restart(dsn)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("on_restart hook failed")
        return True

    async def run(self, stop_event: asyncio.Event) -> None:
        """Check every ``interval_s`` (longer after failed restarts) until ``stop_event`` is set."""
        log.debug("supervising embedded PostgreSQL every %.1f s", self.interval_s)
        while not stop_event.is_set():
            await self.check_once()
            delay = max(self.interval_s, self._backoff_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop_event.wait(), delay)

    def snapshot(self) -> dict[str, Any]:
        """State for ``/health`` and ``nexus status``."""
        return {
            "healthy": self.healthy,
            "restarts": self.restarts,
            "failed_starts": self.failed_starts,
            "last_error": self.last_error,
            "last_restart_at": self.last_restart_at,
        }


# The name proxy.service looks up (one embedded server per process).
EmbeddedSupervisor = PostgresSupervisor
