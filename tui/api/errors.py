"""What can go wrong talking to the dashboard API, as the monitor tells it."""

from __future__ import annotations


class ApiError(Exception):
    """The API answered, but not with what we asked for."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ApiUnreachable(ApiError):
    """No answer at all: connection refused, DNS, timeout."""


class ApiAuthError(ApiError):
    """401 (no key) or 403 (wrong key): retrying will not help, the user must act."""


def auth_message(status: int | None) -> str:
    if status == 401:
        return "401: the dashboard API wants a key (--key, DASHBOARD_API_KEY or the data dir's dashboard.key)"
    return "403: the dashboard key was refused (check --key / DASHBOARD_API_KEY)"
