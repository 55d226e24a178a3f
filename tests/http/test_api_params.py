"""Query parameters: each bad one is a 400 naming it, and no input at all makes a route answer 500.

A table of known-bad values per route, then hypothesis throwing arbitrary text, numbers, times and
durations at every parameter of every route against the real server over a populated database.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.api.app import BadParam, parse_time

ROUTE_PARAMS: dict[str, list[str]] = {
    "/api/stats": ["since", "until", "domain", "accountId", "account", "model", "sessionId", "tag", "top"],
    "/api/token-usage/current": ["accountId", "account", "window", "domain"],
    "/api/token-usage/daily": ["accountId", "account", "days", "aggregate", "domain"],
    "/api/timeseries": ["since", "until", "bucket", "domain", "accountId", "account", "model", "sessionId", "tag"],
    "/api/requests": ["limit", "before", "status", "domain", "model", "accountId", "account", "since", "until",
                      "sessionId", "tag"],
    "/api/errors": ["since", "until", "domain", "accountId", "account", "model", "limit", "sessionId", "tag"],
    "/api/costs": ["days", "domain", "accountId", "account", "model", "sessionId", "tag"],
    "/api/sessions": ["since", "accountId", "account", "tag", "active", "client", "limit", "before"],
    "/api/sessions/{}": ["limit"],
    "/api/alerts": ["limit"],
    "/api/sse": ["lastEventId"],
    "/api/limits": ["accountId", "account"],
    "/api/limits/history": ["accountId", "account", "window", "since", "until"],
    "/api/info": [],
    "/api/openapi.json": [],
}

BAD: list[tuple[str, dict[str, str], str]] = [
    ("/api/stats", {"since": "yesterday"}, "since"),
    ("/api/stats", {"since": "15x"}, "since"),
    ("/api/stats", {"since": "-1h"}, "since"),
    ("/api/stats", {"since": "9999999d"}, "since"),
    ("/api/stats", {"since": "0001-01-01"}, "since"),
    ("/api/stats", {"since": "1h", "until": "2h"}, "since"),
    ("/api/stats", {"until": "9999-12-31T23:59:59"}, "until"),
    ("/api/stats", {"until": "2026-13-01"}, "until"),
    ("/api/stats", {"domain": "x" * 513}, "domain"),
    ("/api/stats", {"model": "a\x00b"}, "model"),
    ("/api/token-usage/current", {"window": "0"}, "window"),
    ("/api/token-usage/current", {"window": "10081"}, "window"),
    ("/api/token-usage/current", {"window": "5.5"}, "window"),
    ("/api/token-usage/current", {"window": "abc"}, "window"),
    ("/api/token-usage/current", {"accountId": "\x00"}, "accountId"),
    ("/api/token-usage/daily", {"days": "0"}, "days"),
    ("/api/token-usage/daily", {"days": "401"}, "days"),
    ("/api/token-usage/daily", {"aggregate": "maybe"}, "aggregate"),
    ("/api/timeseries", {"bucket": "90"}, "bucket"),
    ("/api/timeseries", {"bucket": "30"}, "bucket"),
    ("/api/timeseries", {"bucket": "60", "since": "7d"}, "bucket"),
    ("/api/timeseries", {"bucket": "1e3"}, "bucket"),
    ("/api/timeseries", {"since": "now"}, "since"),
    ("/api/requests", {"limit": "0"}, "limit"),
    ("/api/requests", {"limit": "501"}, "limit"),
    ("/api/requests", {"limit": "99999999999999999999"}, "limit"),
    ("/api/requests", {"before": "garbage"}, "before"),
    ("/api/requests", {"before": "MjAyNnxub3QtYS11dWlk"}, "before"),
    ("/api/requests", {"status": "teapot"}, "status"),
    ("/api/requests", {"status": "999"}, "status"),
    ("/api/requests", {"since": "2h", "until": "3h"}, "since"),
    ("/api/errors", {"limit": "-1"}, "limit"),
    ("/api/errors", {"since": "1y"}, "since"),
    ("/api/costs", {"days": "x"}, "days"),
    ("/api/sse", {"lastEventId": "abc"}, "lastEventId"),
    ("/api/sse", {"lastEventId": "-5"}, "lastEventId"),
]


@pytest.mark.parametrize(("path", "params", "param"), BAD)
async def test_bad_parameter_is_400_naming_it(api, path, params, param):
    r = await api.get(path, **params)
    assert r.status_code == 400, (path, params, r.status_code, r.text[:200])
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["param"] == param
    assert param in err["message"]


async def test_bad_last_event_id_header_is_400(api):
    r = await api.client.get("/api/sse", headers={"Last-Event-ID": "x1"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "Last-Event-ID"


async def test_bad_request_id_is_400(api):
    for rid in ("123", "zzzz", "%00", "' OR 1=1 --"):
        r = await api.get(f"/api/requests/{rid}")
        assert r.status_code in (400, 404), (rid, r.status_code)
        assert r.headers["content-type"].startswith("application/json")


async def test_unknown_route_and_method_are_json(api):
    r = await api.get("/api/nope")
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"
    r = await api.client.post("/api/stats")
    assert r.status_code == 405 and "error" in r.json()


def test_parse_time_forms():
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    assert parse_time({"since": "90m"}, "since", now, None) == datetime(2026, 11, 27, 10, 30, tzinfo=UTC)
    assert parse_time({"since": "2w"}, "since", now, None) == datetime(2026, 11, 13, 12, 0, tzinfo=UTC)
    assert parse_time({"since": "2026-11-27"}, "since", now, None) == datetime(2026, 11, 27, tzinfo=UTC)
    assert parse_time({"since": "2026-11-27T13:00:00+02:00"}, "since", now, None) == datetime(
        2026, 11, 27, 11, 0, tzinfo=UTC)
    assert parse_time({}, "since", now, "1h") == datetime(2026, 11, 27, 11, 0, tzinfo=UTC)
    assert parse_time({"since": " "}, "since", now, None) is None
    with pytest.raises(BadParam):
        parse_time({"since": "1 hour"}, "since", now, None)


def test_route_params_are_the_documented_ones():
    """The hand-written list above and the OpenAPI document (where the server gets its list) agree."""
    from nexus.core.version import VERSION
    from proxy.api.openapi import openapi_document, query_params_by_route

    documented = query_params_by_route(openapi_document(VERSION))
    for path, names in ROUTE_PARAMS.items():
        assert documented[path] == frozenset(names), path


async def test_every_api_route_is_documented(api):
    """Every /api route the app serves has its parameters in the OpenAPI document (or it would take any)."""
    import re

    from nexus.core.version import VERSION
    from proxy.api.app import create_dashboard_app
    from proxy.api.openapi import openapi_document, query_params_by_route

    documented = query_params_by_route(openapi_document(VERSION))
    app = create_dashboard_app(api.runtime)
    rules = {re.sub(r"<[^>]*>", "{}", r.rule) for r in app.url_map.iter_rules()
             if r.rule.startswith("/api") and "GET" in (r.methods or ())}
    assert rules - set(documented) == set()


@pytest.mark.parametrize("path", [p for p in ROUTE_PARAMS if p != "/api/sse"] + ["/health"])
async def test_unknown_query_parameter_is_a_400_naming_it(api, path):
    r = await api.client.get(path.replace("{}", "some-session"), params={"tga": "project:apollo"})
    assert r.status_code == 400, (path, r.text)
    err = r.json()["error"]
    assert err["param"] == "tga" and "unknown query parameter" in err["message"]


# ---- hypothesis: every parameter of every route, arbitrary values, never a 500 ------------------

_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)
_value = st.one_of(
    _text,
    st.integers(min_value=-10**20, max_value=10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.builds(lambda n, u: f"{n}{u}", st.integers(min_value=-5, max_value=10**8),
              st.sampled_from(["s", "m", "h", "d", "w", "M", "y", ""])),
    st.datetimes(timezones=st.sampled_from([None, UTC])).map(lambda d: d.isoformat()),
    st.sampled_from(["error", "ok", "200", "529", "true", "false", "0", "1", "acct_1", "a.example",
                     "claude-sonnet-4-5", "", " ", "%00", "\x00", "null", "[]", "{}", "NaN"]),
)


def _params_for(path: str) -> st.SearchStrategy[dict[str, str]]:
    names = ROUTE_PARAMS[path] + ["unknownParam"]
    return st.dictionaries(st.sampled_from(names), _value, max_size=len(names))


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
async def test_fuzz_every_parameter_never_500(loaded_api, data):
    a, _ = loaded_api
    for path, names in ROUTE_PARAMS.items():
        params = data.draw(_params_for(path), label=path)
        unknown = "unknownParam" in params
        if path == "/api/sse":
            # the stream would not end on its own: only check what comes before the body
            async with a.client.stream("GET", path, params=params) as r:
                assert r.status_code in (200, 400), (path, params, r.status_code)
                assert r.status_code == 400 or not unknown
                if r.status_code == 400:
                    err = (await r.aread()).decode()
                    assert ("unknownParam" if unknown else "lastEventId") in err
            continue
        url = path.replace("{}", "5f1e7b2a-8c3d-4e6f-9a0b-1c2d3e4f5a6b")
        try:
            r = await a.client.get(url, params=params)
        except httpx.TransportError as exc:
            raise AssertionError(f"server dropped {path} {params!r}: {exc!r}") from exc
        assert r.status_code in (200, 400, 404), (path, params, r.status_code, r.text[:300])
        assert r.status_code != 404 or path == "/api/sessions/{}"
        assert r.headers["content-type"].startswith("application/json")
        body = r.json()
        if unknown:  # an unknown parameter is refused before anything else is read
            assert r.status_code == 400 and body["error"]["param"] == "unknownParam", (path, params)
        if r.status_code == 400:
            assert body["error"]["type"] == "invalid_request_error"
            assert body["error"]["param"] in names + ["unknownParam"]  # an unknown one is named too
    rid = data.draw(st.one_of(_text.filter(lambda s: "/" not in s), st.uuids().map(str)), label="id")
    r = await a.client.get("/api/requests/" + (quote(rid, safe="") or "x"))
    assert r.status_code in (200, 400, 404), (rid, r.status_code)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(limit=st.integers(min_value=1, max_value=7), status=st.sampled_from([None, "ok", "error", "200"]))
async def test_fuzz_paging_visits_every_row_once(loaded_api, limit, status):
    a, records = loaded_api
    seen: list[str] = []
    cursor = None
    for _ in range(20):
        params: dict[str, str | int] = {"limit": limit}
        if cursor:
            params["before"] = cursor
        if status:
            params["status"] = status
        body = (await a.client.get("/api/requests", params=params)).json()
        seen += [x["id"] for x in body["requests"]]
        cursor = body["nextCursor"]
        if cursor is None:
            break
    want = [r for r in records.values()
            if status is None or (status == "error") == r.is_error or status == "200" and r.status_code == 200]
    if status == "200":
        want = [r for r in records.values() if r.status_code == 200]
    elif status == "ok":
        want = [r for r in records.values() if not r.is_error]
    assert sorted(seen) == sorted(str(r.id) for r in want)
    assert len(seen) == len(set(seen))
    assert all(isinstance(uuid.UUID(x), uuid.UUID) for x in seen)
