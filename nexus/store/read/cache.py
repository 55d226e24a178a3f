"""A short-lived cache of whole past hours of rollups, and merging of rollup rows.

A monitor asks for "the last 24 h" every few seconds; 23 of those hours do not change between
polls, so each is aggregated once per ``ttl_s`` and only the open hour at each end is read fresh.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg


@dataclass
class RollupCache:
    """Aggregates of whole past hours of rollups, kept a short while in the dashboard process.

    A monitor asks for "the last 24 h" every few seconds; 23 of those hours do not change between
    polls, so each is aggregated once per ``ttl_s`` and only the open hour at each end is read
    fresh. Only hours that ended at least ``settle_s`` ago are cached (the writer flushes within
    a fraction of a second). A record that arrives much later (replayed from the journal after a
    database outage) is visible once the entry expires, within ``ttl_s``.
    """

    ttl_s: float = 60.0
    settle_s: float = 120.0
    max_rows: int = 100_000  # memory bound: cached rows in all entries (least recently used go first)
    clock: Callable[[], float] = time.monotonic
    hits: int = 0
    misses: int = 0
    rows: int = 0
    _data: OrderedDict[tuple, tuple[float, list[dict[str, Any]]]] = field(default_factory=OrderedDict)

    def get(self, key: tuple) -> list[dict[str, Any]] | None:
        item = self._data.get(key)
        if item is None or self.clock() - item[0] > self.ttl_s:
            if item is not None:
                self._drop(key)
            self.misses += 1
            return None
        self._data.move_to_end(key)
        self.hits += 1
        return item[1]

    def put(self, key: tuple, rows: list[dict[str, Any]]) -> None:
        if key in self._data:
            self._drop(key)
        self._data[key] = (self.clock(), rows)
        self.rows += len(rows) + 1
        while self.rows > self.max_rows and len(self._data) > 1:
            self._drop(next(iter(self._data)))

    def _drop(self, key: tuple) -> None:
        _, rows = self._data.pop(key)
        self.rows -= len(rows) + 1

    def clear(self) -> None:
        self._data.clear()
        self.rows = 0


def _add(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, list):
        return [x + (y or 0) for x, y in zip(a, b, strict=True)]
    return a + b


def merge_rows(acc: dict[tuple, dict[str, Any]], key_names: list[str], rows: list[dict[str, Any]]) -> None:
    """Sum ``rows`` into ``acc`` by their key columns (every other column is a sum or a histogram).

    Rows may be shared with the cache, so they are never modified: a collision builds a new dict.
    """
    for row in rows:
        key = tuple(row[k] for k in key_names)
        cur = acc.get(key)
        if cur is None:
            acc[key] = row
        else:
            acc[key] = {col: (v if col in key_names else _add(cur[col], v)) for col, v in row.items()}


def plain(r: asyncpg.Record) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, list | tuple) else v) for k, v in r.items()}

