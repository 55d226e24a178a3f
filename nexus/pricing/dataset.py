"""The genai-prices dataset behind our prices: the snapshot bundled with the package, or a newer,
validated copy of its Anthropic provider kept in the data dir (``nexus prices update``).

genai-prices (https://github.com/pydantic/genai-prices, MIT) is Pydantic's maintained price data:
every Claude model with dated prices, long-context tiers, the ``speed: fast`` and
``processing: batch`` variants and web-search prices. We use it to *resolve* the rates of a
(model, date, context) once and do the exact ``Decimal`` arithmetic ourselves (docs/pricing.md):
its own ``calc_price`` re-validates its unit tree on every call (~250 µs) and reports neither the
per-part breakdown nor web search apart.

Its ``input_tokens`` is the whole prompt *including* cache reads and writes; Anthropic's (and our
``Usage.input_tokens``) is the uncached part. The rates are unaffected by that difference; only
the tier threshold is, and ``Quote.for_prompt`` is given the whole prompt.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import genai_prices
from genai_prices import types as gt
from genai_prices.units import _get_registry
from genai_prices.validation import validate_model_price

from nexus.pricing.rates import MAX_CACHED_IDS, Rates, log

PROVIDER_ID = "anthropic"
# The file genai-prices itself auto-updates from (genai_prices.update_prices.DEFAULT_UPDATE_URL).
UPDATE_URL = "https://raw.githubusercontent.com/pydantic/genai-prices/refs/heads/main/prices/new_data/v2/data.json"
STORE_DIR = "prices"
STORE_NAME = "genai-prices-anthropic.json"
STORE_FORMAT = "nexus-genai-prices/1"
LIBRARY_VERSION: str = genai_prices.__version__
BUNDLED_LABEL = f"genai-prices {LIBRARY_VERSION}"

_KEYS = (("input", "input_mtok"), ("output", "output_mtok"), ("cache_write_5m", "cache_write_mtok"),
         ("cache_write_1h", "cache_write_1h_mtok"), ("cache_read", "cache_read_mtok"),
         ("web_search", "web_searches_kcount"))


class DatasetError(ValueError):
    """A price dataset that must not be used (unreadable, malformed, inconsistent); one line."""


def store_path(data_dir: Path) -> Path:
    return Path(data_dir) / STORE_DIR / STORE_NAME


def _value_at(value: Any, start: int | None) -> Decimal | None:
    """A price key's value for requests above tier ``start`` (None: the base tier)."""
    if value is None or isinstance(value, Decimal):
        return value
    if isinstance(value, gt.TieredPrices):
        chosen = value.base
        if start is not None:
            for tier in value.tiers:
                if tier.start <= start:
                    chosen = tier.price
        return chosen
    return Decimal(str(value))


def split_model_price(mp: gt.ModelPrice) -> tuple[Rates, tuple[tuple[int, Rates], ...]] | None:
    """A resolved ``ModelPrice`` as base ``Rates`` plus long-prompt tiers; None without in/out prices.

    Missing cache prices follow the library: cache tokens without their own price cost the input
    rate, a 1-hour write without its own price costs the 5-minute rate.
    """
    raw = mp.__dict__
    starts = sorted({t.start for v in raw.values() if isinstance(v, gt.TieredPrices) for t in v.tiers})

    def rates(start: int | None) -> Rates | None:
        v = {ours: _value_at(raw.get(theirs), start) for ours, theirs in _KEYS}
        if v["input"] is None or v["output"] is None:
            return None
        write = v["cache_write_5m"] if v["cache_write_5m"] is not None else v["input"]
        return Rates(
            input=v["input"], output=v["output"], cache_write_5m=write,
            cache_write_1h=v["cache_write_1h"] if v["cache_write_1h"] is not None else write,
            cache_read=v["cache_read"] if v["cache_read"] is not None else v["input"],
            # A model without a web-search price does not offer the tool; the library bills 0 too.
            web_search=v["web_search"] if v["web_search"] is not None else Decimal(0),
        )

    base = rates(None)
    if base is None:
        return None
    tiers = []
    for start in starts:
        tier = rates(start)
        if tier is not None:
            tiers.append((start, tier))
    return base, tuple(tiers)


def _constraint_start(c: Any) -> datetime | None:
    if isinstance(c, gt.StartDateConstraint):
        return datetime(c.start_date.year, c.start_date.month, c.start_date.day, tzinfo=UTC)
    return None


@dataclass
class Dataset:
    """One snapshot of genai-prices' Anthropic provider and where it came from."""

    provider: gt.Provider
    label: str  # "genai-prices 0.2.3" (bundled) or "genai-prices data 2026-12-01" (an update)
    origin: str  # "bundled" or the file it was read from
    fetched_at: str | None = None
    source_url: str | None = None
    raw: dict[str, Any] | None = None  # the provider as JSON (None for the bundled one)
    library_version: str | None = None  # genai-prices version a stored copy was fetched under
    _found: dict[str, gt.ModelInfo | None] = field(default_factory=dict, repr=False)

    @classmethod
    def bundled(cls) -> Dataset:
        from genai_prices.data import providers  # 1.6 MB of generated Python: imported once, here

        provider = next(p for p in providers if p.id == PROVIDER_ID)
        return cls(provider, BUNDLED_LABEL, "bundled")

    @property
    def is_bundled(self) -> bool:
        return self.origin == "bundled"

    def find(self, ref: str) -> gt.ModelInfo | None:
        """The dataset's model for one spelling of an id (lower case, no ``[1m]``); None if unknown."""
        hit = self._found.get(ref, ...)
        if hit is not ...:
            return hit  # type: ignore[return-value]
        model = self.provider.find_model(ref)
        if len(self._found) >= MAX_CACHED_IDS:
            self._found.clear()
        self._found[ref] = model
        return model

    def models(self) -> list[gt.ModelInfo]:
        return list(self.provider.models)

    @staticmethod
    def boundaries(model: gt.ModelInfo) -> list[datetime]:
        """Every instant at which this model's prices or variants change (UTC midnights)."""
        out: set[datetime] = set()
        if isinstance(model.prices, list):
            out.update(d for c in model.prices if (d := _constraint_start(c.constraint)) is not None)
        for v in model.price_variants or ():
            d = _constraint_start(v.constraint)
            if d is not None:
                out.add(d)
        return sorted(out)

    @staticmethod
    def resolve(model: gt.ModelInfo, at: datetime, context: dict[str, str]) -> tuple[Rates, tuple[tuple[int, Rates], ...]] | None:
        return split_model_price(model.get_prices(at, context or None))


# ---------------------------------------------------------------------------------------------
# Reading, validating and storing a copy.


def _validate_provider(provider: gt.Provider) -> None:
    registry = _get_registry()
    if not provider.models:
        raise DatasetError("the anthropic provider lists no models")
    now = datetime.now(UTC)
    for m in provider.models:
        sets = [m.prices] if isinstance(m.prices, gt.ModelPrice) else [c.prices for c in m.prices]
        if not sets:
            raise DatasetError(f"model {m.id!r} has no prices")
        for mp in sets:
            keys = {k for k, v in mp.__dict__.items() if v is not None and not k.startswith("_")}
            try:
                validate_model_price(keys, registry)
            except ValueError as exc:
                raise DatasetError(f"model {m.id!r}: {exc}") from None
            for k in keys:
                v = mp.__dict__[k]
                values = [v.base, *(t.price for t in v.tiers)] if isinstance(v, gt.TieredPrices) else [v]
                for d in values:
                    if not isinstance(d, Decimal) or not d.is_finite() or d < 0:
                        raise DatasetError(f"model {m.id!r}: {k} must be a non-negative number, got {d!r}")
        for v in m.price_variants or ():
            for k, d in v.prices.__dict__.items():
                if isinstance(d, Decimal) and (not d.is_finite() or d < 0):
                    raise DatasetError(f"model {m.id!r}: variant {v.when} {k} is negative")
        if split_model_price(m.get_prices(now)) is None:
            raise DatasetError(f"model {m.id!r} has no input/output price")


def parse_dataset(data: bytes, origin: str, *, fetched_at: str | None = None,
                  source_url: str | None = None) -> Dataset:
    """A dataset from genai-prices' ``data.json`` (a list of providers) or from our stored copy.

    Everything is checked before anything is used: JSON, the provider schema (pydantic), every
    price set's keys (the library would only notice at pricing time), non-negative numbers.
    """
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DatasetError(f"not JSON: {exc}") from None
    version: str | None = None
    if isinstance(doc, dict) and doc.get("format") == STORE_FORMAT:
        fetched_at = str(doc.get("fetchedAt") or fetched_at or "")
        source_url = doc.get("source") or source_url
        version = doc.get("libraryVersion")
        doc = doc.get("providers")
    if not isinstance(doc, list):
        raise DatasetError("expected genai-prices' data.json: a JSON array of providers")
    raw = next((p for p in doc if isinstance(p, dict) and p.get("id") == PROVIDER_ID), None)
    if raw is None:
        raise DatasetError("no 'anthropic' provider in the file")
    try:
        providers = gt._providers_from_raw([raw])
    except Exception as exc:  # pydantic.ValidationError and friends: one line, no traceback
        first = str(exc).strip().splitlines()
        raise DatasetError(f"the anthropic provider does not validate: {' '.join(first[:3])[:400]}") from None
    _validate_provider(providers[0])
    stamp = (fetched_at or datetime.now(UTC).isoformat(timespec="seconds"))
    return Dataset(providers[0], f"genai-prices data {stamp[:10]}", origin, stamp, source_url, raw, version)


def store_dataset(data_dir: Path, ds: Dataset) -> Path:
    """Write ``ds`` as the data dir's copy, atomically (a crash leaves the old file whole)."""
    assert ds.raw is not None
    path = store_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps({
        "format": STORE_FORMAT,
        "fetchedAt": ds.fetched_at,
        "source": ds.source_url,
        "libraryVersion": LIBRARY_VERSION,
        "sha256": hashlib.sha256(json.dumps(ds.raw, sort_keys=True).encode()).hexdigest(),
        "providers": [ds.raw],
    }, indent=1).encode()
    fd, tmp = tempfile.mkstemp(prefix=".prices-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_dataset(data_dir: Path | None) -> Dataset:
    """The data dir's copy when there is a valid one made with this genai-prices version, else bundled.

    A copy fetched under another genai-prices version is ignored (the installed package may carry
    newer data than an old fetch); a corrupt copy is ignored with one warning. Neither is deleted.
    """
    if data_dir is None:
        return Dataset.bundled()
    path = store_path(data_dir)
    if not path.is_file():
        return Dataset.bundled()
    try:
        ds = parse_dataset(path.read_bytes(), str(path))
    except (OSError, DatasetError) as exc:
        log.warning("price data %s is unusable (%s); using the bundled %s", path, exc, BUNDLED_LABEL)
        return Dataset.bundled()
    made_with = ds.library_version
    if made_with and made_with != LIBRARY_VERSION:
        log.warning("price data %s was fetched under genai-prices %s, %s is installed: using the bundled "
                    "data (run `nexus prices update` to refresh)", path, made_with, LIBRARY_VERSION)
        return Dataset.bundled()
    return ds
