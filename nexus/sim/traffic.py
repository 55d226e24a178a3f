"""Traffic that looks like real Claude use, sent as real HTTP requests through the proxy.

Why: ``nexus demo`` must show a monitor with something worth watching — several teams (domains)
and people (accounts), a mix of models, streaming and not, bursts, prompt-cache hits, a few rate
limits and overloads, one stream dying mid-way — and it must exercise the real forwarding path,
not a shortcut into the recorder. The generator only speaks HTTP: it steers the simulated
upstream with ``x-mock-*`` headers, which the proxy forwards unchanged.

Shape of the traffic:

* Poisson arrivals at ``rate_per_s`` plus a burst of ``burst_size`` requests every
  ``burst_every_s`` (an agent fanning out sub-tasks).
* The domain is the ``Host`` header (the proxy takes the domain from it); the account is the
  ``x-api-key`` (``sk-ant-demo-<name>``) or, for team beta and alice, an OAuth bearer token
  (``sk-ant-oat01-demo-<name>``), as Claude Code on a subscription sends it — the simulated
  upstream answers those with the subscription rate-limit headers (5-hour and weekly windows).
* Each account has a long system prompt marked ``cache_control``: the upstream reports a cache
  write the first time and cache reads afterwards, as the real API does.
* Claude Code sessions with sub-agents and tags, in all three session formats
  (``nexus/sim/traffic_sessions.py``).
* Every billing dimension shows up: some fast-mode calls (``speed: fast``) on the models that
  offer it, US-only inference (``inference_geo: us``; the research team always asks for it),
  server-side web searches and fetches, extended thinking.

Only aiohttp is used (``nexus/`` must not import Quart or Textual).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from nexus.sim.traffic_content import _BETAS, _FILLER, _TASKS, _TOOLS, add_billing
from nexus.sim.traffic_sessions import SessionPlanner

__all__ = ["TrafficProfile", "run_traffic", "DOMAINS", "MODELS", "UNKNOWN_MODEL"]

log = logging.getLogger("nexus.sim.traffic")


@dataclass
class TrafficProfile:
    """How much and what kind of traffic; ``seed`` makes the sequence of choices repeatable.

    ``latency_scale`` multiplies every simulated think time and per-event delay: 1.0 looks like
    the real API (hundreds of ms to first token), tests use a small value to stay fast.
    ``drain_s`` is how long in-flight requests may finish after ``stop`` before being cancelled
    (long enough for a typical stream to end cleanly, short enough that ``q`` feels immediate).
    """

    rate_per_s: float = 4.0
    error_share: float = 0.04
    stream_share: float = 0.6
    burst_every_s: float = 30
    burst_size: int = 20
    seed: int | None = None
    max_concurrency: int = 16
    latency_scale: float = 1.0
    drain_s: float = 1.0


@dataclass(frozen=True)
class _Account:
    name: str
    domain: str
    oauth: bool = False
    cache_ttl: str = "5m"

    def auth_headers(self) -> dict[str, str]:
        if self.oauth:
            return {"authorization": f"Bearer sk-ant-oat01-demo-{self.name}"}
        return {"x-api-key": f"sk-ant-demo-{self.name}"}


@dataclass(frozen=True)
class _Model:
    id: str
    weight: float
    think_ms: float  # median time to first byte
    event_ms: float  # median gap between stream events


DOMAINS: dict[str, list[str]] = {
    "team-alpha.example.com": ["alice", "bob", "chen"],
    "team-beta.example.com": ["dana", "eli"],
    "ci.example.com": ["ci-bot"],
    "research.example.org": ["farah"],
}
"""Domain (Host header) → account names."""

_DOMAIN_WEIGHTS = {"team-alpha.example.com": 0.45, "team-beta.example.com": 0.25,
                   "ci.example.com": 0.15, "research.example.org": 0.15}

UNKNOWN_MODEL = "claude-nebula-preview"
"""A model id no price table knows: the monitor must show it as unpriced, never as $0."""

MODELS: tuple[_Model, ...] = (
    _Model("claude-sonnet-4-5-20250929", 0.26, 650, 18),
    _Model("claude-haiku-4-5-20251001", 0.22, 280, 7),
    _Model("claude-sonnet-5-5", 0.14, 600, 16),
    _Model("claude-opus-5-5", 0.10, 1100, 26),
    _Model("claude-opus-4-5-20251101", 0.06, 1200, 30),
    _Model("claude-opus-4-1-20250805", 0.04, 1400, 35),
    _Model("claude-opus-4-6", 0.08, 1100, 28),
    _Model("claude-fable-5-1", 0.06, 1500, 35),
    _Model(UNKNOWN_MODEL, 0.02, 700, 20),
)

_ACCOUNTS: tuple[_Account, ...] = tuple(
    _Account(name, domain, oauth=(domain == "team-beta.example.com" or name == "alice"),
             cache_ttl="1h" if domain == "ci.example.com" else "5m")
    for domain, names in DOMAINS.items() for name in names
)

def _system_prompt(account: _Account) -> str:
    """A long, per-account, stable system prompt: the cacheable prefix of every request."""
    size = 3000 + (sum(map(ord, account.name)) * 97) % 20000
    base = f"You are the coding assistant of {account.name} at {account.domain}. Follow the repository's style. "
    return (base + _FILLER * (size // len(_FILLER) + 1))[:size]


class _Generator:
    """One run: choices (seeded), the HTTP session, counters."""

    def __init__(self, proxy_url: str, profile: TrafficProfile,
                 on_result: Callable[[dict[str, Any]], None] | None) -> None:
        self.base = proxy_url.rstrip("/")
        self.profile = profile
        self.rng = random.Random(profile.seed)
        self.on_result = on_result
        self.sent = 0
        self.ok = 0
        self.errors = 0
        self.by_status: Counter[int] = Counter()
        self.by_model: Counter[str] = Counter()
        self.by_domain: Counter[str] = Counter()
        self.by_error_type: Counter[str] = Counter()
        self.streams = 0
        self.count_tokens = 0
        self.tool_use = 0
        self.cache_reads = 0
        self.fast = 0
        self.us_only = 0
        self.web_search = 0
        self.thinking = 0
        self.cancelled = 0
        self._callback_failed = False
        self.planner = SessionPlanner(self.rng)
        self._systems = {a: _system_prompt(a) for a in _ACCOUNTS}
        self._model_weights = [m.weight for m in MODELS]

    # ---------------------------------------------------------------- choosing a request

    def _pick_account(self) -> _Account:
        domain = self.rng.choices(list(_DOMAIN_WEIGHTS), weights=list(_DOMAIN_WEIGHTS.values()))[0]
        return self.rng.choice([a for a in _ACCOUNTS if a.domain == domain])

    def plan(self, account: _Account | None = None, in_burst: bool = False) -> dict[str, Any]:
        """Decide everything about one request up front (so a seed fixes the whole run)."""
        rng, p = self.rng, self.profile
        account = account or self._pick_account()
        model = rng.choices(MODELS, weights=self._model_weights)[0]
        if in_burst and model.id.startswith("claude-opus"):
            model = MODELS[1]  # sub-agents run on the small model
        kind = "count_tokens" if rng.random() < 0.05 else "message"
        stream = kind == "message" and rng.random() < p.stream_share
        headers: dict[str, str] = {"Host": account.domain, "anthropic-version": "2023-06-01",
                                   "content-type": "application/json",
                                   "user-agent": "claude-cli/2.1.0 (external, cli)" if account.domain != "ci.example.com"
                                   else "anthropic-python/0.75.0", **account.auth_headers()}
        if rng.random() < 0.35:
            headers["anthropic-beta"] = ",".join(rng.sample(_BETAS, rng.randint(1, 2)))
        error: str | None = None
        if kind == "message" and rng.random() < p.error_share:
            error = rng.choices(("429", "529", "500", "stream"), weights=(0.35, 0.25, 0.15, 0.25))[0]
            if error == "stream":
                stream = True
                headers["x-mock-stream-error"] = "overloaded_error"
            else:
                headers["x-mock-status"] = error
                if error in ("429", "529"):
                    headers["x-mock-retry-after"] = str(rng.randint(1, 30))

        turns = rng.randint(1, 4)
        messages: list[dict[str, Any]] = []
        for i in range(turns):
            task = rng.choice(_TASKS)
            extra = _FILLER * rng.randint(0, 12)
            messages.append({"role": "user", "content": f"{task}\n\n{extra}"})
            if i < turns - 1:
                messages.append({"role": "assistant", "content": "Done. " + rng.choice(_TASKS)})
        body: dict[str, Any] = {"model": model.id, "messages": messages}
        cached = account.domain != "research.example.org" or rng.random() < 0.3
        cc: dict[str, str] = {"type": "ephemeral"}
        if account.cache_ttl == "1h":
            cc["ttl"] = "1h"
        system_block: dict[str, Any] = {"type": "text", "text": self._systems[account]}
        if cached:
            system_block["cache_control"] = cc
        body["system"] = [system_block]
        tool = kind == "message" and rng.random() < 0.08
        if tool:
            body["tools"] = list(_TOOLS)
            body["tool_choice"] = {"type": "any"}
        dims = add_billing(rng, body, model.id, account.domain == "research.example.org") if kind == "message" else {}
        if kind == "message":
            max_tokens = rng.choice((1024, 4096, 8192, 16000, 32000))
            body["max_tokens"] = max_tokens
            if dims.get("thinking"):
                body["thinking"] = {"type": "enabled", "budget_tokens": max(512, min(4096, max_tokens // 2))}
            out = min(max_tokens, max(1, int(rng.lognormvariate(5.2, 0.9))))
            headers["x-mock-output-tokens"] = str(out)
            headers["x-mock-events"] = str(max(2, min(16, out // 40)))
            if stream:
                body["stream"] = True
        scale = p.latency_scale
        think = model.think_ms * rng.lognormvariate(0, 0.35) * scale
        headers["x-mock-latency-ms"] = f"{think:.1f}"
        if stream:
            headers["x-mock-event-delay-ms"] = f"{model.event_ms * rng.lognormvariate(0, 0.3) * scale:.1f}"
        self.planner.attribute(account.name, account.domain, headers, body, in_burst)
        path = "/v1/messages/count_tokens" if kind == "count_tokens" else "/v1/messages"
        if account.domain != "ci.example.com" and kind == "message":
            path += "?beta=true"  # Claude Code's habit; the proxy must pass query strings on
        return {"account": account, "model": model.id, "kind": kind, "stream": stream, "error": error,
                "tool": tool, "path": path, "headers": headers, "body": orjson.dumps(body), **dims}

    # ---------------------------------------------------------------- sending

    async def send(self, session: aiohttp.ClientSession, plan: dict[str, Any]) -> None:
        """Send one request and account for it; HTTP and connection errors are results, not raises."""
        account: _Account = plan["account"]
        self.sent += 1
        self.by_model[plan["model"]] += 1
        self.by_domain[account.domain] += 1
        if plan["stream"]:
            self.streams += 1
        if plan["kind"] == "count_tokens":
            self.count_tokens += 1
        if plan["tool"]:
            self.tool_use += 1
        self.fast += plan.get("fast", False)
        self.us_only += plan.get("us_only", False)
        self.web_search += plan.get("web_search", False)
        self.thinking += plan.get("thinking", False)
        result: dict[str, Any] = {
            "ts": time.time(), "domain": account.domain, "account": account.name, "model": plan["model"],
            "kind": plan["kind"], "stream": plan["stream"], "status": 0, "ok": False, "error_type": None,
            "latency_ms": None, "ttft_ms": None, "input_tokens": None, "output_tokens": None,
            "cache_read_input_tokens": None, "cache_creation_input_tokens": None, "request_id": None,
        }
        t0 = time.monotonic()
        try:
            async with session.post(self.base + plan["path"], data=plan["body"], headers=plan["headers"]) as resp:
                result["status"] = resp.status
                result["request_id"] = resp.headers.get("request-id")
                if resp.status == 200 and plan["stream"]:
                    await self._read_stream(resp, result, t0)
                else:
                    raw = await resp.read()
                    result["ttft_ms"] = (time.monotonic() - t0) * 1000
                    self._read_body(resp.status, raw, result)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            result["error_type"] = result["error_type"] or type(exc).__name__
        result["latency_ms"] = (time.monotonic() - t0) * 1000
        result["ok"] = result["status"] == 200 and result["error_type"] is None
        self.by_status[result["status"]] += 1
        if result["ok"]:
            self.ok += 1
        else:
            self.errors += 1
            self.by_error_type[result["error_type"] or f"http_{result['status']}"] += 1
        if result["cache_read_input_tokens"]:
            self.cache_reads += 1
        if self.on_result is not None:
            try:
                self.on_result(result)
            except Exception:  # a broken callback must not stop the traffic
                if not self._callback_failed:
                    self._callback_failed = True
                    log.exception("demo traffic: on_result callback failed (further failures not logged)")

    @staticmethod
    def _read_body(status: int, raw: bytes, result: dict[str, Any]) -> None:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            if status != 200:
                result["error_type"] = f"http_{status}"
            return
        if not isinstance(data, dict):
            return
        if status != 200:
            err = data.get("error")
            result["error_type"] = err.get("type") if isinstance(err, dict) else f"http_{status}"
            return
        usage = data.get("usage")
        if isinstance(usage, dict):
            _take_usage(usage, result)
        elif "input_tokens" in data:  # count_tokens
            result["input_tokens"] = data["input_tokens"]

    @staticmethod
    async def _read_stream(resp: aiohttp.ClientResponse, result: dict[str, Any], t0: float) -> None:
        event = ""
        async for line in resp.content:
            if line.startswith(b"event:"):
                event = line[6:].strip().decode()
                continue
            if not line.startswith(b"data:"):
                continue
            if result["ttft_ms"] is None and event == "content_block_delta":
                result["ttft_ms"] = (time.monotonic() - t0) * 1000
            if event not in ("message_start", "message_delta", "error"):
                continue
            try:
                data = orjson.loads(line[5:])
            except orjson.JSONDecodeError:
                continue
            if event == "message_start":
                _take_usage(data.get("message", {}).get("usage") or {}, result)
            elif event == "message_delta":
                _take_usage(data.get("usage") or {}, result)
            else:
                err = data.get("error")
                result["error_type"] = err.get("type") if isinstance(err, dict) else "stream_error"


def _take_usage(usage: dict[str, Any], result: dict[str, Any]) -> None:
    """Later non-null values win, like the real usage semantics of message_start / message_delta."""
    for key in ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"):
        value = usage.get(key)
        if value is not None:
            result[key] = value


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep, but wake at once when ``stop`` is set; True when stopping."""
    if stop.is_set():
        return True
    if seconds <= 0:
        return False
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    return stop.is_set()


async def run_traffic(
    proxy_url: str,
    profile: TrafficProfile,
    stop: asyncio.Event,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Send demo traffic to ``proxy_url`` until ``stop`` is set; return the counters.

    Concurrency is bounded by ``max_concurrency``: when that many requests are in flight, new
    arrivals wait (rather than piling up tasks), so a slow or dead proxy cannot make the generator
    grow without limit. HTTP errors and refused connections are counted, never raised. When
    ``stop`` is set, scheduling ends at once and in-flight requests get ``drain_s`` to finish.

    Returns ``{sent, ok, errors, by_status, by_model, by_domain, by_error_type, streams,
    count_tokens, tool_use, cache_reads, fast, us_only, web_search, thinking, cancelled, sessions,
    duration_s}``;
    ``by_status`` maps the HTTP
    status (0: no response) to a count.
    """
    gen = _Generator(proxy_url, profile, on_result)
    rng = gen.rng
    sem = asyncio.Semaphore(max(1, profile.max_concurrency))
    tasks: set[asyncio.Task[None]] = set()
    timeout = aiohttp.ClientTimeout(total=None, connect=5, sock_read=120)
    connector = aiohttp.TCPConnector(limit=max(1, profile.max_concurrency), force_close=False)
    started = time.monotonic()
    rate = max(profile.rate_per_s, 0.001)
    next_burst = started + profile.burst_every_s if profile.burst_every_s > 0 and profile.burst_size > 0 else math.inf
    burst_left = 0
    burst_account: _Account | None = None

    async def one(plan: dict[str, Any]) -> None:
        try:
            await gen.send(session, plan)
        finally:
            sem.release()

    async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=True) as session:
        try:
            while not stop.is_set():
                now = time.monotonic()
                if burst_left == 0 and now >= next_burst:
                    burst_left = profile.burst_size
                    burst_account = gen._pick_account()
                    next_burst = now + profile.burst_every_s
                if burst_left > 0:
                    gap = rng.expovariate(max(rate * 8, profile.burst_size / 2.0))
                else:
                    gap = min(rng.expovariate(rate), max(0.0, next_burst - now))
                if await _sleep_or_stop(stop, gap):
                    break
                in_burst = burst_left > 0
                if in_burst:
                    burst_left -= 1
                plan = gen.plan(burst_account if in_burst else None, in_burst=in_burst)
                if sem.locked():
                    acquire = asyncio.ensure_future(sem.acquire())
                    stopper = asyncio.ensure_future(stop.wait())
                    done, _ = await asyncio.wait({acquire, stopper}, return_when=asyncio.FIRST_COMPLETED)
                    stopper.cancel()
                    if acquire not in done:
                        acquire.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await acquire
                        if not acquire.cancelled():
                            sem.release()  # acquired in the same instant as stop: give it back
                        break
                else:
                    await sem.acquire()
                task = asyncio.create_task(one(plan), name="demo-traffic-request")
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        finally:
            if tasks:
                _done, pending = await asyncio.wait(set(tasks), timeout=max(0.0, profile.drain_s))
                for task in pending:
                    task.cancel()
                if pending:
                    await asyncio.gather(*pending, return_exceptions=True)
    return {
        "sent": gen.sent, "ok": gen.ok, "errors": gen.errors, "by_status": dict(gen.by_status),
        "by_model": dict(gen.by_model), "by_domain": dict(gen.by_domain),
        "by_error_type": dict(gen.by_error_type), "streams": gen.streams,
        "count_tokens": gen.count_tokens, "tool_use": gen.tool_use, "cache_reads": gen.cache_reads,
        "fast": gen.fast, "us_only": gen.us_only, "web_search": gen.web_search, "thinking": gen.thinking,
        "cancelled": gen.cancelled, "sessions": gen.planner.started, "duration_s": round(time.monotonic() - started, 3),
    }
