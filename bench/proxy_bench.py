"""Figures 1-4, 7 and 8: the proxy against the direct path and LiteLLM, same mock, same run.

Processes: the mock upstream, the proxy (recording ON into the bench PostgreSQL) and LiteLLM each
run in their own process; load comes from wrk (C) or ``bench.loadgen`` (a third process).
Rounds interleave direct / proxy / LiteLLM so that background noise hits all of them alike;
each figure is the median over rounds of (proxied − direct) measured back to back.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import time
from typing import Any

from bench import litellm_setup
from bench.common import DATA_DIR as D
from bench.common import (
    PY,
    Child,
    Figure,
    children,
    cpu_seconds,
    create_database,
    median,
    paused,
    pct,
    settle,
    spawn,
    start_mock,
    start_proxy,
    wrk,
)


def _children_cpu() -> float:
    """CPU seconds of this process's waited-for children (wrk runs as one, via subprocess.run)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _loadgen(*args: str, timeout: float = 300) -> dict[str, Any]:
    out = subprocess.run([PY, "-m", "bench.loadgen", *args], capture_output=True, text=True, timeout=timeout,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _f(x: float, unit: str = "ms", nd: int = 2) -> str:
    return f"{x:.{nd}f} {unit}".strip()


class ProxyBench:
    def __init__(self, quick: bool, log: Any) -> None:
        self.quick = quick
        self.log = log
        self.rounds = 2 if quick else 3
        self.secs = 3 if quick else 4
        self.figures: list[Figure] = []
        self.extra: dict[str, Any] = {}
        self.bare: dict[str, tuple[str, int]] = {}
        self.peers: dict[str, int] = {}
        self.mock_pid = 0

    async def run(self) -> list[Figure]:
        dsn = await create_database("bench_proxy", fresh=True)
        with children() as kids:
            mock = start_mock()
            kids.append(mock)
            proxy = start_proxy(mock.info["url"], dsn, D / "proxy-data")
            kids.append(proxy)
            lite: Child | None = None
            why = litellm_setup.available()
            if why is None:
                try:
                    lite = litellm_setup.start(mock.info["url"])
                    kids.append(lite)
                except RuntimeError as exc:
                    why = str(exc)
            self.extra["litellm"] = lite.info["version"] if lite else f"not run: {why}"
            self.log(f"  litellm: {self.extra['litellm']}")
            targets = {"direct": (mock.info["url"], mock.pid), "proxy": (proxy.info["proxy_url"], proxy.pid)}
            if lite is not None:
                targets["litellm"] = (lite.info["proxy_url"], lite.pid)
            # Reference forwarders without recording: what Hypercorn and aiohttp.web cost by themselves.
            bare = {}
            for kind in ("asgi", "aiohttp"):
                child = spawn([PY, "-m", "bench.bare", kind, mock.info["url"]])
                kids.append(child)
                bare[f"bare-{kind}"] = (child.info["proxy_url"], child.pid)
            for url, _ in (targets | bare).values():
                wrk(url, 8, 1)  # warm-up: connections, caches, allocator
            waited = settle([pid for _, pid in (targets | bare).values()])
            self.log(f"  settled after {waited:.1f} s")
            self.extra["settle_s"] = round(waited, 1)
            # LiteLLM and the references sleep (SIGSTOP) while another target is measured.
            self.peers = {name: pid for name, (_, pid) in (targets | bare).items() if name not in ("direct", "proxy")}
            self.bare = bare
            self.mock_pid = mock.pid
            self._latency(targets | bare, 1, "1", seq=True)
            self._latency(targets | bare, 32, "2")
            self._throughput(targets | bare, 64)
            if lite is not None:
                self.peers.pop("litellm", None)
                lite.stop()
                kids.remove(lite)
            self._streaming(mock, proxy, dsn)
            self._fanout(proxy, dsn)
            proxy.stop()
            kids.remove(proxy)
            fresh = start_proxy(mock.info["url"], dsn, D / "proxy-memory")  # its own warm-up, not the streams'
            kids.append(fresh)
            self._memory(fresh)
        return self.figures

    def _peers_except(self, name: str) -> list[int]:
        """The peers (LiteLLM, references) to keep SIGSTOPped while ``name`` is measured."""
        return [pid for peer, pid in self.peers.items() if peer != name]

    # -- 1, 2: added latency ---------------------------------------------------------------

    def _latency(self, targets: dict[str, tuple[str, int]], conc: int, fig: str, seq: bool = False) -> None:
        res: dict[str, list[dict[str, Any]]] = {k: [] for k in targets}
        for _ in range(self.rounds):
            for name, (url, pid) in targets.items():
                with paused(self._peers_except(name)):
                    c0 = cpu_seconds(pid)
                    r = wrk(url, conc, self.secs)
                    r["cpu_us"] = (cpu_seconds(pid) - c0) / max(1, r["requests"]) * 1e6
                res[name].append(r)
        d50 = [r["p50_us"] / 1000 for r in res["direct"]]
        d99 = [r["p99_us"] / 1000 for r in res["direct"]]
        add50 = median([p["p50_us"] / 1000 - d for p, d in zip(res["proxy"], d50, strict=True)])
        add99 = median([p["p99_us"] / 1000 - d for p, d in zip(res["proxy"], d99, strict=True)])
        cpu = median([r["cpu_us"] for r in res["proxy"]])
        bare_notes = [f"{k} (no recording): +{median([p['p50_us'] / 1000 - d for p, d in zip(v, d50, strict=True)]):.2f}"
                      f" ms p50, {median([r['cpu_us'] for r in v]):.0f} µs CPU/request"
                      for k, v in res.items() if k.startswith("bare-")]
        self.extra[f"fig{fig}"] = {k: [{x: round(r[x], 1) for x in ("rps", "p50_us", "p99_us", "cpu_us")}
                                       for r in v] for k, v in res.items()}
        lite50 = None
        if "litellm" in res:
            lite50 = median([p["p50_us"] / 1000 - d for p, d in zip(res["litellm"], d50, strict=True)])
            lite99 = median([p["p99_us"] / 1000 - d for p, d in zip(res["litellm"], d99, strict=True)])
        base = f"direct p50 {median(d50):.2f} ms"
        t50, t99 = (1.0, 3.0) if seq else (3.0, 15.0)
        label = "1 client sequential" if seq else f"{conc} concurrent clients"
        self.figures.append(Figure(fig, f"added latency p50, non-streaming, {label}", f"≤ {t50} ms",
                                   _f(add50), base, f"{(median(d50) + add50) / median(d50):.1f}× direct",
                                   add50 <= t50, [f"proxy CPU {cpu:.0f} µs/request", *bare_notes,
                                                  *([f"servers idle {self.extra['settle_s']} s after start; LiteLLM "
                                                     "and the references paused (SIGSTOP) while others are measured"]
                                                    if seq and "settle_s" in self.extra else [])]))
        self.figures.append(Figure(fig, f"added latency p99, {label}", f"≤ {t99} ms", _f(add99),
                                   f"direct p99 {median(d99):.2f} ms", "—", add99 <= t99))
        if lite50 is not None:
            ok = add50 <= lite50 / 2 if seq else None
            self.figures.append(Figure(fig, f"added p50 vs LiteLLM, {label}",
                                       "≤ ½ LiteLLM's" if seq else "(report)", _f(add50),
                                       f"LiteLLM +{lite50:.2f} ms (p99 +{lite99:.2f} ms)",
                                       f"{add50 / lite50:.2f}" if lite50 > 0 else "—", ok))
        self.log(f"  fig {fig}: +{add50:.2f}/+{add99:.2f} ms (litellm +{lite50})  cpu {cpu:.0f}us/req")

    # -- 3: throughput ---------------------------------------------------------------------

    def _throughput(self, targets: dict[str, tuple[str, int]], conc: int) -> None:
        res: dict[str, list[float]] = {k: [] for k in targets}
        cpu: dict[str, dict[str, list[float]]] = {k: {"server": [], "mock": [], "wrk": []} for k in targets}
        for _ in range(self.rounds):
            for name, (url, pid) in targets.items():
                with paused(self._peers_except(name)):
                    c0, m0, w0 = cpu_seconds(pid), cpu_seconds(self.mock_pid), _children_cpu()
                    r = wrk(url, conc, self.secs)
                    n = max(1, r["requests"]) / 1e6
                    cpu[name]["server"].append((cpu_seconds(pid) - c0) / n)
                    cpu[name]["mock"].append((cpu_seconds(self.mock_pid) - m0) / n)
                    cpu[name]["wrk"].append((_children_cpu() - w0) / n)
                res[name].append(r["rps"] if not r["errors_status"] else r["rps"] * 0)
        ratios = [p / d for p, d in zip(res["proxy"], res["direct"], strict=True)]
        for k in [k for k in res if k.startswith("bare-")]:
            self.extra[f"fig3_{k}_ratio"] = median([p / d for p, d in zip(res[k], res["direct"], strict=True)])
        ratio = median(ratios)
        note = ", ".join(f"{k} {median(v):,.0f} req/s" for k, v in res.items()) + "; " + ", ".join(
            f"{k} {self.extra[f'fig3_{k}_ratio'] * 100:.0f} % of direct" for k in res if k.startswith("bare-"))
        self.extra["fig3"] = res
        self.extra["fig3_cpu_us"] = {k: {x: round(median(v), 1) for x, v in c.items()} for k, c in cpu.items()}
        budget_note = self._cpu_budget(res, cpu)
        self.figures.append(Figure("3", f"throughput at {conc} clients (proxied / direct)", "≥ 60 %",
                                   f"{median(res['proxy']):,.0f} req/s", f"direct {median(res['direct']):,.0f} req/s",
                                   f"{ratio * 100:.0f} %", ratio >= 0.60, [note, budget_note]))
        self.log(f"  fig 3: {note} ratio {ratio:.2f}")
        self.log(f"  fig 3: {budget_note}")

    def _cpu_budget(self, res: dict[str, list[float]], cpu: dict[str, dict[str, list[float]]]) -> str:
        """How much CPU per request a forwarder may use if it is to reach 60 % of direct here.

        At 60 % of the direct rate, the mock and wrk still need their CPU per request (measured in
        the same rounds); what is left of the machine's cores, divided by that rate, is the most a
        forwarder can spend per request. Set against what each forwarder measurably spends.
        """
        cores = os.cpu_count() or 1
        rate = 0.6 * median(res["direct"])
        mock_us = median(cpu["proxy"]["mock"])
        wrk_us = median(cpu["proxy"]["wrk"])
        budget = (cores * 1e6 - rate * (mock_us + wrk_us)) / rate
        self.extra["fig3_budget_us"] = round(budget, 1)
        spent = ", ".join(f"{k} {median(c['server']):.0f} µs" for k, c in cpu.items() if k != "direct")
        return (f"CPU budget at 60 % of direct ({rate:,.0f} req/s on {cores} cores, mock {mock_us:.0f} µs + wrk "
                f"{wrk_us:.0f} µs per request): {budget:.0f} µs/request for the forwarder; spent at 64 clients: "
                f"{spent}")

    # -- 4: streaming ----------------------------------------------------------------------

    def _streaming(self, mock: Child, proxy: Child, dsn: str) -> None:
        n = "100" if self.quick else "200"
        d_first, p_first = [], []
        b_first: dict[str, list[float]] = {k: [] for k in self.bare}
        for _ in range(self.rounds):
            with paused(list(self.peers.values())):
                d_first.append(median(_loadgen("ttft", mock.info["url"], "--n", n)["ttft_ms"]))
                p_first.append(median(_loadgen("ttft", proxy.info["proxy_url"], "--n", n)["ttft_ms"]))
            for k, (url, _) in self.bare.items():
                with paused(self._peers_except(k)):
                    b_first[k].append(median(_loadgen("ttft", url, "--n", n)["ttft_ms"]))
        over = median([p - d for p, d in zip(p_first, d_first, strict=True)])
        bare_notes = [f"{k} (no recording): +{median([b - d for b, d in zip(v, d_first, strict=True)]):.2f} ms"
                      for k, v in b_first.items()]
        self.figures.append(Figure("4", "streaming TTFT overhead p50", "≤ 1 ms", _f(over),
                                   f"direct TTFT {median(d_first):.2f} ms",
                                   f"{median(p_first) / median(d_first):.1f}× direct", over <= 1.0, bare_notes))
        self.log(f"  fig 4 ttft: +{over:.2f} ms; " + "; ".join(bare_notes))

        # Per-event relay delay, against an upstream that stamps each event with its send time.
        stamp = spawn([PY, "-m", "bench.servers", "stamp"])
        sproxy = start_proxy(stamp.info["url"], dsn, D / "proxy-stamp")
        try:
            args = ["--n", "16" if self.quick else "40", "--events", "50", "--delay-ms", "2", "--conc", "4"]
            dl, pl = [], []
            for _ in range(self.rounds):
                dl += _loadgen("stamp", stamp.info["url"], *args)["lag_ms"]
                pl += _loadgen("stamp", sproxy.info["proxy_url"], *args)["lag_ms"]
        finally:
            sproxy.stop()
            stamp.stop()
        add50 = median(pl) - median(dl)
        p99 = pct(pl, 0.99)
        self.figures.append(Figure("4", "per-event relay delay p50 (added)", "≤ 1 ms", _f(add50),
                                   f"direct event lag p50 {median(dl):.2f} ms", "—", add50 <= 1.0,
                                   [f"{len(pl)} events, 4 concurrent streams, 2 ms apart"]))
        self.figures.append(Figure("4", "per-event arrival after upstream send, p99 (proxied)", "≤ 5 ms",
                                   _f(p99), f"direct p99 {pct(dl, 0.99):.2f} ms",
                                   f"{p99 - pct(dl, 0.99):+.2f} ms", p99 <= 5.0))
        self.log(f"  fig 4 events: +{add50:.2f} ms p50, p99 {p99:.2f} ms (direct {pct(dl, 0.99):.2f})")

        # 1,000 concurrent open streams: RSS per open stream.
        url = proxy.info["proxy_url"]
        _loadgen("open", url, "--streams", "200", "--events", "3", "--delay-ms", "50")  # warm-up
        time.sleep(1.0)
        base = proxy.rss()
        proc = subprocess.Popen([PY, "-m", "bench.loadgen", "open", url, "--streams", "1000", "--events", "60",
                                 "--delay-ms", "500"], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        peak = base
        samples = 0
        while proc.poll() is None and samples < 12:
            peak = max(peak, proxy.rss())
            samples += 1
            time.sleep(0.25)
        out, _ = proc.communicate(timeout=120)
        res = json.loads(out.strip().splitlines()[-1])
        open_now = first.get("open_now") or 0  # streams open at once when the last one opened
        per = (peak - base) / max(1, open_now)
        errors = sum(res["errors"].values())
        ok = per <= 64 * 1024 and errors == 0 and res["complete"] == 1000 and open_now == 1000
        self.figures.append(Figure("4", "1,000 concurrent open streams: RSS per open stream", "≤ 64 KB, 0 errors",
                                   f"{per / 1024:.1f} KB", f"idle RSS {base / 2**20:.0f} MB",
                                   f"peak {peak / 2**20:.0f} MB", ok,
                                   [f"{open_now} open at once after {first.get('all_open_s') or 0:.1f} s; complete "
                                    f"{res['complete']}/1000; errors {res['errors'] or 0}"]))
        self.log(f"  fig 4 open streams: {per / 1024:.1f} KB/stream, complete {res['complete']}, errors {res['errors']}")

    # -- 7: SSE fan-out --------------------------------------------------------------------

    def _fanout(self, proxy: Child, dsn: str) -> None:
        """100 /api/sse subscribers (one process) while another process NOTIFYs 1,000 events/s.

        The events enter through the NOTIFY listener — the path events of other instances take —
        so the figure measures fan-out, not this 2-core machine's request capacity.
        """
        secs = 5 if self.quick else 10
        sub = subprocess.Popen([PY, "-m", "bench.loadgen", "subs", proxy.info["dashboard_url"],
                                proxy.info["dashboard_key"], "--subs", "100", "--seconds", str(secs + 2)],
                               stdout=subprocess.PIPE, text=True)
        assert sub.stdout is not None
        sub.stdout.readline()  # all subscribed
        drv = _loadgen("notify", dsn, "--rate", "1000", "--seconds", str(secs), timeout=120)
        out, _ = sub.communicate(timeout=120)
        res = json.loads(out.strip().splitlines()[-1])
        d = res["delivery_ms"]
        p99 = pct(d, 0.99)
        behind = drv["sent"] - res["min_received"]
        ok = p99 <= 100 and res["disconnected"] == 0 and drv["rate"] >= 900 and behind <= 0.05 * drv["sent"]
        name = "SSE fan-out, 100 subscribers: delivery p99"
        self.figures.append(Figure("7", name, "≤ 100 ms at 1,000 ev/s",
                                   _f(p99, nd=1), f"{drv['rate']:.0f} events/s offered", f"p50 {median(d):.1f} ms",
                                   ok, [f"received min/max {res['min_received']}/{res['max_received']} of "
                                        f"{drv['sent']}; disconnected {res['disconnected']}"]))
        self.log(f"  fig 7: p99 {p99:.1f} ms p50 {median(d):.1f} at {drv['rate']:.0f}/s; min/max "
                 f"{res['min_received']}/{res['max_received']} of {drv['sent']} disc {res['disconnected']}")

    # -- 8: memory -------------------------------------------------------------------------

    def _memory(self, proxy: Child) -> None:
        url = proxy.info["proxy_url"]
        hour = 20_000 if self.quick else 60_000
        wrk(url, 16, 5)
        time.sleep(1)
        warm = proxy.rss()
        done = 0
        t0 = time.perf_counter()
        while done < hour and time.perf_counter() - t0 < 150:
            done += wrk(url, 16, 5)["requests"]
        time.sleep(1.5)  # the writer drains
        after = proxy.rss()
        growth = (after - warm) / warm
        self.figures.append(Figure("8", f"RSS after {done:,} requests vs after warm-up", "within 20 %",
                                   f"{after / 2**20:.1f} MB", f"warm {warm / 2**20:.1f} MB", f"{growth * 100:+.1f} %",
                                   abs(growth) <= 0.20))
        self.log(f"  fig 8: {warm / 2**20:.1f} -> {after / 2**20:.1f} MB after {done} requests")
