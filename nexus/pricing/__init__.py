"""Exact, effective-dated prices for Claude models, and the cost of one exchange.

Why this module is careful:

* **Exact.** Costs are ``Decimal`` sums of tokens times $/MTok; no floats, so a month of records
  adds up to the cent and matches Anthropic's invoice arithmetic.
* **Dated.** A record is priced with the rate valid at its ``created_at``; price changes are new
  periods, never edits, so re-pricing history gives the same answer.
* **Honest about unknowns.** A model we cannot map to a priced family costs ``None`` ("unpriced"),
  logged once per model id, never a fake $0 that would hide spend.

Model ids map to a *family* (the key of the price table) after removing what does not change the
price: case, ``[1m]``-style suffixes, provider prefixes (``anthropic/``, ``us.anthropic.``),
Bedrock/Vertex version suffixes (``-v1:0``, ``@20250929``), ``-latest`` and the ``-YYYYMMDD``
date. Old and new naming both work: ``claude-3-5-haiku-20241022`` -> ``claude-3-5-haiku``,
``claude-opus-4-0`` -> ``claude-opus-4``, ``claude-sonnet-4-5-20250929[1m]`` ->
``claude-sonnet-4-5``, ``claude-4-sonnet`` -> ``claude-sonnet-4``.

Cache writes: 5-minute writes are priced at the 5m rate and 1-hour writes at the 1h rate; a total
without a split (``cache_creation_input_tokens`` only) is priced at the 5m rate.

Long-prompt tiers: when a request's prompt (input + cache writes + cache reads) exceeds a model's
threshold, the tier's rates apply to *every* token of that request, output included.

The file format of ``PRICING_FILE`` (and of the built-in table) is documented in docs/pricing.md.
"""

from __future__ import annotations

from nexus.pricing.models import normalize_model_id
from nexus.pricing.rates import PricePeriod, Rates
from nexus.pricing.table import PriceTable

__all__ = ["PricePeriod", "PriceTable", "Rates", "normalize_model_id"]
