"""Append-only on-disk journal for records the database could not take (yet).

One JSON object per line. Appends are fsync'd per batch in a worker thread (the event loop never
waits on the disk). Replay reads everything, the caller inserts it idempotently, then truncates;
a crash between insert and truncate only causes a harmless second (no-op) insert next time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import orjson

from nexus.core.records import Record

log = logging.getLogger("nexus.journal")


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._count = self._count_lines()
        self.appended_total = 0
        self.corrupt_lines = 0

    def _count_lines(self) -> int:
        try:
            with self.path.open("rb") as f:
                return sum(1 for line in f if line.strip())
        except FileNotFoundError:
            return 0

    @property
    def pending(self) -> int:
        return self._count

    def size_bytes(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def append_sync(self, records: Sequence[Record]) -> None:
        if not records:
            return
        # orjson serialises the dataclass natively (UUID, datetime; Decimal via str): ~3x asdict().
        data = b"".join(orjson.dumps(r, default=str) + b"\n" for r in records)
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            self._count += len(records)
            self.appended_total += len(records)

    async def append(self, records: Sequence[Record]) -> None:
        await asyncio.to_thread(self.append_sync, list(records))

    def read_batches(self, batch_size: int = 1000) -> Iterator[list[Record]]:
        """Every journalled record, in batches; unparseable lines are counted and skipped."""
        batch: list[Record] = []
        try:
            f = self.path.open("rb")
        except FileNotFoundError:
            return
        with f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    batch.append(Record.from_journal(orjson.loads(line)))
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                    self.corrupt_lines += 1  # a torn last line after a crash
                    continue
                if len(batch) >= batch_size:
                    yield batch
                    batch = []
        if batch:
            yield batch

    def truncate(self) -> None:
        with self._lock:
            with self.path.open("wb") as f:
                f.flush()
                os.fsync(f.fileno())
            self._count = 0
