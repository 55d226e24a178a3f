"""Settings: read once from the environment (and an optional ``nexus.toml``) into one frozen object.

No other module reads ``os.environ``; everything that needs configuration is handed a
``Settings``. Environment variables win over the TOML file so that a deployment can pin a
value without editing files.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import platformdirs


class ConfigError(ValueError):
    """A configuration value is present but unusable; the message names the key."""


STORE_BODIES_CHOICES = ("none", "errors", "all")


@dataclass(frozen=True)
class Settings:
    """Every knob of the product. Field names are the lower-cased environment variable names."""

    database_url: str | None = None
    nexus_data_dir: Path = field(default_factory=lambda: Path(platformdirs.user_data_dir("nexus")))
    claude_api_base_url: str = "https://api.anthropic.com"
    proxy_host: str = "127.0.0.1"
    proxy_port: int = 3000
    dashboard_port: int = 3001
    dashboard_api_key: str | None = None
    credentials_dir: Path | None = None
    slow_query_threshold_ms: int = 5000
    slack_webhook_url: str | None = None
    alert_webhook_url: str | None = None
    log_json: bool = False
    log_level: str = "INFO"
    store_bodies: str = "errors"
    pricing_file: Path | None = None
    # Timeouts and limits of the forwarding path.
    upstream_connect_timeout_s: float = 10.0
    upstream_read_timeout_s: float = 600.0
    request_deadline_s: float = 600.0
    max_body_bytes: int = 32 * 1024 * 1024
    max_stored_body_bytes: int = 1024 * 1024
    shutdown_grace_s: float = 30.0
    # Recorder.
    record_queue_size: int = 50_000
    record_batch_size: int = 1_000
    record_flush_interval_s: float = 0.2
    journal_high_water: int = 10_000
    # Retention (days, 0 = keep forever).
    retention_days: int = 0
    # Token-window limit used for "% of limit" when an account has none configured.
    token_window_limit: int = 0
    instance_id: str = ""

    @property
    def data_dir(self) -> Path:
        return self.nexus_data_dir

    def with_overrides(self, **kwargs: Any) -> Settings:
        return replace(self, **kwargs)

    # --- Alerts (issue 4) ---
    # Rules are evaluated in the proxy every ALERT_EVAL_INTERVAL_S from the per-minute rollups.
    # A condition must hold for its *_WINDOW_S before the alert fires; it resolves when it clears.
    alerts_enabled: bool = True
    alert_eval_interval_s: float = 15.0
    alert_repeat_interval_s: float = 14400.0  # re-notify a still-firing alert this often; 0 = never
    alert_lookback_s: float = 60.0  # error rate and p95 are measured over this trailing window
    alert_min_requests: int = 10  # fewer requests in the lookback = no opinion (avoids 1/1 = 100 %)
    alert_error_rate_threshold: float = 0.05
    alert_error_rate_window_s: float = 300.0
    alert_token_window_percent: float = 80.0
    alert_token_window_s: float = 18000.0  # Claude's 5-hour usage window
    alert_token_limits: str | None = None  # per account: "acct_x=5000000,acct_y=2000000"
    alert_token_limit_mode: str = "fixed"  # fixed | learned (p90 of past windows)
    alert_token_learn_days: int = 7
    alert_db_pool_percent: float = 90.0
    alert_db_pool_window_s: float = 60.0
    alert_p95_latency_ms: float = 10000.0
    alert_p95_window_s: float = 600.0
    alert_daily_budget_usd: float = 0.0  # 0 = no global budget
    alert_account_budgets_usd: str | None = None  # "acct_x=50,acct_y=10"
    alert_channel_timeout_s: float = 10.0
    alert_retry_attempts: int = 5
    alert_retry_backoff_s: float = 2.0
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = True
    smtp_ca_file: Path | None = None  # extra CA for STARTTLS (self-signed relays)
    alert_email_from: str | None = None
    alert_email_to: str | None = None  # comma-separated recipients
    pagerduty_routing_key: str | None = None
    pagerduty_url: str = "https://events.pagerduty.com/v2/enqueue"


def _coerce(name: str, kind: Any, raw: Any) -> Any:
    if raw is None:
        return None
    text = str(raw).strip()
    try:
        if kind in ("int", int):
            return int(text)
        if kind in ("float", float):
            return float(text)
        if kind in ("bool", bool):
            if isinstance(raw, bool):
                return raw
            low = text.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(text)
        if "Path" in str(kind):
            return Path(text).expanduser() if text else None
    except ValueError:
        raise ConfigError(f"{name.upper()}: invalid value {text!r}") from None
    return text if text != "" else None


def _find_toml(env: Mapping[str, str]) -> Path | None:
    explicit = env.get("NEXUS_CONFIG")
    if explicit:
        p = Path(explicit).expanduser()
        if not p.is_file():
            raise ConfigError(f"NEXUS_CONFIG: no such file {p}")
        return p
    local = Path("nexus.toml")
    return local if local.is_file() else None


def load_settings(env: Mapping[str, str] | None = None, toml_path: Path | None = None) -> Settings:
    """Build the Settings from ``env`` (default ``os.environ``) over the TOML file over defaults."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    path = toml_path or _find_toml(env)
    file_values: dict[str, Any] = {}
    if path is not None:
        try:
            file_values = {k.lower(): v for k, v in tomllib.loads(path.read_text()).items()}
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: {exc}") from None
    known = {f.name: f for f in fields(Settings)}
    for name, f in known.items():
        raw = env.get(name.upper())
        if raw is None and name in file_values:
            raw = file_values[name]
        if raw is None:
            continue
        value = _coerce(name, f.type, raw)
        if value is not None:
            values[name] = value
    settings = Settings(**values)
    if settings.store_bodies not in STORE_BODIES_CHOICES:
        raise ConfigError(f"STORE_BODIES: must be one of {', '.join(STORE_BODIES_CHOICES)}")
    for port_name in ("proxy_port", "dashboard_port"):
        port = getattr(settings, port_name)
        if not 0 <= port <= 65535:
            raise ConfigError(f"{port_name.upper()}: {port} is not a TCP port")
    if not settings.claude_api_base_url.startswith(("http://", "https://")):
        raise ConfigError("CLAUDE_API_BASE_URL: must start with http:// or https://")
    return settings
