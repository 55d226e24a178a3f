"""``/``: filter by domain, account, model, session or tag (``name:value``); exact match, like the API."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from tui.api.query import Query


class FilterScreen(ModalScreen[Query | None]):
    """Returns the new Query, or None when cancelled. Empty fields clear that filter."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, query: Query, suggestions: dict[str, list[str]] | None = None) -> None:
        super().__init__()
        self.current = query
        self.suggestions = suggestions or {}

    def compose(self) -> ComposeResult:
        with Vertical(id="filter-box"):
            yield Label("Filter (Enter apply · Esc cancel · empty = all)", id="filter-title")
            for name, value in (("domain", self.current.domain), ("account", self.current.account),
                                ("model", self.current.model), ("session", self.current.session),
                                ("tag", self.current.tag)):
                hint = ", ".join(self.suggestions.get(name, [])[:3])
                yield Label(name + (f"  [dim]({hint})[/]" if hint else ""))
                hint_text = " (name:value)" if name == "tag" else ""
                yield Input(value=value or "", placeholder=f"any {name}{hint_text}", id=f"f-{name}")

    def on_mount(self) -> None:
        self.query_one("#f-domain", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        values = {n: self.query_one(f"#f-{n}", Input).value.strip() or None
                  for n in ("domain", "account", "model", "session", "tag")}
        tag = values["tag"]
        if tag and ":" not in tag and "=" not in tag:
            self.notify("tag: name:value, e.g. project:apollo", severity="warning")
            return
        self.dismiss(Query(time_range=self.current.time_range, **values))

    def action_cancel(self) -> None:
        self.dismiss(None)
