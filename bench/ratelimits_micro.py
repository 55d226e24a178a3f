"""``python -m bench.ratelimits_micro``: the rate-limit headers' cost per answer (docs/limits.md).

On the request path the proxy only runs ``pick_headers`` over the upstream's response headers (an
aiohttp ``CIMultiDictProxy``); the recorder parses the picked ones afterwards. Both are timed here
on realistic header sets: an answer with no rate-limit headers, an API-key answer (12 of them) and
a subscription answer (the unified family, 17). Median of 7 runs of 20,000 calls each.
"""

from __future__ import annotations

import statistics
import timeit

from multidict import CIMultiDict, CIMultiDictProxy

from nexus.core.ratelimits import parse_headers, pick_headers

BASE = {"content-type": "application/json", "request-id": "req_011CVabcdefghijklmnop", "date": "Wed, 02 Dec 2026",
        "content-length": "312", "anthropic-organization-id": "00000000-0000-4000-8000-00000000a0c0",
        "via": "1.1 google", "cf-ray": "8e1f2a3b4c5d6e7f-FRA", "server": "cloudflare", "x-robots-tag": "none"}
API_KEY = {f"anthropic-ratelimit-{k}-{p}": v for k in ("requests", "tokens", "input-tokens", "output-tokens")
           for p, v in (("limit", "4000"), ("remaining", "3999"), ("reset", "2026-12-02T01:00:00Z"))}
U = "anthropic-ratelimit-unified-"
SUBSCRIPTION = {U + "status": "allowed", U + "reset": "1764651600", U + "representative-claim": "five_hour",
                U + "fallback-percentage": "0.5", U + "overage-status": "rejected",
                U + "overage-disabled-reason": "org_level_disabled",
                **{f"{U}{w}-{f}": v for w in ("5h", "7d", "7d_oi")
                   for f, v in (("utilization", "0.42"), ("reset", "1764651600"), ("status", "allowed"))},
                U + "5h-surpassed-threshold": "0.75", U + "overage-reset": "1764651600"}


def _median_us(fn, n: int = 20_000, runs: int = 7) -> float:
    return statistics.median(timeit.timeit(fn, number=n) / n * 1e6 for _ in range(runs))


def main() -> None:
    print(f"{'answer':<14} {'headers':>7} {'pick (request path)':>20} {'parse (recorder)':>17}")
    for name, extra in (("none", {}), ("API key", API_KEY), ("subscription", SUBSCRIPTION)):
        h = CIMultiDictProxy(CIMultiDict(BASE | extra))
        picked = pick_headers(h.items())
        pick = _median_us(lambda h=h: pick_headers(h.items()))
        parse = _median_us(lambda p=picked: parse_headers(p)) if picked else 0.0
        print(f"{name:<14} {len(h):>7} {pick:>17.2f} us {parse:>14.2f} us")


if __name__ == "__main__":
    main()
