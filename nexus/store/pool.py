"""Connection pools and the DSN in use (embedded or ``DATABASE_URL``)."""

from __future__ import annotations

import json
from decimal import Decimal

import asyncpg

from nexus.core.settings import Settings
from nexus.store.embedded import EmbeddedPostgres


def embedded_for(settings: Settings) -> EmbeddedPostgres:
    return EmbeddedPostgres(settings.data_dir)


def dsn_in_use(settings: Settings) -> str:
    """The DSN ``nexus`` uses: ``DATABASE_URL`` when set, else the embedded server's."""
    if settings.database.url:
        return settings.database.url
    return embedded_for(settings).dsn()


def _jsonb_encode(value: object) -> bytes:
    # jsonb's binary wire format: a version byte (1), then the JSON text. Binary, so that COPY
    # (the writer's fast path, which is binary) can send jsonb columns such as ``tags``.
    return b"\x01" + json.dumps(value).encode()


def _jsonb_decode(data: bytes) -> object:
    return json.loads(data[1:])


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=_jsonb_encode, decoder=_jsonb_decode, schema="pg_catalog",
                              format="binary")
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(dsn: str, min_size: int = 1, max_size: int = 10, **kwargs) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init_connection, command_timeout=60, **kwargs
    )


def to_float(value: Decimal | float | int | None) -> float | None:
    return None if value is None else float(value)
