"""``python -m bench [--quick] [--only proxy,write,stats,otel] [--no-results]``: the whole performance suite.

Prints a table (figure, target, measured, baseline, ratio, pass/fail) and rewrites the
"Latest run" section of bench/RESULTS.md (other sections, e.g. "TUI", are kept).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from datetime import UTC, datetime

from bench.common import BENCH_DIR, Figure


def _log(msg: str) -> None:
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def table(figs: list[Figure]) -> str:
    head = ("fig", "figure", "target", "measured", "baseline", "ratio", "result")
    rows = [(f.fig, f.name, f.target, f.measured, f.baseline, f.ratio, f.verdict) for f in figs]
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def notes(figs: list[Figure]) -> str:
    lines = [f"- fig {f.fig}, {f.name}: {n}" for f in figs for n in f.notes]
    return "\n".join(lines)


def _machine() -> str:
    load = os.getloadavg()
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=BENCH_DIR.parent).stdout.strip()
    except OSError:
        commit = "?"
    return (f"{os.cpu_count()} cores, Python {platform.python_version()}, commit {commit}, "
            f"load average at start {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}")


def write_results(md: str) -> None:
    """Replace the "## Latest run" section of RESULTS.md; keep every other section."""
    path = BENCH_DIR / "RESULTS.md"
    text = path.read_text() if path.exists() else ""
    block = "## Latest run\n\n" + md.strip() + "\n"
    if "## Latest run" in text:
        text = re.sub(r"## Latest run\n.*?(?=\n## |\Z)", lambda _: block, text, count=1, flags=re.S)
    else:
        marker = "<!-- latest-run -->"
        text = text.replace(marker, marker + "\n\n" + block) if marker in text else text.rstrip() + "\n\n" + block
    path.write_text(text)


async def _main(args: argparse.Namespace) -> int:
    from bench.db_bench import DbBench
    from bench.otel_bench import OtelBench
    from bench.proxy_bench import ProxyBench

    only = set(args.only.split(",")) if args.only else {"proxy", "write", "stats", "otel"}
    started = time.monotonic()
    info = _machine()
    _log(f"bench: {'quick' if args.quick else 'full'} run; {info}")
    figs: list[Figure] = []
    extra: dict = {}
    if "proxy" in only:
        _log("proxy: figures 1-4, 7, 8")
        pb = ProxyBench(args.quick, _log)
        figs += await pb.run()
        extra.update(pb.extra)
    if "otel" in only:
        _log("OpenTelemetry with the collector down or hanging: figure 9")
        ob = OtelBench(args.quick, _log)
        figs += await ob.run()
        extra.update(ob.extra)
    db = DbBench(args.quick, _log)
    if "write" in only:
        _log("write path: figure 5")
        await db.run_write()
    if "stats" in only:
        _log("stats: figure 6")
        await db.run_stats()
    figs += db.figures
    extra.update(db.extra)
    figs.sort(key=lambda f: int(f.fig))
    elapsed = time.monotonic() - started
    tbl = table(figs)
    print(tbl)
    failed = [f for f in figs if f.ok is False]
    print(f"\n{len(figs) - len(failed)}/{len(figs)} within target; {elapsed:.0f} s")
    if not args.no_results:
        cmd = "python -m bench" + (" --quick" if args.quick else "") + (f" --only {args.only}" if args.only else "")
        md = (f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `{cmd}` ({elapsed:.0f} s); {info}; "
              f"LiteLLM: {extra.get('litellm', 'n/a')}.\n\n{tbl}\n\nNotes:\n\n{notes(figs)}\n")
        write_results(md)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench")
    p.add_argument("--quick", action="store_true", help="fewer rounds, 1 M rows only (~4 min)")
    p.add_argument("--only", default="", help="comma list of: proxy, write, stats, otel")
    p.add_argument("--no-results", action="store_true", help="do not rewrite bench/RESULTS.md")
    args = p.parse_args()
    import uvloop

    from bench.common import stop_postgres

    try:
        return uvloop.run(_main(args))
    finally:
        stop_postgres()


if __name__ == "__main__":
    sys.exit(main())
