"""One log line per proxied exchange, in the Monitoring Guide's ``api_request`` shape.

JSON mode (``LOG_JSON=1``) gives ``{"event": "api_request", "domain", "method", "path",
"status", "duration" (ms), "tokens": {"input", "output", "total", ...}, "model", "cost",
"request_id", "account", ...}`` so ``jq 'select(.tokens.total > 10000)'`` and
``jq 'select(.duration > 5000)'`` work on the proxy's output. Text mode keeps the error type in
the fifth whitespace field (``grep ERROR | awk '{print $5}' | sort | uniq -c`` counts them).

Only the Record's own fields are logged: no headers, no bodies, so no key can get in; the
account is the ``acct_`` hash, never the key.
"""

from __future__ import annotations

import logging
from typing import Any

from nexus.core.records import CLIENT_ABORTED_STATUS, Record

log = logging.getLogger("nexus.request")


def record_fields(r: Record) -> dict[str, Any]:
    """The structured fields of one exchange (also handy for tests and exporters)."""
    return {
        "event": "api_request",
        "id": str(r.id),
        "request_id": r.request_id,
        "domain": r.domain,
        "account": r.account_id,
        "method": r.method,
        "path": r.path,
        "status": r.status_code,
        "duration": round(r.response_time_ms, 1),
        "ttft": None if r.ttft_ms is None else round(r.ttft_ms, 1),
        "stream": r.stream,
        "model": r.model,
        "tokens": {
            "input": r.input_tokens,
            "output": r.output_tokens,
            "cache_creation": r.cache_creation_input_tokens,
            "cache_read": r.cache_read_input_tokens,
            "total": r.total_tokens,
        },
        "cost": None if r.cost_usd is None else float(r.cost_usd),
        "error_type": r.error_type,
        "request_type": r.request_type,
        "instance": r.instance_id,
    }


def log_record(record: Record) -> None:
    """Log one finished exchange: INFO, ERROR for failures, WARNING for client aborts (499)."""
    if record.is_error:
        level = logging.WARNING if record.status_code == CLIENT_ABORTED_STATUS else logging.ERROR
    else:
        level = logging.INFO
    if not log.isEnabledFor(level):
        return
    fields = record_fields(record)
    kind = record.error_type or (f"http_{record.status_code}" if record.is_error else "ok")
    cost = "unpriced" if record.cost_usd is None else f"${float(record.cost_usd):.6f}"
    log.log(level, "api_request %s %s %s %s%s %.0fms tokens=%d/%d/%d model=%s cost=%s request_id=%s account=%s",
            kind, record.status_code, record.method, record.domain, record.path, record.response_time_ms,
            record.input_tokens, record.output_tokens, record.total_tokens, record.model or "-", cost,
            record.request_id or "-", record.account_id or "-", extra={"fields": fields})
