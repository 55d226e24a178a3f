"""What "the database is away" means, in one place.

``DB_AWAY`` lists the exceptions that mean the server cannot answer now (down, restarting, the
connection dropped, the pool closed, the database or its tables not there yet) as opposed to a bug
in a query. The recorder journals on them, the dashboard API answers 503 on them, the alert
evaluator skips a round on them.
"""

from __future__ import annotations

import asyncpg

DB_AWAY: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.exceptions.InvalidCatalogNameError,  # the database was dropped or not created yet
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, cannot connect now, ...
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.UndefinedTableError,  # a fresh database before its migrations
)


class DatabaseUnavailable(Exception):
    """The database cannot answer now (down, restarting, dropped, pool closed): the API says 503."""
