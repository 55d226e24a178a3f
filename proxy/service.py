"""One ``nexus proxy`` process: database, background tasks, the proxy and the dashboard API.

Everything that runs in the background is started in ``ProxyService.start`` and stopped,
flushed and closed in ``ProxyService.stop`` — one place each, in a fixed order:
stop accepting → let in-flight exchanges finish (grace period) → flush records → close the DB.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from nexus.core.dashboard_key import META_KEY, generate_key, read_key_file, write_key_file
from nexus.core.durations import parse_duration
from nexus.core.errors import CommandError
from nexus.core.runfiles import remove_status_file, write_status_file
from nexus.core.settings import Settings
from nexus.pricing import DatasetError, PriceTable
from nexus.pricing.update import FetchError, update_dataset
from nexus.store.backup import BackupError, backup_name, find_tool
from nexus.store.backup import due_in as backup_due_in
from nexus.store.backup import dump as dump_database
from nexus.store.backup import rotate as rotate_backups
from nexus.store.embedded import EmbeddedPostgres, EmbeddedPostgresError
from nexus.store.errors import DB_AWAY
from nexus.store.meta import set_meta_if_absent
from nexus.store.migrate import migrate
from nexus.store.partitions import drop_partitions_before, ensure_partitions_around
from nexus.store.pool import create_pool
from nexus.store.supervisor import PostgresSupervisor
from proxy.alerts.manager import AlertManager
from proxy.api.app import create_dashboard_app
from proxy.ingress.app import create_proxy_app
from proxy.ingress.metrics import Metrics
from proxy.ingress.request_log import log_record
from proxy.recorder.journal import Journal
from proxy.recorder.notify import NotifyListener
from proxy.recorder.otel import Telemetry
from proxy.recorder.recorder import Recorder
from proxy.runtime import Runtime
from proxy.serve import RunningServer, start_server

log = logging.getLogger("nexus.server")

MAINTENANCE_INTERVAL_S = 3600.0


def is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class ProxyService:
    settings: Settings
    embedded: EmbeddedPostgres | None = None
    runtime: Runtime | None = None
    servers: list[RunningServer] = field(default_factory=list)
    tasks: list[asyncio.Task] = field(default_factory=list)
    listener: NotifyListener | None = None
    alerts: AlertManager | None = None
    _supervisor_stop: asyncio.Event = field(default_factory=asyncio.Event)
    dsn: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    last_backup: dict[str, Any] | None = None
    _maintained: bool = False

    async def _database(self) -> str:
        s = self.settings
        if s.database.url:
            return s.database.url
        self.embedded = EmbeddedPostgres(s.data_dir)
        try:
            return await asyncio.to_thread(self.embedded.start)
        except EmbeddedPostgresError as exc:
            raise CommandError(f"embedded PostgreSQL: {exc}") from None

    async def _prepare_database(self) -> None:
        """Migrations, partitions ahead, shared dashboard key. Retried until the DB answers."""
        conn = await asyncpg.connect(self.dsn, timeout=10)
        try:
            await migrate(conn)
            await ensure_partitions_around(conn)
            if not self.settings.dashboard.api_key and self.runtime is not None:
                shared = await set_meta_if_absent(conn, META_KEY, self.runtime.dashboard_key)
                if shared != self.runtime.dashboard_key:
                    self.runtime.dashboard_key = shared
                    write_key_file(self.settings, shared)
        finally:
            await conn.close()
        self._maintained = True

    def _dashboard_key(self) -> str:
        s = self.settings
        if s.dashboard.api_key:
            return s.dashboard.api_key
        key = read_key_file(s)
        if not key:
            key = generate_key()
            write_key_file(s, key)
        return key

    async def start(self) -> dict[str, Any]:
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        self.dsn = await self._database()
        metrics = Metrics()
        pricing = PriceTable.load(s.pricing.file, s.data_dir)
        runtime = Runtime(settings=s, metrics=metrics, pricing=pricing,
                          **({"instance_id": s.proxy.instance_id} if s.proxy.instance_id else {}))
        runtime.dashboard_key = self._dashboard_key()
        self.runtime = runtime
        runtime.telemetry = Telemetry.create(s, metrics, runtime.instance_id)
        runtime.dsn = self.dsn
        runtime.pool = await create_pool(self.dsn, min_size=0, max_size=10)
        journal = Journal(s.data_dir / f"journal-{s.proxy.port}.ndjson")
        recorder = Recorder(runtime, journal, on_record=log_record)
        runtime.recorder = recorder
        metrics.bind(runtime)
        try:
            await self._prepare_database()
            runtime.db_connected = True
        except DB_AWAY as exc:
            log.warning("database not reachable at start (%s); records will be journalled", exc)
            recorder.ready_hook = self._prepare_database
        await recorder.start()
        self.listener = NotifyListener(runtime, self.dsn)
        await self.listener.start()
        self.alerts = AlertManager(runtime)
        await self.alerts.start()
        if self.embedded is not None:
            runtime.supervisor = PostgresSupervisor(self.embedded, on_restart=self._database_restarted)
            self.tasks.append(asyncio.create_task(runtime.supervisor.run(self._supervisor_stop),
                                                  name="nexus-pg-supervisor"))
        self.tasks.append(asyncio.create_task(self._maintenance(), name="nexus-maintenance"))
        if s.pricing.auto_update:
            self.tasks.append(asyncio.create_task(self._refresh_prices(), name="nexus-price-refresh"))
        if s.backup.dir is not None:
            self.tasks.append(asyncio.create_task(self._auto_backups(), name="nexus-backups"))

        if not is_loopback(s.proxy.host):
            log.warning("listening on %s without TLS: put a TLS-terminating proxy in front "
                        "(see deploy/nginx) or bind 127.0.0.1", s.proxy.host)
        proxy_srv = await start_server(create_proxy_app(runtime), s.proxy.host, s.proxy.port,
                                       graceful_timeout=s.proxy.shutdown_grace_s,
                                       keep_alive_timeout=s.proxy.keep_alive_timeout_s, h2c=s.proxy.enable_h2c)
        self.servers.append(proxy_srv)
        dash_srv = await start_server(create_dashboard_app(runtime), s.proxy.host, s.dashboard.port,
                                      graceful_timeout=2.0, keep_alive_timeout=s.proxy.keep_alive_timeout_s,
                                      h2c=s.proxy.enable_h2c)
        self.servers.append(dash_srv)
        dash_url = dash_srv.url
        self.info = {
            "proxy_url": proxy_srv.url,
            "dashboard_url": dash_url,
            "dashboard_key": runtime.dashboard_key,
            "database_url": self.dsn,
            "database": "external" if s.database.url else "embedded",
            "instance_id": runtime.instance_id,
            "started_at": runtime.started_at.isoformat(),
        }
        write_status_file(s, {k: v for k, v in self.info.items() if k != "dashboard_key"} | {"pid": os.getpid()})
        return self.info

    async def _database_restarted(self, dsn: str) -> None:
        """The supervisor restarted the embedded server; if its port moved, follow it."""
        rt = self.runtime
        if rt is None or dsn == self.dsn:
            return
        log.warning("embedded PostgreSQL came back on a new address; reconnecting")
        self.dsn = rt.dsn = dsn
        old, rt.pool = rt.pool, await create_pool(dsn, min_size=0, max_size=10)
        if self.listener is not None:
            self.listener.dsn = dsn
        if old is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(old.close(), 5)

    async def _maintenance(self) -> None:
        """Hourly: partitions for the days ahead, and retention if configured."""
        while True:
            await asyncio.sleep(MAINTENANCE_INTERVAL_S)
            rt = self.runtime
            if rt is None or rt.pool is None or not rt.db_connected:
                continue
            try:
                async with rt.pool.acquire(timeout=10) as conn:
                    await ensure_partitions_around(conn)
                    if self.settings.database.retention_days > 0:
                        cutoff = (datetime.now(UTC) - timedelta(days=self.settings.database.retention_days)).date()
                        dropped = await drop_partitions_before(conn, cutoff)
                        if dropped:
                            log.info("retention: dropped %s", ", ".join(dropped))
            except Exception as exc:  # noqa: BLE001
                log.warning("maintenance failed: %s", exc)

    async def _auto_backups(self) -> None:
        """BACKUP_DIR: a pg_dump every BACKUP_EVERY, the newest BACKUP_KEEP kept (docs/operations.md).

        Due at once when the directory holds no backup or its newest is older than the interval, so
        a restarted proxy neither skips nor doubles one. ``pg_dump`` is its own process (another
        core); this task only waits for it in a thread, so the request path never notices.
        """
        s = self.settings
        assert s.backup.dir is not None
        every = parse_duration(s.backup.every).total_seconds()
        while True:
            wait = await asyncio.to_thread(backup_due_in, s.backup.dir, every, time.time())
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            try:
                self.last_backup = await self.backup_now()
            except (BackupError, OSError, *DB_AWAY) as exc:
                self.last_backup = {"ok": False, "error": str(exc)[:300], "at": datetime.now(UTC).isoformat()}
                log.warning("automatic backup failed (%s); next attempt in %.0fs", exc, min(every, 300.0))
                await asyncio.sleep(min(every, 300.0))

    async def backup_now(self) -> dict[str, Any]:
        """One backup into BACKUP_DIR, then rotation; what happened, as the status shows it."""
        s = self.settings
        assert s.backup.dir is not None
        dsn = self.runtime.dsn if self.runtime is not None and self.runtime.dsn else self.dsn
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            major = conn.get_server_version().major
        finally:
            await conn.close()
        tool = await asyncio.to_thread(find_tool, "pg_dump", major, bool(s.database.url))
        out = s.backup.dir / backup_name(datetime.now(UTC))
        t0 = time.monotonic()
        size = await asyncio.to_thread(dump_database, dsn, out, tool)
        removed = await asyncio.to_thread(rotate_backups, s.backup.dir, s.backup.keep)
        log.info("backup written: %s (%d bytes, %.1fs); %d old backups removed", out, size,
                 time.monotonic() - t0, len(removed))
        return {"ok": True, "path": str(out), "bytes": size, "at": datetime.now(UTC).isoformat(),
                "removed": [p.name for p in removed]}

    async def _refresh_prices(self) -> None:
        """PRICES_AUTO_UPDATE: fetch the genai-prices dataset now and then every interval; swap tables.

        The new table (same PRICING_FILE, the fresh dataset) replaces ``runtime.pricing`` in one
        assignment: an exchange finishing meanwhile is priced wholly by the old or the new one.
        Offline, the prices in use stay, and the first failure is logged once (docs/pricing.md).
        """
        s = self.settings
        warned = False
        while True:
            rt = self.runtime
            if rt is not None and rt.pricing is not None:
                try:
                    result = await asyncio.to_thread(update_dataset, s.data_dir, rt.pricing.dataset,
                                                     s.pricing.update_url or None)
                    table = await asyncio.to_thread(PriceTable.load, s.pricing.file, s.data_dir)
                    rt.pricing = table
                    warned = False
                    log.info("prices refreshed from %s: %s", result.dataset.source_url,
                             "; ".join(result.changes[:10]) if result.changes else "no changes")
                except (FetchError, DatasetError, ValueError, OSError) as exc:
                    level = logging.DEBUG if warned else logging.WARNING
                    log.log(level, "price refresh failed (%s); keeping %s%s", exc, rt.pricing.dataset.label,
                            "" if warned else " (further failures are logged at DEBUG until one succeeds)")
                    warned = True
            await asyncio.sleep(s.pricing.update_interval_s)

    async def stop(self) -> None:
        rt = self.runtime
        # 1. Stop accepting; in-flight exchanges and streams get the grace period.
        if self.servers:
            proxy_srv, *others = self.servers
            if rt is not None:
                rt.broker.close_all()  # ends SSE streams so the dashboard can close
            await asyncio.gather(
                proxy_srv.stop(timeout=self.settings.proxy.shutdown_grace_s + 5),
                *(srv.stop(timeout=5) for srv in others),
            )
        # 2. Background tasks.
        self._supervisor_stop.set()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(BaseException):
                await task
        if self.alerts is not None:
            with contextlib.suppress(Exception):
                await self.alerts.stop()
        if self.listener is not None:
            await self.listener.stop()
        # 3. Flush every record (database, else journal).
        if rt is not None and rt.recorder is not None:
            await rt.recorder.stop(timeout=self.settings.proxy.shutdown_grace_s)
        if rt is not None and rt.telemetry is not None:  # spans queued for export: a bounded last try
            await rt.telemetry.stop(timeout_s=min(5.0, self.settings.telemetry.export_timeout_s))
        if rt is not None and rt.pool is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(rt.pool.close(), 10)
        # 4. The embedded server, if we started it.
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.stop_if_owned)
        with contextlib.suppress(OSError):
            remove_status_file(self.settings)


async def run_servers(settings: Settings, *, upstream_url: str | None = None,
                      ready: Callable[[dict[str, Any]], None] | None = None,
                      stop: asyncio.Event | None = None) -> int:
    """Run until ``stop`` is set (or SIGTERM/SIGINT when ``stop`` is None)."""
    if upstream_url:
        settings = settings.with_overrides(claude_api_base_url=upstream_url)
    service = ProxyService(settings)
    own_stop = stop is None
    stop = stop or asyncio.Event()
    if own_stop:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
    try:
        info = await service.start()
        freeze_startup_heap()
        if ready is not None:
            ready(info)
        await stop.wait()
        log.info("shutting down: finishing in-flight requests (grace %.0fs)", settings.proxy.shutdown_grace_s)
    finally:
        await service.stop()
    return 0


def freeze_startup_heap() -> None:
    """Move what starting up allocated into the garbage collector's permanent generation.

    Imports, the apps, price tables and pools live as long as the process, yet every full
    (generation-2) collection walks them again: 40–60 ms pauses every ~15 s under load here, the
    slowest requests of a run. Frozen, full collections walk only what traffic allocated (the
    longest event-loop stall in the same test went from 42–58 ms to 10–11 ms; bench/RESULTS.md).
    """
    gc.collect()
    gc.freeze()
