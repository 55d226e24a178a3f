"""``nexus report --period week|month [--format md|json|html] [--out FILE]``: a review of the period.

The numbers come from ``nexus.store.report``; this module only renders them: Markdown to paste
into a review, HTML with the charts as inline SVG (no scripts, no external assets), JSON for
scripts (exactly the data, nothing rounded beyond it).
"""

from __future__ import annotations

import html
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nexus.cli.db import _connect, _run
from nexus.core.errors import CommandError
from nexus.core.settings import Settings
from nexus.store.backup import human_size
from nexus.store.report import build_report


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:+.1f}%"


def _usd(v: float) -> str:
    return f"${v:,.2f}" if abs(v) >= 0.01 or v == 0 else f"${v:.6f}"


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f} ms"


def _table(head: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def sections(r: dict[str, Any]) -> list[tuple[str, list[str], list[list[Any]], str | None]]:
    """(title, header, rows, note) per section: one source for Markdown and HTML."""
    t, p, ch = r["traffic"]["current"], r["traffic"]["previous"], r["traffic"]["change"]
    out: list[tuple[str, list[str], list[list[Any]], str | None]] = []
    out.append(("Traffic", ["", "this period", "previous", "change"], [
        ["requests", f"{t['requests']:,}", f"{p['requests']:,}", _pct(ch["requests"])],
        ["errors", f"{t['errors']:,}", f"{p['errors']:,}", _pct(ch["errors"])],
        ["error rate", f"{t['errorRate']:.2%}", f"{p['errorRate']:.2%}", f"{ch['errorRatePoints']:+.2f} pt"],
        ["tokens", f"{t['tokens']['total']:,}", f"{p['tokens']['total']:,}", _pct(ch["tokens"])],
        ["cost", _usd(t["costUsd"]), _usd(p["costUsd"]), _pct(ch["costUsd"])],
        ["unpriced requests", t["unpricedRequests"], p["unpricedRequests"], ""],
    ], None))
    out.append(("Top error types", ["error type", "this period", "previous", "change"],
                [[e["errorType"], e["current"], e["previous"], _pct(e["changePct"])] for e in r["errorTypes"]],
                None if r["errorTypes"] else "no errors"))
    out.append(("Latency by model", ["model", "requests", "p50", "p95", "avg", "p95 before"],
                [[m["model"] or "(none)", f"{m['requests']:,}", _ms(m["p50Ms"]), _ms(m["p95Ms"]), _ms(m["avgMs"]),
                  _ms(m["previous"]["p95Ms"])] for m in r["latency"]], "p50/p95 interpolated from histograms"))
    for key, title in (("byModel", "Cost by model"), ("byAccount", "Cost by account"),
                       ("bySession", "Cost by session"), ("byTag", "Cost by tag")):
        rows = r["cost"][key]
        if rows is None:
            out.append((title, [], [], "not recorded by this database's schema"))
            continue
        out.append((title, ["", "this period", "previous", "change"],
                    [[c["key"] or "(none)", _usd(c["currentUsd"]), _usd(c["previousUsd"]), _pct(c["changePct"])]
                     for c in rows], None if rows else "nothing"))
    out.append(("Busiest hours (UTC)", ["hour", "requests"],
                [[h["hour"][:13].replace("T", " ") + ":00", f"{h['requests']:,}"] for h in r["busiestHours"]], None))
    lim = r["limits"]
    rows = [["rejections (429)", lim["rejections"]["current"], lim["rejections"]["previous"],
             _pct(lim["rejections"]["changePct"])]]
    note = None
    if lim["pressure"] is None:
        note = "no rate-limit history in this database"
    else:
        rows += [[f"{x['accountId']} {x['window']}: hours above 80%", x["hoursAbove80"],
                  f"peak {x['peakUtilization']:.0%}", ""] for x in lim["pressure"]]
    out.append(("Limit pressure", ["", "this period", "previous", "change"], rows, note))
    out.append(("Unpriced models", ["model", "requests", "tokens"],
                [[u["model"], u["requests"], f"{u['tokens']:,}"] for u in r["unpriced"]],
                None if r["unpriced"] else "none: every request was priced"))
    c = r["capacity"]
    pk = c["peakRequestsPerMinute"]
    out.append(("Capacity", ["", "value"], [
        ["peak requests/minute", f"{pk['requests']} at {(pk['at'] or '-')[:16]} (before {pk['previous']}, "
                                 f"{_pct(pk['changePct'])})"],
        ["database size", human_size(c["databaseBytes"])],
        ["growth per day (request partitions)", human_size(c["growthBytesPerDay"])],
        ["oldest record", c["oldestRecord"] or "-"],
        ["retention", f"{c['retentionDays']} days, oldest data pruned in {c['daysUntilPrune']} days"
         if c["retentionDays"] else "off (RETENTION_DAYS=0): nothing is pruned"],
    ], None))
    return out


def render_md(r: dict[str, Any]) -> str:
    lines = [f"# Claude Nexus report: {r['period']} to {r['current']['end'][:16]} UTC", "",
             f"This period {r['current']['start'][:16]} .. {r['current']['end'][:16]}, "
             f"previous {r['previous']['start'][:16]} .. {r['previous']['end'][:16]} (UTC).", ""]
    for title, head, rows, note in sections(r):
        lines += [f"## {title}", ""]
        if rows:
            lines += _table(head, rows)
        if note:
            lines += ["", f"_{note}_"] if rows else [f"_{note}_"]
        lines.append("")
    return "\n".join(lines)


def _bars(values: list[float], labels: list[str], title: str, width: int = 640, height: int = 160) -> str:
    """An inline SVG bar chart (no script, no external font)."""
    n = max(1, len(values))
    top = max(values, default=0) or 1
    bw = (width - 40) / n
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 40}" role="img" '
             f'aria-label="{html.escape(title)}"><title>{html.escape(title)}</title>']
    for i, v in enumerate(values):
        h = v / top * height
        x = 30 + i * bw
        parts.append(f'<rect x="{x:.1f}" y="{height - h + 10:.1f}" width="{max(1.0, bw - 2):.1f}" height="{h:.1f}" '
                     f'fill="#4c78a8"><title>{html.escape(labels[i])}: {v:g}</title></rect>')
        if n <= 31:
            parts.append(f'<text x="{x + bw / 2:.1f}" y="{height + 25}" font-size="9" text-anchor="middle">'
                         f'{html.escape(labels[i][-5:])}</text>')
    parts.append(f'<text x="30" y="9" font-size="10">max {top:g}</text></svg>')
    return "".join(parts)


def render_html(r: dict[str, Any]) -> str:
    charts = [
        _bars([d["requests"] for d in r["daily"]], [d["date"] for d in r["daily"]], "Requests per day"),
        _bars([d["costUsd"] for d in r["daily"]], [d["date"] for d in r["daily"]], "Cost per day (USD)"),
        _bars([float(v) for v in r["hourOfDay"]], [f"{h:02d}h" for h in range(24)], "Requests by hour of day (UTC)"),
        _bars([c["currentUsd"] for c in r["cost"]["byModel"]], [c["key"] for c in r["cost"]["byModel"]],
              "Cost by model (USD)"),
    ]
    titles = ["Requests per day", "Cost per day", "Requests by hour of day (UTC)", "Cost by model"]
    body = [f"<h1>Claude Nexus report: {html.escape(r['period'])} to {html.escape(r['current']['end'][:16])} UTC</h1>",
            f"<p>This period {html.escape(r['current']['start'][:16])} .. {html.escape(r['current']['end'][:16])}, "
            f"previous {html.escape(r['previous']['start'][:16])} .. {html.escape(r['previous']['end'][:16])} (UTC).</p>"]
    for t, svg in zip(titles, charts, strict=True):
        body.append(f"<h2>{t}</h2>{svg}")
    for title, head, rows, note in sections(r):
        body.append(f"<h2>{html.escape(title)}</h2>")
        if rows:
            body.append("<table><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in head) + "</tr>"
                        + "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                                  for row in rows) + "</table>")
        if note:
            body.append(f"<p><em>{html.escape(note)}</em></p>")
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}td:first-child{text-align:left}")
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>Claude Nexus report</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")


def _until(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC)
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(f"--until: invalid time {text!r} (use YYYY-MM-DD or ISO 8601)", 2) from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def cli_main(args: Any, settings: Settings) -> int:
    until = _until(args.until)

    built: dict[str, Any] = {}

    async def body(dsn: str) -> int:
        conn = await _connect(dsn)
        try:
            if not await conn.fetchval("SELECT to_regclass('public.api_requests_minute') IS NOT NULL"):
                raise CommandError("the database has no nexus schema yet: run `nexus db migrate`")
            built["report"] = await build_report(conn, args.period, until, settings.database.retention_days)
        finally:
            await conn.close()
        return 0

    _run(settings, body)
    report = built["report"]
    text = {"json": lambda: json.dumps(report, indent=2) + "\n", "md": lambda: render_md(report),
            "html": lambda: render_html(report)}[args.format]()
    if args.out:
        try:
            Path(args.out).write_text(text)
        except OSError as exc:
            raise CommandError(f"cannot write {args.out}: {exc.strerror or exc}") from None
        print(f"wrote {args.out} ({args.format}, {r_len(text)})")
    else:
        sys.stdout.write(text)
    return 0


def r_len(text: str) -> str:
    return human_size(len(text.encode()))


__all__ = ["cli_main", "render_html", "render_md"]
