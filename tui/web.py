"""The monitor as ``nexus web`` runs it in a browser: one ``NexusApp`` per browser tab.

textual-serve starts ``python -m tui.web`` for each connection with Textual's web driver; the
dashboard URL and key come from the environment of ``nexus web`` (``TUI_WEB_URL`` / ``TUI_WEB_KEY``),
never from the command line, so the key does not show in ``ps``.
"""

from __future__ import annotations

import os

from tui.app import NexusApp

URL_ENV = "TUI_WEB_URL"
KEY_ENV = "TUI_WEB_KEY"


def main() -> int:
    app = NexusApp(os.environ[URL_ENV], os.environ.get(KEY_ENV) or None, watch_terminal=False)
    app.run()
    return int(app.return_code or 0)


if __name__ == "__main__":
    raise SystemExit(main())
