"""Watching the watcher: each instance judges its own recording and alert delivery, without the database.

Three rules can only be judged by the process they are about, and must work when the database is
what failed, so they do not go through the shared evaluator (``proxy.alerts.manager``):

- ``recording_stalled``: records wait in the queue and nothing has been written — to the database
  or the journal — for ``ALERT_RECORDING_STALL_S`` (a hung write, a lock, a dead writer task);
- ``journal_growing``: records have been spilling to the on-disk journal for
  ``ALERT_JOURNAL_GROWING_S`` (the database is away);
- ``channel_failing``: an alert channel failed its last ``ALERT_CHANNEL_FAILURES`` notifications;
  that alert goes out through the *other* channels.

The same state machine as every rule (``rules.step``), kept in memory; keys carry the instance id,
so several proxies never collide. Transitions are announced at once (this instance's SSE and the
channels) and stored in the ``alerts`` table as soon as the database takes writes — so
``/api/alerts`` shows them while the database is away (from memory) and afterwards (from the
table), and the history survives. Alert ids are ``local-<instance>-<n>`` until stored.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from nexus.store import alerts as q
from nexus.store.errors import DB_AWAY
from proxy.alerts.channels import Notification
from proxy.alerts.rules import (
    KIND_FIRING,
    KIND_REPEAT,
    KIND_RESOLVED,
    LOCAL_RULES,
    RULE_CHANNEL_FAILING,
    RULE_JOURNAL_GROWING,
    RULE_RECORDING_STALLED,
    AlertConfig,
    AlertState,
    Observation,
    Transition,
    step,
)

if TYPE_CHECKING:
    from proxy.alerts.manager import AlertManager

log = logging.getLogger("nexus.alerts.watchdog")

RECENT = 50
SYNC_TIMEOUT_S = 5.0


def _iso(v: datetime | None) -> str | None:
    return None if v is None else v.isoformat()


def observe_recording(cfg: AlertConfig, instance: str, stall_s: float, waiting: int) -> list[Observation]:
    """Records are waiting and none has been written (to the database or the journal) for ``stall_s``."""
    rule = cfg.local_rules[RULE_RECORDING_STALLED]
    return [Observation(RULE_RECORDING_STALLED, instance, stall_s, rule.threshold,
                        rule.enabled and waiting > 0 and stall_s >= rule.threshold,
                        f"No record written for {stall_s:.0f}s on {instance} while {waiting} wait in the queue "
                        f"(threshold {rule.threshold:g}s)",
                        {"instance": instance, "waiting": waiting, "stall_s": round(stall_s, 1)})]


def observe_journal(cfg: AlertConfig, instance: str, journal_s: float, pending: int, size: int
                    ) -> list[Observation]:
    """Records have been spilling to the on-disk journal for ``journal_s`` (the database is away)."""
    rule = cfg.local_rules[RULE_JOURNAL_GROWING]
    return [Observation(RULE_JOURNAL_GROWING, instance, journal_s, rule.threshold,
                        rule.enabled and pending > 0 and journal_s >= rule.threshold,
                        f"{pending} records journalled to disk on {instance} for {journal_s / 60:.1f} min "
                        f"({size} bytes; the database is away; threshold {rule.threshold / 60:g} min)",
                        {"instance": instance, "pending": pending, "bytes": size, "journal_s": round(journal_s, 1)})]


def observe_channels(cfg: AlertConfig, instance: str, failures: Mapping[str, int],
                     last_errors: Mapping[str, str | None]) -> list[Observation]:
    """Per channel: notifications in a row that failed every attempt."""
    rule = cfg.local_rules[RULE_CHANNEL_FAILING]
    out = []
    for channel, n in sorted(failures.items()):
        out.append(Observation(RULE_CHANNEL_FAILING, f"{instance}:{channel}", float(n), rule.threshold,
                               rule.enabled and n >= rule.threshold,
                               f"Alert channel {channel} on {instance} failed its last {n} notifications "
                               f"(last error: {last_errors.get(channel) or 'none'})",
                               {"instance": instance, "channel": channel, "failures": n}))
    return out


class Watchdog:
    """The local rules of one process; driven by the alert manager's timer (and by tests)."""

    def __init__(self, manager: AlertManager) -> None:
        self.manager = manager
        self.runtime = manager.runtime
        self.config = manager.config
        self.instance_id = manager.instance_id
        self.states: dict[str, dict[str, AlertState]] = {name: {} for name in LOCAL_RULES}
        self.active: dict[tuple[str, str], dict[str, Any]] = {}
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT)
        self._unsynced: list[dict[str, Any]] = []
        self._seq = 0

    def observe(self, now: datetime) -> list[Observation]:
        cfg, rt, me = self.config, self.runtime, self.instance_id
        out: list[Observation] = []
        rec = rt.recorder
        if rec is not None:
            out += observe_recording(cfg, me, rec.stall_seconds(now), rec.queue_depth)
            out += observe_journal(cfg, me, rec.journal_seconds(now), rec.journal.pending, rec.journal.size_bytes())
        d = self.manager.dispatcher
        out += observe_channels(cfg, me, {n: ch.consecutive_failures for n, ch in d.channels.items()},
                                {n: ch.last_error for n, ch in d.channels.items()})
        return out

    async def evaluate_once(self) -> list[dict[str, Any]]:
        """One round: judge, announce what changed, then store it if the database takes writes."""
        now = self.manager.clock()
        obs = self.observe(now)
        events: list[dict[str, Any]] = []
        for o in obs:  # how bad each firing local alert got
            a = self.active.get((o.rule, o.key))
            if a is not None:
                a["peakValue"] = _higher(a.get("peakValue"), o.value)
        for name, rule in self.config.local_rules.items():
            for t in step(rule, self.states[name], obs, now, self.config.repeat_interval_s):
                events.append(self._apply(t))
        for event in events:
            self._announce(event)
        await self.sync()
        return events

    def _apply(self, t: Transition) -> dict[str, Any]:
        k = (t.rule, t.key)
        a = self.active.get(k)
        if t.kind == KIND_FIRING or a is None:
            self._seq += 1
            a = {"id": f"local-{self.instance_id}-{self._seq}", "rule": t.rule, "key": t.key, "title": t.title,
                 "severity": t.severity, "status": "firing", "summary": t.summary, "value": t.value,
                 "peakValue": t.value, "firedSummary": t.summary, "threshold": t.threshold, "labels": dict(t.labels), "startedAt": _iso(t.started_at),
                 "resolvedAt": None, "lastNotifiedAt": _iso(t.at), "notifyCount": 1,
                 "instanceId": self.instance_id, "updatedAt": _iso(t.at),
                 "_started": t.started_at, "_db_id": None, "_stored": None}
            self.active[k] = a
        else:
            a.update(summary=t.summary, value=t.value, labels=dict(t.labels), updatedAt=_iso(t.at),
                     peakValue=_higher(a.get("peakValue"), t.value))
            if t.kind == KIND_REPEAT:
                a["lastNotifiedAt"] = _iso(t.at)
                a["notifyCount"] += 1
        if t.kind == KIND_RESOLVED:
            a.update(status="resolved", resolvedAt=_iso(t.at), _resolved=t.at)
            self.active.pop(k, None)
            self.recent.appendleft(a)
        if not any(x is a for x in self._unsynced):
            self._unsynced.append(a)
        return {**self.public(a), "event": t.kind}

    @staticmethod
    def public(a: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in a.items() if not k.startswith("_")}

    def _announce(self, event: dict[str, Any]) -> None:
        log.log(logging.INFO if event["event"] == KIND_RESOLVED else logging.WARNING,
                "alert %s: %s (%s) %s", event["event"], event["title"], event["key"], event["summary"])
        self.runtime.broker.publish("alert", event)
        # A failing channel's own alert would only fail there too: the others carry it.
        exclude = {event["labels"]["channel"]} if event["rule"] == RULE_CHANNEL_FAILING else set()
        self.manager.dispatcher.submit(
            Notification(kind=event["event"], alert=event, dedup_key=f"nexus-{event['id']}",
                         source=self.instance_id), exclude=exclude)

    # -- the alerts table --------------------------------------------------------------------------

    async def sync(self) -> None:
        """Store what changed since the database last took it; on failure keep it for the next round."""
        pool = self.runtime.pool
        if not self._unsynced or pool is None or not self.runtime.db_connected:
            return
        try:
            await asyncio.wait_for(self._sync(pool), SYNC_TIMEOUT_S)
        except (TimeoutError, *DB_AWAY) as exc:
            log.debug("local alerts not stored yet: %s", exc)

    async def _sync(self, pool: Any) -> None:
        async with pool.acquire(timeout=2) as conn:
            while self._unsynced:
                a = self._unsynced[0]
                row = None
                if a["_db_id"] is None:
                    row = await q.insert_firing(
                        conn, rule=a["rule"], key=a["key"], title=a["title"], severity=a["severity"],
                        summary=a["summary"], value=a["value"], threshold=a["threshold"], labels=a["labels"],
                        started_at=a["_started"], instance_id=self.instance_id, peak=a.get("peakValue"),
                        fired_summary=a.get("firedSummary"))
                    if row is None:  # a firing row for this (rule, key) from an earlier life: adopt it
                        found = [x for x in await q.firing_alerts(conn)
                                 if x["rule"] == a["rule"] and x["key"] == a["key"]]
                        row = found[0] if found else None
                    if row is not None:
                        a["_db_id"] = row["id"]
                if a["status"] == "resolved" and a["_db_id"] is not None:
                    # the peak it reached after it was stored (observations are not transitions)
                    if a.get("peakValue") is not None:
                        await q.raise_peaks(conn, [(a["_db_id"], a["peakValue"])])
                    row = await q.mark_resolved(conn, a["_db_id"], a["_resolved"], a["summary"], a["value"])
                if row is not None:
                    event = {**q.alert_json(row), "event": KIND_RESOLVED if a["status"] == "resolved" else KIND_FIRING}
                    await conn.execute("SELECT pg_notify($1, $2)", q.ALERT_NOTIFY_CHANNEL,
                                       json.dumps({"instanceId": self.instance_id, "alert": event}, default=str))
                a["_stored"] = a["status"]
                self._unsynced.pop(0)

    def unstored(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(active, recent) alerts the table does not hold yet, for ``/api/alerts``."""
        active = [self.public(a) for a in self.active.values() if a["_db_id"] is None]
        recent = [self.public(a) for a in self.recent if a["_db_id"] is None]
        return active, recent

    def everything(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(active, recent) local alerts, stored or not (``/api/alerts`` while the database is away)."""
        return ([self.public(a) for a in self.active.values()],
                [self.public(a) for a in (*self.active.values(), *self.recent)])


__all__ = ["Watchdog", "KIND_FIRING"]


def _higher(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)
