"""``nexus alerts test | list``: check the alert channels from the shell, and see what fired.

``test`` builds the channels from the settings exactly as the proxy does and sends one clearly
marked test notification through each, by the proxy's own delivery path (timeouts, retries
with backoff: ``proxy.alerts.channels``), then prints what each receiver answered. ``list`` reads
the ``alerts`` table with the queries behind ``GET /api/alerts``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from typing import Any

from nexus.cli.db import _connect, _run
from nexus.core.errors import EXIT_ERROR, CommandError
from nexus.core.settings import Settings
from nexus.store import alerts as q


def format_outcomes(outcomes: list[Any]) -> list[str]:
    """The per-channel lines of ``nexus alerts test`` (and the TUI's notice), fixed width."""
    lines = []
    for o in outcomes:
        if o.delivered:
            tail = o.detail or "ok"
            if o.attempts > 1:
                tail += f" (after {o.attempts} attempts)"
            lines.append(f"  {o.channel:<10} delivered  {tail}")
        else:
            tail = o.error or "failed"
            if o.attempts > 1:
                tail += f" ({o.attempts} attempts)"
            lines.append(f"  {o.channel:<10} FAILED     {tail}")
    return lines


def cli_test(args: Any, settings: Settings) -> int:
    from proxy.alerts.channels import CHANNEL_NAMES, CHANNEL_SETTINGS, Dispatcher

    # Each outcome is printed below; the worker's retry log lines would only repeat it on stderr.
    logging.getLogger("nexus.alerts.channels").setLevel(logging.CRITICAL)
    dispatcher = Dispatcher(settings)
    if args.channel == "all":
        names = [n for n in CHANNEL_NAMES if n in dispatcher.channels]
        if not names:
            raise CommandError("no alert channel is configured (set " + ", ".join(CHANNEL_SETTINGS.values()) + ")")
    else:
        names = [args.channel]
    source = settings.proxy.instance_id or socket.gethostname()
    print(f"sending a test notification through {len(names)} channel{'s' if len(names) != 1 else ''}: "
          f"{', '.join(names)}", flush=True)
    outcomes = asyncio.run(dispatcher.send_test(names, source=source))
    for line in format_outcomes(outcomes):
        print(line)
    failed = [o.channel for o in outcomes if not o.delivered]
    if failed:
        print(f"{len(failed)} of {len(outcomes)} failed: {', '.join(failed)}")
        return EXIT_ERROR
    print(f"all {len(outcomes)} delivered")
    return 0


def _line(a: dict[str, Any]) -> str:
    when = a["startedAt"][:19].replace("T", " ")
    end = f" -> {a['resolvedAt'][:19].replace('T', ' ')}" if a.get("resolvedAt") else ""
    return (f"  #{a['id']:<5} {a['status']:<9} {a['severity']:<9} {a['rule']:<18} {a['key']:<20} "
            f"{when}{end}  {a['summary']}")


def cli_list(args: Any, settings: Settings) -> int:
    async def body(dsn: str) -> int:
        conn = await _connect(dsn)
        try:
            if not await conn.fetchval("SELECT to_regclass('public.alerts') IS NOT NULL"):
                raise CommandError("the database has no alerts table yet: run `nexus db migrate`")
            active = [q.alert_json(a) for a in await q.firing_alerts(conn)]
            recent = [] if args.active else [q.alert_json(a) for a in await q.recent_alerts(conn, args.limit)]
        finally:
            await conn.close()
        if args.json:
            doc = {"active": active} if args.active else {"active": active, "recent": recent}
            print(json.dumps(doc, indent=2))
            return 0
        print(f"active: {len(active)}")
        for a in active:
            print(_line(a))
        if not args.active:
            print(f"recent: {len(recent)}")
            for a in recent:
                print(_line(a))
        return 0

    return _run(settings, body)


__all__ = ["cli_list", "cli_test", "format_outcomes"]
