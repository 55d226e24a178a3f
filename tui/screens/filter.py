"""``/``: one filter line, matched against the names the screen shows (see ``tui.filtering``).

The live log narrows as you type, with the count of matching rows; Enter applies the filter to
every panel, Esc cancels (and Esc on the dashboard clears an applied filter).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from tui.api.query import Query
from tui.filtering import Resolution, filter_text_of, resolve

HINT = "model / domain / account / status (5xx, 429, error) · Enter apply · Esc cancel · empty = all"


class FilterScreen(ModalScreen[Query | None]):
    """Returns the new Query, or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("enter", "apply", "Apply", show=True)]

    def __init__(self, query: Query, known: Mapping[str, Sequence[tuple[str, int]]] | None = None,
                 preview: Callable[[Query], tuple[int, int]] | None = None) -> None:
        super().__init__()
        self.current = query
        self.known = known or {}
        self.preview = preview
        self.resolution = Resolution(query)

    def compose(self) -> ComposeResult:
        with Vertical(id="filter-box"):
            yield Input(value=filter_text_of(self.current), placeholder="filter: e.g. sonnet-4-5, team-a, 5xx",
                        id="filter-input")
            yield Static(Text(HINT, style="dim"), id="filter-preview")

    def on_mount(self) -> None:
        self.query_one("#filter-box").border_title = "Filter"
        inp = self.query_one("#filter-input", Input)
        inp.focus()
        inp.cursor_position = len(inp.value)
        self._update(inp.value)

    def on_input_changed(self, event: Input.Changed) -> None:
        self._update(event.value)

    def _update(self, text: str) -> None:
        self.resolution = r = resolve(text, self.current, self.known)
        t = Text(no_wrap=False)
        if r.query.filtered:
            t.append("→ ", style="dim")
            t.append(r.query.filter_text, style="bold")
        else:
            t.append("→ everything", style="dim")
        if self.preview is not None:
            n, total = self.preview(r.query)
            t.append(f"   {n:,} of {total:,} live rows match", style="bold" if n else "bold yellow")
        for note in r.notes:
            t.append(f"\n{note}", style="yellow" if note.startswith("no ") else "dim")
        if r.suggestions:
            t.append("\nseen: ", style="dim")
            t.append("  ".join(f"{name} ({n:,})" for _, name, n in r.suggestions[:6]))
        t.append(f"\n{HINT}", style="dim")
        self.query_one("#filter-preview", Static).update(t)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_apply()

    def action_apply(self) -> None:
        self.dismiss(self.resolution.query)

    def action_cancel(self) -> None:
        self.dismiss(None)
