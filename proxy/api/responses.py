"""JSON responses of the dashboard API, and its one error shape ``{"error": {"type", "message"}}``.

Every route of ``/api/*`` (the alert routes too) answers through these two functions, so the error
body is the same whatever raised it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from quart import Response

DB_AWAY_HEADERS = {"Retry-After": "5"}


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """orjson-encoded JSON (fast, and handles what our dicts hold; other types as ``str``)."""
    return Response(orjson.dumps(body, default=str), status=status, headers=dict(headers or {}),
                    content_type="application/json")


def error_response(status: int, kind: str, message: str, param: str | None = None,
                   headers: Mapping[str, str] | None = None) -> Response:
    err: dict[str, Any] = {"type": kind, "message": message}
    if param is not None:
        err["param"] = param
    return json_response({"error": err}, status, headers)


def database_unavailable() -> Response:
    """The 503 every route answers while the database is away."""
    return error_response(503, "database_unavailable", "database is not connected", headers=DB_AWAY_HEADERS)
