"""Price data updates: a newer genai-prices file is validated, compared and stored; a corrupt one is
refused and the prices in use stay. Also the overlay file: every row sourced, every rule as documented.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from nexus.core.usage import Usage
from nexus.pricing import BUNDLED_LABEL, Dataset, DatasetError, PriceTable
from nexus.pricing.dataset import load_dataset, parse_dataset, store_path
from nexus.pricing.overlay import OverlayError, builtin_overlay, parse_overlay
from nexus.pricing.update import FetchError, diff_datasets, read_source, update_dataset
from tests.support.prices import anthropic_provider, newer_dataset, write

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
M = 1_000_000


def test_a_valid_newer_file_is_stored_and_used(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    src = write(tmp_path / "data.json", newer_dataset())
    result = update_dataset(data_dir, Dataset.bundled(), str(src))
    assert result.stored == store_path(data_dir) and result.stored.is_file()
    assert "+ claude-nova-6: in 3 / out 15 / 5m 3.75 / 1h 6 / read 0.3" in result.changes
    assert any(line.startswith("~ claude-fable-5-1 (standard): in 10 /") and "-> in 9 /" in line
               for line in result.changes)
    table = PriceTable.load(None, data_dir)
    assert not table.dataset.is_bundled and table.dataset.label.startswith("genai-prices data ")
    assert table.cost("claude-fable-5-1", Usage(input_tokens=M), NOW) == Decimal(9)
    assert table.cost("claude-nova-6", Usage(output_tokens=M), NOW) == Decimal(15)
    p = table.price("claude-fable-5-1", Usage(input_tokens=1), NOW)
    assert p is not None and p.source == table.dataset.label
    # The stored copy reads back the same (our wrapper format).
    again = parse_dataset(result.stored.read_bytes(), str(result.stored))
    assert [m.id for m in again.models()] == [m.id for m in result.dataset.models()]


def test_dry_run_stores_nothing(tmp_path: Path) -> None:
    result = update_dataset(tmp_path, Dataset.bundled(), str(write(tmp_path / "d.json", newer_dataset())),
                            dry_run=True)
    assert result.stored is None and result.changes
    assert not store_path(tmp_path).exists()


def _broken(kind: str) -> Any:
    data = newer_dataset()
    anth = data[1]
    first = anth["models"][1]
    if kind == "not-json":
        return '[{"id": "anthropic", "models": ['
    if kind == "object":
        return {"anthropic": {}}
    if kind == "no-anthropic":
        return [data[0]]
    if kind == "no-models":
        anth["models"] = []
    elif kind == "bad-number":
        first["prices"] = {"input_mtok": "cheap", "output_mtok": "1"}
    elif kind == "unknown-match":
        first["match"] = {"sounds_like": "claude"}
    elif kind == "negative":
        first["prices"] = {"input_mtok": "-1", "output_mtok": "5"}
    elif kind == "inconsistent":  # a 1h write price without the 5m one: the library would fail at pricing time
        first["prices"] = {"input_mtok": "1", "output_mtok": "5", "cache_write_1h_mtok": "2"}
    elif kind == "no-output":
        first["prices"] = {"input_mtok": "1"}
    return data


@pytest.mark.parametrize("kind", ["not-json", "object", "no-anthropic", "no-models", "bad-number", "unknown-match",
                                  "negative", "inconsistent", "no-output"])
def test_a_corrupt_file_is_refused_and_the_old_copy_kept(tmp_path: Path, kind: str) -> None:
    data_dir = tmp_path / "data"
    good = update_dataset(data_dir, Dataset.bundled(), str(write(tmp_path / "good.json", newer_dataset())))
    assert good.stored is not None
    kept = good.stored.read_bytes()
    bad = write(tmp_path / "bad.json", _broken(kind))
    with pytest.raises(DatasetError) as info:
        update_dataset(data_dir, good.dataset, str(bad))
    assert "\n" not in str(info.value)
    assert good.stored.read_bytes() == kept
    assert PriceTable.load(None, data_dir).cost("claude-nova-6", Usage(output_tokens=M), NOW) == Decimal(15)


def test_a_damaged_stored_copy_falls_back_to_the_bundled_data(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = store_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text('{"format": "nexus-genai-prices/1", "providers": [')
    ds = load_dataset(tmp_path)
    assert ds.is_bundled and ds.label == BUNDLED_LABEL
    assert any("unusable" in r.getMessage() for r in caplog.records)


def test_a_copy_fetched_under_another_library_version_is_not_used(tmp_path: Path) -> None:
    result = update_dataset(tmp_path, Dataset.bundled(), str(write(tmp_path / "d.json", newer_dataset())))
    doc = json.loads(result.stored.read_text())
    doc["libraryVersion"] = "0.0.1"
    result.stored.write_text(json.dumps(doc))
    assert load_dataset(tmp_path).is_bundled


def test_read_source_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="cannot read"):
        read_source(str(tmp_path / "missing.json"))
    with pytest.raises(FetchError, match="cannot fetch http://127.0.0.1:9/"):
        read_source("http://127.0.0.1:9/data.json", timeout=2)
    data, name = read_source("file://" + str(write(tmp_path / "x.json", "[]")))
    assert data == b"[]" and name.endswith("x.json")


def test_identical_data_shows_no_changes() -> None:
    same = parse_dataset(json.dumps([anthropic_provider()]).encode(), "test")
    assert diff_datasets(Dataset.bundled(), same, NOW) == []
    # and prices exactly as the bundled one, for every model, context and date
    a, b = PriceTable(Dataset.bundled()), PriceTable(same)
    probe = Usage(input_tokens=150_000, cache_creation_input_tokens=20_000, cache_creation_1h_tokens=5_000,
                  cache_read_input_tokens=100_000, output_tokens=10_000, web_search_requests=2)
    for m in Dataset.bundled().models():
        for at in (datetime(2026, 3, 1, tzinfo=UTC), NOW):
            for ctx in ({}, {"speed": "fast"}, {"service_tier": "batch"}, {"inference_geo": "us"}):
                u = Usage(**{**probe.__dict__, **ctx})
                assert a.cost(m.id, u, at) == b.cost(m.id, u, at), (m.id, at, ctx)


# ---------------------------------------------------------------------------------------------
# The overlay.


def test_every_overlay_row_has_a_source_url() -> None:
    doc = json.loads((Path(__file__).parents[2] / "nexus/pricing/overlay.json").read_text())
    rows = [r for section in ("inference_geo", "aliases", "periods", "long_prompt") for r in doc[section]]
    assert rows and all(r["source"].startswith("https://") for r in rows)


def test_geo_rows_cover_opus_4_6_sonnet_4_6_and_every_later_model() -> None:
    overlay = builtin_overlay()
    newer = {"claude-opus-4-6", "claude-sonnet-4-6", "claude-opus-4-7", "claude-opus-4-8", "claude-opus-5",
             "claude-sonnet-5", "claude-fable-5", "claude-fable-5-1", "claude-fable-5-2", "claude-mythos-5",
             "claude-mythos-5-1", "claude-mythos-5-2", "claude-opus-5-5", "claude-sonnet-5-5", "claude-haiku-5-5"}
    table = PriceTable.builtin()
    for family in table.families():
        hit = overlay.geo_multiplier(family, "us")
        if family in newer:
            assert hit is not None and hit[0] == Decimal("1.1"), family
        else:  # released before Opus 4.6: the API rejects inference_geo there
            assert hit is None, family
    # a model newer than the overlay file gets the documented multiplier
    assert overlay.geo_multiplier("claude-opus-6", "us") == (Decimal("1.1"), overlay.geo[("*", "us")][1])
    assert overlay.geo_multiplier("claude-opus-5-5", "global") is None


@pytest.mark.parametrize(("doc", "fragment"), [
    ([], "top level"),
    ({"inference_geo": [{"model": "claude-x", "geo": "us", "multiplier": "1.1"}]}, "source URL"),
    ({"inference_geo": [{"model": "claude-x", "geo": "us", "multiplier": "0", "source": "https://x"}]}, "> 0"),
    ({"aliases": [{"model": "claude-x", "source": "https://x"}]}, "prices_of"),
    ({"periods": [{"model": "claude-x", "before": "soon", "set": {"input": "1"}, "source": "https://x"}]}, "before"),
    ({"periods": [{"model": "claude-x", "before": "2026-01-01", "set": {"bogus": "1"}, "source": "https://x"}]},
     "set"),
    ({"long_prompt": [{"model": "claude-x", "above": -1, "source": "https://x"}]}, "above"),
])
def test_a_broken_overlay_names_the_row(doc: Any, fragment: str) -> None:
    with pytest.raises(OverlayError, match=fragment):
        parse_overlay(copy.deepcopy(doc))
