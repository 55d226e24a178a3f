"""Versioned schema migrations: numbered ``migrations/NNNN_name.sql`` files, each applied once.

``schema_migrations`` records what ran. Migrations run in one transaction each under an advisory
lock, so several proxies starting at once on one database do not race.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

MIGRATION_LOCK_KEY = 0x6E657875  # "nexu": advisory lock id for migrations
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available_migrations() -> list[Migration]:
    """All migrations shipped with the package, in order."""
    out: list[Migration] = []
    for entry in resources.files("nexus.store").joinpath("migrations").iterdir():
        m = _NAME.match(entry.name)
        if m:
            out.append(Migration(int(m.group(1)), m.group(2), entry.read_text()))
    return sorted(out, key=lambda m: m.version)


async def applied_versions(conn: asyncpg.Connection) -> dict[int, str]:
    exists = await conn.fetchval("SELECT to_regclass('public.schema_migrations') IS NOT NULL")
    if not exists:
        return {}
    rows = await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
    return {r["version"]: r["name"] for r in rows}


async def migrate(conn: asyncpg.Connection) -> list[Migration]:
    """Apply every pending migration; return the ones applied now."""
    applied_now: list[Migration] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = await applied_versions(conn)
        for mig in available_migrations():
            if mig.version in done:
                continue
            async with conn.transaction():
                await conn.execute(mig.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", mig.version, mig.name
                )
            applied_now.append(mig)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    return applied_now


async def pending(conn: asyncpg.Connection) -> list[Migration]:
    done = await applied_versions(conn)
    return [m for m in available_migrations() if m.version not in done]
