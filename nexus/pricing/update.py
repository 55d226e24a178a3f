"""Keeping prices current without a release: fetch a newer genai-prices dataset, validate it, show what
changed, and keep it in the data dir (``nexus prices update``, ``PRICES_AUTO_UPDATE``; docs/pricing.md).

A copy is only stored after it parsed and validated completely; anything else leaves the prices in
use untouched. The fetch is a plain HTTP GET (stdlib, bounded in time and size) so that the same
code serves the command and the proxy's daily background task.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from nexus.pricing.dataset import (
    UPDATE_URL,
    Dataset,
    DatasetError,
    parse_dataset,
    split_model_price,
    store_dataset,
)
from nexus.pricing.rates import Rates

MAX_DATASET_BYTES = 64 * 1024 * 1024
FETCH_TIMEOUT_S = 20.0
_CONTEXTS = (("standard", {}), ("fast", {"speed": "fast"}), ("batch", {"processing": "batch"}))


class FetchError(OSError):
    """The dataset could not be read (network, HTTP status, file); one line."""


def read_source(source: str | None, timeout: float = FETCH_TIMEOUT_S) -> tuple[bytes, str]:
    """The bytes of ``source`` (an http(s) URL, a ``file://`` URL or a path) and its canonical name."""
    source = source or UPDATE_URL
    if source.startswith(("http://", "https://")):
        req = urllib.request.Request(source, headers={"User-Agent": "claude-nexus-monitor (prices update)"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - http(s) only, checked above
                data = resp.read(MAX_DATASET_BYTES + 1)
        except urllib.error.HTTPError as exc:
            raise FetchError(f"{source}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise FetchError(f"cannot fetch {source}: {reason}") from None
        name = source
    else:
        path = Path(source[len("file://"):] if source.startswith("file://") else source).expanduser()
        try:
            with path.open("rb") as f:
                data = f.read(MAX_DATASET_BYTES + 1)
        except OSError as exc:
            raise FetchError(f"cannot read {path}: {exc.strerror or exc}") from None
        name = str(path.resolve())
    if len(data) > MAX_DATASET_BYTES:
        raise FetchError(f"{name}: larger than {MAX_DATASET_BYTES // (1024 * 1024)} MB, not a price dataset")
    return data, name


def _fmt(r: Rates) -> str:
    return (f"in {r.input.normalize():f} / out {r.output.normalize():f} / 5m {r.cache_write_5m.normalize():f} / "
            f"1h {r.cache_write_1h.normalize():f} / read {r.cache_read.normalize():f}")


def diff_datasets(old: Dataset, new: Dataset, at: datetime | None = None) -> list[str]:
    """Human-readable differences of the Anthropic models between two datasets (rates in force at ``at``)."""
    at = at or datetime.now(UTC)
    before = {m.id: m for m in old.models()}
    after = {m.id: m for m in new.models()}
    lines: list[str] = []
    for mid in sorted(after.keys() - before.keys()):
        split = split_model_price(after[mid].get_prices(at))
        lines.append(f"+ {mid}: {_fmt(split[0]) if split else 'no token prices'}")
    for mid in sorted(before.keys() - after.keys()):
        lines.append(f"- {mid}: no longer in the dataset (its records become unpriced on reprice)")
    for mid in sorted(before.keys() & after.keys()):
        a, b = before[mid], after[mid]
        for name, ctx in _CONTEXTS:
            ra, rb = split_model_price(a.get_prices(at, ctx or None)), split_model_price(b.get_prices(at, ctx or None))
            if ra != rb:
                lines.append(f"~ {mid} ({name}): {_fmt(ra[0]) if ra else '-'} -> {_fmt(rb[0]) if rb else '-'}"
                             + ("" if ra is None or rb is None or ra[1] == rb[1] else " (long-prompt tiers changed)"))
        if Dataset.boundaries(a) != Dataset.boundaries(b):
            lines.append(f"~ {mid}: dated price history changed")
    return lines


@dataclass
class UpdateResult:
    dataset: Dataset
    changes: list[str] = field(default_factory=list)
    stored: Path | None = None  # None: dry run, or nothing changed


def update_dataset(data_dir: Path, current: Dataset, source: str | None, *, dry_run: bool = False) -> UpdateResult:
    """Fetch, validate, compare with ``current`` and (unless ``dry_run``) store; raise on any problem.

    ``FetchError`` when it cannot be read, ``DatasetError`` when it must not be used; the data dir's
    copy is then untouched.
    """
    data, name = read_source(source)
    new = parse_dataset(data, name, fetched_at=datetime.now(UTC).isoformat(timespec="seconds"), source_url=name)
    changes = diff_datasets(current, new)
    result = UpdateResult(new, changes)
    if not dry_run:
        result.stored = store_dataset(data_dir, new)
        new.origin = str(result.stored)
    return result


__all__ = ["DatasetError", "FetchError", "UpdateResult", "diff_datasets", "read_source", "update_dataset"]
