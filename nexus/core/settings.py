"""Settings: read once from the environment (and an optional ``nexus.toml``) into one frozen object.

Nothing else reads ``os.environ``; everything that needs configuration is handed a ``Settings``.
The object is grouped in sections (``settings.proxy.port``, ``settings.alerts.eval_interval_s``,
…) while the names users type stay the flat environment names of the contract (``PROXY_PORT``,
``ALERT_EVAL_INTERVAL_S``): each field declares its own name, default and meaning with
:func:`setting`, and that table is the one source for parsing, ``nexus.toml`` keys, the example
file, the test environment's scrub list and error messages.

Environment variables win over the TOML file, so a deployment can pin a value without editing
files. A key in ``nexus.toml`` that is not a setting, or a ``NEXUS_*`` / ``ALERT_*`` /
``DASHBOARD_*`` / ``RECORD_*`` environment variable that is not one, is an error naming where it
was found and the closest valid key: a typo must not silently fall back to a default.
"""

from __future__ import annotations

import difflib
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import platformdirs

from nexus.core.durations import parse_duration
from nexus.core.errors import ConfigError
from nexus.core.sessions import parse_tag_headers

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


@dataclass(frozen=True)
class Key:
    """One setting as users name it: env name, where it lives, its type, default and meaning."""

    env: str
    section: str | None  # None: a top-level field of Settings
    attr: str
    hint: Any
    default: Any
    doc: str

    @property
    def name(self) -> str:
        """The ``nexus.toml`` key (and ``with_overrides`` keyword): the env name in lower case."""
        return self.env.lower()


@dataclass(frozen=True)
class Settings:
    """Every knob of the product, in sections; ``data_dir`` is used everywhere so it stays on top."""

    data_dir: Path = setting("NEXUS_DATA_DIR", doc="embedded DB, dashboard key, journal, pid/log files",
                             factory=_default_data_dir)
    proxy: ProxySettings = field(default_factory=ProxySettings)
    upstream: UpstreamSettings = field(default_factory=UpstreamSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    dashboard: DashboardSettings = field(default_factory=DashboardSettings)
    recorder: RecorderSettings = field(default_factory=RecorderSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    pricing: PricingSettings = field(default_factory=PricingSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    channels: ChannelSettings = field(default_factory=ChannelSettings)
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)
    backup: BackupSettings = field(default_factory=BackupSettings)
    # Env names the environment or the file set explicitly (so callers can tell a choice from a default).
    explicit: frozenset[str] = field(default=frozenset(), compare=False)

    @classmethod
    def of(cls, **values: Any) -> Settings:
        """Defaults with some keys set by their flat names (``Settings.of(proxy_port=0)``); not validated."""
        return cls().with_overrides(**values)

    def with_overrides(self, **values: Any) -> Settings:
        """A copy with keys set by their flat names (``proxy_port=0``, ``database_url=None``)."""
        top: dict[str, Any] = {}
        per_section: dict[str, dict[str, Any]] = {}
        for name, value in values.items():
            key = KEYS.get(name.upper())
            if key is None:
                raise ConfigError(_unknown(name, "override"))
            if key.section is None:
                top[key.attr] = value
            else:
                per_section.setdefault(key.section, {})[key.attr] = value
        for section, changes in per_section.items():
            top[section] = replace(getattr(self, section), **changes)
        return replace(self, **top)

    def value(self, env: str) -> Any:
        """A setting by its environment name (``settings.value("PROXY_PORT")``)."""
        key = KEYS[env.upper()]
        holder = self if key.section is None else getattr(self, key.section)
        return getattr(holder, key.attr)


def _keys() -> dict[str, Key]:
    out: dict[str, Key] = {}

    def add(section: str | None, cls: type, f: Any) -> None:
        hints = typing.get_type_hints(cls)
        default = f.default if f.default is not MISSING else (
            f.default_factory() if f.default_factory is not MISSING else None)  # type: ignore[misc]
        out[f.metadata["env"]] = Key(f.metadata["env"], section, f.name, hints[f.name], default,
                                     f.metadata.get("doc", ""))

    for f in fields(Settings):
        if "env" in f.metadata:
            add(None, Settings, f)
    for section, cls in SECTIONS.items():
        for f in fields(cls):
            add(section, cls, f)
    return out


KEYS: dict[str, Key] = _keys()


def env_names() -> list[str]:
    """Every environment variable the settings read (tests scrub these from their environment)."""
    return sorted(KEYS)


def process_environment(**overrides: str) -> dict[str, str]:
    """This process's environment, for a child process we start (the daemon, the demo servers)."""
    return {**os.environ, **overrides}


def _unknown(name: str, where: str) -> str:
    close = difflib.get_close_matches(name.upper(), KEYS, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0] if name.isupper() else close[0].lower()}?" if close else ""
    return f"unknown setting {name!r} ({where}){hint}"


def _coerce(key: Key, raw: Any) -> Any:
    """``raw`` (a string from the environment, or a TOML value) as the field's type."""
    hint = key.hint
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0]
    text = raw if isinstance(raw, str) else str(raw)
    text = text.strip()
    if text == "" and not isinstance(raw, bool):
        return False if hint is bool else None  # set but empty: the default (an empty bool is off)
    try:
        if hint is bool:
            if isinstance(raw, bool):
                return raw
            low = text.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if hint is int:
            if isinstance(raw, bool):
                raise ValueError(text)
            return int(text)
        if hint is float:
            if isinstance(raw, bool):
                raise ValueError(text)
            return float(text)
        if hint is Path:
            return Path(text).expanduser()
        if hint is str:
            return text
    except ValueError:
        raise ConfigError(f"{key.env}: invalid value {text!r} (expected {hint.__name__})") from None
    raise ConfigError(f"{key.env}: unsupported setting type {hint!r}")  # pragma: no cover


def _find_toml(env: Mapping[str, str]) -> Path | None:
    explicit = env.get("NEXUS_CONFIG")
    if explicit:
        p = Path(explicit).expanduser()
        if not p.is_file():
            raise ConfigError(f"NEXUS_CONFIG: no such file {p}")
        return p
    local = Path("nexus.toml")
    return local if local.is_file() else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    out: dict[str, Any] = {}
    for name, value in data.items():
        if name.upper() not in KEYS:
            raise ConfigError(f"{path}: " + _unknown(name, "not a setting"))
        if isinstance(value, dict | list):
            raise ConfigError(f"{path}: {name} must be a single value, not a table or list")
        out[name.upper()] = value
    return out


def _check_env(env: Mapping[str, str]) -> None:
    for name in env:
        if name.startswith(OWN_PREFIXES) and name not in KEYS and name not in NOT_SETTINGS:
            raise ConfigError(_unknown(name, "environment variable"))


def load_settings(env: Mapping[str, str] | None = None, toml_path: Path | None = None) -> Settings:
    """Build the Settings from ``env`` (default ``os.environ``) over the TOML file over defaults."""
    env = os.environ if env is None else env
    _check_env(env)
    path = toml_path or _find_toml(env)
    file_values = _read_toml(path) if path is not None else {}
    values: dict[str, Any] = {}
    explicit: set[str] = set()
    for name, key in KEYS.items():
        raw = env.get(name)
        if raw is None:
            raw = file_values.get(name)
        if raw is None:
            continue
        explicit.add(name)
        value = _coerce(key, raw)
        if value is not None:
            values[key.name] = value
    settings = replace(Settings().with_overrides(**values), explicit=frozenset(explicit))
    _validate(settings)
    return settings


def _validate(s: Settings) -> None:
    parse_tag_headers(s.proxy.tag_headers)  # raises ConfigError naming TAG_HEADERS
    if s.proxy.session_idle_s <= 0:
        raise ConfigError("SESSION_IDLE_S: must be more than 0")
    if s.proxy.store_bodies not in STORE_BODIES_CHOICES:
        raise ConfigError(f"STORE_BODIES: must be one of {', '.join(STORE_BODIES_CHOICES)}")
    for env, port in (("PROXY_PORT", s.proxy.port), ("DASHBOARD_PORT", s.dashboard.port)):
        if not 0 <= port <= 65535:
            raise ConfigError(f"{env}: {port} is not a TCP port")
    try:
        every = parse_duration(s.backup.every, unit_required=False).total_seconds()
    except ValueError as exc:
        raise ConfigError(f"BACKUP_EVERY: {exc}") from None
    if every < 60:
        raise ConfigError("BACKUP_EVERY: must be at least 1m")
    if s.backup.keep < 1:
        raise ConfigError("BACKUP_KEEP: must be at least 1")
    if not s.upstream.base_url.startswith(("http://", "https://")):
        raise ConfigError("CLAUDE_API_BASE_URL: must start with http:// or https://")
