"""The token-window rule on measured utilization: Anthropic's rate-limit headers (docs/limits.md).

Accounts whose answers carry ``anthropic-ratelimit-unified-*`` are judged per window by what the
latest answer said; the estimate of ``rules.observe_token_windows`` stays for the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from proxy.alerts.rules import RULE_TOKEN_WINDOW, AlertConfig, Observation


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
