"""Alert rules as pure logic: thresholds, hold durations and the fire-once/resolve-once state machine.

Nothing here touches the database, the network or the wall clock. The proxy's evaluator
(``proxy.alerts.manager``) measures things (error counts, latency histograms, token sums, pool usage,
cost) and hands plain numbers to the ``observe_*`` functions; ``step`` then decides, per
``(rule, key)``, whether an alert starts firing, repeats or resolves. Time is always passed in,
so tests drive hours of alert history in microseconds with a fake clock.

The state machine, for one ``(rule, key)``::

    inactive --breach--> pending --breach held for_s--> FIRING (notify)
    pending  --clear---> inactive (nothing sent: a blip is not an incident)
    firing   --breach, repeat interval elapsed--> repeat (notify again)
    firing   --clear---> RESOLVED (notify once) -> inactive
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from nexus.core.errors import ConfigError
from nexus.core.latency import percentile_from_hist
from nexus.core.settings import TOKEN_LIMIT_MODES, Settings
from nexus.core.windows import current_window, learned_limit, session_windows

RULE_ERROR_RATE = "error_rate"
RULE_TOKEN_WINDOW = "token_window"
RULE_DB_POOL = "db_pool"
RULE_P95_LATENCY = "p95_latency"
RULE_DAILY_COST = "daily_cost"
# Watching the watcher: the monitoring's own failures (docs/operations.md).
RULE_CLOCK_SKEW = "clock_skew"  # judged by the shared evaluator from every instance's heartbeat
RULE_RECORDING_STALLED = "recording_stalled"  # judged by each instance about itself (proxy/alerts/watchdog.py)
RULE_JOURNAL_GROWING = "journal_growing"
RULE_CHANNEL_FAILING = "channel_failing"
LOCAL_RULES = (RULE_RECORDING_STALLED, RULE_JOURNAL_GROWING, RULE_CHANNEL_FAILING)
ALL_RULES = (RULE_ERROR_RATE, RULE_TOKEN_WINDOW, RULE_DB_POOL, RULE_P95_LATENCY, RULE_DAILY_COST, RULE_CLOCK_SKEW,
             *LOCAL_RULES)

KIND_FIRING = "firing"
KIND_REPEAT = "repeat"
KIND_RESOLVED = "resolved"

GLOBAL_KEY = "global"

Clock = Callable[[], datetime]


def utc_clock() -> datetime:
    """The default clock; tests inject their own."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class RuleConfig:
    """One rule's knobs: the threshold it compares against and how long a breach must last."""

    name: str
    title: str
    severity: str  # PagerDuty's vocabulary: critical | error | warning | info
    threshold: float
    for_s: float
    enabled: bool = True


@dataclass(frozen=True)
class AlertConfig:
    """Everything the evaluator needs, parsed once from ``Settings`` so bad values fail at start."""

    rules: Mapping[str, RuleConfig]
    eval_interval_s: float = 15.0
    repeat_interval_s: float = 14400.0
    lookback_s: float = 60.0
    min_requests: int = 10
    token_window_s: float = 18000.0
    token_limit_default: float = 0.0
    token_limits: Mapping[str, float] = field(default_factory=dict)
    token_limit_mode: str = "fixed"
    token_learn_days: int = 7
    daily_budget_usd: float = 0.0
    account_budgets_usd: Mapping[str, float] = field(default_factory=dict)
    # Rules each instance judges about itself, without the database (it may be what failed).
    local_rules: Mapping[str, RuleConfig] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, s: Settings) -> AlertConfig:
        mode = (s.alerts.token_limit_mode or "fixed").strip().lower()
        if mode not in TOKEN_LIMIT_MODES:
            raise ConfigError(f"ALERT_TOKEN_LIMIT_MODE: must be one of {', '.join(TOKEN_LIMIT_MODES)}")
        token_limits = parse_key_values("ALERT_TOKEN_LIMITS", s.alerts.token_limits)
        budgets = parse_key_values("ALERT_ACCOUNT_BUDGETS_USD", s.alerts.account_budgets_usd)
        # Measured utilization (Anthropic's rate-limit headers) needs no configuration; the estimate
        # for accounts without headers still needs a limit (configured or learned).
        token_enabled = s.alerts.token_window_percent > 0
        budget_enabled = s.alerts.daily_budget_usd > 0 or bool(budgets)
        rules = {
            RULE_ERROR_RATE: RuleConfig(RULE_ERROR_RATE, "High error rate detected", "critical",
                                        s.alerts.error_rate_threshold, s.alerts.error_rate_window_s),
            RULE_TOKEN_WINDOW: RuleConfig(RULE_TOKEN_WINDOW, "Token limit approaching", "warning",
                                          s.alerts.token_window_percent, 0.0, token_enabled),
            RULE_DB_POOL: RuleConfig(RULE_DB_POOL, "Database connection pool exhausted", "critical",
                                     s.alerts.db_pool_percent, s.alerts.db_pool_window_s),
            RULE_P95_LATENCY: RuleConfig(RULE_P95_LATENCY, "Performance degradation detected", "warning",
                                         s.alerts.p95_latency_ms, s.alerts.p95_window_s),
            RULE_DAILY_COST: RuleConfig(RULE_DAILY_COST, "Daily cost over budget", "warning",
                                        s.alerts.daily_budget_usd, 0.0, budget_enabled),
            RULE_CLOCK_SKEW: RuleConfig(RULE_CLOCK_SKEW, "Clock skew between instances", "warning",
                                        s.alerts.clock_skew_s, 0.0, s.alerts.clock_skew_s > 0),
        }
        local_rules = {
            RULE_RECORDING_STALLED: RuleConfig(RULE_RECORDING_STALLED, "Recording stalled", "critical",
                                               s.alerts.recording_stall_s, 0.0, s.alerts.recording_stall_s > 0),
            RULE_JOURNAL_GROWING: RuleConfig(RULE_JOURNAL_GROWING, "Journal growing: database away", "critical",
                                             s.alerts.journal_growing_s, 0.0, s.alerts.journal_growing_s > 0),
            RULE_CHANNEL_FAILING: RuleConfig(RULE_CHANNEL_FAILING, "Alert channel failing", "error",
                                             float(s.alerts.channel_failures), 0.0, s.alerts.channel_failures > 0),
        }
        for name, value in (("ALERT_EVAL_INTERVAL_S", s.alerts.eval_interval_s),
                            ("ALERT_LOOKBACK_S", s.alerts.lookback_s),
                            ("ALERT_TOKEN_WINDOW_S", s.alerts.token_window_s)):
            if value <= 0:
                raise ConfigError(f"{name}: must be > 0")
        return cls(
            rules=rules,
            eval_interval_s=s.alerts.eval_interval_s,
            repeat_interval_s=max(0.0, s.alerts.repeat_interval_s),
            lookback_s=s.alerts.lookback_s,
            min_requests=max(1, s.alerts.min_requests),
            token_window_s=s.alerts.token_window_s,
            token_limit_default=float(s.limits.token_window_limit),
            token_limits=token_limits,
            token_limit_mode=mode,
            token_learn_days=max(1, s.alerts.token_learn_days),
            daily_budget_usd=s.alerts.daily_budget_usd,
            account_budgets_usd=budgets,
            local_rules=local_rules,
        )


def parse_key_values(name: str, text: str | None) -> dict[str, float]:
    """Parse ``"acct_a=5000000, acct_b=1e6"``; a malformed entry is a ConfigError naming the key."""
    out: dict[str, float] = {}
    if not text:
        return out
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, raw = part.partition("=")
        try:
            if not sep or not key.strip():
                raise ValueError(part)
            value = float(raw.strip())
            if value < 0:
                raise ValueError(part)
        except ValueError:
            raise ConfigError(f"{name}: expected account=number, got {part!r}") from None
        out[key.strip()] = value
    return out


@dataclass(frozen=True)
class Observation:
    """One measurement of one rule for one key (``global``, an account id, an instance id...)."""

    rule: str
    key: str
    value: float | None
    threshold: float
    breached: bool
    summary: str
    labels: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class AlertState:
    """What the state machine remembers about one ``(rule, key)`` between evaluations."""

    pending_since: datetime | None = None
    firing_since: datetime | None = None
    last_notified: datetime | None = None
    alert_id: int | None = None

    @property
    def firing(self) -> bool:
        return self.firing_since is not None


@dataclass(frozen=True)
class Transition:
    """A change worth telling someone about: an alert started, is still on (repeat), or ended."""

    kind: str  # firing | repeat | resolved
    rule: str
    key: str
    title: str
    severity: str
    summary: str
    value: float | None
    threshold: float
    labels: Mapping[str, Any]
    started_at: datetime
    at: datetime
    alert_id: int | None = None

    @property
    def status(self) -> str:
        return KIND_RESOLVED if self.kind == KIND_RESOLVED else KIND_FIRING

    @property
    def dedup_key(self) -> str:
        """Stable per incident, so PagerDuty folds a repeat into the open incident and resolves it."""
        return f"nexus:{self.rule}:{self.key}:{int(self.started_at.timestamp())}"


def step(rule: RuleConfig, states: dict[str, AlertState], observations: Iterable[Observation],
         now: datetime, repeat_interval_s: float) -> list[Transition]:
    """Advance ``rule``'s state machine by one evaluation; mutates ``states`` (key -> state).

    A key that was tracked but is absent from ``observations`` counts as clear: the thing it
    measured went away (no traffic, account idle), which ends the alert rather than freezing it.
    Callers must therefore not call ``step`` at all when a measurement *failed*.
    """
    out: list[Transition] = []
    seen: dict[str, Observation] = {o.key: o for o in observations if o.rule == rule.name}
    for key in sorted(set(states) | set(seen)):
        obs = seen.get(key)
        st = states.get(key) or AlertState()
        breached = obs is not None and obs.breached and rule.enabled
        if breached:
            assert obs is not None
            if st.firing:
                if (repeat_interval_s > 0 and st.last_notified is not None
                        and (now - st.last_notified).total_seconds() >= repeat_interval_s):
                    st.last_notified = now
                    out.append(_transition(KIND_REPEAT, rule, obs, st, now))
            else:
                if st.pending_since is None:
                    st.pending_since = now
                if (now - st.pending_since).total_seconds() >= rule.for_s:
                    st.firing_since = now
                    st.last_notified = now
                    out.append(_transition(KIND_FIRING, rule, obs, st, now))
            states[key] = st
        else:
            if st.firing:
                last = obs or Observation(rule.name, key, None, rule.threshold, False,
                                          f"no recent data for {key}; cleared")
                out.append(_transition(KIND_RESOLVED, rule, last, st, now))
            states.pop(key, None)
    return out


def _transition(kind: str, rule: RuleConfig, obs: Observation, st: AlertState, now: datetime) -> Transition:
    assert st.firing_since is not None
    return Transition(kind=kind, rule=rule.name, key=obs.key, title=rule.title, severity=rule.severity,
                      summary=obs.summary, value=obs.value, threshold=obs.threshold, labels=dict(obs.labels),
                      started_at=st.firing_since, at=now, alert_id=st.alert_id)


class AlertTracker:
    """In-memory holder of every rule's states, for callers that keep state between evaluations.

    The proxy keeps its state in the database instead (so a second instance can take over), and
    uses ``step`` directly; this class is the same logic with a clock attached.
    """

    def __init__(self, config: AlertConfig, clock: Clock = utc_clock) -> None:
        self.config = config
        self.clock = clock
        self.states: dict[str, dict[str, AlertState]] = {name: {} for name in config.rules}

    def evaluate(self, observations: Iterable[Observation], rules: Iterable[str] | None = None
                 ) -> list[Transition]:
        """Feed one round of observations for ``rules`` (default: all); return the transitions."""
        now = self.clock()
        obs = list(observations)
        out: list[Transition] = []
        for name in rules if rules is not None else self.config.rules:
            rule = self.config.rules[name]
            out += step(rule, self.states.setdefault(name, {}), obs, now, self.config.repeat_interval_s)
        return out

    def firing(self) -> list[tuple[str, str]]:
        return [(r, k) for r, keys in self.states.items() for k, st in keys.items() if st.firing]


# --- measurements -> observations -------------------------------------------------------------


def observe_error_rate(cfg: AlertConfig, requests: int, errors: int, key: str = GLOBAL_KEY) -> list[Observation]:
    """Error share over the lookback; silent below ``min_requests`` so one failed call is no outage."""
    rule = cfg.rules[RULE_ERROR_RATE]
    if requests < cfg.min_requests:
        return []
    rate = errors / requests
    return [Observation(RULE_ERROR_RATE, key, rate, rule.threshold, rate > rule.threshold,
                        f"Error rate {rate:.1%} over the last {cfg.lookback_s:.0f}s "
                        f"({errors}/{requests} requests; threshold {rule.threshold:.1%})",
                        {"requests": requests, "errors": errors})]


def observe_p95_latency(cfg: AlertConfig, hist: Sequence[int], key: str = GLOBAL_KEY) -> list[Observation]:
    """p95 from the rollups' latency histogram (cheap, bucket-interpolated, not exact)."""
    rule = cfg.rules[RULE_P95_LATENCY]
    if sum(hist) < cfg.min_requests:
        return []
    p95 = percentile_from_hist(hist, 0.95)
    if p95 is None:
        return []
    return [Observation(RULE_P95_LATENCY, key, p95, rule.threshold, p95 > rule.threshold,
                        f"p95 latency {p95 / 1000:.1f}s over the last {cfg.lookback_s:.0f}s "
                        f"(threshold {rule.threshold / 1000:.1f}s)", {"requests": sum(hist)})]


def token_limit_for(cfg: AlertConfig, account: str, learned: Mapping[str, float]) -> float | None:
    """An account's window limit: its own setting, else the learned p90, else the default."""
    if account in cfg.token_limits:
        return cfg.token_limits[account]
    if cfg.token_limit_mode == "learned" and learned.get(account):
        return learned[account]
    return cfg.token_limit_default or None


def observe_token_windows(cfg: AlertConfig, usage: Mapping[str, int],
                          learned: Mapping[str, float] | None = None) -> list[Observation]:
    """Per account: tokens in the current window as a percentage of that account's limit."""
    rule = cfg.rules[RULE_TOKEN_WINDOW]
    out: list[Observation] = []
    for account, tokens in sorted(usage.items()):
        limit = token_limit_for(cfg, account, learned or {})
        if not limit:
            continue
        pct = 100.0 * tokens / limit
        out.append(Observation(RULE_TOKEN_WINDOW, account, pct, rule.threshold, pct > rule.threshold,
                               f"Token usage at {pct:.0f}% for account {account} "
                               f"({tokens:,} of {limit:,.0f} in {cfg.token_window_s / 3600:g}h)",
                               {"account": account, "tokens": tokens, "limit": limit}))
    return out


def observe_measured_windows(cfg: AlertConfig, snapshots: Mapping[str, Mapping[str, Any]],
                             now: datetime) -> list[Observation]:
    """Per account and window, the utilization Anthropic reported on the latest answer.

    ``snapshots`` are ``/api/limits`` accounts by id. A window breaches at
    ``ALERT_TOKEN_WINDOW_PERCENT`` or when its status is ``rejected`` (at once); once its reset
    has passed it reads as clear, so the alert resolves with the window. Keys are
    ``<account>:<window>`` (``<account>:status`` for an overall ``rejected`` no window explains).
    """
    rule = cfg.rules[RULE_TOKEN_WINDOW]
    out: list[Observation] = []
    for account, snap in sorted(snapshots.items()):
        windows = snap.get("windows") or {}
        any_rejected = False
        for name, win in sorted(windows.items()):
            util = win.get("utilization")
            if not isinstance(util, (int, float)):
                continue
            reset = _parse_time(win.get("resetsAt"))
            key = f"{account}:{name}"
            labels = {"account": account, "window": name, "utilization": util, "resetsAt": win.get("resetsAt"),
                      "source": "headers"}
            if reset is not None and now >= reset:
                out.append(Observation(RULE_TOKEN_WINDOW, key, 0.0, rule.threshold, False,
                                       f"{account}: {name} window has reset", labels))
                continue
            pct = util * 100.0
            rejected = win.get("status") == "rejected"
            any_rejected = any_rejected or rejected
            when = f", resets {reset:%H:%M} UTC" if reset is not None else ""
            state = " (rejected)" if rejected else ""
            out.append(Observation(RULE_TOKEN_WINDOW, key, round(pct, 2), rule.threshold,
                                   pct >= rule.threshold or rejected,
                                   f"Token limit approaching for {account} : {name} window at {pct:.0f} %"
                                   f"{state}{when}", labels))
        if snap.get("status") == "rejected" and not any_rejected:
            reset = _parse_time(snap.get("resetsAt"))
            live = reset is None or now < reset
            out.append(Observation(RULE_TOKEN_WINDOW, f"{account}:status", 100.0 if live else 0.0, rule.threshold,
                                   live, f"Rate limited: {account} is rejected by Anthropic"
                                   + (f" until {reset:%H:%M} UTC" if reset is not None else ""),
                                   {"account": account, "status": "rejected", "source": "headers"}))
    return out


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def window_usage(points: Sequence[tuple[datetime, int]], now: datetime, window_s: float) -> int | None:
    """Tokens in the account's open usage window, as the monitor computes it (``None``: no open window).

    A window opens with the first request after the previous one ended and lasts ``window_s``
    (Claude's 5 hours); this is ``nexus.core.windows.current_window`` without the hour flooring,
    the same as ``/api/token-usage/current``.
    """
    win = current_window(points, now, timedelta(seconds=window_s), floor_to_hour=False)
    return None if win is None else win.total_tokens


def learned_limits(points_by_account: Mapping[str, Sequence[tuple[datetime, int]]], now: datetime,
                   window_s: float, min_windows: int = 3) -> dict[str, float]:
    """Per account, the 90th percentile of its *closed* past windows (the open one is what we judge)."""
    out: dict[str, float] = {}
    for account, points in points_by_account.items():
        closed = [w.total_tokens for w in session_windows(points, timedelta(seconds=window_s), floor_to_hour=False)
                  if not w.contains(now) and w.end <= now]
        limit = learned_limit(closed, 0.9, min_windows=min_windows)
        if limit:
            out[account] = float(limit)
    return out


def observe_pool(cfg: AlertConfig, key: str, in_use: int, capacity: int) -> list[Observation]:
    """Connections in use as a percentage of the pool's (or server's) maximum."""
    rule = cfg.rules[RULE_DB_POOL]
    if capacity <= 0:
        return []
    pct = 100.0 * in_use / capacity
    return [Observation(RULE_DB_POOL, key, pct, rule.threshold, pct > rule.threshold,
                        f"Database connections {in_use}/{capacity} ({pct:.0f}%) in use on {key}",
                        {"in_use": in_use, "capacity": capacity})]


def observe_daily_cost(cfg: AlertConfig, total_usd: float, per_account_usd: Mapping[str, float]
                       ) -> list[Observation]:
    """Today's (UTC) spend against the global budget and each account's own budget."""
    out: list[Observation] = []
    if cfg.daily_budget_usd > 0:
        out.append(Observation(RULE_DAILY_COST, GLOBAL_KEY, total_usd, cfg.daily_budget_usd,
                               total_usd > cfg.daily_budget_usd,
                               f"Cost today ${total_usd:,.2f} (daily budget ${cfg.daily_budget_usd:,.2f})",
                               {"cost_usd": total_usd, "budget_usd": cfg.daily_budget_usd}))
    for account, budget in sorted(cfg.account_budgets_usd.items()):
        spent = float(per_account_usd.get(account, 0.0))
        out.append(Observation(RULE_DAILY_COST, f"account:{account}", spent, budget, spent > budget,
                               f"Cost today ${spent:,.2f} for account {account} (budget ${budget:,.2f})",
                               {"account": account, "cost_usd": spent, "budget_usd": budget}))
    return out


# --- watching the watcher ------------------------------------------------------------------------


def observe_clock_skew(cfg: AlertConfig, offsets: Mapping[str, float]) -> list[Observation]:
    """Per instance: its clock minus the database server's, in seconds (the shared reference).

    Two instances each within the threshold of the database are within twice it of each other;
    the labels carry the largest spread between any two, which is what skews timelines.
    """
    rule = cfg.rules[RULE_CLOCK_SKEW]
    if not rule.enabled or not offsets:
        return []
    spread = max(offsets.values()) - min(offsets.values())
    out = []
    for instance, off in sorted(offsets.items()):
        out.append(Observation(RULE_CLOCK_SKEW, f"instance:{instance}", abs(off), rule.threshold,
                               abs(off) > rule.threshold,
                               f"Clock of instance {instance} is {off:+.1f}s off the database server's "
                               f"(threshold {rule.threshold:g}s; spread across {len(offsets)} instances "
                               f"{spread:.1f}s)",
                               {"instance": instance, "offset_s": round(off, 3), "spread_s": round(spread, 3),
                                "instances": len(offsets)}))
    return out
