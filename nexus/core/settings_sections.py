"""The sections of ``Settings``: each field's environment name, default and one line of meaning.

Split from ``nexus.core.settings`` (which loads, coerces and validates them) so each module holds
one job; import them from ``nexus.core.settings``. Nothing here reads the environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

STORE_BODIES_CHOICES = ("none", "errors", "all")
TOKEN_LIMIT_MODES = ("fixed", "learned")
# Environment variables with these prefixes are ours: an unknown one is a typo, not someone else's.
OWN_PREFIXES = ("NEXUS_", "ALERT_", "ALERTS_", "DASHBOARD_", "RECORD_")
# Variables with our prefixes that are read elsewhere, on purpose (process plumbing, not settings).
NOT_SETTINGS = frozenset({"NEXUS_CONFIG", "NEXUS_DAEMON_CHILD"})


def setting(env: str, default: Any = None, doc: str = "", *, factory: Any = None) -> Any:
    """A settings field: its environment name, default and one line of meaning."""
    meta = {"env": env, "doc": doc}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("nexus"))


@dataclass(frozen=True)
class ProxySettings:
    """The forwarding proxy on ``PROXY_PORT``."""

    host: str = setting("PROXY_HOST", "127.0.0.1", "bind address of both servers (not loopback: put TLS in front)")
    port: int = setting("PROXY_PORT", 3000, "the proxy's port (0 = any free port)")
    credentials_dir: Path | None = setting("CREDENTIALS_DIR", None, "<host>.credentials.json files mapping a Host to an account")
    store_bodies: str = setting("STORE_BODIES", "errors", "which bodies to keep: none, errors or all (secrets redacted)")
    max_body_bytes: int = setting("MAX_BODY_BYTES", 32 * 1024 * 1024, "request body cap (413 above)")
    max_stored_body_bytes: int = setting("MAX_STORED_BODY_BYTES", 1024 * 1024, "cap of each stored body")
    shutdown_grace_s: float = setting("SHUTDOWN_GRACE_S", 30.0, "on SIGTERM, in-flight streams get this long")
    instance_id: str = setting("INSTANCE_ID", "", "this instance's id on a shared database (default: random)")
    tag_headers: str = setting("TAG_HEADERS", "", "existing headers that become tags, kept: x-team=team,x-user=user")
    session_idle_s: float = setting("SESSION_IDLE_S", 600.0, "a session is active while its last request is this recent")
    client_body_timeout_s: float = setting("CLIENT_BODY_TIMEOUT_S", 30.0,
                                           "longest wait between two chunks of a request body (408 after; 0 = none)")
    max_inflight_body_bytes: int = setting("MAX_INFLIGHT_BODY_BYTES", 256 * 1024 * 1024,
                                           "request-body bytes held by all requests at once (503 + retry-after above)")
    keep_alive_timeout_s: float = setting("KEEP_ALIVE_TIMEOUT_S", 30.0, "an idle keep-alive connection is closed after")
    enable_h2c: bool = setting("ENABLE_H2C", False, "accept cleartext HTTP/2 (h2c upgrade, prior knowledge) on both ports")
    redact_headers: str = setting("REDACT_HEADERS", "", "more header names to redact, comma-separated (beyond the built-in rules)")


@dataclass(frozen=True)
class UpstreamSettings:
    """Where requests go, and how long we wait for it."""

    base_url: str = setting("CLAUDE_API_BASE_URL", "https://api.anthropic.com", "the upstream API")
    connect_timeout_s: float = setting("UPSTREAM_CONNECT_TIMEOUT_S", 10.0, "connect timeout")
    read_timeout_s: float = setting("UPSTREAM_READ_TIMEOUT_S", 600.0, "longest silence between two reads")
    request_deadline_s: float = setting("REQUEST_DEADLINE_S", 600.0, "overall deadline of one request")


@dataclass(frozen=True)
class DatabaseSettings:
    """PostgreSQL: external or embedded, and what we do with it."""

    url: str | None = setting("DATABASE_URL", None, "PostgreSQL DSN; unset: the embedded server")
    slow_query_threshold_ms: int = setting("SLOW_QUERY_THRESHOLD_MS", 5000, "log 'Slow SQL query' above this")
    retention_days: int = setting("RETENTION_DAYS", 0, "drop daily partitions older than this (0 = keep)")


@dataclass(frozen=True)
class DashboardSettings:
    """The dashboard API on ``DASHBOARD_PORT``."""

    port: int = setting("DASHBOARD_PORT", 3001, "the dashboard API's port (0 = any free port)")
    api_key: str | None = setting("DASHBOARD_API_KEY", None, "key for /api/*; unset: generated, stored 0600")


@dataclass(frozen=True)
class RecorderSettings:
    """The bounded queue between the request path and the database writer."""

    queue_size: int = setting("RECORD_QUEUE_SIZE", 50_000, "records waiting at most; beyond: dropped, counted")
    batch_size: int = setting("RECORD_BATCH_SIZE", 1_000, "records per write transaction")
    flush_interval_s: float = setting("RECORD_FLUSH_INTERVAL_S", 0.2, "how long a batch may gather")
    journal_high_water: int = setting("JOURNAL_HIGH_WATER", 10_000, "queue depth above which records spill to disk")


@dataclass(frozen=True)
class LoggingSettings:
    json: bool = setting("LOG_JSON", False, "one JSON object per line")
    level: str = setting("LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING, ERROR")


@dataclass(frozen=True)
class PricingSettings:
    file: Path | None = setting("PRICING_FILE", None, "JSON overriding/extending the price table")
    auto_update: bool = setting("PRICES_AUTO_UPDATE", False, "refresh the genai-prices dataset in the background")
    update_url: str = setting("PRICES_UPDATE_URL", "", "where the refresh reads it (empty: genai-prices' data.json)")
    update_interval_s: float = setting("PRICES_UPDATE_INTERVAL_S", 86400.0, "seconds between background refreshes")


@dataclass(frozen=True)
class LimitSettings:
    """Token windows where Anthropic's headers say nothing."""

    token_window_limit: int = setting("TOKEN_WINDOW_LIMIT", 0, "tokens per 5-hour window for '% of limit' (0 = none)")


@dataclass(frozen=True)
class AlertSettings:
    """The alert rules (docs/alerts.md): a condition must hold for its window before it fires."""

    enabled: bool = setting("ALERTS_ENABLED", True, "evaluate alert rules in this process")
    eval_interval_s: float = setting("ALERT_EVAL_INTERVAL_S", 15.0, "seconds between evaluations")
    repeat_interval_s: float = setting("ALERT_REPEAT_INTERVAL_S", 14400.0, "re-notify a firing alert this often (0 = never)")
    lookback_s: float = setting("ALERT_LOOKBACK_S", 60.0, "error rate and p95 are measured over this window")
    min_requests: int = setting("ALERT_MIN_REQUESTS", 10, "fewer requests in the lookback: no opinion")
    error_rate_threshold: float = setting("ALERT_ERROR_RATE_THRESHOLD", 0.05, "error-rate rule threshold")
    error_rate_window_s: float = setting("ALERT_ERROR_RATE_WINDOW_S", 300.0, "error-rate rule: held for")
    token_window_percent: float = setting("ALERT_TOKEN_WINDOW_PERCENT", 80.0, "token-window rule threshold (%)")
    token_window_s: float = setting("ALERT_TOKEN_WINDOW_S", 18000.0, "length of a usage window (5 h)")
    token_limits: str | None = setting("ALERT_TOKEN_LIMITS", None, "per account: acct_x=5000000,acct_y=2000000")
    token_limit_mode: str = setting("ALERT_TOKEN_LIMIT_MODE", "fixed", "fixed | learned (p90 of past windows)")
    token_learn_days: int = setting("ALERT_TOKEN_LEARN_DAYS", 7, "history for learned limits")
    db_pool_percent: float = setting("ALERT_DB_POOL_PERCENT", 90.0, "pool rule threshold (%)")
    db_pool_window_s: float = setting("ALERT_DB_POOL_WINDOW_S", 60.0, "pool rule: held for")
    p95_latency_ms: float = setting("ALERT_P95_LATENCY_MS", 10000.0, "latency rule threshold")
    p95_window_s: float = setting("ALERT_P95_WINDOW_S", 600.0, "latency rule: held for")
    daily_budget_usd: float = setting("ALERT_DAILY_BUDGET_USD", 0.0, "daily budget, all accounts (0 = none)")
    account_budgets_usd: str | None = setting("ALERT_ACCOUNT_BUDGETS_USD", None, "per account: acct_x=50,acct_y=10")
    recording_stall_s: float = setting("ALERT_RECORDING_STALL_S", 120.0,
                                       "recording stalled: records waited this long with no write (0 = off)")
    journal_growing_s: float = setting("ALERT_JOURNAL_GROWING_S", 300.0,
                                       "journal growing: records spilled to disk for this long (0 = off)")
    channel_failures: int = setting("ALERT_CHANNEL_FAILURES", 3,
                                    "alert channel failing: this many notifications in a row failed (0 = off)")
    clock_skew_s: float = setting("ALERT_CLOCK_SKEW_S", 5.0,
                                  "clock skew: an instance's clock this far from the database's (0 = off)")


@dataclass(frozen=True)
class TelemetrySettings:
    """OpenTelemetry export (docs/telemetry.md), under the SDK's own names and meanings.

    On only with an OTLP endpoint and the ``otel`` extra installed. The SDK reads its other
    ``OTEL_*`` variables itself (``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_RESOURCE_ATTRIBUTES``,
    ``OTEL_TRACES_SAMPLER``, …); headers often hold a backend's key, so they never pass through here.
    """

    endpoint: str | None = setting("OTEL_EXPORTER_OTLP_ENDPOINT", None,
                                   "OTLP/HTTP base URL (/v1/traces, /v1/metrics appended); set: export on")
    traces_endpoint: str | None = setting("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", None,
                                          "OTLP/HTTP URL for spans, used as is; set: export on")
    metrics_endpoint: str | None = setting("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", None,
                                           "OTLP/HTTP URL for metrics, used as is (default: from the base URL)")
    protocol: str = setting("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf", "only http/protobuf is supported")
    service_name: str = setting("OTEL_SERVICE_NAME", "nexus-proxy", "service.name of the exported resource")
    max_queue_size: int = setting("OTEL_BSP_MAX_QUEUE_SIZE", 2048, "spans waiting for export at most; beyond: dropped, counted")
    schedule_delay_ms: float = setting("OTEL_BSP_SCHEDULE_DELAY", 5000.0, "milliseconds between span exports")
    export_timeout_s: float = setting("OTEL_EXPORTER_OTLP_TIMEOUT", 10.0,
                                      "seconds one export may take, retries included (the Python SDK's unit)")
    metric_interval_ms: float = setting("OTEL_METRIC_EXPORT_INTERVAL", 60000.0, "milliseconds between metric exports")

    @property
    def enabled(self) -> bool:
        return bool(self.endpoint or self.traces_endpoint)


@dataclass(frozen=True)
class ChannelSettings:
    """Where alerts are sent, and how hard we try."""

    slack_webhook_url: str | None = setting("SLACK_WEBHOOK_URL", None, "Slack incoming webhook")
    webhook_url: str | None = setting("ALERT_WEBHOOK_URL", None, "generic JSON webhook")
    timeout_s: float = setting("ALERT_CHANNEL_TIMEOUT_S", 10.0, "one delivery attempt gives up after")
    retry_attempts: int = setting("ALERT_RETRY_ATTEMPTS", 5, "delivery attempts")
    retry_backoff_s: float = setting("ALERT_RETRY_BACKOFF_S", 2.0, "first retry delay (doubles)")
    smtp_host: str | None = setting("SMTP_HOST", None, "e-mail relay")
    smtp_port: int = setting("SMTP_PORT", 587, "e-mail relay port")
    smtp_user: str | None = setting("SMTP_USER", None, "e-mail relay login")
    smtp_password: str | None = setting("SMTP_PASSWORD", None, "e-mail relay password")
    smtp_starttls: bool = setting("SMTP_STARTTLS", True, "STARTTLS before login")
    smtp_ca_file: Path | None = setting("SMTP_CA_FILE", None, "extra CA for STARTTLS (self-signed relays)")
    email_from: str | None = setting("ALERT_EMAIL_FROM", None, "sender address")
    email_to: str | None = setting("ALERT_EMAIL_TO", None, "comma-separated recipients")
    pagerduty_routing_key: str | None = setting("PAGERDUTY_ROUTING_KEY", None, "PagerDuty Events v2 integration key")
    pagerduty_url: str = setting("PAGERDUTY_URL", "https://events.pagerduty.com/v2/enqueue", "PagerDuty endpoint")


@dataclass(frozen=True)
class BackupSettings:
    """Automatic rotating backups of the database in use, taken by the running proxy (docs/operations.md)."""

    dir: Path | None = setting("BACKUP_DIR", None, "where automatic backups go (unset = no automatic backups)")
    every: str = setting("BACKUP_EVERY", "24h", "how often: a duration such as 24h, 6h, 7d")
    keep: int = setting("BACKUP_KEEP", 7, "backups kept in BACKUP_DIR; older ones are deleted")


SECTIONS: dict[str, type] = {
    "proxy": ProxySettings,
    "upstream": UpstreamSettings,
    "database": DatabaseSettings,
    "dashboard": DashboardSettings,
    "recorder": RecorderSettings,
    "logging": LoggingSettings,
    "pricing": PricingSettings,
    "limits": LimitSettings,
    "alerts": AlertSettings,
    "channels": ChannelSettings,
    "telemetry": TelemetrySettings,
    "backup": BackupSettings,
}
