"""Pricing: exact Decimal costs per model, dated prices, long-prompt tiers, PRICING_FILE formats."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import genai_prices
import pytest

from nexus.core.usage import Usage
from nexus.pricing import PriceTable, Rates, normalize_model_id

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
M = 1_000_000


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.builtin()


def D(s: str) -> Decimal:
    return Decimal(s)


# (model, usage fields, expected $). Each expected value is worked out by hand from Anthropic's
# published rates ($/MTok: input / output / 5m write / 1h write / cache read; web search $10 per
# 1,000), as the dataset has them; the rates are written here, never read from the library.
COST_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("claude-sonnet-4-5-20250929", {"input_tokens": 1000, "output_tokens": 1000}, "0.018"),
    # Fable 5.1: 10 / 50 / 12.5 / 20 / 0.25 (cache reads 0.025x input).
    ("claude-fable-5-1", {"input_tokens": 10_000, "output_tokens": 2_000, "cache_read_input_tokens": 100_000,
                          "cache_creation_input_tokens": 4_000}, "0.275"),  # 0.1 + 0.1 + 0.025 + 0.05
    ("claude-fable-5-1-20260901", {"cache_read_input_tokens": M}, "0.25"),
    # Fable 5.2: 8 / 40 / 10 / 16 / 0.2; fast mode 16 / 80 / 20 / 32 / 0.4.
    ("claude-fable-5-2", {"input_tokens": 10_000, "output_tokens": 2_000, "cache_read_input_tokens": 100_000,
                          "cache_creation_input_tokens": 4_000, "cache_creation_1h_tokens": 4_000}, "0.244"),
    ("claude-fable-5-2", {"input_tokens": 10_000, "output_tokens": 2_000, "cache_read_input_tokens": 100_000,
                          "cache_creation_input_tokens": 4_000, "cache_creation_1h_tokens": 4_000, "speed": "fast"},
     "0.488"),
    ("claude-fable-5-2-20261105", {"input_tokens": M}, "8"),  # a dated id
    ("claude-fable-5-2", {"input_tokens": M, "output_tokens": M, "speed": "standard"}, "48"),
    # Opus 5.5: 4 / 20 / 5 / 8 / 0.2; US-only inference 1.1x every token rate: 4.4 / 22 / 5.5 / 8.8 / 0.22.
    ("claude-opus-5-5", {"input_tokens": 10_000, "output_tokens": 2_000, "cache_creation_input_tokens": 2_000,
                         "cache_creation_5m_tokens": 1_000, "cache_creation_1h_tokens": 1_000,
                         "cache_read_input_tokens": 50_000}, "0.103"),  # 0.04 + 0.04 + 0.005 + 0.008 + 0.01
    ("claude-opus-5-5", {"input_tokens": 10_000, "output_tokens": 2_000, "cache_creation_input_tokens": 2_000,
                         "cache_creation_5m_tokens": 1_000, "cache_creation_1h_tokens": 1_000,
                         "cache_read_input_tokens": 50_000, "inference_geo": "us"},
     "0.1133"),  # 0.044 + 0.044 + 0.0055 + 0.0088 + 0.011
    ("claude-opus-5-5", {"input_tokens": M, "inference_geo": "global"}, "4"),
    # Opus 5.5 fast: 8 / 40 / 10 / 16 / 0.4; fast and US-only stack: 8.8 / 44.
    ("claude-opus-5-5", {"input_tokens": 10_000, "output_tokens": 2_000, "cache_read_input_tokens": 50_000,
                         "speed": "fast"}, "0.18"),  # 0.08 + 0.08 + 0.02
    ("claude-opus-5-5", {"input_tokens": M, "output_tokens": M, "speed": "fast", "inference_geo": "us"}, "52.8"),
    # Web search: $10 per 1,000 searches on top of the tokens.
    ("claude-sonnet-4-5", {"input_tokens": 1000, "output_tokens": 1000, "web_search_requests": 5}, "0.068"),
    ("claude-sonnet-5-5", {"input_tokens": 2000, "output_tokens": 500, "web_search_requests": 5}, "0.059"),
    # Web fetches cost nothing beyond their tokens; thinking tokens are part of output.
    ("claude-sonnet-5-5", {"input_tokens": 2000, "output_tokens": 500, "web_fetch_requests": 7,
                           "thinking_tokens": 400}, "0.009"),
    # US-only on models that predate it: no multiplier (the API rejects the parameter there).
    ("claude-sonnet-4-5", {"input_tokens": 1000, "output_tokens": 1000, "inference_geo": "us"}, "0.018"),
    ("claude-opus-4-6", {"input_tokens": M, "inference_geo": "us"}, "5.5"),
    ("claude-sonnet-4-6", {"output_tokens": M, "inference_geo": "us"}, "16.5"),
    ("claude-haiku-5-5", {"output_tokens": M, "inference_geo": "us"}, "0.55"),
    # Fast mode on a model without a fast price: standard rates.
    ("claude-sonnet-5-5", {"input_tokens": M, "speed": "fast"}, "2"),
    # Priority tier: billed at standard token rates.
    ("claude-opus-5-5", {"input_tokens": M, "service_tier": "priority"}, "4"),
    # 5-minute vs 1-hour cache writes (Sonnet 4.5: 3.75 vs 6; 200k prompt tokens is still the base tier).
    ("claude-sonnet-4-5", {"cache_creation_input_tokens": 100_000, "cache_creation_5m_tokens": 100_000}, "0.375"),
    ("claude-sonnet-4-5", {"cache_creation_input_tokens": 100_000, "cache_creation_1h_tokens": 100_000}, "0.6"),
    ("claude-sonnet-4-5", {"cache_creation_input_tokens": 100_000}, "0.375"),  # total only -> 5m rate
    ("claude-sonnet-4-5", {"cache_creation_input_tokens": 200_000, "cache_creation_1h_tokens": 100_000}, "0.975"),
    ("claude-opus-5-5", {"cache_creation_input_tokens": M, "cache_creation_5m_tokens": M}, "5"),
    ("claude-opus-5-5", {"cache_creation_input_tokens": M, "cache_creation_1h_tokens": M}, "8"),
    # Mythos 5.1 = Fable 5.1's prices (overlay); Mythos 5 = Fable 5's.
    ("claude-mythos-5-1", {"input_tokens": M, "output_tokens": M, "cache_read_input_tokens": M}, "60.25"),
    ("claude-mythos-5-1", {"input_tokens": M, "inference_geo": "us"}, "11"),
    ("claude-mythos-5", {"cache_read_input_tokens": M}, "1"),
    ("claude-mythos-5-2", {"input_tokens": M, "output_tokens": M}, "48"),
    # Sonnet 5.5 and Haiku 5.5.
    ("claude-sonnet-5-5", {"input_tokens": M, "output_tokens": M, "cache_read_input_tokens": M}, "12.1"),
    ("claude-haiku-5-5", {"input_tokens": 50_000, "output_tokens": M}, "0.505"),
    ("claude-haiku-5-5", {"cache_read_input_tokens": 90_000, "cache_creation_input_tokens": 8_000,
                          "cache_creation_1h_tokens": 2_000}, "0.00205"),
    # Older families.
    ("claude-opus-5", {"input_tokens": M, "output_tokens": M}, "30"),
    ("claude-opus-4-8", {"cache_creation_input_tokens": M, "cache_creation_1h_tokens": M}, "10"),
    ("claude-opus-4-8", {"input_tokens": M, "speed": "fast"}, "10"),
    ("claude-opus-4-1-20250805", {"input_tokens": M, "output_tokens": 100_000}, "22.5"),
    ("claude-opus-4-20250514", {"cache_creation_input_tokens": M, "cache_creation_5m_tokens": M}, "18.75"),
    ("claude-3-opus-20240229", {"input_tokens": 2000, "output_tokens": 500}, "0.0675"),
    ("claude-sonnet-5", {"input_tokens": M, "output_tokens": M, "cache_read_input_tokens": M}, "12.2"),
    ("claude-haiku-4-5-20251001", {"input_tokens": M, "output_tokens": M}, "6"),
    ("claude-3-5-haiku-20241022", {"input_tokens": 500_000, "output_tokens": 100_000,
                                   "cache_creation_input_tokens": 200_000}, "1"),
    ("claude-3-haiku-20240307", {"input_tokens": M, "output_tokens": M, "cache_read_input_tokens": M,
                                 "cache_creation_input_tokens": M, "cache_creation_1h_tokens": M}, "2.03"),
    ("claude-3-5-sonnet-20241022", {"input_tokens": 1000, "output_tokens": 1000}, "0.018"),
    # Ids: [1m] suffix, Vertex @date, Bedrock prefix, old naming.
    ("claude-opus-5-5[1m]", {"input_tokens": M}, "4"),
    ("claude-opus-5-5@20260921", {"output_tokens": M}, "20"),
    ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", {"input_tokens": 100_000}, "0.3"),
    ("claude-haiku-3-5", {"input_tokens": M}, "0.8"),
    # A zero-token exchange of a known model costs exactly $0 (priced, not unpriced).
    ("claude-sonnet-4-5", {}, "0"),
]


@pytest.mark.parametrize(("model", "fields", "expected"), COST_CASES)
def test_cost_exact(table: PriceTable, model: str, fields: dict[str, Any], expected: str) -> None:
    cost = table.cost(model, Usage(**fields), NOW)
    assert isinstance(cost, Decimal)
    assert abs(cost - D(expected)) < D("0.000001")
    assert cost == D(expected)


def test_batch_is_half_price_from_the_date_the_dataset_has_it(table: PriceTable) -> None:
    usage = Usage(input_tokens=M, output_tokens=M, service_tier="batch")  # Sonnet 4.6: 3 / 15, batch 1.5 / 7.5
    assert table.cost("claude-sonnet-4-6", usage, datetime(2026, 10, 14, tzinfo=UTC)) == D("9")
    assert table.cost("claude-sonnet-4-6", usage, datetime(2026, 10, 13, 23, 59, tzinfo=UTC)) == D("18")
    # Batch with web search: searches are not discounted.
    assert table.cost("claude-opus-5-5", Usage(input_tokens=M, web_search_requests=100, service_tier="batch"),
                      NOW) == D("3")  # 2 + 1


def test_price_parts_and_source(table: PriceTable) -> None:
    p = table.price("claude-opus-5-5", Usage(input_tokens=1000, output_tokens=100, cache_read_input_tokens=10_000,
                                             web_search_requests=3, speed="fast", inference_geo="us"), NOW)
    assert p is not None
    assert p.parts_dict() == {"input": D("0.0088"), "output": D("0.0044"), "cache_write_5m": 0, "cache_write_1h": 0,
                              "cache_read": D("0.0044"), "web_search": D("0.03")}
    assert p.cost == D("0.0476")
    assert p.web_search_cost == D("0.03")
    assert p.source == "genai-prices " + genai_prices.__version__ + "+overlay"  # the geo multiplier is ours
    assert p.quote.multipliers == (("inference_geo us", D("1.1")),)
    plain = table.price("claude-opus-5-5", Usage(input_tokens=1), NOW)
    assert plain is not None and plain.source == "genai-prices " + genai_prices.__version__


def test_every_dataset_model_prices_like_calc_price(table: PriceTable) -> None:
    """Our arithmetic on the resolved rates agrees with the library's own calc_price (consistency, not truth)."""
    from genai_prices import Usage as GUsage
    from genai_prices import calc_price

    probe = Usage(input_tokens=150_000, cache_creation_input_tokens=20_000, cache_creation_1h_tokens=5_000,
                  cache_read_input_tokens=100_000, output_tokens=10_000, web_search_requests=2)
    theirs = GUsage(input_tokens=270_000, cache_read_tokens=100_000, cache_write_tokens=20_000,
                    cache_write_1h_tokens=5_000, output_tokens=10_000, web_searches=2)
    checked = 0
    for model in table.dataset.models():
        for at in (datetime(2026, 3, 1, tzinfo=UTC), NOW):
            for speed, tier in ((None, None), ("fast", None), (None, "batch")):
                ctx = {k: v for k, v in (("speed", speed), ("processing", "batch" if tier else None)) if v}
                expected = calc_price(theirs, model.id, provider_id="anthropic", genai_request_timestamp=at,
                                      price_context=ctx).total_price
                ours = table.cost(model.id, Usage(**{**probe.__dict__, "speed": speed, "service_tier": tier}), at)
                if table.overlay.patched(table.family(model.id) or "", at, table.rates(model.id, at)) is None \
                        and table.family(model.id) not in table.overlay.long_prompt:
                    assert ours == expected, (model.id, at, speed, tier)
                    checked += 1
    assert checked > 100


def test_costs_sum_to_the_cent_without_float_drift(table: PriceTable) -> None:
    # 0.000003 * 333 times: float arithmetic would drift; Decimal must not.
    one = table.cost("claude-sonnet-4-5", Usage(input_tokens=1), NOW)
    assert one == D("0.000003")
    assert sum((one for _ in range(333_333)), Decimal(0)) == D("0.999999")


# ---------------------------------------------------------------------------------------------
# Dates.


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (datetime(2026, 1, 1, tzinfo=UTC), "0.20"),
        (datetime(2026, 10, 6, 23, 59, 59, 999999, tzinfo=UTC), "0.20"),
        (datetime(2026, 10, 7, 0, 0, tzinfo=UTC), "0.10"),
        (datetime(2026, 10, 7, 0, 0), "0.10"),  # naive datetimes are UTC
        (datetime(2026, 10, 7, 1, 0, tzinfo=timezone(timedelta(hours=2))), "0.20"),  # 23:00Z on the 6th
        (datetime(2026, 10, 6, 22, 0, tzinfo=timezone(timedelta(hours=-3))), "0.10"),  # 01:00Z on the 7th
        (NOW, "0.10"),
    ],
)
def test_sonnet_5_5_cache_read_changed_on_2026_10_07(table: PriceTable, at: datetime, expected: str) -> None:
    assert table.cost("claude-sonnet-5-5", Usage(cache_read_input_tokens=M), at) == D(expected)
    rates = table.rates("claude-sonnet-5-5-20260801", at)
    assert rates is not None
    assert rates == Rates(D("2"), D("10"), D("2.5"), D("4"), D(expected))


def test_sonnet_5_5_other_rates_unchanged_across_the_boundary(table: PriceTable) -> None:
    usage = Usage(input_tokens=M, output_tokens=M, cache_creation_input_tokens=2 * M, cache_creation_1h_tokens=M)
    before = table.cost("claude-sonnet-5-5", usage, datetime(2026, 10, 1, tzinfo=UTC))
    after = table.cost("claude-sonnet-5-5", usage, datetime(2026, 10, 8, tzinfo=UTC))
    assert before == after == D("18.5")


# ---------------------------------------------------------------------------------------------
# Long-prompt tiers.


@pytest.mark.parametrize(
    ("model", "fields", "expected"),
    [
        # Sonnet 4.5 / 4: over 200k prompt tokens -> 6 / 22.5 / 7.5 / 12 / 0.60 on every token.
        ("claude-sonnet-4-5", {"input_tokens": 200_000, "output_tokens": 1000}, "0.615"),
        ("claude-sonnet-4-5", {"input_tokens": 200_001, "output_tokens": 1000}, "1.222506"),
        ("claude-sonnet-4-20250514", {"input_tokens": 200_000}, "0.6"),
        ("claude-sonnet-4-20250514", {"input_tokens": 200_001}, "1.200006"),
        # The prompt counts cache writes and reads, not only uncached input.
        ("claude-sonnet-4-5", {"input_tokens": 1, "cache_creation_input_tokens": 100_000, "cache_read_input_tokens": 99_999}, "0.4050027"),
        ("claude-sonnet-4-5", {"input_tokens": 1, "cache_creation_input_tokens": 100_000, "cache_read_input_tokens": 100_000}, "0.810006"),
        (
            "claude-sonnet-4-5",
            {"input_tokens": 1, "cache_creation_input_tokens": 100_000, "cache_creation_1h_tokens": 100_000, "cache_read_input_tokens": 100_000},
            "1.260006",
        ),
        # Output tokens never count toward the prompt.
        ("claude-sonnet-4-5", {"input_tokens": 100_000, "output_tokens": 200_000}, "3.3"),
        # [1m] context ids use the same tiers.
        ("claude-sonnet-4-5-20250929[1m]", {"input_tokens": 500_000, "output_tokens": 10_000}, "3.225"),
        ("claude-sonnet-4[1m]", {"input_tokens": 150_000}, "0.45"),
        # Sonnet 4.6 and 3.7 have no tier.
        ("claude-sonnet-4-6[1m]", {"input_tokens": 500_000}, "1.5"),
        ("claude-3-7-sonnet-20250219", {"input_tokens": 250_000}, "0.75"),
        # Haiku 5.5: over 100k -> 0.50 / 2.50 / 0.625 / 1.00 / 0.05.
        ("claude-haiku-5-5", {"input_tokens": 100_000}, "0.01"),
        ("claude-haiku-5-5", {"input_tokens": 100_001}, "0.0500005"),
        ("claude-haiku-5-5", {"input_tokens": 100_001, "output_tokens": 10_000}, "0.0750005"),
        ("claude-haiku-5-5", {"input_tokens": 1, "cache_read_input_tokens": 60_000, "cache_creation_input_tokens": 40_000, "cache_creation_1h_tokens": 40_000}, "0.0430005"),
    ],
)
def test_long_prompt_tiers(table: PriceTable, model: str, fields: dict[str, int], expected: str) -> None:
    assert table.cost(model, Usage(**fields), NOW) == D(expected)


def test_rates_prompt_tokens_argument(table: PriceTable) -> None:
    base = table.rates("claude-sonnet-4-5", NOW, 200_000)
    long = table.rates("claude-sonnet-4-5", NOW, 200_001)
    assert base == Rates(D("3"), D("15"), D("3.75"), D("6"), D("0.30"))
    assert long == Rates(D("6"), D("22.5"), D("7.5"), D("12"), D("0.60"))
    assert table.rates("claude-haiku-5-5", NOW, 100_001) == Rates(D("0.50"), D("2.50"), D("0.625"), D("1.00"), D("0.05"))


# ---------------------------------------------------------------------------------------------
# Model ids.


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-sonnet-4-5", "claude-sonnet-4-5"),
        ("claude-sonnet-4-5[1m]", "claude-sonnet-4-5"),
        ("claude-sonnet-4-5-20250929[1m]", "claude-sonnet-4-5"),
        ("Claude-Sonnet-4-5 ", "claude-sonnet-4-5"),
        ("claude-sonnet-4.5", "claude-sonnet-4-5"),
        ("claude-sonnet-4-0", "claude-sonnet-4"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-4-sonnet-20250514", "claude-sonnet-4"),
        ("claude-opus-4-0", "claude-opus-4"),
        ("claude-opus-4-1", "claude-opus-4-1"),
        ("claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("claude-opus-4-5-20251101", "claude-opus-4-5"),
        ("claude-opus-4-6", "claude-opus-4-6"),
        ("claude-opus-4-7[1m]", "claude-opus-4-7"),
        ("claude-opus-4-8", "claude-opus-4-8"),
        ("claude-opus-5", "claude-opus-5"),
        ("claude-opus-5-0", "claude-opus-5"),
        ("claude-opus-5-5", "claude-opus-5-5"),
        ("claude-opus-5-5-20261001", "claude-opus-5-5"),
        ("claude-sonnet-5", "claude-sonnet-5"),
        ("claude-sonnet-5-5", "claude-sonnet-5-5"),
        ("claude-sonnet-4-6", "claude-sonnet-4-6"),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("claude-haiku-5-5", "claude-haiku-5-5"),
        ("claude-fable-5", "claude-fable-5"),
        ("claude-mythos-5", "claude-mythos-5"),
        ("claude-3-opus-20240229", "claude-3-opus"),
        ("claude-3-opus-latest", "claude-3-opus"),
        ("claude-3-haiku-20240307", "claude-3-haiku"),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("claude-haiku-3-5", "claude-3-5-haiku"),
        ("claude-3-7-sonnet-20250219", "claude-3-7-sonnet"),
        ("claude-3-5-sonnet-20240620", "claude-3-5-sonnet"),
        # Provider spellings that clients of gateways send through.
        ("anthropic/claude-sonnet-4-5", "claude-sonnet-4-5"),
        ("us.anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4"),
        ("anthropic.claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet"),
        ("claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet"),
        ("claude-opus-4-1@20250805", "claude-opus-4-1"),
        # Unknown: never guessed.
        ("claude-opus-4-9", None),
        ("claude-sonnet-6", None),
        ("claude-2.1", "claude-2"),  # the dataset keeps Claude 2 (8 / 24)
        ("claude-instant-1.2", None),
        ("gpt-4o", None),
        ("", None),
        (None, None),
    ],
)
def test_family(table: PriceTable, model: str | None, family: str | None) -> None:
    assert table.family(model) == family
    assert table.is_priced(model) is (family is not None)


def test_normalize_model_id_for_unknown_families() -> None:
    assert normalize_model_id("claude-opus-4-9-20270101") == "claude-opus-4-9"
    assert normalize_model_id("claude-6-sonnet") == "claude-sonnet-6"
    assert normalize_model_id("Some-Model[x]") == "some-model"


def test_builtin_table_lists_every_family(table: PriceTable) -> None:
    assert set(table.families()) == {
        "claude-opus-5-5", "claude-opus-5", "claude-opus-4-8", "claude-opus-4-7", "claude-opus-4-6",
        "claude-opus-4-5", "claude-opus-4-1", "claude-opus-4", "claude-3-opus",
        "claude-sonnet-5-5", "claude-sonnet-5", "claude-sonnet-4-6", "claude-sonnet-4-5", "claude-sonnet-4",
        "claude-3-7-sonnet", "claude-3-5-sonnet",
        "claude-haiku-5-5", "claude-haiku-4-5", "claude-3-5-haiku", "claude-3-haiku",
        "claude-fable-5", "claude-fable-5-1", "claude-fable-5-2",
        "claude-mythos-5", "claude-mythos-5-1", "claude-mythos-5-2", "claude-3-sonnet", "claude-2", "claude-v1",
    }  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Unpriced models.


def test_unknown_model_is_unpriced_and_warned_once(caplog: pytest.LogCaptureFixture) -> None:
    table = PriceTable.builtin()
    usage = Usage(input_tokens=100, output_tokens=100)
    with caplog.at_level(logging.WARNING, logger="nexus.pricing"):
        assert table.cost("claude-opus-4-9", usage, NOW) is None
        assert table.cost("claude-opus-4-9", usage, NOW) is None
        assert table.cost("my-llama", usage, NOW) is None
    warnings = [r for r in caplog.records if r.name == "nexus.pricing"]
    assert len(warnings) == 2
    assert "claude-opus-4-9" in warnings[0].getMessage()
    assert table.unpriced_models_seen() == {"claude-opus-4-9", "my-llama"}
    assert table.rates("claude-opus-4-9", NOW) is None


def test_no_model_is_unpriced_without_warning(caplog: pytest.LogCaptureFixture) -> None:
    table = PriceTable.builtin()
    with caplog.at_level(logging.WARNING, logger="nexus.pricing"):
        assert table.cost(None, Usage(input_tokens=1), NOW) is None
        assert table.cost("", Usage(input_tokens=1), NOW) is None
    assert not caplog.records
    assert table.unpriced_models_seen() == set()


def test_unpriced_tracking_is_bounded() -> None:
    table = PriceTable.builtin()
    for i in range(5000):
        assert table.cost(f"bogus-{i}", Usage(), NOW) is None
    assert len(table.unpriced_models_seen()) <= 1000
    assert len(table._targets) <= 4096


# ---------------------------------------------------------------------------------------------
# PRICING_FILE.


def write(tmp_path: Path, data: Any, name: str = "prices.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_load_none_is_builtin() -> None:
    assert PriceTable.load(None).families() == PriceTable.builtin().families()


def test_pricing_file_our_format(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "models": {
                # A new model with aliases and default cache multipliers.
                "claude-foo-1": {"input": 1, "output": 5, "aliases": ["claude-foo-1-*", "gateway/foo"]},
                # A dated price change of a built-in model: earlier records keep the old price.
                "claude-sonnet-4-5-20250929": {"input": "2.5", "output": 12, "effective_from": "2027-01-01"},
                # An undated override replaces the built-in price for all dates.
                "claude-haiku-4-5": {"input": 0.9, "output": 4.5, "cache_write_5m": 1.1, "cache_write_1h": 1.8, "cache_read": 0.09},
                # A new family with a long-prompt tier and several periods.
                "claude-opus-4-9": {
                    "periods": [
                        {"input": 5, "output": 25, "long_prompt": {"above": 500000, "input": 10, "output": 50}},
                        {"effective_from": "2027-02-01T12:00:00Z", "input": 4, "output": 20},
                    ]
                },
            }
        },
    )
    table = PriceTable.load(path)
    usage = Usage(input_tokens=M, output_tokens=M)

    assert table.family("claude-foo-1-20260101") == "claude-foo-1"
    assert table.family("gateway/foo") == "claude-foo-1"
    assert table.rates("claude-foo-1", NOW) == Rates(D("1"), D("5"), D("1.25"), D("2"), D("0.1"))
    assert table.cost("claude-foo-1-beta", usage, NOW) == D("6")

    small = Usage(input_tokens=100_000, output_tokens=100_000)
    assert table.cost("claude-sonnet-4-5", small, NOW) == D("1.8")
    assert table.cost("claude-sonnet-4-5", small, datetime(2027, 1, 1, tzinfo=UTC)) == D("1.45")
    # The dated period keeps the built-in long-prompt tier before it, and has none after it.
    assert table.cost("claude-sonnet-4-5", Usage(input_tokens=300_000), NOW) == D("1.8")
    assert table.cost("claude-sonnet-4-5", Usage(input_tokens=300_000), datetime(2027, 6, 1, tzinfo=UTC)) == D("0.75")

    assert table.cost("claude-haiku-4-5-20251001", usage, datetime(2025, 1, 1, tzinfo=UTC)) == D("5.4")
    assert table.rates("claude-haiku-4-5", NOW) == Rates(D("0.9"), D("4.5"), D("1.1"), D("1.8"), D("0.09"))

    assert table.cost("claude-opus-4-9", small, NOW) == D("3")
    assert table.cost("claude-opus-4-9", Usage(input_tokens=500_001), NOW) == D("5.00001")
    assert table.cost("claude-opus-4-9", small, datetime(2027, 2, 1, 11, 59, tzinfo=UTC)) == D("3")
    assert table.cost("claude-opus-4-9", small, datetime(2027, 2, 1, 12, 0, tzinfo=UTC)) == D("2.4")
    # The later period has no tier.
    assert table.cost("claude-opus-4-9", Usage(input_tokens=500_001), datetime(2027, 3, 1, tzinfo=UTC)) == D("2.000004")

    # Untouched families keep the built-in prices, including dated history.
    assert table.cost("claude-sonnet-5-5", Usage(cache_read_input_tokens=M), datetime(2026, 1, 1, tzinfo=UTC)) == D("0.2")


LITELLM = {
    "sample_spec": {
        "input_cost_per_token": 0.0,
        "output_cost_per_token": 0.0,
        "litellm_provider": "one of https://docs.litellm.ai/docs/providers",
        "mode": "one of: chat, embedding, completion, image_generation",
    },
    # Same as built-in: must change nothing (history and tiers kept).
    "claude-sonnet-4-5-20250929": {
        "input_cost_per_token": 3e-06,
        "output_cost_per_token": 1.5e-05,
        "input_cost_per_token_above_200k_tokens": 6e-06,
        "output_cost_per_token_above_200k_tokens": 2.25e-05,
        "cache_creation_input_token_cost": 3.75e-06,
        "cache_creation_input_token_cost_above_1hr": 6e-06,
        "cache_read_input_token_cost": 3e-07,
        "litellm_provider": "anthropic",
        "mode": "chat",
    },
    "claude-sonnet-5-5": {
        "input_cost_per_token": 2e-06,
        "output_cost_per_token": 1e-05,
        "cache_creation_input_token_cost": 2.5e-06,
        "cache_creation_input_token_cost_above_1hr": 4e-06,
        "cache_read_input_token_cost": 1e-07,
        "litellm_provider": "anthropic",
    },
    # Different from built-in: overrides for all dates.
    "claude-3-5-haiku-20241022": {
        "input_cost_per_token": 1e-06,
        "output_cost_per_token": 5e-06,
        "cache_creation_input_token_cost": 1.25e-06,
        "cache_read_input_token_cost": 1e-07,
        "litellm_provider": "anthropic",
    },
    # Unknown to us: added.
    "claude-2.1": {"input_cost_per_token": 8e-06, "output_cost_per_token": 2.4e-05, "litellm_provider": "anthropic"},
    # A tiered entry for a new model, with the 1h tier field.
    "claude-opus-4-9": {
        "input_cost_per_token": 5e-06,
        "output_cost_per_token": 2.5e-05,
        "input_cost_per_token_above_200k_tokens": 1e-05,
        "output_cost_per_token_above_200k_tokens": 3.75e-05,
        "cache_creation_input_token_cost_above_200k_tokens": 1.25e-05,
        "cache_creation_input_token_cost_above_1hr_above_200k_tokens": 2e-05,
        "cache_read_input_token_cost_above_200k_tokens": 1e-06,
        "litellm_provider": "anthropic",
    },
    # Other providers' prices for the same names are not ours to apply.
    "bedrock/us-gov-west-1/anthropic.claude-3-haiku-20240307-v1:0": {
        "input_cost_per_token": 3e-07,
        "output_cost_per_token": 1.5e-06,
        "litellm_provider": "bedrock",
    },
    "vertex_ai/claude-3-haiku@20240307": {
        "input_cost_per_token": 9e-07,
        "output_cost_per_token": 9e-06,
        "litellm_provider": "vertex_ai-anthropic_models",
    },
    "gpt-4o": {"input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05, "litellm_provider": "openai"},
    "claude-search-entry": {"search_context_cost_per_query": {"low": 0.01}, "litellm_provider": "anthropic"},
}


def test_pricing_file_litellm_format(tmp_path: Path) -> None:
    table = PriceTable.load(write(tmp_path, LITELLM))
    builtin = PriceTable.builtin()
    usage = Usage(input_tokens=M, output_tokens=M, cache_creation_input_tokens=M, cache_read_input_tokens=M)

    # Equal entries are a no-op: Sonnet 5.5's history and Sonnet 4.5's tier survive.
    for at in (datetime(2026, 1, 1, tzinfo=UTC), NOW):
        assert table.cost("claude-sonnet-5-5", usage, at) == builtin.cost("claude-sonnet-5-5", usage, at)
    assert table.cost("claude-sonnet-4-5", Usage(input_tokens=300_000), NOW) == D("1.8")

    # Changed entry: per-token $ converted exactly; 1h default = 2x input.
    assert table.rates("claude-3-5-haiku", NOW) == Rates(D("1"), D("5"), D("1.25"), D("2"), D("0.1"))
    assert table.cost("claude-3-5-haiku-20241022", Usage(input_tokens=M, output_tokens=M), NOW) == D("6")

    # New families.
    assert table.family("claude-2.1") == "claude-2.1"
    assert table.cost("claude-2.1", Usage(input_tokens=M, output_tokens=M), NOW) == D("32")
    assert table.rates("claude-opus-4-9", NOW, 200_001) == Rates(D("10"), D("37.5"), D("12.5"), D("20"), D("1"))
    assert table.rates("claude-opus-4-9", NOW, 200_000) == Rates(D("5"), D("25"), D("6.25"), D("10"), D("0.5"))

    # Bedrock / Vertex / OpenAI rows are ignored.
    assert table.rates("claude-3-haiku", NOW) == builtin.rates("claude-3-haiku", NOW)
    assert table.family("gpt-4o") is None
    assert table.family("claude-search-entry") is None


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "invalid JSON at line 1"),
        ("[1, 2]", "top level must be a JSON object"),
        ({"foo": 1}, "expected"),
        ({"models": []}, '"models" must be an object'),
        ({"models": {"claude-x": 5}}, "must be an object"),
        ({"models": {"claude-x": {"output": 5}}}, "missing 'input'"),
        ({"models": {"claude-x": {"input": -1, "output": 5}}}, "non-negative"),
        ({"models": {"claude-x": {"input": "cheap", "output": 5}}}, "must be a number"),
        ({"models": {"claude-x": {"input": True, "output": 5}}}, "must be a number"),
        ({"models": {"claude-x": {"input": "NaN", "output": 5}}}, "non-negative"),
        ({"models": {"claude-x": {"input": 1, "output": 5, "effective_from": "soon"}}}, "not an ISO date"),
        ({"models": {"claude-x": {"input": 1, "output": 5, "effective_from": 2026}}}, "effective_from"),
        ({"models": {"claude-x": {"input": 1, "output": 5, "aliases": "claude-x-*"}}}, "aliases"),
        ({"models": {"claude-x": {"input": 1, "output": 5, "long_prompt": {"input": 2, "output": 6}}}}, "long_prompt.above"),
        ({"models": {"claude-x": {"periods": []}}}, "periods"),
        ({"models": {"": {"input": 1, "output": 1}}}, "empty model id"),
        ({"claude-x": {"input_cost_per_token": "free", "output_cost_per_token": 1e-6, "litellm_provider": "anthropic"}}, "must be a number"),
    ],
)
def test_malformed_pricing_file(tmp_path: Path, content: Any, fragment: str) -> None:
    path = write(tmp_path, content)
    with pytest.raises(ValueError) as info:
        PriceTable.load(path)
    message = str(info.value)
    assert str(path) in message
    assert fragment in message
    assert "\n" not in message


def test_missing_pricing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    with pytest.raises(ValueError, match="cannot read") as info:
        PriceTable.load(path)
    assert str(path) in str(info.value)


def test_rates_as_dict_is_exact() -> None:
    rates = PriceTable.builtin().rates("claude-haiku-5-5", NOW)
    assert rates is not None
    assert rates.as_dict() == {
        "input": "0.1",
        "output": "0.5",
        "cache_write_5m": "0.125",
        "cache_write_1h": "0.2",
        "cache_read": "0.01",
        "web_search": "10",
    }


def test_periods_are_the_pricing_file_layer(tmp_path: Path) -> None:
    table = PriceTable.load(write(tmp_path, {"models": {"claude-sonnet-5-5": {"periods": [
        {"input": 2, "output": 10}, {"effective_from": "2027-01-01", "input": 1, "output": 5}]}}}))
    assert [p.effective_from for p in table.periods("claude-sonnet-5-5-20260801")] == [None, datetime(2027, 1, 1, tzinfo=UTC)]
    assert PriceTable.builtin().periods("claude-sonnet-5-5") == []
    assert table.periods("unknown-model") == []


def test_export_round_trips(tmp_path: Path) -> None:
    custom = PriceTable.load(
        write(
            tmp_path,
            {"models": {"claude-foo-1": {"input": 1, "output": 5, "aliases": ["foo-*"], "web_search": 12,
                                         "fast": {"input": 3, "output": 15}},
                        "claude-sonnet-4-5": {"input": 2.5, "output": 12, "effective_from": "2027-01-01"}}},
        )
    )
    assert PriceTable.builtin().export() == {"models": {}}
    exported = custom.export()
    again = PriceTable.load(write(tmp_path, exported, "exported.json"))
    assert again.families() == custom.families()
    for family in ("claude-foo-1", "claude-sonnet-4-5"):
        assert again.periods(family) == custom.periods(family), family
    assert json.loads(json.dumps(exported)) == exported  # plain JSON
    assert custom.family("foo-bar") == "claude-foo-1"


def test_a_lowered_decimal_precision_does_not_round_costs(table: PriceTable) -> None:
    from decimal import localcontext

    usage = Usage(input_tokens=1000, cache_read_input_tokens=2000, cache_creation_input_tokens=500, output_tokens=300)
    with localcontext() as ctx:
        ctx.prec = 3
        assert table.cost("claude-sonnet-4-5", usage, NOW) == D("0.009975")  # 0.003 + 0.0006 + 0.001875 + 0.0045
