"""Exceptions shared across commands (kept apart from ``nexus.cli`` so ``python -m`` sees one class)."""

from __future__ import annotations

EXIT_ERROR = 1


class CommandError(RuntimeError):
    """An expected failure of a command: printed as one line, exit code ``code``."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code
