"""One small module per panel (the dolphie layout).

A panel declares the data sources it draws (``SOURCES``) and implements ``show(data)``; the
app fetches the union of the sources of the panels that are on screen, once per poll, and
hands each panel the results. Panels never touch the network themselves.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual.widget import Widget


class Panel:
    """Mixin for the dashboard's panels."""

    SOURCES: ClassVar[tuple[str, ...]] = ()
    PANEL_TITLE: ClassVar[str] = ""

    def show(self, data: dict[str, Any]) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def panel_visible(self) -> bool:
        """On the active screen and laid out: worth fetching and drawing for."""
        assert isinstance(self, Widget)
        if not self.display or not self.is_mounted:
            return False
        try:
            return self.screen is self.app.screen and self.is_on_screen
        except Exception:
            return False
