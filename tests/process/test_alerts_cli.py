"""``nexus alerts test`` and ``nexus alerts list`` as a user runs them: a real subprocess, real capture
servers for Slack, the webhook and PagerDuty, a real SMTP server (aiosmtpd), one channel down.

The exact stdout is the contract: one line per channel, exit 1 when any configured channel failed.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from datetime import UTC, datetime

import asyncpg
from aiosmtpd.controller import Controller

from nexus.store import alerts as q
from tests.process.test_cli import NEXUS, assert_one_line_error, run
from tests.support.capture import CaptureServer, SmtpSink, free_port, refused_url
from tests.support.env import clean_env

FAST_RETRIES = {"ALERT_RETRY_ATTEMPTS": "2", "ALERT_RETRY_BACKOFF_S": "0.01", "ALERT_CHANNEL_TIMEOUT_S": "5"}


async def _nexus(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run ``nexus`` without blocking the loop that serves the capture servers."""
    proc = await asyncio.create_subprocess_exec(*NEXUS, *args, env=clean_env(**env),
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return subprocess.CompletedProcess(list(args), proc.returncode or 0, out.decode(), err.decode())


async def test_alerts_test_each_channel_one_down_exact_output(capture: CaptureServer):
    sink = SmtpSink()
    smtp_port = free_port()
    ctl = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    ctl.start()
    try:
        env = {**FAST_RETRIES, "SLACK_WEBHOOK_URL": capture.url("/slack"), "ALERT_WEBHOOK_URL": refused_url(),
               "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp_port), "SMTP_STARTTLS": "0",
               "ALERT_EMAIL_FROM": "nexus@example.com", "ALERT_EMAIL_TO": "ops@example.com",
               "PAGERDUTY_ROUTING_KEY": "R0UTINGKEY0123456789", "PAGERDUTY_URL": capture.url("/pd"),
               "INSTANCE_ID": "box-1"}
        proc = await _nexus("alerts", "test", env=env)
    finally:
        ctl.stop()
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == (
        "sending a test notification through 4 channels: slack, webhook, email, pagerduty\n"
        "  slack      delivered  HTTP 200\n"
        "  webhook    FAILED     connection refused (2 attempts)\n"
        "  email      delivered  SMTP 250\n"
        "  pagerduty  delivered  HTTP 200\n"
        "1 of 4 failed: webhook\n"
    )
    assert proc.stderr == ""
    slack = [r.json for r in capture.on("/slack")]
    assert len(slack) == 1 and slack[0]["text"].startswith("[TEST] Test notification: This is a test")
    assert "box-1" in slack[0]["text"]
    pd = [r.json for r in capture.on("/pd")]
    # a test opens no incident: the trigger (severity info) is resolved at once with the same key
    assert [m["event_action"] for m in pd] == ["trigger", "resolve"]
    assert pd[0]["payload"]["severity"] == "info" and pd[0]["dedup_key"] == pd[1]["dedup_key"]
    assert len(sink.messages) == 1
    assert b"Subject: [TEST] Test notification" in sink.messages[0][2]


async def test_alerts_test_one_channel_retried_then_delivered(capture: CaptureServer):
    capture.fail_first = 1
    env = {**FAST_RETRIES, "SLACK_WEBHOOK_URL": capture.url("/slack"), "ALERT_WEBHOOK_URL": capture.url("/hook")}
    proc = await _nexus("alerts", "test", "--channel", "webhook", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (
        "sending a test notification through 1 channel: webhook\n"
        "  webhook    delivered  HTTP 200 (after 2 attempts)\n"
        "all 1 delivered\n"
    )
    assert capture.attempts == 2 and [r.json["event"] for r in capture.on("/hook")] == ["test"]
    assert capture.on("/slack") == []  # only the channel asked for


async def test_alerts_test_http_error_and_unconfigured_channel(capture: CaptureServer):
    capture.fail_first = 10
    env = {**FAST_RETRIES, "SLACK_WEBHOOK_URL": capture.url("/slack")}
    proc = await _nexus("alerts", "test", env=env)
    assert (proc.returncode, proc.stdout) == (1, (
        "sending a test notification through 1 channel: slack\n"
        "  slack      FAILED     HTTP 500 (2 attempts)\n"
        "1 of 1 failed: slack\n"))
    proc = await _nexus("alerts", "test", "--channel", "pagerduty", env=env)
    assert (proc.returncode, proc.stdout) == (1, (
        "sending a test notification through 1 channel: pagerduty\n"
        "  pagerduty  FAILED     not configured (set PAGERDUTY_ROUTING_KEY)\n"
        "1 of 1 failed: pagerduty\n"))


def test_alerts_test_without_channels_is_one_line_error():
    assert_one_line_error(run("alerts", "test"), 1, "no alert channel is configured")
    assert_one_line_error(run("alerts", "test", "--channel", "sms"), 2, "invalid choice")


async def test_alerts_list_reads_what_api_alerts_serves(db_dsn: str):
    conn = await asyncpg.connect(db_dsn)
    try:
        t0 = datetime(2030, 1, 1, 10, 5, tzinfo=UTC)
        a = await q.insert_firing(conn, rule="error_rate", key="global", title="High error rate detected",
                                  severity="critical", summary="Error rate 20.0%", value=0.2, threshold=0.05,
                                  labels={}, started_at=t0, instance_id="i1")
        b = await q.insert_firing(conn, rule="db_pool", key="server", title="Database connection pool exhausted",
                                  severity="critical", summary="pool 95%", value=95.0, threshold=90.0,
                                  labels={}, started_at=t0.replace(minute=6), instance_id="i1")
        assert a and b
        await q.mark_resolved(conn, b["id"], t0.replace(minute=9), "pool 10%", 10.0)
    finally:
        await conn.close()
    env = {"DATABASE_URL": db_dsn}
    proc = await _nexus("alerts", "list", env=env)
    assert proc.returncode == 0, proc.stderr
    ia, ib = a["id"], b["id"]
    assert proc.stdout.splitlines() == [
        "active: 1",
        f"  #{ia:<5} firing    critical  error_rate         global               2030-01-01 10:05:00  Error rate 20.0%",
        "recent: 2",
        f"  #{ib:<5} resolved  critical  db_pool            server               2030-01-01 10:06:00 -> "
        "2030-01-01 10:09:00  pool 10%",
        f"  #{ia:<5} firing    critical  error_rate         global               2030-01-01 10:05:00  Error rate 20.0%",
    ]
    proc = await _nexus("alerts", "list", "--active", "--json", env=env)
    doc = json.loads(proc.stdout)
    assert list(doc) == ["active"] and [x["id"] for x in doc["active"]] == [ia]
    assert doc["active"][0]["startedAt"] == "2030-01-01T10:05:00+00:00"
