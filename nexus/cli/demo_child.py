"""``python -m nexus.cli.demo_child``: the server half of ``nexus demo``, in its own process.

It runs the simulated Anthropic upstream, the real proxy and dashboard API (``run_servers``:
embedded PostgreSQL, recorder, broker, free ports) and the traffic generator, which sends real
HTTP through the proxy. When everything listens it prints **one JSON line** on stdout
(``proxy_url``, ``dashboard_url``, ``dashboard_key``, ``database_url``, ``pid``); at exit it prints
one more (``{"event": "stopped", "traffic": {...}}``). Logs go to stderr.

Why a separate process: the TUI (Textual) and the servers (Quart/Hypercorn) then never share an
event loop or a GIL-bound redraw, and the parent can always stop everything with one SIGTERM.
It also stops when its stdin closes — the parent holds the other end, so if the parent dies
(even by SIGKILL) nothing is left running.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from nexus.core.settings import load_settings
from nexus.sim.mock import MockConfig, MockUpstream
from nexus.sim.traffic import TrafficProfile, run_traffic

log = logging.getLogger("nexus.cli.demo")

# At the default rate the busiest simulated accounts burn ~200-300k tokens/min (long cached system
# prompts), 60-90M per 5-hour window: a 50M limit puts them on course to run out a few hours in,
# so "% of limit" climbs visibly and the exhaustion column has something to say.
DEMO_TOKEN_WINDOW_LIMIT = 50_000_000

# Subscription windows in the demo (nexus.sim.mock.limits): budgets small enough that the bars
# climb while you watch; dana's own 5-hour budget fills about a minute in — around the first
# incident — so one account is seen hitting its window (429 rejected) and the token-window alert.
DEMO_MOCK_LIMITS: dict[str, Any] = {
    "unified_5h_tokens": 20_000_000,
    "unified_7d_tokens": 200_000_000,
    "unified_7d_oi_tokens": 60_000_000,
    "unified_budgets": {"sk-ant-oat01-demo-dana": 80_000},
}

# Alerts in the demo: the guide's rules with short durations so an incident is seen firing and
# resolving within a couple of minutes (a real deployment keeps the 5 / 10 minute defaults).
DEMO_ALERT_SETTINGS: dict[str, Any] = {
    "alert_error_rate_window_s": 60.0,
    "alert_eval_interval_s": 5.0,
    "alert_min_requests": 5,
    "alert_repeat_interval_s": 600.0,
}
# A simulated incident: this share of requests fails for this long, first after FIRST_AT seconds
# and again every EVERY seconds; `curl -X POST <upstream>/_mock/incident` forces one at any time.
INCIDENT_RATE = 0.5
INCIDENT_SECONDS = 90.0
INCIDENT_FIRST_AT = 60.0
INCIDENT_EVERY = 900.0


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _watch_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Block on stdin in a thread; EOF means the parent is gone (or asked us to stop)."""
    try:
        while sys.stdin.buffer.read(1024):
            pass
    except (OSError, ValueError):
        pass
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(stop.set)


async def start_incident(upstream_url: str, rate: float = INCIDENT_RATE,
                         seconds: float = INCIDENT_SECONDS) -> None:
    """Ask the mock upstream to fail ``rate`` of requests for ``seconds`` (an error burst)."""
    import aiohttp

    async with aiohttp.ClientSession() as session, session.post(
        f"{upstream_url}/_mock/incident", params={"rate": str(rate), "seconds": str(seconds)},
        timeout=aiohttp.ClientTimeout(total=5),
    ) as resp:
        resp.raise_for_status()


async def _incidents(upstream_url: str, first_at: float, every: float) -> None:
    """Simulated incidents on a schedule, so the alerts panel has something to show."""
    if first_at < 0:
        return
    await asyncio.sleep(first_at)
    while True:
        try:
            await start_incident(upstream_url)
        except Exception as exc:  # noqa: BLE001 - the demo goes on without its incident
            log.warning("could not start a simulated incident: %s", exc)
        if every <= 0:
            return
        await asyncio.sleep(every)


async def run_demo_servers(data_dir: Path, rate: float, duration: float | None = None,
                           seed: int | None = None, watch_stdin: bool = True,
                           incident_first_at: float = INCIDENT_FIRST_AT,
                           incident_every: float = INCIDENT_EVERY) -> dict[str, Any]:
    from proxy.service import run_servers  # the CLI layer may import the server, lazily

    base = load_settings()
    settings = base.with_overrides(
        nexus_data_dir=data_dir,
        # A limit so the token-window panel has something to warn about (unless one is set).
        token_window_limit=base.limits.token_window_limit or DEMO_TOKEN_WINDOW_LIMIT,
        database_url=None,  # the demo never writes simulated traffic into a real database
        proxy_host="127.0.0.1", proxy_port=0, dashboard_port=0,
        shutdown_grace_s=3.0, record_flush_interval_s=0.1,
        **{k: v for k, v in DEMO_ALERT_SETTINGS.items() if k.upper() not in base.explicit},
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    if watch_stdin:
        threading.Thread(target=_watch_stdin, args=(loop, stop), daemon=True, name="stdin-watch").start()

    servers_stop = asyncio.Event()
    traffic_stop = asyncio.Event()
    ready_info: dict[str, Any] = {}
    ready_evt = asyncio.Event()

    def ready(info: dict[str, Any]) -> None:
        ready_info.update(info)
        ready_evt.set()

    counters: dict[str, Any] = {}
    async with MockUpstream(MockConfig(seed=seed, **DEMO_MOCK_LIMITS)) as upstream:
        if not settings.channels.webhook_url:
            # Without a configured webhook, alerts are delivered to the mock's capture endpoint
            # (logged by the demo): the whole path, rule → channel → HTTP, is exercised.
            settings = settings.with_overrides(alert_webhook_url=upstream.url + "/_mock/webhook")
        servers = asyncio.create_task(run_servers(settings, upstream_url=upstream.url, ready=ready,
                                                  stop=servers_stop), name="demo-servers")
        waiter = asyncio.create_task(ready_evt.wait())
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({servers, waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if servers.done():  # failed to start: let the exception (one line) reach the parent
            stopper.cancel()
            servers.result()
            return {}
        if not ready_evt.is_set():  # asked to stop while starting
            servers_stop.set()
            await servers
            return {}
        _emit({"event": "ready", "proxy_url": ready_info["proxy_url"],
               "dashboard_url": ready_info["dashboard_url"], "dashboard_key": ready_info["dashboard_key"],
               "database_url": ready_info.get("database_url"), "upstream_url": upstream.url,
               "data_dir": str(data_dir), "pid": os.getpid()})
        profile = TrafficProfile(rate_per_s=rate, seed=seed)
        traffic = asyncio.create_task(run_traffic(ready_info["proxy_url"], profile, traffic_stop),
                                      name="demo-traffic")
        incidents = asyncio.create_task(_incidents(upstream.url, incident_first_at, incident_every),
                                        name="demo-incidents")
        if duration is not None:
            loop.call_later(duration, stop.set)
        await asyncio.wait({stopper, servers}, return_when=asyncio.FIRST_COMPLETED)
        traffic_stop.set()
        incidents.cancel()
        with contextlib.suppress(Exception):
            counters = await asyncio.wait_for(traffic, 10)
        servers_stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(servers, 30)
        stopper.cancel()
    return counters


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nexus.cli.demo_child")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--rate", type=float, default=4.0)
    p.add_argument("--duration", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--no-stdin-watch", action="store_true")
    p.add_argument("--incident-at", type=float, default=INCIDENT_FIRST_AT,
                   help="seconds until the first simulated error burst (negative: none)")
    p.add_argument("--incident-every", type=float, default=INCIDENT_EVERY,
                   help="seconds between simulated error bursts (0: only one)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    Path(args.data_dir).mkdir(parents=True, exist_ok=True)
    try:
        counters = asyncio.run(run_demo_servers(Path(args.data_dir), args.rate, args.duration, args.seed,
                                                watch_stdin=not args.no_stdin_watch,
                                                incident_first_at=args.incident_at,
                                                incident_every=args.incident_every))
    except Exception as exc:  # the parent shows this line to the user
        _emit({"event": "error", "message": f"{exc.__class__.__name__}: {exc}"})
        log.exception("demo servers failed")
        return 1
    _emit({"event": "stopped", "traffic": counters})
    return 0


if __name__ == "__main__":
    sys.exit(main())
