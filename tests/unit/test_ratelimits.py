"""Parsing Anthropic's rate-limit headers (nexus/core/ratelimits.py): table-driven, hostile values too."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from nexus.core.ratelimits import (
    KIND_API_KEY,
    KIND_SUBSCRIPTION,
    parse_headers,
    pick_headers,
    window_length,
)

T_5H = 1764651600  # 2025-12-02T05:00:00Z
T_7D = 1765152000  # 2025-12-08T00:00:00Z


def at(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


# A subscription answer as Claude Code sees it (names as Anthropic spells them).
SUBSCRIPTION = {
    "anthropic-ratelimit-unified-status": "allowed_warning",
    "anthropic-ratelimit-unified-reset": str(T_5H),
    "anthropic-ratelimit-unified-representative-claim": "five_hour",
    "anthropic-ratelimit-unified-fallback-percentage": "0.5",
    "anthropic-ratelimit-unified-5h-utilization": "0.8612",
    "anthropic-ratelimit-unified-5h-reset": str(T_5H),
    "anthropic-ratelimit-unified-5h-status": "allowed_warning",
    "anthropic-ratelimit-unified-5h-surpassed-threshold": "0.75",
    "anthropic-ratelimit-unified-7d-utilization": "0.31",
    "anthropic-ratelimit-unified-7d-reset": str(T_7D),
    "anthropic-ratelimit-unified-7d-status": "allowed",
    "anthropic-ratelimit-unified-7d_oi-utilization": "0.12",
    "anthropic-ratelimit-unified-7d_oi-reset": str(T_7D),
    "anthropic-ratelimit-unified-7d_oi-status": "allowed",
    "anthropic-ratelimit-unified-overage-status": "rejected",
    "anthropic-ratelimit-unified-overage-reset": str(T_7D),
    "anthropic-ratelimit-unified-overage-disabled-reason": "org_level_disabled",
}

API_KEY = {
    "anthropic-ratelimit-requests-limit": "4000",
    "anthropic-ratelimit-requests-remaining": "3999",
    "anthropic-ratelimit-requests-reset": "2025-12-02T01:00:00Z",
    "anthropic-ratelimit-tokens-limit": "480000",
    "anthropic-ratelimit-tokens-remaining": "479000",
    "anthropic-ratelimit-tokens-reset": "2025-12-02T01:00:06Z",
    "anthropic-ratelimit-input-tokens-limit": "400000",
    "anthropic-ratelimit-input-tokens-remaining": "399200",
    "anthropic-ratelimit-input-tokens-reset": "2025-12-02T01:00:06+00:00",
    "anthropic-ratelimit-output-tokens-limit": "80000",
    "anthropic-ratelimit-output-tokens-remaining": "79800",
    "anthropic-ratelimit-output-tokens-reset": "2025-12-02T02:00:01+01:00",
}


def test_subscription_every_field() -> None:
    s = parse_headers(SUBSCRIPTION)
    assert s is not None
    assert s.kind == KIND_SUBSCRIPTION
    assert s.status == "allowed_warning"
    assert s.resets_at == at(T_5H)
    assert s.representative_claim == "five_hour"
    assert s.fallback_percentage == 0.5
    assert set(s.windows) == {"5h", "7d", "7d_oi"}
    w = s.windows["5h"]
    assert (w.utilization, w.resets_at, w.status, w.surpassed_threshold) == (0.8612, at(T_5H), "allowed_warning", 0.75)
    assert s.windows["7d_oi"].utilization == 0.12
    assert s.windows["7d"].surpassed_threshold is None
    assert (s.overage_status, s.overage_resets_at, s.overage_disabled_reason) == (
        "rejected", at(T_7D), "org_level_disabled")
    assert s.rate_limits == {} and s.retry_after_s is None
    assert s.utilization() == {"5h": 0.8612, "7d": 0.31, "7d_oi": 0.12}
    j = s.to_json()
    assert j["windows"]["5h"] == {"utilization": 0.8612, "resetsAt": "2025-12-02T05:00:00+00:00",
                                  "status": "allowed_warning", "surpassedThreshold": 0.75}
    assert j["overage"] == {"status": "rejected", "resetsAt": "2025-12-08T00:00:00+00:00",
                            "disabledReason": "org_level_disabled"}
    assert j["representativeClaim"] == "five_hour" and j["fallbackPercentage"] == 0.5


def test_api_key_every_field() -> None:
    s = parse_headers(API_KEY)
    assert s is not None and s.kind == KIND_API_KEY
    assert set(s.rate_limits) == {"requests", "tokens", "inputTokens", "outputTokens"}
    r = s.rate_limits["requests"]
    assert (r.limit, r.remaining, r.resets_at) == (4000, 3999, datetime(2025, 12, 2, 1, 0, tzinfo=UTC))
    assert s.rate_limits["inputTokens"].resets_at == datetime(2025, 12, 2, 1, 0, 6, tzinfo=UTC)
    # an offset other than Z is converted to UTC
    assert s.rate_limits["outputTokens"].resets_at == datetime(2025, 12, 2, 1, 0, 1, tzinfo=UTC)
    assert s.windows == {} and s.status is None
    assert s.to_json()["rateLimits"]["tokens"] == {"limit": 480000, "remaining": 479000,
                                                   "resetsAt": "2025-12-02T01:00:06+00:00"}


@pytest.mark.parametrize(("headers", "check"), [
    # utilization above 1 is kept as sent
    ({"anthropic-ratelimit-unified-5h-utilization": "1.07"}, lambda s: s.windows["5h"].utilization == 1.07),
    # an unknown window is kept under its own name, with all its fields
    ({"anthropic-ratelimit-unified-7d_sonnet-utilization": "0.4",
      "anthropic-ratelimit-unified-7d_sonnet-status": "allowed"},
     lambda s: s.windows["7d_sonnet"].utilization == 0.4 and s.windows["7d_sonnet"].status == "allowed"),
    # an unknown unified field is kept in extra, as sent
    ({"anthropic-ratelimit-unified-fallback": "available"}, lambda s: s.extra == {"fallback": "available"}),
    # header names in any case
    ({"Anthropic-RateLimit-Unified-5H-Utilization": "0.5"}, lambda s: s.windows["5h"].utilization == 0.5),
    # priority tier
    ({"anthropic-priority-input-tokens-limit": "1000", "anthropic-priority-input-tokens-remaining": "10",
      "anthropic-priority-output-tokens-reset": "2025-12-02T01:00:00Z"},
     lambda s: s.kind == KIND_API_KEY and s.priority["inputTokens"].limit == 1000
     and s.priority["inputTokens"].remaining == 10
     and s.priority["outputTokens"].resets_at == datetime(2025, 12, 2, 1, tzinfo=UTC)),
    # retry-after in seconds, alone
    ({"retry-after": "17"}, lambda s: s.kind is None and s.retry_after_s == 17.0),
    ({"retry-after": "Tue, 02 Dec 2025 00:01:00 GMT"}, lambda s: s.retry_after_s == 60.0),
    # a 429 with the unified family
    ({"anthropic-ratelimit-unified-status": "rejected", "anthropic-ratelimit-unified-5h-status": "rejected",
      "anthropic-ratelimit-unified-5h-utilization": "1.0", "retry-after": "3600"},
     lambda s: s.status == "rejected" and s.windows["5h"].utilization == 1.0 and s.retry_after_s == 3600),
])
def test_shapes(headers: dict[str, str], check) -> None:
    s = parse_headers(headers, now=datetime(2025, 12, 2, 0, 0, tzinfo=UTC))
    assert s is not None
    assert check(s)


@pytest.mark.parametrize(("name", "value"), [
    ("anthropic-ratelimit-unified-5h-utilization", "abc"),
    ("anthropic-ratelimit-unified-5h-utilization", "nan"),
    ("anthropic-ratelimit-unified-5h-utilization", "inf"),
    ("anthropic-ratelimit-unified-5h-utilization", "-0.2"),
    ("anthropic-ratelimit-unified-5h-utilization", "1e400"),
    ("anthropic-ratelimit-unified-5h-utilization", ""),
    ("anthropic-ratelimit-unified-5h-utilization", "0." + "1" * 300),
    ("anthropic-ratelimit-unified-5h-reset", "tomorrow"),
    ("anthropic-ratelimit-unified-5h-reset", "99999999999999999999"),
    ("anthropic-ratelimit-unified-5h-reset", "-1"),
    ("anthropic-ratelimit-unified-5h-reset", "12"),
    ("anthropic-ratelimit-unified-reset", "1e308"),
    ("anthropic-ratelimit-unified-status", "allowed\x00\x1b[31m"),
    ("anthropic-ratelimit-unified-status", "x" * 100),
    ("anthropic-ratelimit-unified-representative-claim", ""),
    ("anthropic-ratelimit-requests-limit", "-5"),
    ("anthropic-ratelimit-requests-limit", "1.5"),
    ("anthropic-ratelimit-requests-limit", "9" * 40),
    ("anthropic-ratelimit-requests-remaining", "٣"),  # a non-ASCII digit
    ("anthropic-ratelimit-requests-reset", "2025-13-45T99:00:00Z"),
    ("anthropic-ratelimit-requests-reset", "2025-12-02T01:00:00"),  # no offset
    ("anthropic-ratelimit-requests-reset", "Z"),
    ("retry-after", "soon"),
    ("retry-after", "-3"),
])
def test_malformed_value_is_dropped_rest_kept(name: str, value: str) -> None:
    headers = dict(SUBSCRIPTION) | dict(API_KEY)
    headers.pop(name, None)
    headers[name] = value
    s = parse_headers(headers)
    assert s is not None
    good = parse_headers(dict(SUBSCRIPTION) | dict(API_KEY))
    assert good is not None
    # everything but the damaged field is as in the good answer
    a, b = s.to_json(), good.to_json()
    diff = {k for k in a if a[k] != b[k]}
    assert len(diff) <= 1
    if diff:
        (key,) = diff
        assert key in {"windows", "status", "resetsAt", "representativeClaim", "rateLimits", "retryAfterS"}


def test_hostile_window_names_and_flood() -> None:
    headers = {f"anthropic-ratelimit-unified-w{i}-utilization": "0.1" for i in range(500)}
    headers["anthropic-ratelimit-unified-../../etc-status"] = "allowed"
    headers["anthropic-ratelimit-unified-" + "x" * 200 + "-status"] = "allowed"
    s = parse_headers(headers)
    assert s is not None and s.kind == KIND_SUBSCRIPTION
    assert len(s.windows) <= 64
    assert all(len(w) <= 32 and "/" not in w for w in s.windows)


def test_missing_families() -> None:
    assert parse_headers({}) is None
    assert parse_headers(None) is None
    assert parse_headers({"anthropic-ratelimit-bogus": "1"}) is None
    assert parse_headers({"anthropic-ratelimit-requests-limit": "x"}).kind == KIND_API_KEY  # type: ignore[union-attr]


def test_pick_headers_keeps_only_rate_limit_headers() -> None:
    raw = [("Content-Type", "application/json"), ("request-id", "req_1"),
           ("Anthropic-Ratelimit-Unified-5h-Utilization", "0.2"), ("retry-after", "4"),
           ("anthropic-priority-input-tokens-limit", "5"), ("anthropic-organization-id", "org")]
    assert pick_headers(raw) == {"anthropic-ratelimit-unified-5h-utilization": "0.2", "retry-after": "4",
                                 "anthropic-priority-input-tokens-limit": "5"}
    assert pick_headers([("content-type", "x")]) is None
    assert len(pick_headers([(f"anthropic-ratelimit-x{i}", "1") for i in range(1000)]) or {}) == 64


@pytest.mark.parametrize(("name", "length"), [
    ("5h", timedelta(hours=5)), ("7d", timedelta(days=7)), ("7d_oi", timedelta(days=7)),
    ("7d_sonnet", timedelta(days=7)), ("weird", None), ("h", None), ("xh", None),
])
def test_window_length(name: str, length: timedelta | None) -> None:
    assert window_length(name) == length


T = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
R = T + timedelta(hours=3)  # the window resets at 13:00


@pytest.mark.parametrize(("points", "now", "expect"), [
    # no samples
    ([], T, {"utilization": None, "ratePerHour": None, "hitsLimitBeforeReset": False}),
    # one sample: no rate yet
    ([(T, 0.2, R)], T, {"utilization": 0.2, "ratePerHour": None, "projectedFullAt": None}),
    # 0.2 -> 0.5 in one hour: 0.3/h, full at 12:40, 20 min before the 13:00 reset
    ([(T, 0.2, R), (T + timedelta(minutes=30), 0.35, R), (T + timedelta(hours=1), 0.5, R)], T + timedelta(hours=1),
     {"utilization": 0.5, "ratePerHour": 0.3, "projectedFullAt": (T + timedelta(hours=2, minutes=40)).isoformat(),
      "minutesBeforeReset": 20.0, "hitsLimitBeforeReset": True}),
    # slow burn: 0.1/h from 0.5 leaves it at 0.8 at reset
    ([(T, 0.4, R), (T + timedelta(hours=1), 0.5, R)], T + timedelta(hours=1),
     {"ratePerHour": 0.1, "minutesBeforeReset": None, "hitsLimitBeforeReset": False}),
    # already over 1: full now
    ([(T, 0.9, R), (T + timedelta(minutes=10), 1.02, R)], T + timedelta(minutes=10),
     {"utilization": 1.02, "projectedFullAt": (T + timedelta(minutes=10)).isoformat(), "hitsLimitBeforeReset": True,
      "minutesBeforeReset": 170.0}),
    # a reset in between: only the new period counts (drop 0.9 -> 0.05)
    ([(T - timedelta(hours=2), 0.9, T), (T + timedelta(minutes=5), 0.05, R), (T + timedelta(minutes=65), 0.15, R)],
     T + timedelta(minutes=65), {"utilization": 0.15, "ratePerHour": 0.1}),
    # the window reset after the last sample: nothing known
    ([(T, 0.7, R)], R + timedelta(seconds=1), {"utilization": None, "projectedFullAt": None}),
    # flat: rate 0, never full
    ([(T, 0.3, R), (T + timedelta(hours=1), 0.3, R)], T + timedelta(hours=1),
     {"ratePerHour": 0.0, "projectedFullAt": None, "hitsLimitBeforeReset": False}),
])
def test_utilization_burn(points, now, expect) -> None:
    from nexus.core.ratelimits import utilization_burn
    got = utilization_burn(points, now)
    for key, value in expect.items():
        assert got[key] == value, key


def test_record_with_rate_limits_survives_the_journal() -> None:
    import orjson

    from nexus.core.records import Record

    r = Record(account_id="acct_x", ratelimit_headers=dict(SUBSCRIPTION), ratelimit_observed_at=T)
    r.ratelimits = parse_headers(r.ratelimit_headers)
    back = Record.from_journal(orjson.loads(orjson.dumps(r, default=str)))
    assert back.ratelimit_headers == SUBSCRIPTION and back.ratelimit_observed_at == T
    assert back.ratelimits is not None and back.ratelimits.to_json() == r.ratelimits.to_json()
