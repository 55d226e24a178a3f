"""``nexus prices show MODEL`` and ``nexus prices update``: the rates in force, and a fresh dataset.

``show`` prints the rates per million tokens of each token kind (and web search per 1,000) that
would price a request of MODEL at ``--at`` with ``--speed`` / ``--geo`` / ``--service-tier``, and
which layer they come from: the genai-prices dataset (bundled or updated), the overlay, or
``PRICING_FILE`` (docs/pricing.md).
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from nexus.core.errors import CommandError
from nexus.core.settings import Settings


def _when(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC)
    try:
        if len(text.strip()) == 10:
            d = date.fromisoformat(text.strip())
            return datetime(d.year, d.month, d.day, 12, tzinfo=UTC)
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(f"--at: not a date or ISO time: {text!r} (e.g. 2026-11-15)", 2) from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _money(d: Decimal) -> str:
    text = f"{d.normalize():f}"
    return "$" + text


def _table(settings: Settings):
    from nexus.pricing import PriceTable

    try:
        return PriceTable.load(settings.pricing.file, settings.data_dir)
    except ValueError as exc:
        raise CommandError(str(exc), 2) from None


def cli_show(args: Any, settings: Settings) -> int:
    table = _table(settings)
    at = _when(args.at)
    model = args.model.strip()
    if not model or len(model) > 200:
        raise CommandError("MODEL must be a model id (1-200 characters)", 2)
    speed = None if args.speed in (None, "standard") else args.speed
    quote = table.quote(model, at, speed, args.service_tier, args.geo)
    if quote is None:
        sys.stderr.write(f"nexus: no price known for {model!r} at {at.date()}: its requests are recorded as "
                         f"unpriced (add it with PRICING_FILE, or try `nexus prices update`)\n")
        return 1
    standard = table.quote(model, at, None, args.service_tier, args.geo)
    ds = table.dataset
    origin = "bundled" if ds.is_bundled else f"updated copy {ds.origin}, fetched {ds.fetched_at}"
    print(f"{model}  (family {quote.family})")
    print(f"at {at.isoformat(timespec='minutes')}, speed {args.speed or 'standard'}, "
          f"inference geo {args.geo or 'default'}, service tier {args.service_tier or 'standard'}")
    print(f"source: {quote.source}  [dataset: {ds.label}, {origin}"
          + (f"; PRICING_FILE {table.file}" if table.file else "") + "]")
    if speed == "fast" and standard is not None and standard.rates == quote.rates:
        print("note: no fast-mode price for this model: standard rates apply")
    for name, factor in quote.multipliers:
        print(f"multiplier: {name} x{factor.normalize():f} (included below)")
    print()
    print(f"  {'per million tokens':<22}{'base':>12}" + "".join(f"{'> ' + format(s, ','):>16}" for s, _ in quote.tiers))
    rows = (("input", "input"), ("output", "output"), ("cache write 5m", "cache_write_5m"),
            ("cache write 1h", "cache_write_1h"), ("cache read", "cache_read"))
    for label, attr in rows:
        cells = [getattr(quote.rates, attr), *(getattr(r, attr) for _, r in quote.tiers)]
        print(f"  {label:<22}{_money(cells[0]):>12}" + "".join(f"{_money(c):>16}" for c in cells[1:]))
    print(f"  {'web search / 1,000':<22}{_money(quote.rates.web_search):>12}")
    if quote.tiers:
        print(f"\nlong prompt: above {quote.tiers[0][0]:,} prompt tokens (input + cache writes + reads) "
              "the tier's rates apply to every token of the request")
    else:
        print("\nlong prompt: flat (no tier)")
    return 0


def cli_update(args: Any, settings: Settings) -> int:
    from nexus.pricing.dataset import DatasetError, load_dataset
    from nexus.pricing.update import FetchError, update_dataset

    current = load_dataset(settings.data_dir)
    try:
        result = update_dataset(settings.data_dir, current, args.source, dry_run=args.dry_run)
    except FetchError as exc:
        raise CommandError(f"{exc}; keeping the prices in use ({current.label})") from None
    except DatasetError as exc:
        raise CommandError(f"refused: {exc}; the prices in use are kept ({current.label})") from None
    new = result.dataset
    print(f"validated {len(new.models())} Anthropic models from {new.source_url}")
    if result.changes:
        print(f"changes against {current.label}:")
        for line in result.changes:
            print(f"  {line}")
    else:
        print(f"no price changes against {current.label}")
    if result.stored is not None:
        print(f"stored {result.stored}: used from the next start of the proxy (a running proxy with "
              "PRICES_AUTO_UPDATE=1 picks it up itself); `nexus db reprice` applies it to history")
    else:
        print("dry run: nothing stored")
    return 0
