"""The overlay: what the genai-prices dataset lacks, read from ``overlay.json`` (one row per fact,
each with its source URL; docs/pricing.md).

* ``inference_geo``: the price multiplier of ``inference_geo: "us"`` per family (1.1x on Opus 4.6,
  Sonnet 4.6 and every model released after them; ``*`` covers models newer than the file).
* ``aliases``: ids the dataset does not know yet that are billed like another family
  (``claude-mythos-5-1`` = Fable 5.1's prices). The dataset wins once it has the id itself.
* ``periods``: a dated patch of some rates before a date the dataset does not model.
* ``long_prompt``: a long-prompt tier the dataset's entry lacks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from importlib import resources
from typing import Any

from nexus.pricing.models import family_key
from nexus.pricing.rates import Rates

_RATE_NAMES = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")


class OverlayError(ValueError):
    pass


@dataclass(frozen=True)
class Patch:
    """Rates replaced before ``before`` (UTC midnight)."""

    before: datetime
    rates: dict[str, Decimal]
    source: str


@dataclass
class Overlay:
    geo: dict[tuple[str, str], tuple[Decimal, str]] = field(default_factory=dict)  # (family, geo) -> (x, source)
    aliases: dict[str, tuple[str, str]] = field(default_factory=dict)  # family -> (target family, source)
    patches: dict[str, list[Patch]] = field(default_factory=dict)
    long_prompt: dict[str, tuple[int, dict[str, Decimal], str]] = field(default_factory=dict)

    def geo_multiplier(self, family: str, geo: str | None) -> tuple[Decimal, str] | None:
        """``(multiplier, source)`` for ``geo`` on ``family``; None when nothing changes the price."""
        if not geo:
            return None
        geo = geo.lower()
        hit = self.geo.get((family, geo)) or self.geo.get(("*", geo))
        if hit is None or hit[0] == 1:
            return None
        return hit

    def patched(self, family: str, at: datetime, rates: Rates) -> Rates | None:
        """``rates`` with this family's dated patch for ``at`` applied; None when none applies."""
        for patch in self.patches.get(family, ()):
            if at < patch.before:
                return Rates(**{**{n: getattr(rates, n) for n in (*_RATE_NAMES, "web_search")}, **patch.rates})
        return None

    def boundaries(self, family: str) -> list[datetime]:
        return [p.before for p in self.patches.get(family, ())]


def _dec(v: Any, where: str) -> Decimal:
    if isinstance(v, bool) or not isinstance(v, str | int):
        raise OverlayError(f"{where}: expected a number as a string, got {v!r}")
    try:
        d = Decimal(str(v))
    except InvalidOperation:
        raise OverlayError(f"{where}: not a number: {v!r}") from None
    if not d.is_finite() or d < 0:
        raise OverlayError(f"{where}: must be a non-negative number")
    return d


def _source(row: dict[str, Any], where: str) -> str:
    src = row.get("source")
    if not isinstance(src, str) or not src.startswith("https://"):
        raise OverlayError(f"{where}: every row needs a source URL (https://…)")
    return src


def _family(row: dict[str, Any], where: str, *, star: bool = False) -> str:
    m = row.get("model")
    if not isinstance(m, str) or not m:
        raise OverlayError(f"{where}: missing model")
    return "*" if star and m == "*" else family_key(m)


def parse_overlay(doc: Any) -> Overlay:
    """Validate and read an overlay document; ``OverlayError`` names the first bad row."""
    if not isinstance(doc, dict):
        raise OverlayError("top level must be an object")
    out = Overlay()
    for i, row in enumerate(doc.get("inference_geo", [])):
        where = f"inference_geo[{i}]"
        geo = row.get("geo")
        if not isinstance(geo, str) or not geo:
            raise OverlayError(f"{where}: missing geo")
        mult = _dec(row.get("multiplier"), f"{where}.multiplier")
        if mult == 0:
            raise OverlayError(f"{where}.multiplier must be > 0")
        out.geo[(_family(row, where, star=True), geo.lower())] = (mult, _source(row, where))
    for i, row in enumerate(doc.get("aliases", [])):
        where = f"aliases[{i}]"
        target = row.get("prices_of")
        if not isinstance(target, str) or not target:
            raise OverlayError(f"{where}: missing prices_of")
        out.aliases[_family(row, where)] = (family_key(target), _source(row, where))
    for i, row in enumerate(doc.get("periods", [])):
        where = f"periods[{i}]"
        try:
            d = date.fromisoformat(str(row.get("before")))
        except ValueError:
            raise OverlayError(f"{where}.before must be a date like 2026-10-07") from None
        changes = row.get("set")
        if not isinstance(changes, dict) or not changes or set(changes) - set(_RATE_NAMES):
            raise OverlayError(f"{where}.set must map some of {', '.join(_RATE_NAMES)} to prices")
        patch = Patch(datetime(d.year, d.month, d.day, tzinfo=UTC),
                      {k: _dec(v, f"{where}.set.{k}") for k, v in changes.items()}, _source(row, where))
        out.patches.setdefault(_family(row, where), []).append(patch)
    for fam in out.patches:
        out.patches[fam].sort(key=lambda p: p.before)
    for i, row in enumerate(doc.get("long_prompt", [])):
        where = f"long_prompt[{i}]"
        above = row.get("above")
        if isinstance(above, bool) or not isinstance(above, int) or above < 0:
            raise OverlayError(f"{where}.above must be a non-negative integer")
        rates = {k: _dec(row.get(k), f"{where}.{k}") for k in _RATE_NAMES}
        out.long_prompt[_family(row, where)] = (above, rates, _source(row, where))
    return out


def builtin_overlay() -> Overlay:
    text = resources.files("nexus.pricing").joinpath("overlay.json").read_text(encoding="utf-8")
    try:
        return parse_overlay(json.loads(text))
    except (ValueError, OverlayError) as exc:  # pragma: no cover - guarded by tests
        raise RuntimeError(f"nexus/pricing/overlay.json is broken: {exc}") from exc
