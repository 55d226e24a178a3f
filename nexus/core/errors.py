"""The project's own exceptions, in one place.

::

    Exception
    ├── CommandError        an expected failure of a ``nexus`` command: one line on stderr, exit ``code``
    ├── ConfigError         a setting is present but unusable (ValueError); the message names the key
    │                       and, for a typo, the closest valid key
    ├── EmbeddedPostgresError   (nexus.store.embedded) the embedded server could not start
    └── DatabaseUnavailable     (nexus.store.errors) the database cannot answer now → HTTP 503

Kept apart from ``nexus.cli`` so every layer can raise them without importing the CLI.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


class CommandError(RuntimeError):
    """An expected failure of a command: printed as one line, exit code ``code``."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


class ConfigError(ValueError):
    """A configuration value is present but unusable; the message names the key."""
