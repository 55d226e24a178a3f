"""Process logging: one JSON object per line (``LOG_JSON=1``) or readable text, never a secret.

Records are formatted in the thread that logs them but written by a background thread
(``QueueHandler`` -> ``QueueListener``), so a slow or blocked stderr (a full pipe, a stalled log
shipper) never stalls the event loop that is relaying streams. The queue is bounded; when it is
full a line is dropped and counted rather than memory growing.

Every formatted line goes through ``redact``: Anthropic keys, bearer tokens, ``x-api-key``
values and any literal registered with ``register_secret`` (the dashboard key, SMTP password,
credential-file keys) are replaced by ``[REDACTED]`` whatever code logged them.

Structured fields: pass ``extra={"fields": {...}}``; in JSON mode they become top-level keys
(that is how ``proxy.ingress.request_log`` makes ``jq 'select(.tokens.total > 10000)'`` work).
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import re
import sys
import threading
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

from nexus.core.settings import Settings

REDACTED = "[REDACTED]"
QUEUE_SIZE = 10_000

_PATTERNS = [
    re.compile(r"sk-ant-[A-Za-z0-9_\-]{6,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=\-]{8,}"),
    re.compile(r"(?i)(x-api-key[\"']?\s*[:=]\s*[\"']?)[^\"'\s,;}]+"),
    re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(?!bearer\s)[^\"'\s,;}]+"),
    re.compile(r"(?i)((?:api_key|apikey|password|smtp_password|routing_key)[\"']?\s*[:=]\s*[\"']?)[^\"'\s,;}]+"),
]
_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_listener: logging.handlers.QueueListener | None = None
_handler: logging.Handler | None = None
dropped_lines = 0


def register_secret(value: str | None) -> None:
    """Never let ``value`` appear in a log line (short values are ignored: too many false hits)."""
    if value and len(value) >= 8:
        with _secrets_lock:
            _secrets.add(value)


# Cheap substring test first: almost no line holds any of these, and the case-insensitive
# regexes cost ~50 us per line, too much for a line per proxied request.
_TRIGGERS = ("sk-ant-", "bearer", "x-api-key", "authorization", "api_key", "apikey", "password", "routing_key")


def redact(text: str) -> str:
    low = text.lower()
    if any(t in low for t in _TRIGGERS):
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + REDACTED, text)
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", ...fields}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": _iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for k, v in fields.items():
                out.setdefault(k, v)
        if record.exc_info:
            out["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            out["exc"] = self.formatException(record.exc_info)
        return redact(orjson.dumps(out, default=str).decode())


# C0 controls, DEL, C1 controls and the Unicode line/paragraph separators: a client-supplied value
# (a `model`, a Host, a path) holding them could split a text log line or drive the terminal of
# whoever tails the log. They are written as \xNN / \uNNNN escapes.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escape_control(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c <= 0xFF else f"\\u{c:04x}"


def escape_control(text: str) -> str:
    """``text`` with every control character escaped (one log line stays one line)."""
    return _CONTROL.sub(_escape_control, text) if _CONTROL.search(text) else text


class TextFormatter(logging.Formatter):
    """``<iso-time> <LEVEL> <logger> <message>``: whitespace-split fields stay in fixed places.

    The message has its control characters escaped; only a traceback spans several lines.
    """

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_iso(record.created)} {record.levelname} {record.name} {escape_control(record.getMessage())}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line)


class _DroppingQueueHandler(logging.handlers.QueueHandler):
    def enqueue(self, record: logging.LogRecord) -> None:
        global dropped_lines
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            dropped_lines += 1


def configure_logging(settings: Settings, stream: TextIO | None = None) -> logging.Handler:
    """Install the root handler per ``LOG_JSON`` / ``LOG_LEVEL``; calling again replaces it."""
    global _listener, _handler
    shutdown_logging()
    for secret in (settings.dashboard.api_key, settings.channels.smtp_password, settings.channels.pagerduty_routing_key):
        register_secret(secret)
    # Per-record costs we never print (the logging docs' "optimization" knobs): stack walk for
    # file/line, thread, process and multiprocessing names.
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    q: queue.Queue[logging.LogRecord] = queue.Queue(QUEUE_SIZE)
    handler = _DroppingQueueHandler(q)
    handler.setFormatter(JsonFormatter() if settings.logging.json else TextFormatter())
    sink = logging.StreamHandler(stream or sys.stderr)
    sink.setFormatter(logging.Formatter("%(message)s"))  # already formatted (and redacted)
    _listener = logging.handlers.QueueListener(q, sink, respect_handler_level=False)
    _listener.start()
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(getattr(logging, str(settings.logging.level).upper(), logging.INFO))
    # Hypercorn's access log would duplicate api_request lines; its errors still come through.
    logging.getLogger("hypercorn.access").setLevel(logging.WARNING)
    # httpx logs every request URL at INFO; in this process that is only noise (and a URL is
    # where a careless caller might put a token).
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    _handler = handler
    return handler


def shutdown_logging() -> None:
    """Flush what is queued and stop the writer thread (at exit, and before reconfiguring)."""
    global _listener, _handler
    if _listener is not None:
        _listener.stop()
        _listener = None
    if _handler is not None:
        logging.getLogger().removeHandler(_handler)
        _handler = None


atexit.register(shutdown_logging)
