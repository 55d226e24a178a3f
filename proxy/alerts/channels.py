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
import errno
import logging
import smtplib
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
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

    kind: str  # firing | repeat | resolved | test
    alert: dict[str, Any]  # nexus.store.alerts.alert_json shape
    dedup_key: str
    source: str  # the proxy instance that sent it

    @property
    def resolved(self) -> bool:
        return self.kind == "resolved"

    @property
    def test(self) -> bool:
        return self.kind == KIND_TEST

    @property
    def headline(self) -> str:
        tag = ("TEST" if self.test else "RESOLVED" if self.resolved
               else "FIRING" if self.kind == "firing" else "STILL FIRING")
        return f"[{tag}] {self.alert['title']}: {self.alert['summary']}"


KIND_TEST = "test"
CHANNEL_NAMES = ("slack", "webhook", "email", "pagerduty")
# What configures each channel (for "not configured" messages).
CHANNEL_SETTINGS = {"slack": "SLACK_WEBHOOK_URL", "webhook": "ALERT_WEBHOOK_URL",
                    "email": "SMTP_HOST and ALERT_EMAIL_TO", "pagerduty": "PAGERDUTY_ROUTING_KEY"}


def test_notification(source: str, at: datetime | None = None) -> Notification:
    """A clearly marked test: rule ``test``, severity ``info``, a summary that says no action is needed."""
    when = (at or datetime.now(UTC)).isoformat()
    alert = {"id": 0, "rule": "test", "key": source, "title": "Test notification",
             "severity": "info", "status": "test",
             "summary": f"This is a test of the alert channels of Claude Nexus Monitor on {source}; "
                        "no action is needed.",
             "value": None, "threshold": None, "labels": {"test": True}, "startedAt": when,
             "resolvedAt": None, "lastNotifiedAt": when, "notifyCount": 0, "instanceId": source,
             "updatedAt": when}
    return Notification(kind=KIND_TEST, alert=alert, dedup_key=f"nexus-test-{source}-{int(time.time())}",
                        source=source)


def slack_payload(n: Notification) -> dict[str, Any]:
    """An incoming-webhook message: ``text`` for notifications, an attachment for the details."""
    a = n.alert
    colour = RESOLVED_COLOUR if n.resolved else SEVERITY_COLOURS.get(a["severity"], "#888888")
    if n.test:
        colour = SEVERITY_COLOURS["info"]
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
    if n.test:
        lines = [a["summary"], "", "Sent by `nexus alerts test` (or the monitor's alerts screen)."]
    lines += ["", f"Sent by Claude Nexus Monitor on {n.source}."]
    msg.set_content("\n".join(lines))
    return msg


class DeliveryError(RuntimeError):
    """A send failed in a way worth retrying."""


@dataclass(frozen=True)
class Outcome:
    """What happened to one notification on one channel, after every retry."""

    channel: str
    delivered: bool
    attempts: int
    detail: str | None = None  # "HTTP 200", "SMTP 250": the receiver's last answer
    error: str | None = None  # why the last attempt failed (short, no secrets)

    def to_json(self) -> dict[str, Any]:
        return {"channel": self.channel, "delivered": self.delivered, "attempts": self.attempts,
                "status": self.detail, "error": self.error}


def describe_error(exc: BaseException, timeout: float) -> str:
    """One short line for a failed send: ``HTTP 500``, ``connection refused``, ``timed out after 1s``."""
    if isinstance(exc, DeliveryError):
        return str(exc)
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return f"timed out after {timeout:g}s"
    os_error = getattr(exc, "os_error", None) if isinstance(exc, aiohttp.ClientConnectorError) else exc
    if isinstance(os_error, OSError):
        if os_error.errno == errno.ECONNREFUSED or isinstance(os_error, ConnectionRefusedError):
            return "connection refused"
        if isinstance(os_error, OSError) and os_error.strerror:
            return os_error.strerror.lower()
    if isinstance(exc, smtplib.SMTPResponseException):
        text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        return f"SMTP {exc.smtp_code} {text}"[:200]
    return f"{type(exc).__name__}: {exc}"[:200]


@dataclass
class Channel:
    """One destination: a name, a send coroutine, and its own ordered queue and worker."""

    name: str
    send: Callable[[Notification], Awaitable[str | None]]
    queue: asyncio.Queue[Notification] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    task: asyncio.Task | None = None
    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    last_error: str | None = None
    consecutive_failures: int = 0  # notifications in a row that failed every attempt


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

    def submit(self, n: Notification, exclude: frozenset[str] | set[str] = frozenset()) -> None:
        """Queue ``n`` on every channel (but ``exclude``); never waits."""
        for ch in self.channels.values():
            if ch.name in exclude:
                continue
            try:
                ch.queue.put_nowait(n)
            except asyncio.QueueFull:
                ch.dropped += 1
                log.warning("alert channel %s: queue full, notification dropped", ch.name)

    def stats(self) -> dict[str, dict[str, Any]]:
        return {name: {"delivered": ch.delivered, "failed": ch.failed, "dropped": ch.dropped,
                       "queued": ch.queue.qsize(), "lastError": ch.last_error,
                       "consecutiveFailures": ch.consecutive_failures}
                for name, ch in self.channels.items()}

    async def _worker(self, ch: Channel) -> None:
        while True:
            n = await ch.queue.get()
            try:
                await self._deliver(ch, n)
            finally:
                ch.queue.task_done()

    async def send_test(self, names: list[str] | tuple[str, ...] | None = None,
                        source: str = "nexus") -> list[Outcome]:
        """Send a test notification through ``names`` (default: every configured channel), now.

        The same path as a real alert (``_deliver``: every attempt bounded by the timeout, retries
        with backoff), but awaited rather than queued, all channels at once, so the caller learns
        what each receiver answered. A channel asked for by name but not configured fails.
        """
        wanted = list(self.channels) if names is None else list(names)
        n = test_notification(source)
        opened = self._client is None and any(w in self.channels for w in wanted)
        if opened:
            self._client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))

        async def one(name: str) -> Outcome:
            ch = self.channels.get(name)
            if ch is None:
                return Outcome(name, False, 0, None, f"not configured (set {CHANNEL_SETTINGS.get(name, name)})")
            return await self._deliver(ch, n)

        try:
            return list(await asyncio.gather(*(one(w) for w in wanted)))
        finally:
            if opened and self._client is not None:
                await self._client.close()
                self._client = None

    async def _deliver(self, ch: Channel, n: Notification) -> Outcome:
        delay = self.backoff_s
        error = "no attempt"
        for attempt in range(1, self.attempts + 1):
            try:
                detail = await asyncio.wait_for(ch.send(n), self.timeout)
                ch.delivered += 1
                ch.consecutive_failures = 0
                return Outcome(ch.name, True, attempt, detail)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure of a receiver is retried, never propagated
                error = describe_error(exc, self.timeout)
                ch.last_error = f"{type(exc).__name__}: {exc}"[:300]
                if attempt == self.attempts:
                    ch.failed += 1
                    ch.consecutive_failures += 1
                    log.error("alert channel %s: giving up after %d attempts (%s)", ch.name, attempt,
                              ch.last_error)
                    return Outcome(ch.name, False, attempt, error if error.startswith("HTTP ") else None, error)
                log.warning("alert channel %s: attempt %d failed (%s); retrying in %.1fs", ch.name, attempt,
                            ch.last_error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 300.0)
        return Outcome(ch.name, False, self.attempts, None, error)  # pragma: no cover - loop returns

    # -- senders ---------------------------------------------------------------------------------

    async def _post_json(self, url: str, payload: dict[str, Any]) -> str:
        assert self._client is not None
        async with self._client.post(url, json=payload, allow_redirects=False) as resp:
            await resp.read()
            if resp.status >= 400:
                # A 4xx will rarely get better by retrying, but retrying costs little and a
                # misconfigured receiver being fixed meanwhile is a real case.
                raise DeliveryError(f"HTTP {resp.status}")
            return f"HTTP {resp.status}"

    async def _send_slack(self, n: Notification) -> str:
        assert self.settings.channels.slack_webhook_url
        return await self._post_json(self.settings.channels.slack_webhook_url, slack_payload(n))

    async def _send_webhook(self, n: Notification) -> str:
        assert self.settings.channels.webhook_url
        return await self._post_json(self.settings.channels.webhook_url, webhook_payload(n))

    async def _send_pagerduty(self, n: Notification) -> str:
        key = self.settings.channels.pagerduty_routing_key
        assert key
        status = await self._post_json(self.settings.channels.pagerduty_url, pagerduty_payload(n, key))
        if n.test:
            # A test must not leave an incident open: resolve it at once, same dedup key.
            await self._post_json(self.settings.channels.pagerduty_url,
                                  {"routing_key": key, "event_action": "resolve", "dedup_key": n.dedup_key})
        return status

    async def _send_email(self, n: Notification) -> str:
        # smtplib is blocking: run it in a thread so the event loop keeps serving requests.
        return await asyncio.to_thread(send_email_blocking, self.settings, n, self.timeout)


def send_email_blocking(s: Settings, n: Notification, timeout: float) -> str:
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
    return "SMTP 250"  # smtplib raises unless the relay answered DATA with 250
