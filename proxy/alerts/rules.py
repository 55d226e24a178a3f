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

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nexus.core.errors import ConfigError
from nexus.core.settings import TOKEN_LIMIT_MODES, Settings

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
