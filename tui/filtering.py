"""The `/` filter: what a person types, matched against the names the screen shows.

One line, k9s-style: ``sonnet-4-5``, ``team-b``, ``acct_7``, ``5xx`` or several terms at once
(``sonnet 429``); ``model:``, ``domain:``, ``account:``, ``status:`` (or ``m:`` ``d:`` ``a:`` ``s:``)
pin a term to one kind. A bare term is looked up among the names seen (model families, domains,
accounts): an exact name first, then a substring, the busiest match winning. What it resolved to
is said back (``Resolution.notes``) so nothing is silently guessed. No Textual here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from nexus.core.models import model_family
from tui.api.query import STATUS_CLASS, Query

KINDS = ("model", "domain", "account")
PREFIXES = {"model": "model", "m": "model", "domain": "domain", "d": "domain", "account": "account",
            "a": "account", "acct": "account", "status": "status", "s": "status", "session": "session",
            "tag": "tag"}


@dataclass
class Resolution:
    query: Query
    notes: list[str] = field(default_factory=list)
    # names seen that match the last term typed, busiest first: (kind, name, requests)
    suggestions: list[tuple[str, str, int]] = field(default_factory=list)


def known_names(models: Mapping[str, int], domains: Mapping[str, int],
                accounts: Mapping[str, int]) -> dict[str, list[tuple[str, int]]]:
    """Names as shown (model families), busiest first; full model names fold into their family."""
    fam: dict[str, int] = {}
    for m, n in models.items():
        if m:
            fam[model_family(m)] = fam.get(model_family(m), 0) + n
    out = {"model": fam, "domain": dict(domains), "account": dict(accounts)}
    return {k: sorted(((name, n) for name, n in v.items() if name), key=lambda x: (-x[1], x[0]))
            for k, v in out.items()}


def _lookup(term: str, names: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
    low = term.lower()
    exact = [x for x in names if x[0].lower() == low]
    if exact:
        return exact
    return [x for x in names if low in x[0].lower()]


def resolve(text: str, base: Query, known: Mapping[str, Sequence[tuple[str, int]]]) -> Resolution:
    """The query the text means (the time range kept from ``base``), with what was guessed."""
    values: dict[str, str | None] = {"model": None, "domain": None, "account": None, "status": None,
                                     "session": None, "tag": None}
    notes: list[str] = []
    suggestions: list[tuple[str, str, int]] = []
    for raw in text.split():
        kind: str | None = None
        term = raw
        for sep in (":", "="):
            head, found, tail = raw.partition(sep)
            if found and head.lower() in PREFIXES:
                kind, term = PREFIXES[head.lower()], tail
                break
        if not term:
            continue
        if kind in ("session", "tag"):  # exact, as the API takes them (tag: name:value)
            values[kind] = term.replace("=", ":", 1) if kind == "tag" and ":" not in term else term
            continue
        if kind == "status" or (kind is None and STATUS_CLASS.match(term)):
            values["status"] = term.lower()
            suggestions = []
            continue
        kinds = (kind,) if kind else KINDS
        hits = [(k, name, n) for k in kinds for name, n in _lookup(term, known.get(k, ()))]
        suggestions = hits[:8]
        if not hits:
            k = kind or ("domain" if "." in term else "account" if term.lower().startswith("acct") else "model")
            values[k] = term
            notes.append(f"no {k} seen matches '{term}'")
            continue
        # The kind of the best hit wins; exact names come first from _lookup.
        exact = [h for h in hits if h[1].lower() == term.lower()]
        best = (exact or sorted(hits, key=lambda h: -h[2]))[0]
        values[best[0]] = best[1]
        others = [h[1] for h in hits if h is not best and h[0] == best[0]]
        if best[1] != term:
            notes.append(f"'{term}' → {best[0]} {best[1]}" + (f" (also: {', '.join(others[:3])})" if others else ""))
    q = Query(time_range=base.time_range, **values)
    return Resolution(q, notes, suggestions)


def filter_text_of(q: Query) -> str:
    """The text that resolves back to ``q`` (what the filter line starts with when reopened)."""
    return " ".join(f"{k}:{v}" for k, v in (("model", q.model), ("domain", q.domain), ("account", q.account),
                                            ("status", q.status), ("session", q.session), ("tag", q.tag)) if v)
