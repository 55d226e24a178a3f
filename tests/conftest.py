"""Shared fixtures: a real PostgreSQL for the whole session and a fresh database per test.

With ``DATABASE_URL`` set, that server is used (each test still gets its own database created
from a migrated template); otherwise an embedded PostgreSQL is started in a temporary directory.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from nexus.db.migrate import migrate
from nexus.embedded_pg import EmbeddedPostgres

TEMPLATE_DB = "nexus_test_template"


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


@pytest.fixture(scope="session")
def pg_admin_dsn() -> Iterator[str]:
    """DSN of a database we may CREATE DATABASE from (session-wide server)."""
    external = os.environ.get("DATABASE_URL")
    if external:
        yield external
        return
    tmp = Path(tempfile.mkdtemp(prefix="nexus-test-pg-"))
    pg = EmbeddedPostgres(tmp)
    try:
        pg.start()
        yield pg.dsn("postgres")
    finally:
        pg.destroy()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_template(pg_admin_dsn: str) -> str:
    """Name of a migrated template database; new test databases are cloned from it."""

    async def build() -> None:
        conn = await asyncpg.connect(pg_admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}"')
            await conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
        finally:
            await conn.close()
        tconn = await asyncpg.connect(_with_database(pg_admin_dsn, TEMPLATE_DB))
        try:
            await migrate(tconn)
        finally:
            await tconn.close()

    asyncio.run(build())
    return TEMPLATE_DB


async def create_test_database(admin_dsn: str, template: str) -> str:
    name = f"nexus_t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await conn.close()
    return _with_database(admin_dsn, name)


async def drop_test_database(admin_dsn: str, dsn: str) -> None:
    name = urlsplit(dsn).path.lstrip("/")
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def db_dsn(pg_admin_dsn: str, pg_template: str) -> AsyncIterator[str]:
    """A fresh, migrated, empty database for one test."""
    dsn = await create_test_database(pg_admin_dsn, pg_template)
    try:
        yield dsn
    finally:
        await drop_test_database(pg_admin_dsn, dsn)


@pytest.fixture
async def db_conn(db_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(db_dsn)
    try:
        yield conn
    finally:
        await conn.close()
