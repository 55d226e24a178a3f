"""The alert state machine and rule arithmetic, without a database: a fake clock drives hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from nexus.core.errors import ConfigError
from nexus.core.latency import bucket_index, empty_hist
from nexus.core.settings import Settings, load_settings
from proxy.alerts.observations import (
    learned_limits,
    observe_daily_cost,
    observe_error_rate,
    observe_p95_latency,
    observe_pool,
    observe_token_windows,
    window_usage,
)
from proxy.alerts.rules import (
    KIND_FIRING,
    KIND_REPEAT,
    KIND_RESOLVED,
    RULE_DAILY_COST,
    RULE_DB_POOL,
    RULE_ERROR_RATE,
    RULE_P95_LATENCY,
    RULE_TOKEN_WINDOW,
    AlertConfig,
    AlertTracker,
    parse_key_values,
)


class FakeClock:
    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2030, 1, 1, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def _cfg(**kw) -> AlertConfig:
    return AlertConfig.from_settings(Settings.of(**kw))


def _kinds(transitions) -> list[str]:
    return [t.kind for t in transitions]


def test_error_rate_fires_once_after_its_duration_and_resolves_once():
    cfg = _cfg(alert_repeat_interval_s=0)
    clock = FakeClock()
    tr = AlertTracker(cfg, clock)
    seen = []
    # 4 minutes of 20 % errors: pending only, nothing sent
    for _ in range(9):
        seen += tr.evaluate(observe_error_rate(cfg, 100, 20), [RULE_ERROR_RATE])
        clock.advance(30)
    assert seen == []
    # the 5-minute mark passes: exactly one firing, then silence while it holds
    for _ in range(20):
        seen += tr.evaluate(observe_error_rate(cfg, 100, 20), [RULE_ERROR_RATE])
        clock.advance(30)
    assert _kinds(seen) == [KIND_FIRING]
    assert seen[0].summary.startswith("Error rate 20.0%")
    # clears: one resolve, then nothing more
    for _ in range(5):
        seen += tr.evaluate(observe_error_rate(cfg, 100, 1), [RULE_ERROR_RATE])
        clock.advance(30)
    assert _kinds(seen) == [KIND_FIRING, KIND_RESOLVED]
    assert tr.firing() == []


def test_a_blip_shorter_than_the_duration_sends_nothing():
    cfg = _cfg()
    clock = FakeClock()
    tr = AlertTracker(cfg, clock)
    out = tr.evaluate(observe_error_rate(cfg, 100, 50), [RULE_ERROR_RATE])
    clock.advance(299)
    out += tr.evaluate(observe_error_rate(cfg, 100, 0), [RULE_ERROR_RATE])
    clock.advance(10)
    out += tr.evaluate(observe_error_rate(cfg, 100, 50), [RULE_ERROR_RATE])  # pending restarts
    clock.advance(290)
    out += tr.evaluate(observe_error_rate(cfg, 100, 50), [RULE_ERROR_RATE])
    assert out == []
    clock.advance(10)
    assert _kinds(tr.evaluate(observe_error_rate(cfg, 100, 50), [RULE_ERROR_RATE])) == [KIND_FIRING]


def test_repeat_interval_is_respected():
    cfg = _cfg(alert_repeat_interval_s=600, alert_error_rate_window_s=0)
    clock = FakeClock()
    tr = AlertTracker(cfg, clock)
    kinds = []
    for _ in range(61):  # 30 minutes, one evaluation every 30 s
        kinds += _kinds(tr.evaluate(observe_error_rate(cfg, 100, 90), [RULE_ERROR_RATE]))
        clock.advance(30)
    assert kinds == [KIND_FIRING, KIND_REPEAT, KIND_REPEAT, KIND_REPEAT]


def test_too_little_traffic_gives_no_opinion():
    cfg = _cfg(alert_min_requests=10)
    assert observe_error_rate(cfg, 3, 3) == []
    assert observe_error_rate(cfg, 10, 1)[0].breached is True  # 10 % > 5 %
    assert observe_error_rate(cfg, 100, 5)[0].breached is False  # exactly 5 % is not "> 5 %"


def test_missing_observation_resolves_a_firing_alert():
    cfg = _cfg(alert_error_rate_window_s=0)
    tr = AlertTracker(cfg, FakeClock())
    assert _kinds(tr.evaluate(observe_error_rate(cfg, 100, 50), [RULE_ERROR_RATE])) == [KIND_FIRING]
    assert _kinds(tr.evaluate([], [RULE_ERROR_RATE])) == [KIND_RESOLVED]  # traffic stopped


def test_p95_from_histogram():
    cfg = _cfg(alert_min_requests=5)
    hist = empty_hist()
    hist[bucket_index(200)] += 90
    hist[bucket_index(15_000)] += 10
    obs = observe_p95_latency(cfg, hist)[0]
    assert obs.breached and 10_000 < obs.value <= 20_000
    fast = empty_hist()
    fast[bucket_index(300)] += 100
    assert observe_p95_latency(cfg, fast)[0].breached is False


def test_token_window_limits_per_account_default_and_learned():
    cfg = _cfg(token_window_limit=1000, alert_token_limits="acct_big=10000, acct_small=100")
    obs = {o.key: o for o in observe_token_windows(cfg, {"acct_a": 900, "acct_big": 900, "acct_small": 90})}
    assert obs["acct_a"].breached and obs["acct_a"].value == pytest.approx(90.0)
    assert not obs["acct_big"].breached
    assert obs["acct_small"].breached
    assert "Token usage at 90% for account acct_a" in obs["acct_a"].summary
    # no default, fixed mode: accounts without a limit are not judged
    assert observe_token_windows(_cfg(), {"acct_a": 10**9}) == []
    learned_cfg = _cfg(alert_token_limit_mode="learned")
    o = observe_token_windows(learned_cfg, {"acct_a": 950}, {"acct_a": 1100.0})[0]
    assert o.breached and o.labels["limit"] == 1100.0


def test_window_usage_and_learned_limits_follow_the_monitors_windows():
    now = datetime(2030, 1, 2, 12, 0, tzinfo=UTC)
    h = timedelta(hours=1)
    # past windows: nine of 1000 tokens and one of 2000, each opened by its first request
    pts = []
    for i in range(10):
        start = now - (60 - 5 * i) * h
        pts += [(start, 500), (start + 2 * h, 1500 if i == 9 else 500)]
    pts += [(now - 2 * h, 400), (now - h, 500)]  # the open window, opened two hours ago
    assert window_usage(pts, now, 5 * 3600) == 900
    assert window_usage(pts, now + 3 * h + timedelta(minutes=1), 5 * 3600) is None  # it has closed
    learned = learned_limits({"acct_a": pts, "acct_new": pts[-2:]}, now, 5 * 3600)
    assert learned == {"acct_a": pytest.approx(1100.0)}  # p90 of the closed ones; too little history for new


def test_pool_and_budget_observations():
    cfg = _cfg(alert_daily_budget_usd=10, alert_account_budgets_usd="acct_a=2")
    assert observe_pool(cfg, "pool:x", 10, 10)[0].breached
    assert not observe_pool(cfg, "pool:x", 9, 10)[0].breached  # 90 % is not "> 90 %"
    assert observe_pool(cfg, "pool:x", 1, 0) == []
    obs = {o.key: o for o in observe_daily_cost(cfg, 11.0, {"acct_a": 1.5})}
    assert obs["global"].breached and not obs["account:acct_a"].breached
    assert _cfg().rules[RULE_DAILY_COST].enabled is False  # no budget configured: rule off
    # measured utilization needs no configuration: the token-window rule is on by default
    assert _cfg().rules[RULE_TOKEN_WINDOW].enabled is True
    assert {RULE_DB_POOL, RULE_P95_LATENCY} <= set(cfg.rules)


def test_settings_from_environment_and_bad_values():
    s = load_settings({"ALERT_ERROR_RATE_THRESHOLD": "0.1", "ALERT_ERROR_RATE_WINDOW_S": "120",
                       "ALERT_TOKEN_LIMITS": "acct_a=5000000", "ALERT_TOKEN_LIMIT_MODE": "learned"})
    cfg = AlertConfig.from_settings(s)
    assert cfg.rules[RULE_ERROR_RATE].threshold == 0.1 and cfg.rules[RULE_ERROR_RATE].for_s == 120
    assert cfg.token_limits == {"acct_a": 5_000_000.0} and cfg.token_limit_mode == "learned"
    with pytest.raises(ConfigError, match="ALERT_TOKEN_LIMIT_MODE"):
        AlertConfig.from_settings(Settings.of(alert_token_limit_mode="guess"))
    with pytest.raises(ConfigError, match="ALERT_TOKEN_LIMITS"):
        parse_key_values("ALERT_TOKEN_LIMITS", "acct_a")
    with pytest.raises(ConfigError, match="ALERT_EVAL_INTERVAL_S"):
        AlertConfig.from_settings(Settings.of(alert_eval_interval_s=0))


def test_transition_dedup_key_is_stable_per_incident():
    cfg = _cfg(alert_error_rate_window_s=0, alert_repeat_interval_s=60)
    clock = FakeClock()
    tr = AlertTracker(cfg, clock)
    first = tr.evaluate(observe_error_rate(cfg, 100, 50), [RULE_ERROR_RATE])[0]
    clock.advance(61)
    again = tr.evaluate(observe_error_rate(cfg, 100, 50), [RULE_ERROR_RATE])[0]
    assert again.kind == KIND_REPEAT and again.dedup_key == first.dedup_key


def test_measured_windows_every_window_threshold_rejected_and_reset():
    from proxy.alerts.observations import observe_measured_windows

    cfg = _cfg()
    now = datetime(2030, 1, 1, 10, 0, tzinfo=UTC)
    snaps = {
        "acct_a": {"status": "allowed_warning", "windows": {
            "5h": {"utilization": 0.86, "resetsAt": "2030-01-01T14:00:00+00:00", "status": "allowed_warning"},
            "7d": {"utilization": 0.79, "resetsAt": "2030-01-05T00:00:00+00:00", "status": "allowed"},
            "7d_oi": {"utilization": 1.2, "resetsAt": "2030-01-05T00:00:00+00:00", "status": "rejected"},
            "bad": {"utilization": "x"}}},
        "acct_old": {"windows": {"5h": {"utilization": 0.99, "resetsAt": "2030-01-01T09:00:00+00:00"}}},
        "acct_rej": {"status": "rejected", "resetsAt": "2030-01-01T11:00:00+00:00", "windows": {}},
    }
    got = {o.key: o for o in observe_measured_windows(cfg, snaps, now)}
    assert set(got) == {"acct_a:5h", "acct_a:7d", "acct_a:7d_oi", "acct_old:5h", "acct_rej:status"}
    assert got["acct_a:5h"].breached and got["acct_a:5h"].value == 86.0
    assert got["acct_a:5h"].summary == "Token limit approaching for acct_a : 5h window at 86 %, resets 14:00 UTC"
    assert not got["acct_a:7d"].breached
    assert got["acct_a:7d_oi"].breached and "(rejected)" in got["acct_a:7d_oi"].summary
    assert not got["acct_old:5h"].breached  # reset already passed
    assert got["acct_rej:status"].breached
