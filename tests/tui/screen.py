"""What a person sees: the active screen as plain text lines (what tmux capture-pane would show)."""

from __future__ import annotations

from typing import Any


def screen_text(app: Any) -> str:
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(seg.text for seg in strip).rstrip() for strip in strips)


def svg_text(svg: str) -> str:
    """The characters of a Textual SVG screenshot, in order (each styled run is its own <text>)."""
    import html
    import re

    return html.unescape("".join(re.findall(r">([^<]*)</text>", svg))).replace("\xa0", " ")
