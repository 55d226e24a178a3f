"""Figure 9: what OpenTelemetry export costs the request path when the collector is down or hangs.

Four proxies (recording ON, one PostgreSQL) against one mock, each in its own process: export
off; export to a collector that accepts everything (up: what the SDK's export costs); export to a
closed port (collector down: connection refused); export to a collector that accepts and never
answers (hanging: every export waits its full timeout). Rounds interleave direct / off / up /
down / hanging with the other proxies and collectors paused (SIGSTOP), and each figure is the
median over rounds of (proxied − direct), as in figures 1-2.
Afterwards the down and hanging proxies' ``claude_proxy_otel_dropped_total`` must account for their
spans, and PostgreSQL must hold every record.
"""

from __future__ import annotations

import asyncio
import re
import socket
import urllib.request
from typing import Any

from bench.common import DATA_DIR as D
from bench.common import (
    PY,
    Figure,
    children,
    cpu_seconds,
    create_database,
    median,
    paused,
    settle,
    spawn,
    start_mock,
    start_proxy,
    wrk,
)

OTEL = {"OTEL_BSP_SCHEDULE_DELAY": "200", "OTEL_EXPORTER_OTLP_TIMEOUT": "2"}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dropped(proxy_url: str) -> float:
    text = urllib.request.urlopen(proxy_url.rstrip("/") + "/metrics", timeout=10).read().decode()
    m = re.search(r"^claude_proxy_otel_dropped_total (\S+)$", text, re.M)
    return float(m.group(1)) if m else float("nan")


class OtelBench:
    def __init__(self, quick: bool, log: Any) -> None:
        self.quick = quick
        self.log = log
        self.rounds = 3 if quick else 5
        self.secs = 3 if quick else 4
        self.figures: list[Figure] = []
        self.extra: dict[str, Any] = {}

    async def run(self) -> list[Figure]:
        import asyncpg

        dsn = await create_database("bench_otel", fresh=True)
        with children() as kids:
            mock = start_mock()
            kids.append(mock)
            hole = spawn([PY, "-m", "bench.servers", "blackhole"])
            kids.append(hole)
            collector = spawn([PY, "-m", "bench.servers", "collector"])
            kids.append(collector)
            proxies = {
                "off": start_proxy(mock.info["url"], dsn, D / "otel-off"),
                "up": start_proxy(mock.info["url"], dsn, D / "otel-up",
                                  OTEL_EXPORTER_OTLP_ENDPOINT=collector.info["url"], **OTEL),
                "down": start_proxy(mock.info["url"], dsn, D / "otel-down",
                                    OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{_closed_port()}", **OTEL),
                "hanging": start_proxy(mock.info["url"], dsn, D / "otel-hang",
                                       OTEL_EXPORTER_OTLP_ENDPOINT=hole.info["url"], **OTEL),
            }
            kids += proxies.values()
            targets = {"direct": (mock.info["url"], mock.pid)} | {
                k: (p.info["proxy_url"], p.pid) for k, p in proxies.items()}
            requests = {k: 0 for k in proxies}  # every request each proxy answered (all are recorded)
            for name, (url, _) in targets.items():
                r = wrk(url, 8, 1)  # warm-up: connections, caches, allocator
                if name in requests:
                    requests[name] += r["requests"]
            self.log(f"  settled after {settle([pid for _, pid in targets.values()]):.1f} s")
            peers = {k: pid for k, (_, pid) in targets.items() if k != "direct"} | {"collector": collector.pid}
            for conc, label in ((1, "1 client sequential"), (32, "32 concurrent clients")):
                res: dict[str, list[dict[str, Any]]] = {k: [] for k in targets}
                for _ in range(self.rounds):
                    for name, (url, pid) in targets.items():
                        awake = {name, "collector"} if name == "up" else {name}
                        with paused([p for k, p in peers.items() if k not in awake]):
                            c0 = cpu_seconds(pid)
                            r = wrk(url, conc, self.secs)
                            r["cpu_us"] = (cpu_seconds(pid) - c0) / max(1, r["requests"]) * 1e6
                        res[name].append(r)
                        if name in requests:
                            requests[name] += r["requests"]
                self._figures(res, label)
            conn = await asyncpg.connect(dsn)
            try:
                for _ in range(200):  # the writers drain their queues
                    rows = await conn.fetchval("SELECT count(*) FROM api_requests")
                    if rows >= sum(requests[k] for k in proxies):
                        break
                    await asyncio.sleep(0.1)
            finally:
                await conn.close()
            dropped = {k: _dropped(proxies[k].info["proxy_url"]) for k in ("up", "down", "hanging")}
        sent = {k: requests[k] for k in proxies}
        self.extra["fig9_requests"] = sent
        self.extra["fig9_dropped"] = dropped
        note = (f"records in PostgreSQL {rows:,} of {sum(sent.values()):,} requests proxied (warm-up included); "
                f"spans dropped and counted: up {dropped['up']:,.0f} of {sent['up']:,}, down {dropped['down']:,.0f} "
                f"of {sent['down']:,}, hanging {dropped['hanging']:,.0f} of {sent['hanging']:,} (the rest still "
                "queued or in an export)")
        self.figures[-1].notes.append(note)
        self.log(f"  fig 9: {note}")
        return self.figures

    def _figures(self, res: dict[str, list[dict[str, Any]]], label: str) -> None:
        d50 = [r["p50_us"] / 1000 for r in res["direct"]]
        d99 = [r["p99_us"] / 1000 for r in res["direct"]]

        def added(name: str, key: str, base: list[float]) -> float:
            return median([r[key] / 1000 - d for r, d in zip(res[name], base, strict=True)])

        off50, off99 = added("off", "p50_us", d50), added("off", "p99_us", d99)
        cpu = {k: median([r["cpu_us"] for r in res[k]]) for k in ("off", "up", "down", "hanging")}
        rps = {k: median([r["rps"] for r in res[k]]) for k in res}
        self.extra[f"fig9 {label}"] = {k: [{x: round(r[x], 1) for x in ("rps", "p50_us", "p99_us", "cpu_us")}
                                           for r in v] for k, v in res.items()}
        for name in ("up", "down", "hanging"):
            a50, a99 = added(name, "p50_us", d50), added(name, "p99_us", d99)
            delta = a50 - off50
            # At 32 clients the proxy is CPU-bound and the p50 moves by ±2-5 ms between runs on this shared
            # host (bench/RESULTS.md): reported, with the CPU per request beside it.
            judged = name != "up" and label.startswith("1 ")
            self.figures.append(Figure(
                "9", f"OTel on, collector {name}: added p50 − export off, {label}", "≤ 0.10 ms" if judged else "(report)",
                f"{delta:+.3f} ms", f"off +{off50:.3f} ms p50 (+{off99:.2f} p99)", f"{name} +{a50:.3f} / +{a99:.2f}",
                delta <= 0.10 if judged else None,
                [f"proxy CPU/request: off {cpu['off']:.0f} µs, {name} {cpu[name]:.0f} µs; req/s: off "
                 f"{rps['off']:,.0f}, {name} {rps[name]:,.0f}, direct {rps['direct']:,.0f}"]))
            self.log(f"  fig 9 {name} {label}: off +{off50:.3f} ms, {name} +{a50:.3f} ms (Δ {delta:+.3f}); "
                     f"cpu {cpu['off']:.0f}/{cpu[name]:.0f} µs")

