"""What each alert rule observes: plain numbers in, ``Observation``s out (pure, no I/O).

The evaluator (``proxy.alerts.manager``) measures error counts, latency histograms, token sums,
rate-limit snapshots, pool usage, cost and clock offsets and hands them here; ``rules.step`` then
decides what fires and resolves. Split from ``rules`` so each module holds one job: this one the
measures, ``rules`` the configuration and the state machine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from nexus.core.latency import percentile_from_hist
from nexus.core.windows import current_window, learned_limit, session_windows
from proxy.alerts.rules import (
    GLOBAL_KEY,
    RULE_CLOCK_SKEW,
    RULE_DAILY_COST,
    RULE_DB_POOL,
    RULE_ERROR_RATE,
    RULE_P95_LATENCY,
    RULE_TOKEN_WINDOW,
    AlertConfig,
    Observation,
)


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
