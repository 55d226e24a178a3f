"""A keyboard-driven table that draws only the rows that fit (a virtual list).

Why not Textual's DataTable for the live panels: at 200 events/s its row removals, the relayout
each change of row count triggers, and per-cell rendering cost a third of a core. Here a tick
costs the same whatever the event rate: rows live in an ordered dict, ``render`` formats only the
visible slice, and nothing changes the widget's size, so no layout is ever triggered.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, ClassVar

from rich.cells import cell_len
from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widget import Widget


def fit(cell: Any, width: int) -> Text:
    t = cell.copy() if isinstance(cell, Text) else Text(str(cell))
    t.truncate(width, overflow="ellipsis", pad=True)
    return t


class VirtualTable(Widget, can_focus=True):
    """Rows keyed by request id; a cursor; Enter posts ``Selected`` with the id."""

    COLUMNS: ClassVar[list[tuple[str, str, int]]] = []  # (label, key, width)
    # Column indexes, most important first: on a narrow panel the last ones are dropped whole
    # (btop's idea) rather than cutting every value. Default: left to right.
    PRIORITY: ClassVar[tuple[int, ...] | None] = None
    FLEX: ClassVar[int | None] = None  # the column that takes the spare width (default: the last shown)
    MAX_ROWS: ClassVar[int] = 500
    BINDINGS = [
        Binding("up,k", "cursor_up", "Up", show=False),
        Binding("down,j", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home", "first", "First", show=False),
        Binding("end", "last", "Last", show=False),
        Binding("enter", "select", "Open", key_display="Enter"),
    ]
    DEFAULT_CSS = """
    VirtualTable { height: 1fr; }
    """

    class Selected(Message):
        """Enter on a row: open this request."""

        def __init__(self, table: VirtualTable, request_id: str) -> None:
            super().__init__()
            self.table = table
            self.request_id = request_id

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._rows: OrderedDict[str, tuple] = OrderedDict()
        self._ids: list[str] | None = None  # index cache, rebuilt lazily
        self.cursor_row = -1
        self._top = 0
        self._header_cache: tuple[int, Text] | None = None

    # ------------------------------------------------------------------ data

    @property
    def row_count(self) -> int:
        return len(self._rows)

    @property
    def row_ids(self) -> list[str]:
        if self._ids is None:
            self._ids = list(self._rows)
        return self._ids

    @property
    def current_id(self) -> str | None:
        ids = self.row_ids
        return ids[self.cursor_row] if 0 <= self.cursor_row < len(ids) else None

    def set_rows(self, rows: Sequence[tuple[str, tuple]]) -> bool:
        """Replace the content; the cursor stays on its request (or at the top if it was there)."""
        new = OrderedDict(rows[: self.MAX_ROWS])
        if list(new.items()) == list(self._rows.items()):
            return False
        current = self.current_id
        at_top = self.cursor_row <= 0
        self._rows = new
        self._ids = None
        if not self._rows:
            self.cursor_row = -1
        elif at_top or current not in self._rows:
            self.cursor_row = 0 if at_top else min(self.cursor_row, self.row_count - 1)
        else:
            self.cursor_row = self.row_ids.index(current)
        self.refresh()
        return True

    def clear_rows(self) -> None:
        self._rows.clear()
        self._ids = None
        self.cursor_row = -1
        self._top = 0
        self.refresh()

    # ------------------------------------------------------------------ keys

    @property
    def _page(self) -> int:
        return max(1, self.size.height - 1)

    def move_cursor(self, row: int, **_: Any) -> None:
        if not self._rows:
            return
        self.cursor_row = max(0, min(self.row_count - 1, row))
        self._cursor_moved()
        self.refresh()

    def _cursor_moved(self) -> None:
        """Hook for subclasses (the log decides here whether to follow the tail)."""

    def action_cursor_up(self) -> None:
        self.move_cursor(self.cursor_row - 1)

    def action_cursor_down(self) -> None:
        self.move_cursor(self.cursor_row + 1)

    def action_page_up(self) -> None:
        self.move_cursor(self.cursor_row - self._page)

    def action_page_down(self) -> None:
        self.move_cursor(self.cursor_row + self._page)

    def action_first(self) -> None:
        self.move_cursor(0)

    def action_last(self) -> None:
        self.move_cursor(self.row_count - 1)

    def action_select(self) -> None:
        rid = self.current_id
        if rid is not None:
            self.post_message(self.Selected(self, rid))

    # ------------------------------------------------------------------ drawing

    def style_row(self, row_id: str, line: Text) -> None:
        """Hook: style a whole row (the log dims count_tokens calls, highlights errors)."""

    def visible_columns(self, width: int) -> list[int]:
        """The columns that fit in ``width`` whole, by priority, in their left-to-right order."""
        order = self.PRIORITY if self.PRIORITY is not None else tuple(range(len(self.COLUMNS)))
        chosen: list[int] = []
        used = 0
        for i in order:
            w = self.COLUMNS[i][2] + 2
            if used + w > width and chosen:
                continue
            chosen.append(i)
            used += w
        return sorted(chosen)

    def _layout(self, width: int) -> list[tuple[int, int]]:
        """(column index, width) to draw: the visible ones; the last one takes the slack."""
        cols = self.visible_columns(width)
        out = [(i, self.COLUMNS[i][2]) for i in cols]
        if out:
            slack = width - sum(w + 2 for _, w in out)
            if slack > 0:
                at = next((k for k, (i, _) in enumerate(out) if i == self.FLEX), len(out) - 1)
                i, w = out[at]
                out[at] = (i, w + slack)
        return out

    def _header(self, width: int) -> Text:
        if self._header_cache is None or self._header_cache[0] != width:
            header = Text()  # no base style: the rows appended after it must not inherit "bold"
            for i, w in self._layout(width):
                header.append_text(fit(" " + self.COLUMNS[i][0], w + 2))
            header.stylize("bold")
            self._header_cache = (width, _clip(header, width))
        return self._header_cache[1].copy()

    def render(self) -> Text:
        width = self.size.width
        body_h = max(0, self.size.height - 1)
        ids = self.row_ids
        n = len(ids)
        if self.cursor_row >= 0:
            if self.cursor_row < self._top:
                self._top = self.cursor_row
            elif self.cursor_row >= self._top + body_h:
                self._top = self.cursor_row - body_h + 1
        self._top = max(0, min(self._top, max(0, n - body_h)))
        out = self._header(width)
        out.no_wrap = True
        out.overflow = "crop"
        out.end = ""
        focused = self.has_focus
        layout = self._layout(width)
        for i in range(self._top, min(n, self._top + body_h)):
            line = Text()
            cells = self._rows[ids[i]]
            for c, w in layout:
                line.append(" ")
                line.append_text(fit(cells[c] if c < len(cells) else "", w))
                line.append(" ")
            self.style_row(ids[i], line)
            if i == self.cursor_row:
                line.stylize("reverse" if focused else "underline")
            out.append("\n")
            out.append_text(_clip(line, width))
        return out


def _clip(line: Text, width: int) -> Text:
    if cell_len(line.plain) > width:
        line.truncate(width)
    return line
