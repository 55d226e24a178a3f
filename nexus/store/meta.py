"""``nexus_meta``: small values shared by every instance on one database."""

from __future__ import annotations

import asyncpg


async def get_meta(conn: asyncpg.Connection, key: str) -> str | None:
    return await conn.fetchval("SELECT value FROM nexus_meta WHERE key = $1", key)


async def set_meta_if_absent(conn: asyncpg.Connection, key: str, value: str) -> str:
    """Store ``value`` unless a value exists; return the value that is now stored (first writer wins)."""
    await conn.execute(
        "INSERT INTO nexus_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING", key, value
    )
    return await conn.fetchval("SELECT value FROM nexus_meta WHERE key = $1", key)
