"""The dashboard API key: configured, shared through the database, or generated once.

Order: ``DASHBOARD_API_KEY``; else the key stored in ``nexus_meta`` (so every instance on one
database accepts the same key); else the data dir's ``dashboard.key`` (mode 0600); else a new
random key, saved to both. ``nexus tui`` on the same machine reads the file.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from nexus.core.settings import Settings

KEY_FILE = "dashboard.key"
META_KEY = "dashboard_api_key"


def key_path(settings: Settings) -> Path:
    return settings.data_dir / KEY_FILE


def read_key_file(settings: Settings) -> str | None:
    try:
        text = key_path(settings).read_text().strip()
    except OSError:
        return None
    return text or None


def write_key_file(settings: Settings, key: str) -> None:
    path = key_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, (key + "\n").encode())
    finally:
        os.close(fd)
    os.chmod(path, 0o600)


def generate_key() -> str:
    return "nxd_" + secrets.token_urlsafe(32)


def find_key(settings: Settings, explicit: str | None = None) -> str | None:
    """The key a client on this machine should send (``nexus tui``, ``nexus export``, the demo):
    ``--key``, else ``DASHBOARD_API_KEY``, else the proxy's stored key file."""
    return explicit or settings.dashboard.api_key or read_key_file(settings)
