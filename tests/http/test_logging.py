"""Structured logs: one JSON object per line, the guide's jq filters work, no key ever appears."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from nexus.core.logs import configure_logging, redact, register_secret, shutdown_logging
from nexus.core.records import Record
from nexus.core.settings import Settings
from proxy.ingress.request_log import log_record

API_KEY = "sk-ant-api03-logtest-SECRET-0123456789abcdef"
BEARER = "oauth-token-logtest-SECRET-9876543210"
DASH_KEY = "dashboard-key-logtest-SECRET-555"


@pytest.fixture
def capture_logs() -> Iterator[io.StringIO]:
    """Swap in our handler for the test and put pytest's back afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    buf = io.StringIO()
    yield buf
    shutdown_logging()
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in saved_handlers:
        root.addHandler(h)
    root.setLevel(saved_level)


def _lines(buf: io.StringIO) -> list[str]:
    shutdown_logging()  # flush the writer thread
    return [line for line in buf.getvalue().splitlines() if line.strip()]


def _records() -> list[Record]:
    return [
        Record(domain="a.example", account_id="acct_000000000001", model="claude-sonnet-4-5", status_code=200,
               input_tokens=12_000, output_tokens=500, response_time_ms=800.0, cost_usd=Decimal("0.0435"),
               request_id="req_big"),
        Record(domain="a.example", account_id="acct_000000000001", model="claude-sonnet-4-5", status_code=200,
               input_tokens=10, output_tokens=20, response_time_ms=6_500.0, cost_usd=Decimal("0.00033"),
               request_id="req_slow", stream=True, ttft_ms=900.0),
        Record(domain="b.example", account_id="acct_000000000002", model="claude-opus-4-1", status_code=529,
               error_type="overloaded_error", response_time_ms=120.0, request_id="req_err"),
        Record(domain="b.example", model="claude-opus-4-1", status_code=499, error_type="client_aborted",
               response_time_ms=50.0, request_id="req_abort"),
        Record(domain="b.example", model="mystery-model", status_code=200, input_tokens=1, output_tokens=1,
               response_time_ms=30.0, cost_usd=None, request_id="req_unpriced"),
    ]


def test_json_lines_and_jq_style_filters(capture_logs):
    configure_logging(Settings.of(log_json=True, dashboard_api_key=DASH_KEY), stream=capture_logs)
    for r in _records():
        log_record(r)
    logging.getLogger("nexus.test").warning("client sent x-api-key: %s and %s", API_KEY, DASH_KEY)
    logging.getLogger("nexus.test").info("Authorization: Bearer %s", BEARER)
    lines = _lines(capture_logs)
    objs = [json.loads(line) for line in lines]  # every line is one JSON object
    reqs = [o for o in objs if o.get("event") == "api_request"]
    assert len(reqs) == 5
    # jq 'select(.tokens.total > 10000)'
    assert [o["request_id"] for o in reqs if o["tokens"]["total"] > 10000] == ["req_big"]
    # jq 'select(.duration > 5000)'
    assert [o["request_id"] for o in reqs if o["duration"] > 5000] == ["req_slow"]
    by_id = {o["request_id"]: o for o in reqs}
    big = by_id["req_big"]
    assert {k: big[k] for k in ("domain", "method", "path", "status", "model", "account")} == {
        "domain": "a.example", "method": "POST", "path": "/v1/messages", "status": 200,
        "model": "claude-sonnet-4-5", "account": "acct_000000000001"}
    assert big["tokens"] == {"input": 12000, "output": 500, "cache_creation": 0, "cache_read": 0, "total": 12500}
    assert big["cost"] == pytest.approx(0.0435) and big["level"] == "INFO"
    assert by_id["req_err"]["level"] == "ERROR" and by_id["req_err"]["error_type"] == "overloaded_error"
    assert by_id["req_abort"]["level"] == "WARNING"
    assert by_id["req_unpriced"]["cost"] is None  # unpriced, never a fake $0
    text = "\n".join(lines)
    for secret in (API_KEY, BEARER, DASH_KEY):
        assert secret not in text
    assert text.count("[REDACTED]") >= 3


def test_text_mode_keeps_the_error_type_in_field_five(capture_logs):
    configure_logging(Settings.of(log_json=False), stream=capture_logs)
    for r in _records():
        log_record(r)
    lines = _lines(capture_logs)
    assert len(lines) == 5
    errors = [line.split()[4] for line in lines if " ERROR " in line]  # grep ERROR | awk '{print $5}'
    assert errors == ["overloaded_error"]
    assert all(line.split()[3] == "api_request" for line in lines)


def test_redact_patterns():
    register_secret("literal-secret-value-42")
    assert redact("x sk-ant-api03-AAAABBBBCCCC y") == "x [REDACTED] y"
    assert redact('{"x-api-key": "abcdefgh"}') == '{"x-api-key": "[REDACTED]"}'
    assert redact("Authorization: Bearer abc.def.ghi-123") == "Authorization: Bearer [REDACTED]"
    assert redact("password=hunter22 ok") == "password=[REDACTED] ok"
    assert redact("see literal-secret-value-42") == "see [REDACTED]"
    assert redact("nothing to hide, acct_0123456789ab") == "nothing to hide, acct_0123456789ab"


async def test_full_run_logs_one_json_line_per_request_and_no_key(capture_logs, db_dsn, tmp_path: Path,
                                                                  mock_upstream):
    from proxy.service import ProxyService
    from tests.support.db import stack_settings

    settings = stack_settings(tmp_path, db_dsn, mock_upstream.url, LOG_JSON="1")
    configure_logging(settings, stream=capture_logs)
    service = ProxyService(settings)
    info = await service.start()
    body = {"model": "claude-sonnet-4-5", "max_tokens": 32, "messages": [{"role": "user", "content": "hi"}]}
    try:
        async with httpx.AsyncClient(base_url=info["proxy_url"], timeout=30) as c:
            hdr = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}
            assert (await c.post("/v1/messages", json=body, headers=hdr)).status_code == 200
            async with c.stream("POST", "/v1/messages", json={**body, "stream": True}, headers=hdr) as r:
                await r.aread()
            r = await c.post("/v1/messages", json=body, headers={**hdr, "x-mock-status": "529"})
            assert r.status_code == 529
            bearer = {"authorization": f"Bearer {BEARER}", "anthropic-version": "2023-06-01"}
            assert (await c.post("/v1/messages", json=body, headers=bearer)).status_code == 200
            await c.post("/v1/messages", content=b"{not json", headers=hdr)
        async with httpx.AsyncClient(base_url=info["dashboard_url"], timeout=30) as c:
            await c.get("/api/alerts", headers={"X-Dashboard-Key": "wrong-" + API_KEY})
    finally:
        await service.stop()
    lines = _lines(capture_logs)
    objs = [json.loads(line) for line in lines]
    reqs = [o for o in objs if o.get("event") == "api_request"]
    assert len(reqs) >= 4
    assert {o["status"] for o in reqs} >= {200, 529}
    assert [o["level"] for o in reqs if o["status"] == 529] == ["ERROR"]
    assert all(isinstance(o["duration"], float | int) and "total" in o["tokens"] for o in reqs)
    text = "\n".join(lines)
    assert API_KEY not in text and BEARER not in text
    assert API_KEY[:20] not in text  # not even a prefix of it
