"""Exact, effective-dated prices for Claude models, and the cost of one exchange.

Why this package is careful:

* **Exact.** Costs are ``Decimal`` sums of tokens times $/MTok (and searches times $/1,000); no
  floats, so a month of records adds up to the cent and matches Anthropic's invoice arithmetic.
* **Dated.** A record is priced with the rate valid at its ``created_at``; price changes are new
  periods, never edits, so re-pricing history gives the same answer.
* **Every billing dimension.** Fast mode (``speed: fast``), Message Batches (``service_tier:
  batch``), US-only inference (``inference_geo: us``), web searches, 5-minute vs 1-hour cache
  writes and long-prompt tiers (docs/pricing.md).
* **Honest about unknowns.** A model nothing prices costs ``None`` ("unpriced"), logged once per
  model id, never a fake $0 that would hide spend.

The rates come from three layers (``table.py``): ``PRICING_FILE`` over the overlay
(``overlay.json``, what the dataset lacks, with sources) over the genai-prices dataset
(``dataset.py``: bundled, or refreshed by ``nexus prices update``).
"""

from __future__ import annotations

from nexus.pricing.dataset import BUNDLED_LABEL, Dataset, DatasetError
from nexus.pricing.models import normalize_model_id
from nexus.pricing.rates import Price, PricePeriod, Quote, Rates
from nexus.pricing.table import PriceTable

__all__ = ["BUNDLED_LABEL", "Dataset", "DatasetError", "Price", "PricePeriod", "PriceTable", "Quote", "Rates",
           "normalize_model_id"]
