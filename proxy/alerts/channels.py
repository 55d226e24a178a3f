"""Alert delivery: Slack, a generic JSON webhook, SMTP e-mail and PagerDuty Events API v2.

Each configured channel gets its own bounded queue and one worker task. ``Dispatcher.submit``
only enqueues, so the evaluator (and the proxy around it) never waits on a slow or dead
receiver. A worker sends its queue in order — PagerDuty must see a trigger before its resolve —
and retries a failed send with exponential backoff; every attempt is bounded by a timeout, so a
hanging server delays only its own channel. When a queue is full the newest notification is
dropped and counted rather than growing memory without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import smtplib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import aiohttp

from nexus.core.settings import Settings

log = logging.getLogger("nexus.alerts.channels")

QUEUE_SIZE = 1000
SEVERITY_COLOURS = {"critical": "#d00000", "error": "#e8590c", "warning": "#f2c744", "info": "#439fe0"}
RESOLVED_COLOUR = "#2eb67d"


@dataclass(frozen=True)
class Notification:
    """What every channel formats: one alert transition (firing, repeat or resolved)."""

    kind: str  # firing | repeat | resolved
    alert: dict[str, Any]  # nexus.store.alerts.alert_json shape
    dedup_key: str
    source: str  # the proxy instance that sent it

    @property
    def resolved(self) -> bool:
        return self.kind == "resolved"

    @property
    def headline(self) -> str:
        tag = "RESOLVED" if self.resolved else ("FIRING" if self.kind == "firing" else "STILL FIRING")
        return f"[{tag}] {self.alert['title']}: {self.alert['summary']}"


def slack_payload(n: Notification) -> dict[str, Any]:
    """An incoming-webhook message: ``text`` for notifications, an attachment for the details."""
    a = n.alert
    colour = RESOLVED_COLOUR if n.resolved else SEVERITY_COLOURS.get(a["severity"], "#888888")
    fields = [
        {"title": "Rule", "value": a["rule"], "short": True},
        {"title": "Key", "value": a["key"], "short": True},
        {"title": "Severity", "value": a["severity"], "short": True},
        {"title": "Started", "value": a["startedAt"], "short": True},
    ]
    if n.resolved and a.get("resolvedAt"):
        fields.append({"title": "Resolved", "value": a["resolvedAt"], "short": True})
    return {
        "text": n.headline,
        "attachments": [{
            "color": colour,
            "title": a["title"],
            "text": a["summary"],
            "fields": fields,
            "footer": f"Claude Nexus Monitor ({n.source})",
        }],
    }


def webhook_payload(n: Notification) -> dict[str, Any]:
    """Generic JSON for any receiver: the stored alert plus what happened to it."""
    return {"version": 1, "event": n.kind, "status": n.alert["status"], "dedupKey": n.dedup_key,
            "source": n.source, "alert": n.alert}


def pagerduty_payload(n: Notification, routing_key: str) -> dict[str, Any]:
    """Events API v2: ``trigger`` (repeats reuse the dedup key, so PagerDuty folds them) or ``resolve``."""
    if n.resolved:
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": n.dedup_key}
    a = n.alert
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": n.dedup_key,
        "payload": {
            "summary": f"{a['title']}: {a['summary']}"[:1024],
            "source": n.source,
            "severity": a["severity"] if a["severity"] in ("critical", "error", "warning", "info") else "error",
            "timestamp": a["startedAt"],
            "component": "claude-nexus-proxy",
            "group": a["rule"],
            "class": a["rule"],
            "custom_details": {"key": a["key"], "value": a["value"], "threshold": a["threshold"],
                               "labels": a["labels"]},
        },
    }


def email_message(n: Notification, sender: str, recipients: list[str]) -> EmailMessage:
    a = n.alert
    msg = EmailMessage()
    msg["Subject"] = n.headline[:200]
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    lines = [a["summary"], "", f"Rule:      {a['rule']}", f"Key:       {a['key']}",
             f"Severity:  {a['severity']}", f"Status:    {a['status']}", f"Value:     {a['value']}",
             f"Threshold: {a['threshold']}", f"Started:   {a['startedAt']}"]
    if a.get("resolvedAt"):
        lines.append(f"Resolved:  {a['resolvedAt']}")
    lines += ["", f"Sent by Claude Nexus Monitor on {n.source}."]
    msg.set_content("\n".join(lines))
    return msg


class DeliveryError(RuntimeError):
    """A send failed in a way worth retrying."""


@dataclass
class Channel:
    """One destination: a name, a send coroutine, and its own ordered queue and worker."""

    name: str
    send: Callable[[Notification], Awaitable[None]]
    queue: asyncio.Queue[Notification] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    task: asyncio.Task | None = None
    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    last_error: str | None = None


class Dispatcher:
    """Owns the channels built from Settings and their worker tasks."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.timeout = settings.channels.timeout_s
        self.attempts = max(1, settings.channels.retry_attempts)
        self.backoff_s = max(0.0, settings.channels.retry_backoff_s)
        self._client: aiohttp.ClientSession | None = None
        self.channels: dict[str, Channel] = {}
        s = settings
        if s.channels.slack_webhook_url:
            self.channels["slack"] = Channel("slack", self._send_slack)
        if s.channels.webhook_url:
            self.channels["webhook"] = Channel("webhook", self._send_webhook)
        if s.channels.smtp_host and s.channels.email_to:
            self.channels["email"] = Channel("email", self._send_email)
        elif s.channels.smtp_host or s.channels.email_to:
            log.warning("e-mail alerts need both SMTP_HOST and ALERT_EMAIL_TO; e-mail channel is off")
        if s.channels.pagerduty_routing_key:
            self.channels["pagerduty"] = Channel("pagerduty", self._send_pagerduty)

    # -- life cycle ------------------------------------------------------------------------------

    def start(self) -> None:
        if self.channels and self._client is None:
            # aiohttp, not httpx: the proxy already loaded it for the upstream, so the first alert
            # does not stall the event loop on lazy imports (httpx's first request does, ~80 ms).
            self._client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        for ch in self.channels.values():
            if ch.task is None:
                ch.task = asyncio.create_task(self._worker(ch), name=f"alert-channel:{ch.name}")

    async def stop(self, drain_s: float = 2.0) -> None:
        """Give queued notifications ``drain_s`` to go out, then cancel whatever is left."""
        pending = [ch for ch in self.channels.values() if ch.task is not None]
        if pending and drain_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(ch.queue.join() for ch in pending)), drain_s)
        for ch in pending:
            assert ch.task is not None
            ch.task.cancel()
            with contextlib.suppress(BaseException):
                await ch.task
            ch.task = None
        if self._client is not None:
            await self._client.close()
            self._client = None

    def submit(self, n: Notification) -> None:
        """Queue ``n`` on every channel; never waits."""
        for ch in self.channels.values():
            try:
                ch.queue.put_nowait(n)
            except asyncio.QueueFull:
                ch.dropped += 1
                log.warning("alert channel %s: queue full, notification dropped", ch.name)

    def stats(self) -> dict[str, dict[str, Any]]:
        return {name: {"delivered": ch.delivered, "failed": ch.failed, "dropped": ch.dropped,
                       "queued": ch.queue.qsize(), "lastError": ch.last_error}
                for name, ch in self.channels.items()}

    async def _worker(self, ch: Channel) -> None:
        while True:
            n = await ch.queue.get()
            try:
                await self._deliver(ch, n)
            finally:
                ch.queue.task_done()

    async def _deliver(self, ch: Channel, n: Notification) -> None:
        delay = self.backoff_s
        for attempt in range(1, self.attempts + 1):
            try:
                await asyncio.wait_for(ch.send(n), self.timeout)
                ch.delivered += 1
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure of a receiver is retried, never propagated
                ch.last_error = f"{type(exc).__name__}: {exc}"[:300]
                if attempt == self.attempts:
                    ch.failed += 1
                    log.error("alert channel %s: giving up after %d attempts (%s)", ch.name, attempt,
                              ch.last_error)
                    return
                log.warning("alert channel %s: attempt %d failed (%s); retrying in %.1fs", ch.name, attempt,
                            ch.last_error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 300.0)

    # -- senders ---------------------------------------------------------------------------------

    async def _post_json(self, url: str, payload: dict[str, Any]) -> None:
        assert self._client is not None
        async with self._client.post(url, json=payload, allow_redirects=False) as resp:
            await resp.read()
            if resp.status >= 400:
                # A 4xx will rarely get better by retrying, but retrying costs little and a
                # misconfigured receiver being fixed meanwhile is a real case.
                raise DeliveryError(f"HTTP {resp.status}")

    async def _send_slack(self, n: Notification) -> None:
        assert self.settings.channels.slack_webhook_url
        await self._post_json(self.settings.channels.slack_webhook_url, slack_payload(n))

    async def _send_webhook(self, n: Notification) -> None:
        assert self.settings.channels.webhook_url
        await self._post_json(self.settings.channels.webhook_url, webhook_payload(n))

    async def _send_pagerduty(self, n: Notification) -> None:
        assert self.settings.channels.pagerduty_routing_key
        await self._post_json(self.settings.channels.pagerduty_url, pagerduty_payload(n, self.settings.channels.pagerduty_routing_key))

    async def _send_email(self, n: Notification) -> None:
        # smtplib is blocking: run it in a thread so the event loop keeps serving requests.
        await asyncio.to_thread(send_email_blocking, self.settings, n, self.timeout)


def send_email_blocking(s: Settings, n: Notification, timeout: float) -> None:
    """One SMTP session: connect, optional STARTTLS, optional login, send."""
    assert s.channels.smtp_host and s.channels.email_to
    recipients = [r.strip() for r in s.channels.email_to.split(",") if r.strip()]
    sender = s.channels.email_from or f"nexus-alerts@{s.channels.smtp_host}"
    msg = email_message(n, sender, recipients)
    with smtplib.SMTP(s.channels.smtp_host, s.channels.smtp_port, timeout=timeout) as smtp:
        smtp.ehlo()
        if s.channels.smtp_starttls:
            ctx = ssl.create_default_context(cafile=str(s.channels.smtp_ca_file) if s.channels.smtp_ca_file else None)
            smtp.starttls(context=ctx)
            smtp.ehlo()
        if s.channels.smtp_user:
            smtp.login(s.channels.smtp_user, s.channels.smtp_password or "")
        smtp.send_message(msg, from_addr=sender, to_addrs=recipients)
