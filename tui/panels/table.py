"""A DataTable that updates in place: rows keyed by id, cells rewritten only when they change.

Rebuilding a table on every poll makes the cursor jump and costs a full relayout; dolphie
diffs instead, and so do we.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from textual.binding import Binding
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist


class DiffTable(DataTable):
    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
    ]

    def __init__(self, columns: Sequence[tuple[str, str, int | None]], **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self._columns = columns
        self._rows: dict[str, tuple] = {}

    def on_mount(self) -> None:
        for label, key, width in self._columns:
            self.add_column(label, key=key, width=width)

    @property
    def row_ids(self) -> list[str]:
        return list(self._rows)

    def sync(self, rows: Sequence[tuple[str, tuple]], *, ordered: bool = True) -> bool:
        """Make the table show ``rows`` (id, cells), in order. Returns True if anything changed.

        Cells of surviving rows are updated in place. If the order of ids changed (new rows
        anywhere but the end), the table is re-filled once, keeping the cursor on its row.
        """
        new_ids = [rid for rid, _ in rows]
        new_set = set(new_ids)
        survivors = [rid for rid in self._rows if rid in new_set]
        if ordered and new_ids[: len(survivors)] != survivors:
            self._refill(rows)
            return True
        changed = False
        for rid in list(self._rows):
            if rid not in new_set:
                with contextlib.suppress(RowDoesNotExist):
                    self.remove_row(rid)
                del self._rows[rid]
                changed = True
        col_keys = [c[1] for c in self._columns]
        for rid, cells in rows:
            old = self._rows.get(rid)
            if old is None:
                self.add_row(*cells, key=rid)
                self._rows[rid] = cells
                changed = True
            elif old != cells:
                for ck, a, b in zip(col_keys, old, cells, strict=False):
                    if a != b:
                        self.update_cell(rid, ck, b)
                self._rows[rid] = cells
                changed = True
        return changed

    def _refill(self, rows: Sequence[tuple[str, tuple]]) -> None:
        current = self.current_id
        self.clear()
        self._rows.clear()
        for rid, cells in rows:
            self.add_row(*cells, key=rid)
            self._rows[rid] = cells
        if current is not None and current in self._rows:
            self.move_cursor(row=self.get_row_index(current), animate=False)

    @property
    def current_id(self) -> str | None:
        if not self._rows or self.cursor_row < 0:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:
            return None
        return None if key.value is None else str(key.value)
