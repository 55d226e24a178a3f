"""One ``nexus proxy`` process: database, background tasks, the proxy and the dashboard API.

Everything that runs in the background is started in ``ProxyService.start`` and stopped,
flushed and closed in ``ProxyService.stop`` — one place each, in a fixed order:
stop accepting → let in-flight exchanges finish (grace period) → flush records → close the DB.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import ipaddress
import logging
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from nexus.config import Settings
from nexus.dashboard_key import META_KEY, generate_key, read_key_file, write_key_file
from nexus.db.meta import set_meta_if_absent
from nexus.db.migrate import migrate
from nexus.db.partitions import drop_partitions_before, ensure_partitions_around
from nexus.db.pool import create_pool
from nexus.embedded_pg import EmbeddedPostgres, EmbeddedPostgresError
from nexus.pricing import PriceTable
from proxy.app import create_proxy_app
from proxy.context import Runtime
from proxy.journal import Journal
from proxy.metrics import Metrics
from proxy.notify import NotifyListener
from proxy.recorder import Recorder
from proxy.serve import RunningServer, start_server

log = logging.getLogger("nexus.server")

MAINTENANCE_INTERVAL_S = 3600.0


def _optional(module: str, attr: str) -> Any:
    """A piece built in another module that may be absent in a partial install."""
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return None


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
    alerts: Any = None
    dsn: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    _maintained: bool = False

    async def _database(self) -> str:
        s = self.settings
        if s.database_url:
            return s.database_url
        self.embedded = EmbeddedPostgres(s.data_dir)
        try:
            return await asyncio.to_thread(self.embedded.start)
        except EmbeddedPostgresError as exc:
            from nexus.cli import CommandError

            raise CommandError(f"embedded PostgreSQL: {exc}") from None

    async def _prepare_database(self) -> None:
        """Migrations, partitions ahead, shared dashboard key. Retried until the DB answers."""
        conn = await asyncpg.connect(self.dsn, timeout=10)
        try:
            await migrate(conn)
            await ensure_partitions_around(conn)
            if not self.settings.dashboard_api_key and self.runtime is not None:
                shared = await set_meta_if_absent(conn, META_KEY, self.runtime.dashboard_key)
                if shared != self.runtime.dashboard_key:
                    self.runtime.dashboard_key = shared
                    write_key_file(self.settings, shared)
        finally:
            await conn.close()
        self._maintained = True

    def _dashboard_key(self) -> str:
        s = self.settings
        if s.dashboard_api_key:
            return s.dashboard_api_key
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
        pricing = PriceTable.load(s.pricing_file)
        runtime = Runtime(settings=s, metrics=metrics, pricing=pricing,
                          **({"instance_id": s.instance_id} if s.instance_id else {}))
        runtime.dashboard_key = self._dashboard_key()
        self.runtime = runtime
        runtime.pool = await create_pool(self.dsn, min_size=0, max_size=10)
        journal = Journal(s.data_dir / f"journal-{s.proxy_port}.ndjson")
        on_record = _optional("proxy.request_log", "log_record")
        recorder = Recorder(runtime, journal, on_record=on_record)
        runtime.recorder = recorder
        metrics.bind(runtime)
        try:
            await self._prepare_database()
            runtime.db_connected = True
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            log.warning("database not reachable at start (%s); records will be journalled", exc)
            recorder.ready_hook = self._prepare_database
        await recorder.start()
        self.listener = NotifyListener(runtime, self.dsn)
        await self.listener.start()
        alert_cls = _optional("proxy.alerts", "AlertManager")
        if alert_cls is not None:
            self.alerts = alert_cls(runtime)
            await self.alerts.start()
        supervisor_cls = _optional("nexus.supervisor", "PostgresSupervisor")
        if supervisor_cls is not None and self.embedded is not None:
            supervisor = supervisor_cls(self.embedded, on_restart=self._database_restarted)
            stop_evt = asyncio.Event()
            runtime.extras["supervisor"] = supervisor
            runtime.extras["supervisor_stop"] = stop_evt
            self.tasks.append(asyncio.create_task(supervisor.run(stop_evt), name="nexus-pg-supervisor"))
        self.tasks.append(asyncio.create_task(self._maintenance(), name="nexus-maintenance"))

        if not is_loopback(s.proxy_host):
            log.warning("listening on %s without TLS: put a TLS-terminating proxy in front "
                        "(see deploy/nginx) or bind 127.0.0.1", s.proxy_host)
        proxy_srv = await start_server(create_proxy_app(runtime), s.proxy_host, s.proxy_port,
                                       graceful_timeout=s.shutdown_grace_s)
        self.servers.append(proxy_srv)
        create_dashboard_app = _optional("proxy.api", "create_dashboard_app")
        dash_url = None
        if create_dashboard_app is not None:
            dash_srv = await start_server(create_dashboard_app(runtime), s.proxy_host, s.dashboard_port,
                                          graceful_timeout=2.0)
            self.servers.append(dash_srv)
            dash_url = dash_srv.url
        self.info = {
            "proxy_url": proxy_srv.url,
            "dashboard_url": dash_url,
            "dashboard_key": runtime.dashboard_key,
            "database_url": self.dsn,
            "database": "external" if s.database_url else "embedded",
            "instance_id": runtime.instance_id,
            "started_at": runtime.started_at.isoformat(),
        }
        write_status = _optional("nexus.daemon", "write_status_file")
        if write_status is not None:
            import os

            write_status(s, {k: v for k, v in self.info.items() if k != "dashboard_key"} | {"pid": os.getpid()})
        return self.info

    async def _database_restarted(self, dsn: str) -> None:
        """The supervisor restarted the embedded server; if its port moved, follow it."""
        rt = self.runtime
        if rt is None or dsn == self.dsn:
            return
        log.warning("embedded PostgreSQL came back on a new address; reconnecting")
        self.dsn = dsn
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
                    if self.settings.retention_days > 0:
                        cutoff = (datetime.now(UTC) - timedelta(days=self.settings.retention_days)).date()
                        dropped = await drop_partitions_before(conn, cutoff)
                        if dropped:
                            log.info("retention: dropped %s", ", ".join(dropped))
            except Exception as exc:  # noqa: BLE001
                log.warning("maintenance failed: %s", exc)

    async def stop(self) -> None:
        rt = self.runtime
        # 1. Stop accepting; in-flight exchanges and streams get the grace period.
        if self.servers:
            proxy_srv, *others = self.servers
            if rt is not None:
                rt.broker.close_all()  # ends SSE streams so the dashboard can close
            await asyncio.gather(
                proxy_srv.stop(timeout=self.settings.shutdown_grace_s + 5),
                *(srv.stop(timeout=5) for srv in others),
            )
        # 2. Background tasks.
        if rt is not None and "supervisor_stop" in rt.extras:
            rt.extras["supervisor_stop"].set()
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
            await rt.recorder.stop(timeout=self.settings.shutdown_grace_s)
        if rt is not None and rt.pool is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(rt.pool.close(), 10)
        # 4. The embedded server, if we started it.
        if self.embedded is not None:
            await asyncio.to_thread(self.embedded.stop_if_owned)
        remove_status = _optional("nexus.daemon", "remove_status_file")
        if remove_status is not None:
            with contextlib.suppress(Exception):
                remove_status(self.settings)


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
        log.info("shutting down: finishing in-flight requests (grace %.0fs)", settings.shutdown_grace_s)
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


def _configure_logging(settings: Settings) -> None:
    configure = _optional("nexus.logging_setup", "configure_logging")
    if configure is not None:
        configure(settings)
    else:
        logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _install_uvloop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def cli_main(args: Any, settings: Settings) -> int:
    """``nexus proxy``: foreground (or ``--daemon``) proxy + dashboard API."""
    from nexus.cli import CommandError

    overrides: dict[str, Any] = {}
    if getattr(args, "host", None):
        overrides["proxy_host"] = args.host
    if getattr(args, "port", None) is not None:
        overrides["proxy_port"] = args.port
    if getattr(args, "dashboard_port", None) is not None:
        overrides["dashboard_port"] = args.dashboard_port
    if getattr(args, "upstream", None):
        if not args.upstream.startswith(("http://", "https://")):
            raise CommandError("--upstream must be an http:// or https:// URL", 2)
        overrides["claude_api_base_url"] = args.upstream
    settings = settings.with_overrides(**overrides) if overrides else settings
    if getattr(args, "daemon", False):
        daemonize = _optional("nexus.daemon", "daemonize")
        if daemonize is None:
            raise CommandError("--daemon is not available in this installation")
        return int(daemonize(settings) or 0)
    _configure_logging(settings)
    _install_uvloop()

    def announce(info: dict[str, Any]) -> None:
        sys.stderr.write(
            f"nexus proxy listening on {info['proxy_url']} -> {settings.claude_api_base_url}\n"
            f"dashboard API on {info['dashboard_url']} (key: DASHBOARD_API_KEY or "
            f"{settings.data_dir / 'dashboard.key'})\n"
            f"database: {info['database']}\n"
        )
        sys.stderr.flush()

    try:
        return asyncio.run(run_servers(settings, ready=announce))
    except OSError as exc:
        raise CommandError(str(exc)) from None
