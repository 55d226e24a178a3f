"""``nexus proxy``: the proxy and the dashboard API in the foreground, or ``--daemon`` detached."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import Any

from nexus.core.errors import CommandError
from nexus.core.logs import configure_logging
from nexus.core.settings import Settings


def _install_uvloop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def cli_main(args: Any, settings: Settings) -> int:
    overrides: dict[str, Any] = {}
    if getattr(args, "host", None):
        overrides["proxy_host"] = args.host
    if getattr(args, "port", None) is not None:
        overrides["proxy_port"] = args.port
    if getattr(args, "dashboard_port", None) is not None:
        overrides["dashboard_port"] = args.dashboard_port
    if getattr(args, "upstream", None):
        if not args.upstream.startswith(("http://", "https://")):
            raise CommandError("--upstream must be an http:// or https:// URL", 2)
        overrides["claude_api_base_url"] = args.upstream
    settings = settings.with_overrides(**overrides) if overrides else settings
    if getattr(args, "daemon", False):
        from nexus.cli.daemon import daemonize

        daemonize(settings)
        return 0
    configure_logging(settings)
    _install_uvloop()
    from proxy.service import run_servers  # the server stack, only when it is really started

    def announce(info: dict[str, Any]) -> None:
        sys.stderr.write(
            f"nexus proxy listening on {info['proxy_url']} -> {settings.upstream.base_url}\n"
            f"dashboard API on {info['dashboard_url']} (key: DASHBOARD_API_KEY or "
            f"{settings.data_dir / 'dashboard.key'})\n"
            f"database: {info['database']}\n"
        )
        sys.stderr.flush()

    try:
        return asyncio.run(run_servers(settings, ready=announce))
    except OSError as exc:
        raise CommandError(str(exc)) from None
