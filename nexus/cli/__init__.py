"""The ``nexus`` command line.

Every sub-command's flags are declared here, so ``nexus --help`` is instant and imports no web or
UI framework. Each command's body lives in its own module and is imported only when run.
Failures print one clear line on stderr and exit non-zero; a traceback is a bug.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from nexus.core import durations
from nexus.core.errors import EXIT_ERROR, EXIT_OK, EXIT_USAGE, CommandError, ConfigError
from nexus.core.settings import Settings, load_settings
from nexus.core.version import VERSION

__all__ = ["EXIT_ERROR", "EXIT_OK", "EXIT_USAGE", "CommandError", "build_parser", "main", "parse_duration"]



class _Parser(argparse.ArgumentParser):
    """argparse that prints one line (not the whole usage) on a bad flag."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"nexus: {message} (see 'nexus {self._sub_name()}--help')\n")
        raise SystemExit(EXIT_USAGE)

    def _sub_name(self) -> str:
        parts = self.prog.split()[1:]
        return (" ".join(parts) + " ") if parts else ""


def parse_duration(text: str) -> float:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w`` or plain seconds → seconds (argparse type)."""
    try:
        return durations.parse_duration(text).total_seconds()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} out of range 0-65535")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nexus", description="Claude Nexus Monitor: recording proxy and live monitor "
                     "for the Anthropic Claude API.")
    parser.add_argument("--version", action="version", version=f"nexus {VERSION}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("demo", help="embedded DB + simulated upstream + proxy + live monitor, all in one")
    p.add_argument("--headless", action="store_true", help="no TUI; print a summary (for scripts)")
    p.add_argument("--duration", type=_positive_float, default=None,
                   help="stop after this many seconds (default: until q / Ctrl+C)")
    p.add_argument("--rate", type=_positive_float, default=4.0, help="mean simulated requests per second")
    p.add_argument("--incident-at", type=float, default=None, metavar="SECONDS",
                   help="when the first simulated error burst starts (default 60; negative: none)")
    p.set_defaults(target="nexus.cli.demo:cli_main")

    p = sub.add_parser("proxy", help="run the proxy (PROXY_PORT) and dashboard API (DASHBOARD_PORT)")
    p.add_argument("--host", help="bind address (default PROXY_HOST, 127.0.0.1)")
    p.add_argument("--port", type=_port, help="proxy port (default PROXY_PORT, 3000)")
    p.add_argument("--dashboard-port", type=_port, help="dashboard API port (default DASHBOARD_PORT, 3001)")
    p.add_argument("--upstream", help="upstream base URL (default CLAUDE_API_BASE_URL)")
    p.add_argument("--daemon", action="store_true", help="detach; pid and log files go in the data dir")
    p.set_defaults(target="nexus.cli.proxy:cli_main")

    p = sub.add_parser("stop", help="stop a daemonised proxy gracefully")
    p.add_argument("--timeout", type=_positive_float, default=60.0, help="seconds to wait (default 60)")
    p.set_defaults(target="nexus.cli.daemon:cli_stop")

    p = sub.add_parser("status", help="is the proxy running? pid, ports, uptime, DB state, queue")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(target="nexus.cli.daemon:cli_status")

    p = sub.add_parser("tui", help="the live monitor")
    p.add_argument("--url", default=None, help="dashboard API URL (default http://127.0.0.1:DASHBOARD_PORT)")
    p.add_argument("--key", default=None, help="dashboard key (default DASHBOARD_API_KEY or the data dir's)")
    p.set_defaults(target="tui.cli:cli_main")

    p = sub.add_parser("web", help="the monitor in a browser (textual-serve), loopback by default")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1; elsewhere the key is required)")
    p.add_argument("--port", type=_port, default=8501, help="port (default 8501)")
    p.add_argument("--url", default=None, help="dashboard API URL (default http://127.0.0.1:DASHBOARD_PORT)")
    p.add_argument("--key", default=None, help="dashboard key (default DASHBOARD_API_KEY or the data dir's)")
    p.set_defaults(target="nexus.cli.web:cli_main")

    p = sub.add_parser("export", help="headless snapshot: json, csv or svg")
    p.add_argument("--format", choices=("json", "csv", "svg"), default="json")
    p.add_argument("--out", default=None, help="output path (default nexus-snapshot-<time>.<format>)")
    p.add_argument("--url", default=None, help="dashboard API URL")
    p.add_argument("--key", default=None, help="dashboard key")
    p.add_argument("--range", dest="time_range", default="1h", help="time range: 15m, 1h, 6h, 24h, 7d")
    p.add_argument("--session", default=None, metavar="ID",
                   help="one session: its agents and every request (json), or its requests (csv)")
    p.set_defaults(target="tui.cli:export_main")

    p = sub.add_parser("mock-upstream", help="the simulated Anthropic API alone")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=_port, default=8787)
    p.add_argument("--latency-ms", type=float, default=0.0, help="think time before answering")
    p.add_argument("--error-rate", type=float, default=0.0, help="share of requests answered with an error")
    p.set_defaults(target="nexus.cli.mock:cli_main")

    p = sub.add_parser("db", help="database chores")
    dbsub = p.add_subparsers(dest="db_command", metavar="ACTION", parser_class=_Parser)
    q = dbsub.add_parser("url", help="print the DSN in use (psql \"$(nexus db url)\")")
    q.set_defaults(target="nexus.cli.db:cli_url")
    q = dbsub.add_parser("migrate", help="apply pending migrations")
    q.set_defaults(target="nexus.cli.db:cli_migrate")
    q = dbsub.add_parser("status", help="migrations, partitions, row counts, sizes")
    q.set_defaults(target="nexus.cli.db:cli_status")
    q = dbsub.add_parser("prune", help="drop daily partitions older than a duration")
    q.add_argument("--older-than", type=parse_duration, required=True, metavar="DURATION",
                   help="e.g. 30d")
    q.add_argument("--rollups", action="store_true", help="also delete per-minute rollups that old")
    q.set_defaults(target="nexus.cli.db:cli_prune")
    q = dbsub.add_parser("reprice", help="recompute stored costs (and rollups) with the current prices")
    q.add_argument("--since", type=parse_duration, default=30 * 86400.0, metavar="DURATION",
                   help="records created in this last span, e.g. 30d (default 30d)")
    q.add_argument("--model", default=None, help="only records of this model id (as stored)")
    q.add_argument("--dry-run", action="store_true", help="show what would change, write nothing")
    q.add_argument("--batch-size", type=int, default=2000, help=argparse.SUPPRESS)
    q.set_defaults(target="nexus.cli.db:cli_reprice")
    q = dbsub.add_parser("backup", help="a consistent pg_dump (custom format) of the database in use")
    q.add_argument("--out", default=None, metavar="FILE",
                   help="archive path (default BACKUP_DIR or <data dir>/backups, nexus-<time>.dump)")
    q.set_defaults(target="nexus.cli.db:cli_backup")
    q = dbsub.add_parser("restore", help="restore a `nexus db backup` archive into the database in use")
    q.add_argument("file", metavar="FILE", help="an archive made by nexus db backup")
    q.add_argument("--force", action="store_true", help="replace a database that is not empty")
    q.set_defaults(target="nexus.cli.db:cli_restore")
    p.set_defaults(target=None, _help=p)

    p = sub.add_parser("report", help="the week or month against the one before: traffic, errors, latency, "
                       "cost, limits, capacity")
    p.add_argument("--period", choices=("week", "month"), default="week", help="7 or 30 days (default week)")
    p.add_argument("--format", choices=("md", "json", "html"), default="md",
                   help="md (for a review), json (scripts), html (charts as inline SVG)")
    p.add_argument("--out", default=None, metavar="FILE", help="write here instead of stdout")
    p.add_argument("--until", default=None, metavar="TIME",
                   help="end of the period (YYYY-MM-DD or ISO time, UTC; default now)")
    p.set_defaults(target="nexus.cli.report:cli_main")

    p = sub.add_parser("alerts", help="test the alert channels, list alerts")
    asub = p.add_subparsers(dest="alerts_command", metavar="ACTION", parser_class=_Parser)
    q = asub.add_parser("test", help="send a marked test notification through each configured channel")
    q.add_argument("--channel", choices=("slack", "webhook", "email", "pagerduty", "all"), default="all",
                   help="one channel, or all configured ones (default)")
    q.set_defaults(target="nexus.cli.alerts:cli_test")
    q = asub.add_parser("list", help="active and recent alerts (the data of GET /api/alerts)")
    q.add_argument("--active", action="store_true", help="only alerts firing now")
    q.add_argument("--limit", type=int, default=20, help="recent alerts shown (default 20)")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(target="nexus.cli.alerts:cli_list")
    p.set_defaults(target=None, _help=p)

    p = sub.add_parser("prices", help="the price table: rates in force, refresh the dataset")
    psub = p.add_subparsers(dest="prices_command", metavar="ACTION", parser_class=_Parser)
    q = psub.add_parser("show", help="rates of a model (per million tokens) and where they come from")
    q.add_argument("model", metavar="MODEL", help="a model id as clients send it, e.g. claude-fable-5-1")
    q.add_argument("--at", default=None, metavar="DATE", help="the rates in force then (YYYY-MM-DD or ISO time; default now)")
    q.add_argument("--speed", choices=("standard", "fast"), default=None, help="fast mode rates")
    q.add_argument("--geo", default=None, metavar="GEO", help="inference geo, e.g. us (US-only inference)")
    q.add_argument("--service-tier", choices=("standard", "priority", "batch"), default=None,
                   help="service tier (batch: Message Batches rates)")
    q.set_defaults(target="nexus.cli.prices:cli_show")
    q = psub.add_parser("update", help="fetch a newer genai-prices dataset into the data dir, validated")
    q.add_argument("--from", dest="source", default=None, metavar="URL|FILE",
                   help="where to read it (default: genai-prices' own data.json URL)")
    q.add_argument("--dry-run", action="store_true", help="validate and show what would change, keep the old data")
    q.set_defaults(target="nexus.cli.prices:cli_update")
    p.set_defaults(target=None, _help=p)
    return parser


def _load(target: str):
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    if getattr(args, "target", None) is None:
        args._help.print_help()
        return EXIT_USAGE
    try:
        settings: Settings = load_settings()
        return int(_load(args.target)(args, settings) or 0)
    except ConfigError as exc:
        sys.stderr.write(f"nexus: configuration error: {exc}\n")
        return EXIT_USAGE
    except CommandError as exc:
        sys.stderr.write(f"nexus: {exc}\n")
        return exc.code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
