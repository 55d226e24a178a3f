"""Close every ``anthropic.AsyncAnthropic`` a test made, when the test ends.

Tests create SDK clients freely; one left open is closed later by the garbage collector, whose
finalizer schedules ``aclose()`` on whatever event loop is running then — in the middle of a later
test. After the OpenTelemetry and sessions tests, such late closes made a two-instance test's
requests hang (tests/process/test_sessions_scaleout.py; a `gc.collect()` before it made the hang go
away). Closing each client at its own test's teardown removes the cause: nothing of one test is
finalized during another.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest


@pytest.fixture(autouse=True)
async def close_sdk_clients() -> AsyncIterator[None]:
    try:
        import anthropic
    except ImportError:  # the test extra is not installed: nothing to close
        yield
        return
    made: list[Any] = []
    original = anthropic.AsyncAnthropic.__init__

    def tracking_init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        made.append(self)

    anthropic.AsyncAnthropic.__init__ = tracking_init  # type: ignore[method-assign]
    try:
        yield
    finally:
        anthropic.AsyncAnthropic.__init__ = original  # type: ignore[method-assign]
        for client in made:
            with contextlib.suppress(Exception):
                await client.close()
