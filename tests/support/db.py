"""A real PostgreSQL for the whole session, a fresh database per test, and a whole proxy stack.

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

from nexus.store.embedded import EmbeddedPostgres
from nexus.store.migrate import migrate

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


# --- a whole proxy stack on loopback ------------------------------------------------------------

TEST_DASHBOARD_KEY = "test-dashboard-key-0123456789"


class Stack:
    """A running ProxyService (proxy + dashboard API) in front of a running MockUpstream."""

    def __init__(self, service, info: dict, mock, dsn: str) -> None:
        self.service = service
        self.info = info
        self.mock = mock
        self.dsn = dsn

    @property
    def runtime(self):
        return self.service.runtime

    @property
    def proxy_url(self) -> str:
        return self.info["proxy_url"]

    @property
    def dashboard_url(self) -> str:
        return self.info["dashboard_url"]

    @property
    def key(self) -> str:
        return self.info["dashboard_key"]

    async def wait_rows(self, n: int, timeout: float = 10.0) -> list:
        """Wait until ``api_requests`` holds at least ``n`` rows; return them oldest first."""
        import time

        deadline = time.monotonic() + timeout
        conn = await asyncpg.connect(self.dsn)
        try:
            while True:
                rows = await conn.fetch("SELECT * FROM api_requests ORDER BY created_at")
                if len(rows) >= n or time.monotonic() > deadline:
                    return rows
                await asyncio.sleep(0.05)
        finally:
            await conn.close()


def stack_settings(tmp_path: Path, dsn: str, upstream_url: str, **env: str):
    from nexus.core.settings import load_settings

    base = {
        "NEXUS_DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": dsn,
        "PROXY_PORT": "0",
        "DASHBOARD_PORT": "0",
        "CLAUDE_API_BASE_URL": upstream_url,
        "DASHBOARD_API_KEY": TEST_DASHBOARD_KEY,
        "RECORD_FLUSH_INTERVAL_S": "0.02",
        "SHUTDOWN_GRACE_S": "5",
    }
    base.update(env)
    return load_settings(base)


@pytest.fixture
async def mock_upstream():
    from nexus.sim.mock import MockUpstream

    async with MockUpstream() as mock:
        yield mock


@pytest.fixture
async def stack(db_dsn: str, tmp_path: Path, mock_upstream) -> AsyncIterator[Stack]:
    from proxy.service import ProxyService

    service = ProxyService(stack_settings(tmp_path, db_dsn, mock_upstream.url))
    info = await service.start()
    try:
        yield Stack(service, info, mock_upstream, db_dsn)
    finally:
        await service.stop()


@pytest.fixture
def own_pg() -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL of the test's own, so it can be stopped, killed and restarted."""
    tmp = Path(tempfile.mkdtemp(prefix="nexus-own-pg-"))
    pg = EmbeddedPostgres(tmp)
    pg.start()
    try:
        yield pg
    finally:
        pg.destroy()
        shutil.rmtree(tmp, ignore_errors=True)
