"""One small module per panel (the dolphie layout).

A panel declares the data sources it draws (``SOURCES``) and implements ``show(data)``; the
app fetches the union of the sources of the panels that are on screen, once per poll, and
hands each panel the results. Panels never touch the network themselves.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual.widget import Widget


def filter_note(q: Any, handles: tuple[str, ...] = ("domain", "account", "model")) -> str:
    """" · status filter n/a" for the parts of an active filter a panel cannot apply (or "")."""
    if q is None:
        return ""
    missing = [k for k in ("model", "domain", "account", "status") if getattr(q, k, None) and k not in handles]
    return f" · {'/'.join(missing)} filter n/a" if missing else ""


class Panel:
    """Mixin for the dashboard's panels."""

    SOURCES: ClassVar[tuple[str, ...]] = ()
    PANEL_TITLE: ClassVar[str] = ""

    def show(self, data: dict[str, Any]) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def set_title(self, *parts: str) -> None:
        """The border title from parts, most important first: those that do not fit are left out
        whole (a title cut mid-number with "…" reads as a different number)."""
        assert isinstance(self, Widget)
        room = (self.size.width or 200) - 6
        out = parts[0]
        for part in parts[1:]:
            if part and len(out) + 3 + len(part) <= room:
                out += " · " + part
        self.border_title = out

    def panel_visible(self) -> bool:
        """On the active screen and laid out: worth fetching and drawing for."""
        assert isinstance(self, Widget)
        if not self.display or not self.is_mounted:
            return False
        try:
            return self.screen is self.app.screen and self.is_on_screen
        except Exception:
            return False
