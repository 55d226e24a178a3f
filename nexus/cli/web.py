"""``nexus web``: the monitor served to a browser with textual-serve, loopback by default.

Bound to anything but loopback it warns, and every page and websocket needs the dashboard key
(``?key=`` once; a cookie after that), compared in constant time: the browser view shows what the
dashboard API shows, so it is guarded like it. The app itself runs as ``python -m tui.web``, one
process per browser tab, talking to the dashboard API over HTTP like ``nexus tui``.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import shlex
import sys
from typing import Any

from nexus.core.errors import CommandError
from nexus.core.settings import Settings

COOKIE = "nexus_web_key"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_server(host: str, port: int, url: str, key: str, *, require_key: bool) -> Any:
    """A textual-serve ``Server`` for the monitor (imported here: only ``nexus web`` needs it)."""
    from aiohttp import web
    from textual_serve.server import Server

    os.environ["TUI_WEB_URL"] = url
    os.environ["TUI_WEB_KEY"] = key
    command = f"{shlex.quote(sys.executable)} -m tui.web"

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        given = request.query.get("key") or request.cookies.get(COOKIE) or ""
        if not hmac.compare_digest(given.encode(), key.encode()):
            return web.Response(status=401, text="nexus web: add ?key=<dashboard key> to the URL\n")
        response = await handler(request)
        if request.query.get("key"):
            response.set_cookie(COOKIE, key, httponly=True, samesite="Strict")
        return response

    class NexusServer(Server):
        async def _make_app(self) -> web.Application:
            app = await super()._make_app()
            if require_key:
                app.middlewares.append(guard)
            return app

    return NexusServer(command, host=host, port=port, title="Claude Nexus Monitor")


def cli_main(args: Any, settings: Settings) -> int:
    from tui.cli import resolve_target

    url, key = resolve_target(args, settings)
    host = args.host
    require_key = not is_loopback(host)
    if require_key:
        print(f"nexus web: WARNING: bound to {host}, not loopback: anyone who can reach port {args.port} "
              f"and has the dashboard key sees the monitor; open http://{host}:{args.port}/?key=<dashboard key>",
              file=sys.stderr)
    try:
        import textual_serve  # noqa: F401
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise CommandError("nexus web needs textual-serve (pip install textual-serve)") from exc
    make_server(host, args.port, url, key, require_key=require_key).serve()
    return 0
