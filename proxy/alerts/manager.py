"""The alert evaluator: a background task of the proxy that measures, decides, stores and notifies.

Every ``ALERT_EVAL_INTERVAL_S`` each instance reports its own pool usage, then tries to become
*the* evaluator for this round: a transaction-scoped PostgreSQL advisory lock plus a "last run"
row mean that however many proxies share the database, one of them evaluates per interval.
The state machine's state (pending conditions, firing alerts) lives in the database, not in
the process, so when that instance goes away the next one continues where it left off; and the
``alerts`` table allows one firing row per (rule, key), so even a lost lock cannot double-fire.

Notifications go out only after the transaction commits: the broker (this instance's
``/api/sse``), a NOTIFY (the other instances' streams) and the channels' queues. Nothing here
waits on a channel, and the proxy's request path never waits on anything here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from nexus.store import alerts as q
from nexus.store.pool import dsn_in_use
from nexus.store.ratelimits import latest_snapshots
from proxy.alerts.channels import Dispatcher, Notification
from proxy.alerts.observations import (
    learned_limits,
    observe_clock_skew,
    observe_daily_cost,
    observe_error_rate,
    observe_measured_windows,
    observe_p95_latency,
    observe_pool,
    observe_token_windows,
    token_limit_for,
    window_usage,
)
from proxy.alerts.rules import (
    KIND_FIRING,
    KIND_REPEAT,
    KIND_RESOLVED,
    RULE_CLOCK_SKEW,
    RULE_DAILY_COST,
    RULE_DB_POOL,
    RULE_ERROR_RATE,
    RULE_P95_LATENCY,
    RULE_TOKEN_WINDOW,
    AlertConfig,
    AlertState,
    Clock,
    Observation,
    Transition,
    step,
    utc_clock,
)
from proxy.alerts.watchdog import Watchdog
from proxy.runtime import Runtime

log = logging.getLogger("nexus.alerts")

LEARNED_REFRESH_S = 600.0


def pool_usage(pool: Any) -> tuple[int, int]:
    """(connections checked out, maximum size) of an asyncpg pool."""
    try:
        size = pool.get_size()
        idle = pool.get_idle_size()
        return max(0, size - idle), pool.get_max_size()
    except Exception:  # a closed or foreign pool: no opinion
        return 0, 0


class AlertManager:
    """Owns the evaluator task, the channel dispatcher and the NOTIFY listener of one process."""

    def __init__(self, runtime: Runtime, *, clock: Clock | None = None,
                 dispatcher: Dispatcher | None = None) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.config = AlertConfig.from_settings(self.settings)
        # The runtime's clock drives "now" here and in the dashboard API alike (tests, the demo).
        self.clock: Clock = clock or runtime.clock
        self.dispatcher = dispatcher or Dispatcher(self.settings)
        self.instance_id: str = runtime.instance_id
        self.evaluations = 0  # rounds this instance actually evaluated
        self.last_error: str | None = None
        self._task: asyncio.Task | None = None
        self._listener_task: asyncio.Task | None = None
        self._learned: dict[str, float] = {}
        self._learned_at: datetime | None = None
        self._error_logged = False
        self.listening = asyncio.Event()  # set while the NOTIFY listener is connected
        self.clock_offset_s: float | None = None  # this instance's clock minus the database's, last measured
        # The system clock that stamps records (created_at), for the clock-skew rule. Not ``clock``:
        # that one is the evaluator's notion of "now", which tests and the demo move at will.
        self.wall_clock: Clock = utc_clock
        self.watchdog = Watchdog(self)

    # -- life cycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the channel workers, the timer and the NOTIFY listener (no-op when disabled)."""
        if not self.settings.alerts.enabled:
            return
        self.runtime.alerts = self
        # Let the dashboard's "% of limit" use the same per-account and learned limits as the rule,
        # unless something else already provides them.
        if self.runtime.token_limit_for is None:
            self.runtime.token_limit_for = self.limit_for
        self.dispatcher.start()
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="alert-evaluator")
        if self._listener_task is None:
            self._listener_task = asyncio.create_task(self._listen(), name="alert-listener")

    async def stop(self) -> None:
        for task in (self._task, self._listener_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        self._task = self._listener_task = None
        await self.dispatcher.stop()

    async def _loop(self) -> None:
        while True:
            try:
                await self.watchdog.evaluate_once()  # first: it needs no database
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the watchdog must not stop the evaluator
                log.exception("local alert rules failed")
            try:
                await self.evaluate_once()
                if self._error_logged:
                    log.info("alert evaluation works again")
                self._error_logged = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the DB being away must not kill the evaluator
                self.last_error = f"{type(exc).__name__}: {exc}"
                if not self._error_logged:
                    log.warning("alert evaluation failed: %s", self.last_error)
                    self._error_logged = True
            await asyncio.sleep(self.config.eval_interval_s)

    # -- one round -------------------------------------------------------------------------------

    async def evaluate_once(self) -> list[dict[str, Any]]:
        """Run one round now; return the alert events it produced (empty if another instance ran it)."""
        pool = self.runtime.pool
        if pool is None:
            return []
        now = self.clock()
        in_use, max_size = pool_usage(pool)  # measured before we borrow a connection ourselves
        events: list[dict[str, Any]] = []
        async with pool.acquire() as conn:
            if max_size:
                await q.report_pool(conn, self.instance_id, in_use, max_size, now)
            await self._report_clock(conn)
            async with conn.transaction():
                if not await q.try_lock(conn):
                    return []
                if not await q.claim_evaluation(conn, now, self.config.eval_interval_s / 2, self.instance_id):
                    return []
                observations, measured = await self._measure(conn, now)
                states = await self._load_states(conn)
                transitions: list[Transition] = []
                for name, rule in self.config.rules.items():
                    if name in measured:
                        transitions += step(rule, states.setdefault(name, {}), observations, now,
                                            self.config.repeat_interval_s)
                # How bad each firing alert got: the peak moves with every evaluation, not only
                # with the (hours apart) repeat notifications.
                await q.raise_peaks(conn, [
                    (st.alert_id, o.value) for o in observations if o.value is not None
                    for st in [states.get(o.rule, {}).get(o.key)] if st is not None and st.alert_id is not None])
                for t in transitions:
                    event = await self._store(conn, t)
                    if event is not None:
                        events.append(event)
                        await conn.execute("SELECT pg_notify($1, $2)", q.ALERT_NOTIFY_CHANNEL,
                                           json.dumps({"instanceId": self.instance_id, "alert": event},
                                                      default=str))
                await q.save_pending(conn, {
                    (rule, key): st.pending_since
                    for rule, keys in states.items() for key, st in keys.items()
                    if not st.firing and st.pending_since is not None
                })
        self.evaluations += 1
        for event in events:
            self._announce(event)
        return events

    def _announce(self, event: dict[str, Any]) -> None:
        log.log(logging.INFO if event["event"] == KIND_RESOLVED else logging.WARNING,
                "alert %s: %s (%s) %s", event["event"], event["title"], event["key"], event["summary"])
        self.runtime.broker.publish("alert", event)
        self.dispatcher.submit(Notification(kind=event["event"], alert=event,
                                            dedup_key=f"nexus-alert-{event['id']}", source=self.instance_id))

    async def _report_clock(self, conn: asyncpg.Connection) -> None:
        """Our clock against the server's, midpoint of one round trip (error at most half of it)."""
        t0 = self.wall_clock()
        server = await conn.fetchval("SELECT clock_timestamp()")
        t1 = self.wall_clock()
        self.clock_offset_s = ((t0 - server) + (t1 - server)).total_seconds() / 2
        await q.report_clock(conn, self.instance_id, self.clock_offset_s)

    async def _store(self, conn: asyncpg.Connection, t: Transition) -> dict[str, Any] | None:
        if t.kind == KIND_FIRING:
            row = await q.insert_firing(conn, rule=t.rule, key=t.key, title=t.title, severity=t.severity,
                                        summary=t.summary, value=t.value, threshold=t.threshold,
                                        labels=dict(t.labels), started_at=t.at, instance_id=self.instance_id)
        elif t.kind == KIND_REPEAT and t.alert_id is not None:
            row = await q.mark_repeated(conn, t.alert_id, t.at, t.summary, t.value)
        elif t.kind == KIND_RESOLVED and t.alert_id is not None:
            row = await q.mark_resolved(conn, t.alert_id, t.at, t.summary, t.value)
        else:
            return None
        return None if row is None else {**q.alert_json(row), "event": t.kind}

    async def _load_states(self, conn: asyncpg.Connection) -> dict[str, dict[str, AlertState]]:
        states: dict[str, dict[str, AlertState]] = {name: {} for name in self.config.rules}
        for (rule, key), since in (await q.load_pending(conn)).items():
            states.setdefault(rule, {})[key] = AlertState(pending_since=since)
        for a in await q.firing_alerts(conn):
            states.setdefault(a["rule"], {})[a["key"]] = AlertState(
                pending_since=a["started_at"], firing_since=a["started_at"],
                last_notified=a["last_notified_at"], alert_id=a["id"])
        return states

    async def _measure(self, conn: asyncpg.Connection, now: datetime) -> tuple[list[Observation], set[str]]:
        """Observations per rule; a rule whose query failed is left out of ``measured`` (state kept)."""
        cfg = self.config
        obs: list[Observation] = []
        measured: set[str] = set()

        async def measure(rule: str, coro_fn: Any) -> None:
            try:
                async with conn.transaction():  # a savepoint: one failing query spares the rest
                    obs.extend(await coro_fn())
                measured.add(rule)
            except (asyncpg.PostgresError, ValueError, ArithmeticError) as exc:
                log.warning("alert rule %s: measurement failed: %s", rule, exc)

        lookback_start = now - timedelta(seconds=cfg.lookback_s)
        traffic: q.TrafficWindow | None = None

        async def get_traffic() -> q.TrafficWindow:
            nonlocal traffic
            if traffic is None:
                traffic = await q.traffic_window(conn, lookback_start, now)
            return traffic

        async def error_rate() -> list[Observation]:
            t = await get_traffic()
            return observe_error_rate(cfg, t.requests, t.errors)

        async def p95() -> list[Observation]:
            return observe_p95_latency(cfg, (await get_traffic()).hist)

        async def tokens() -> list[Observation]:
            if not cfg.rules[RULE_TOKEN_WINDOW].enabled:
                return []
            if cfg.token_limit_mode == "learned":
                await self._refresh_learned(conn, now)
            # Accounts whose answers carry utilization are judged by it, every window of theirs.
            measured = {a: s for a, s in (await latest_snapshots(conn)).items() if s.get("windows")}
            out = observe_measured_windows(cfg, measured, now)
            # Four windows back is enough to find where the open window started (as the API does).
            points = await q.token_minutes(conn, now - timedelta(seconds=min(4 * cfg.token_window_s, 7 * 86400)),
                                           now)
            usage = {}
            for account, pts in points.items():
                if account in measured:
                    continue
                used = window_usage(pts, now, cfg.token_window_s)
                if used is not None:
                    usage[account] = used
            return out + observe_token_windows(cfg, usage, self._learned)

        async def pools() -> list[Observation]:
            stale = now - timedelta(seconds=max(3 * cfg.eval_interval_s, 30.0))
            out: list[Observation] = []
            for instance, used, cap in await q.live_pools(conn, stale):
                out += observe_pool(cfg, f"pool:{instance}", used, cap)
            used, cap = await q.server_connections(conn)
            out += observe_pool(cfg, "server", used, cap)
            return out

        async def cost() -> list[Observation]:
            if not cfg.rules[RULE_DAILY_COST].enabled:
                return []
            day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
            per_account = await q.cost_by_account(conn, day_start, now)
            return observe_daily_cost(cfg, sum(per_account.values()), per_account)

        await measure(RULE_ERROR_RATE, error_rate)
        await measure(RULE_P95_LATENCY, p95)
        await measure(RULE_TOKEN_WINDOW, tokens)
        await measure(RULE_DB_POOL, pools)
        async def clocks() -> list[Observation]:
            if not cfg.rules[RULE_CLOCK_SKEW].enabled:
                return []
            return observe_clock_skew(cfg, await q.live_clocks(conn, max(3 * cfg.eval_interval_s, 30.0)))

        await measure(RULE_DAILY_COST, cost)
        await measure(RULE_CLOCK_SKEW, clocks)
        return obs, measured

    async def _refresh_learned(self, conn: asyncpg.Connection, now: datetime) -> None:
        """Learned limits change slowly; recompute them every ten minutes, not every round."""
        if self._learned_at is not None and 0 <= (now - self._learned_at).total_seconds() < LEARNED_REFRESH_S:
            return
        cfg = self.config
        points = await q.token_minutes(conn, now - timedelta(days=cfg.token_learn_days), now)
        self._learned, self._learned_at = learned_limits(points, now, cfg.token_window_s), now

    def limit_for(self, account: str) -> int | None:
        """The account's window limit as the alert rule sees it (for the monitor's "% of limit")."""
        limit = token_limit_for(self.config, account, self._learned)
        return int(limit) if limit else None

    # -- other instances' alerts onto our stream ---------------------------------------------------

    async def _listen(self) -> None:
        """LISTEN on a dedicated connection (not the pool's) and republish other instances' alerts."""
        delay = 1.0
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self.runtime.dsn or dsn_in_use(self.settings))
                await conn.add_listener(q.ALERT_NOTIFY_CHANNEL, self._on_notify)
                self.listening.set()
                delay = 1.0
                while not conn.is_closed():
                    await asyncio.sleep(5.0)
                    await conn.execute("SELECT 1", timeout=5)  # notice a silently dead connection
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("alert listener: %s; retrying in %.0fs", exc, delay)
            finally:
                self.listening.clear()
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 2.0)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            msg = json.loads(payload)
        except ValueError:
            return
        if msg.get("instanceId") == self.instance_id or not isinstance(msg.get("alert"), dict):
            return  # our own, already published directly
        self.runtime.broker.publish("alert", msg["alert"])


__all__ = ["AlertManager", "pool_usage", "KIND_FIRING", "KIND_REPEAT", "KIND_RESOLVED"]
