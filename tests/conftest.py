"""Fixture plugins of the suite and its tiers.

Tests live in tiers (``unit/`` no I/O, ``db/``, ``http/``, ``process/``, ``tui/``, ``contracts/``) with
helpers in ``support/``. Markers follow what a test really needs: ``db`` for any test that uses
a database fixture, ``process`` for tests that start the ``nexus`` command or another program,
``slow`` for the long ones. ``pytest -m "not db and not process and not slow"`` is the quick loop.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.support.db", "tests.support.api", "tests.support.capture", "tests.support.sdk"]

DB_FIXTURES = frozenset({"pg_admin_dsn", "pg_template", "db_dsn", "db_conn", "own_pg", "stack", "api",
                         "loaded_api"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if DB_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.db)
        if "process" in item.path.parts[-2:-1]:
            item.add_marker(pytest.mark.process)
