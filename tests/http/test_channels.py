"""Alert channels against local capture servers: Slack, webhook, PagerDuty over HTTP, e-mail via aiosmtpd.

``CaptureServer`` and ``HangingServer`` are imported by ``tests/test_alerts.py`` too.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from nexus.core.settings import Settings
from proxy.alerts.channels import Dispatcher, Notification, pagerduty_payload, slack_payload, webhook_payload
from tests.support.capture import HangingServer, SmtpSink, free_port, message_from_bytes, refused_url


def _alert(status: str = "firing") -> dict[str, Any]:
    return {"id": 7, "rule": "error_rate", "key": "global", "title": "High error rate detected",
            "severity": "critical", "status": status, "summary": "Error rate 20.0% over the last 60s",
            "value": 0.2, "threshold": 0.05, "labels": {"requests": 100, "errors": 20},
            "startedAt": "2030-01-01T10:05:00+00:00", "resolvedAt": None if status == "firing" else
            "2030-01-01T10:15:00+00:00", "lastNotifiedAt": "2030-01-01T10:05:00+00:00", "notifyCount": 1,
            "instanceId": "inst1", "updatedAt": "2030-01-01T10:05:00+00:00", "event": status}


def _note(kind: str = "firing") -> Notification:
    return Notification(kind=kind, alert=_alert("resolved" if kind == "resolved" else "firing"),
                        dedup_key="nexus-alert-7", source="inst1")


def _settings(**kw) -> Settings:
    base: dict[str, Any] = dict(alert_channel_timeout_s=1.0, alert_retry_attempts=3, alert_retry_backoff_s=0.05)
    base.update(kw)
    return Settings.of(**base)


async def test_slack_webhook_and_pagerduty_payloads_arrive(capture):
    d = Dispatcher(_settings(slack_webhook_url=capture.url("/slack"), alert_webhook_url=capture.url("/hook"),
                             pagerduty_routing_key="R0UTINGKEY0123456789", pagerduty_url=capture.url("/pd")))
    d.start()
    try:
        d.submit(_note("firing"))
        d.submit(_note("resolved"))
        await capture.wait_for(6)
    finally:
        await d.stop()
    slack = [r.json for r in capture.on("/slack")]
    assert [m["text"].split("]")[0] for m in slack] == ["[FIRING", "[RESOLVED"]
    assert slack[0]["attachments"][0]["color"] == "#d00000" and slack[1]["attachments"][0]["color"] == "#2eb67d"
    assert {"title": "Rule", "value": "error_rate", "short": True} in slack[0]["attachments"][0]["fields"]
    hook = [r.json for r in capture.on("/hook")]
    assert [(m["event"], m["status"]) for m in hook] == [("firing", "firing"), ("resolved", "resolved")]
    assert hook[0]["alert"]["summary"].startswith("Error rate") and hook[0]["dedupKey"] == "nexus-alert-7"
    pd = [r.json for r in capture.on("/pd")]
    assert pd[0]["event_action"] == "trigger" and pd[0]["routing_key"] == "R0UTINGKEY0123456789"
    assert pd[0]["dedup_key"] == pd[1]["dedup_key"] == "nexus-alert-7"
    assert pd[0]["payload"]["severity"] == "critical" and pd[0]["payload"]["source"] == "inst1"
    assert pd[1] == {"routing_key": "R0UTINGKEY0123456789", "event_action": "resolve", "dedup_key": "nexus-alert-7"}
    assert d.stats()["slack"]["delivered"] == 2


def test_payload_builders_are_pure():
    n = _note()
    assert slack_payload(n)["text"].startswith("[FIRING] High error rate detected")
    assert webhook_payload(n)["alert"]["id"] == 7
    assert pagerduty_payload(n, "k")["payload"]["custom_details"]["threshold"] == 0.05


async def test_failed_deliveries_are_retried_with_backoff_in_order(capture):
    capture.fail_first = 2
    d = Dispatcher(_settings(alert_webhook_url=capture.url("/hook")))
    d.start()
    try:
        d.submit(_note("firing"))
        d.submit(_note("resolved"))
        got = await capture.wait_for(2)
    finally:
        await d.stop()
    assert [r.json["event"] for r in got] == ["firing", "resolved"]  # resolve never overtakes trigger
    assert capture.attempts == 4
    stats = d.stats()["webhook"]
    assert stats["delivered"] == 2 and stats["failed"] == 0 and "HTTP 500" in stats["lastError"]


async def test_dead_channels_do_not_block_submit_or_other_channels(capture):
    hanging = await HangingServer().start()
    d = Dispatcher(_settings(slack_webhook_url=refused_url(), alert_webhook_url=f"http://127.0.0.1:{hanging.port}/x",
                             pagerduty_routing_key="k" * 20, pagerduty_url=capture.url("/pd"),
                             alert_channel_timeout_s=0.3, alert_retry_attempts=2))
    d.start()
    try:
        t0 = time.monotonic()
        for _ in range(20):
            d.submit(_note())
        assert time.monotonic() - t0 < 0.05
        # the loop stays responsive while the dead channels retry
        lags = []
        for _ in range(20):
            s = time.monotonic()
            await asyncio.sleep(0.01)
            lags.append(time.monotonic() - s)
        assert max(lags) < 0.1
        got = await capture.wait_for(20, "/pd", timeout=5)
        assert len(got) == 20
        await asyncio.sleep(0.8)
        st = d.stats()
        assert st["slack"]["failed"] >= 1 and st["slack"]["delivered"] == 0
        assert st["webhook"]["delivered"] == 0 and "Timeout" in (st["webhook"]["lastError"] or "")
    finally:
        t0 = time.monotonic()
        await d.stop(drain_s=0.2)
        assert time.monotonic() - t0 < 2  # stopping does not wait for dead receivers
        await hanging.stop()


async def test_email_is_sent_over_smtp():
    sink = SmtpSink()
    port = free_port()
    ctl = Controller(sink, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        d = Dispatcher(_settings(smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False,
                                 alert_email_from="nexus@example.com", alert_email_to="ops@example.com, b@example.com"))
        d.start()
        try:
            d.submit(_note("firing"))
            for _ in range(200):
                if sink.messages:
                    break
                await asyncio.sleep(0.02)
        finally:
            await d.stop()
    finally:
        ctl.stop()
    assert len(sink.messages) == 1
    mail_from, rcpts, content = sink.messages[0]
    assert mail_from == "nexus@example.com" and rcpts == ["ops@example.com", "b@example.com"]
    msg = message_from_bytes(content)
    assert str(msg["Subject"]).strip().startswith("[FIRING] High error rate detected")
    assert "Threshold: 0.05" in msg.get_content()


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


async def test_email_with_starttls_and_login(tmp_path):
    import ssl

    from aiosmtpd.smtp import AuthResult

    try:
        cert, key = _self_signed(tmp_path)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("openssl not available to make a test certificate")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"s3cret-password")

    sink = SmtpSink()
    port = free_port()
    ctl = Controller(sink, hostname="localhost", port=port, tls_context=ctx, require_starttls=True,
                     authenticator=authenticator, auth_require_tls=True)
    ctl.start()
    try:
        d = Dispatcher(_settings(smtp_host="localhost", smtp_port=port, smtp_starttls=True, smtp_ca_file=cert,
                                 smtp_user="nexus", smtp_password="s3cret-password",
                                 alert_email_to="ops@example.com"))
        d.start()
        try:
            d.submit(_note("resolved"))
            for _ in range(250):
                if sink.messages:
                    break
                await asyncio.sleep(0.02)
        finally:
            await d.stop()
    finally:
        ctl.stop()
    assert logins == [(b"nexus", b"s3cret-password")]
    assert len(sink.messages) == 1
    assert str(message_from_bytes(sink.messages[0][2])["Subject"]).strip().startswith("[RESOLVED]")
