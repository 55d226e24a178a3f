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

from nexus.core.durations import parse_duration
from nexus.core.errors import ConfigError
from nexus.core.sessions import parse_tag_headers
from nexus.core.settings_sections import (  # noqa: F401  (re-exported: the sections live there)
    NOT_SETTINGS,
    OWN_PREFIXES,
    SECTIONS,
    STORE_BODIES_CHOICES,
    TOKEN_LIMIT_MODES,
    AlertSettings,
    BackupSettings,
    ChannelSettings,
    DashboardSettings,
    DatabaseSettings,
    LimitSettings,
    LoggingSettings,
    PricingSettings,
    ProxySettings,
    RecorderSettings,
    TelemetrySettings,
    UpstreamSettings,
    _default_data_dir,
    setting,
)


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
