"""``/api/sessions`` and ``/api/sessions/{id}``: the sessions read model (migration 0006), never raw rows.

The writer keeps ``api_sessions``, ``api_session_agents`` and ``api_session_tags`` (docs/sessions.md);
a page of sessions is one indexed read of ``api_sessions`` plus two small reads keyed by the page's
ids. The session's latest requests come from ``api_requests`` through its session index.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from nexus.core.timebuckets import iso
from nexus.store.read.base import Filters, num, tokens_obj
from nexus.store.read.requests import RequestQueries

_SESSION_COLS = """session_id, account_id, client, first_seen, last_seen, requests, errors, input_tokens,
    output_tokens, cache_creation_input_tokens, cache_read_input_tokens, cost_usd, unpriced_requests, models"""


def encode_session_cursor(last_seen: datetime, session_id: str) -> str:
    raw = f"{last_seen.isoformat()}|{session_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_session_cursor(cursor: str) -> tuple[datetime, str]:
    """Inverse of ``encode_session_cursor``; ``ValueError`` for anything that is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        t, sep, sid = raw.partition("|")
        when = datetime.fromisoformat(t)
        if not sep or not sid or when.tzinfo is None:
            raise ValueError("not a session cursor")
        return when, sid
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValueError("not a cursor returned by this API") from exc


def _tokens(r: Any) -> dict[str, int]:
    return tokens_obj(r["input_tokens"], r["output_tokens"], r["cache_creation_input_tokens"],
                      r["cache_read_input_tokens"])


def _pick_tags(rows: list[Any]) -> dict[str, str]:
    """One value per tag name: the one most requests carried (ties: the smallest value)."""
    best: dict[str, tuple[int, str]] = {}
    for r in rows:
        n, v = int(r["requests"]), r["value"]
        cur = best.get(r["name"])
        if cur is None or n > cur[0] or (n == cur[0] and v < cur[1]):
            best[r["name"]] = (n, v)
    return {k: best[k][1] for k in sorted(best)}


def agent_tree(agents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Agents in tree order (each after its parent, siblings by first seen), with their ``depth``.

    The main thread (``agentId`` null) is the root; a sub-agent without a parent hangs under it; a
    parent nobody saw (its requests were pruned) is treated as the main thread.
    """
    known = {a["agentId"] for a in agents}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for a in agents:
        if a["agentId"] is None:
            continue
        parent = a["parentAgentId"] if a["parentAgentId"] in known and a["parentAgentId"] != a["agentId"] else None
        children.setdefault(parent, []).append(a)
    for kids in children.values():
        kids.sort(key=lambda a: (a["firstSeen"], a["agentId"]))
    out: list[dict[str, Any]] = []
    seen: set[str | None] = set()

    def walk(node: str | None, depth: int) -> None:
        for a in children.get(node, []):
            if a["agentId"] in seen:
                continue
            seen.add(a["agentId"])
            out.append({**a, "depth": depth})
            walk(a["agentId"], depth + 1)

    main = [a for a in agents if a["agentId"] is None]
    if main:
        out.append({**main[0], "depth": 0})
    walk(None, 1)
    out.extend({**a, "depth": 1} for a in agents if a["agentId"] is not None and a["agentId"] not in seen)
    return out


# Quota share (docs/sessions.md): each rise of an account's window utilization between two
# consecutive answers goes to the session of the request that got the later answer. The answers
# are those of the session's account from the one just before its first request to its last.
_QUOTA_SHARE = """
WITH bounds AS (
    SELECT coalesce((SELECT max(observed_at) FROM ratelimit_answers
                     WHERE account_id = $2 AND observed_at < $3::timestamptz), $3::timestamptz) AS lo),
steps AS (
    SELECT a.request_uuid, a.observed_at, w.key AS win, w.value::float8 AS u,
           lag(w.value::float8) OVER (PARTITION BY w.key ORDER BY a.observed_at, a.request_uuid) AS prev
    FROM ratelimit_answers AS a, jsonb_each_text(a.utilization) AS w, bounds
    WHERE a.account_id = $2 AND a.observed_at >= bounds.lo AND a.observed_at <= $4::timestamptz + interval '15 minutes'),
mine AS (
    SELECT s.* FROM steps AS s JOIN api_requests AS r ON r.id = s.request_uuid
    WHERE r.session_id = $1 AND r.created_at >= $3 AND r.created_at <= $4)
SELECT win, coalesce(sum(u - prev) FILTER (WHERE prev IS NOT NULL AND u > prev), 0) AS share, count(*) AS answers
FROM mine GROUP BY win ORDER BY win"""

# Other sessions ('' = requests without one) whose requests got answers for the same account meanwhile.
_INTERLEAVED = """
SELECT count(DISTINCT coalesce(r.session_id, '')) FROM ratelimit_answers AS a
JOIN api_requests AS r ON r.id = a.request_uuid
WHERE a.account_id = $2 AND a.observed_at >= $3 AND a.observed_at <= $4::timestamptz + interval '15 minutes'
  AND r.created_at >= $3::timestamptz - interval '1 hour' AND r.created_at <= $4::timestamptz + interval '1 hour'
  AND r.session_id IS DISTINCT FROM $1"""


# Active sessions of one list page whose quota share is computed (the rest: see the detail).
LIST_QUOTA_SESSIONS = 20


class SessionQueries(RequestQueries):

    async def _quota_share(self, conn: asyncpg.Connection, row: Any) -> tuple[dict[str, float] | None, str | None]:
        """``quotaShare`` (utilization points per window) and its note; ``None`` without measured windows."""
        if not row["account_id"]:
            return None, None
        args = (row["session_id"], row["account_id"], row["first_seen"], row["last_seen"])
        rows = await self._run(conn, "sessions.quota_share", _QUOTA_SHARE, *args)
        if not rows:
            return None, None
        share = {r["win"]: round(float(r["share"]), 6) for r in rows}
        others = (await self._run(conn, "sessions.interleaved", _INTERLEAVED, *args))[0][0]
        note = ("measured: the only session on this account meanwhile" if not others else
                f"estimate: {others} other session{'s' if others > 1 else ''} (or requests without one) "
                "used this account meanwhile; each rise goes to the request that saw it")
        return share, note

    def _session_json(self, r: Any, now: datetime, idle_s: float) -> dict[str, Any]:
        return {
            "sessionId": r["session_id"],
            "accountId": r["account_id"],
            "client": r["client"],
            "firstSeen": iso(r["first_seen"]),
            "lastSeen": iso(r["last_seen"]),
            "active": r["last_seen"] >= now - timedelta(seconds=idle_s),
            "requests": int(r["requests"]),
            "errors": int(r["errors"]),
            "tokens": _tokens(r),
            "costUsd": num(r["cost_usd"]),
            "unpricedRequests": int(r["unpriced_requests"]),
            "models": list(r["models"] or []),
        }

    async def _decorate(self, conn: asyncpg.Connection, sessions: list[dict[str, Any]]) -> None:
        """Add ``agents`` (sub-agents, the main thread not counted) and ``tags`` to a page of sessions."""
        ids = [s["sessionId"] for s in sessions]
        if not ids:
            return
        counts = {r["session_id"]: int(r["n"]) for r in await self._run(
            conn, "sessions.agent_counts",
            """SELECT session_id, count(*) FILTER (WHERE agent_id <> '') AS n FROM api_session_agents
               WHERE session_id = ANY($1::text[]) GROUP BY 1""", ids)}
        tags: dict[str, list[Any]] = {}
        for r in await self._run(conn, "sessions.tags",
                                 "SELECT session_id, name, value, requests FROM api_session_tags "
                                 "WHERE session_id = ANY($1::text[])", ids):
            tags.setdefault(r["session_id"], []).append(r)
        for s in sessions:
            s["agents"] = counts.get(s["sessionId"], 0)
            s["tags"] = _pick_tags(tags.get(s["sessionId"], []))

    async def _list_quota_share(self, conn: asyncpg.Connection, rows: list[Any], out: list[dict[str, Any]]) -> None:
        """``quotaShare`` for the page's *active* sessions (at most ``LIST_QUOTA_SESSIONS``), ``None``
        for the rest: each costs one indexed scan of the account's answers over the session's span,
        and an ended session's share no longer changes (``/api/sessions/{id}`` has it, with its note)."""
        budget = LIST_QUOTA_SESSIONS
        for r, s in zip(rows, out, strict=True):
            s["quotaShare"] = None
            if s["active"] and budget > 0 and r["account_id"]:
                budget -= 1
                share = await self._run(conn, "sessions.quota_share", _QUOTA_SHARE, r["session_id"],
                                        r["account_id"], r["first_seen"], r["last_seen"])
                s["quotaShare"] = {x["win"]: round(float(x["share"]), 6) for x in share} or None

    async def sessions(self, *, now: datetime, idle_s: float, limit: int, since: datetime | None = None,
                       account: str | None = None, tag: tuple[str, str] | None = None,
                       active: bool | None = None, before: tuple[datetime, str] | None = None,
                       client: str | None = None) -> dict[str, Any]:
        """Sessions by most recent activity, cursor-paged (``nextCursor``)."""
        args: list[Any] = []
        where = ["TRUE"]
        if since is not None:
            args.append(since)
            where.append(f"last_seen >= ${len(args)}")
        if account:
            args.append(account)
            where.append(f"account_id = ${len(args)}")
        if client:
            args.append(client + "%")
            where.append(f"client LIKE ${len(args)}")
        if active is not None:
            args.append(now - timedelta(seconds=idle_s))
            where.append(f"last_seen {'>=' if active else '<'} ${len(args)}")
        if tag:
            args += [tag[0], tag[1]]
            where.append(f"""EXISTS (SELECT 1 FROM api_session_tags AS t WHERE t.session_id = s.session_id
                             AND t.name = ${len(args) - 1} AND t.value = ${len(args)})""")
        if before is not None:
            args += [before[0], before[1]]
            a, b = len(args) - 1, len(args)
            where.append(f"(last_seen, session_id) < (${a}, ${b})")
        args.append(limit + 1)
        sql = f"""SELECT {_SESSION_COLS} FROM api_sessions AS s WHERE {' AND '.join(where)}
                  ORDER BY last_seen DESC, session_id DESC LIMIT ${len(args)}"""
        async with self._conn() as conn:
            rows = await self._run(conn, "sessions.list", sql, *args)
            more = len(rows) > limit
            rows = rows[:limit]
            out = [self._session_json(r, now, idle_s) for r in rows]
            await self._decorate(conn, out)
            await self._list_quota_share(conn, rows, out)
        cursor = encode_session_cursor(rows[-1]["last_seen"], rows[-1]["session_id"]) if more and rows else None
        return {"sessions": out, "nextCursor": cursor}

    async def session_detail(self, session_id: str, *, now: datetime, idle_s: float,
                             request_limit: int = 20) -> dict[str, Any] | None:
        """The session, its agent tree with per-agent totals, and its latest requests."""
        async with self._conn() as conn:
            rows = await self._run(conn, "sessions.one",
                                   f"SELECT {_SESSION_COLS} FROM api_sessions WHERE session_id = $1", session_id)
            if not rows:
                return None
            session = self._session_json(rows[0], now, idle_s)
            await self._decorate(conn, [session])
            quota_share, quota_note = await self._quota_share(conn, rows[0])
            session["quotaShare"] = quota_share
            agent_rows = await self._run(
                conn, "sessions.agents",
                """SELECT agent_id, parent_agent_id, first_seen, last_seen, requests, errors, input_tokens,
                          output_tokens, cache_creation_input_tokens, cache_read_input_tokens, cost_usd, models
                   FROM api_session_agents WHERE session_id = $1 ORDER BY first_seen, agent_id""", session_id)
        agents = [{
            "agentId": r["agent_id"] or None,
            "parentAgentId": r["parent_agent_id"],
            "requests": int(r["requests"]),
            "errors": int(r["errors"]),
            "tokens": _tokens(r),
            "costUsd": num(r["cost_usd"]),
            "models": list(r["models"] or []),
            "firstSeen": iso(r["first_seen"]),
            "lastSeen": iso(r["last_seen"]),
        } for r in agent_rows]
        latest = await self.requests(request_limit, Filters(session=session_id), name="sessions.requests")
        return {"session": session, "agents": agent_tree(agents), "requests": latest["requests"],
                "quotaShare": quota_share, "quotaShareNote": quota_note}
