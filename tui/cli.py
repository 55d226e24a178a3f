"""The monitor's commands: ``nexus tui`` and ``nexus export``, and the app attached for ``nexus demo``.

The one module of ``tui/`` that knows the command line and imports both the App and the exporter,
so neither has to import the other.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from nexus.core.dashboard_key import find_key
from nexus.core.errors import EXIT_USAGE, CommandError
from nexus.core.settings import Settings
from tui.api.client import DashboardClient
from tui.api.errors import ApiAuthError, ApiError, ApiUnreachable
from tui.api.query import TIME_RANGES, Query
from tui.app import NexusApp
from tui.export import default_path, session_json, snapshot_json, write_csv, write_json


def resolve_target(args: Any, settings: Settings) -> tuple[str, str]:
    """The URL and key to use, or a one-line CommandError saying what is missing."""
    url = getattr(args, "url", None) or f"http://127.0.0.1:{settings.dashboard.port}"
    key = find_key(settings, getattr(args, "key", None))
    if not key:
        raise CommandError(f"no dashboard key: pass --key, set DASHBOARD_API_KEY, or run on the proxy's "
                           f"machine (looked in {settings.data_dir / 'dashboard.key'})")
    return url.rstrip("/"), key


async def preflight(url: str, key: str) -> str | None:
    """Check the key before drawing anything; an unreachable API is fine (the TUI retries)."""
    async with DashboardClient(url, key, timeout=3.0) as c:
        try:
            await c.info()
        except ApiAuthError as exc:
            return str(exc)
        except ApiError:
            return None
    return None


def cli_main(args: Any, settings: Settings) -> int:
    """``nexus tui``."""
    url, key = resolve_target(args, settings)
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise CommandError("nexus tui needs a terminal (use 'nexus export' for scripts)")
    problem = asyncio.run(preflight(url, key))
    if problem:
        raise CommandError(problem)
    app = NexusApp(url, key)
    app.run()
    return 0


def run_attached(url: str, key: str, duration: float | None = None) -> int:
    """Used by ``nexus demo``: the same app, already-known URL and key."""
    app = NexusApp(url, key, exit_after=duration,
                   confirm_quit="Quit the monitor and stop the demo servers?")
    app.run()
    return int(app.return_code or 0)


async def render_svg(url: str, key: str, q: Query, path: Path, size: tuple[int, int] = (120, 40),
                     settle: float = 1.5) -> Path:
    """The TUI rendered off-screen against the live API, after its first poll and a stream tick."""
    app = NexusApp(url, key, query=q, watch_terminal=False)
    async with app.run_test(size=size) as pilot:
        deadline = asyncio.get_running_loop().time() + 10
        while app.polls == 0 and asyncio.get_running_loop().time() < deadline:
            await pilot.pause(0.05)
        await pilot.pause(settle)
        await pilot.pause()
        if app.auth_error:
            raise ApiAuthError(app.auth_error)
        if app.api_down:
            raise ApiUnreachable(app.api_message)
        await asyncio.to_thread(path.write_text, app.export_screenshot(title="Claude Nexus Monitor"))
    return path


async def run_export(url: str, key: str, fmt: str, out: Path, q: Query, session_id: str | None = None) -> str:
    if session_id is not None:
        async with DashboardClient(url, key, timeout=15.0) as client:
            if fmt == "json":
                data = await session_json(client, session_id)
                write_json(out, data)
                return f"wrote {out} (session {session_id}: {len(data['requests'])} requests)"
            n = await write_csv(client, q, out, session_id=session_id)
            return f"wrote {out} ({n} requests of session {session_id})"
    if fmt == "svg":
        await render_svg(url, key, q, out)
        return f"wrote {out} (TUI screenshot, range {q.time_range})"
    async with DashboardClient(url, key, timeout=15.0) as client:
        if fmt == "json":
            write_json(out, await snapshot_json(client, q))
            return f"wrote {out} (JSON snapshot, range {q.time_range})"
        n = await write_csv(client, q, out)
        return f"wrote {out} ({n} requests, range {q.time_range})"


def export_main(args: Any, settings: Settings) -> int:
    """``nexus export``."""
    time_range = getattr(args, "time_range", "1h") or "1h"
    if time_range not in TIME_RANGES:
        raise CommandError(f"--range must be one of {', '.join(TIME_RANGES)}", code=EXIT_USAGE)
    fmt = getattr(args, "format", "json") or "json"
    session_id = getattr(args, "session", None)
    if session_id is not None and fmt == "svg":
        raise CommandError("--session works with --format json or csv", code=EXIT_USAGE)
    url, key = resolve_target(args, settings)
    out = Path(args.out) if getattr(args, "out", None) else default_path(fmt)
    if out.parent and not out.parent.exists():
        raise CommandError(f"--out: directory {out.parent} does not exist")
    try:
        message = asyncio.run(run_export(url, key, fmt, out, Query(time_range=time_range), session_id))
    except ApiAuthError as exc:
        raise CommandError(str(exc)) from None
    except ApiUnreachable as exc:
        raise CommandError(f"dashboard API unreachable at {url}: {exc}") from None
    except ApiError as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(f"cannot write {out}: {exc.strerror or exc}") from None
    print(message)
    return 0
