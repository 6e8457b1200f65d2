"""The retrain benchmark's variant syntax and its summary over seeds."""

from __future__ import annotations

import pytest

from benchmarks.bench_retrain import parse_variant, summarise


def test_a_variant_names_its_train_changes_as_yaml_values():
    assert parse_variant("ensemble:members=5,early_stopping=false,lr=0.001") == (
        "ensemble", {"members": 5, "early_stopping": False, "lr": 0.001})
    assert parse_variant("default:") == ("default", {})


@pytest.mark.parametrize("bad", [":members=5", "x:members", "x:members=5,epochs"])
def test_a_malformed_variant_is_a_clear_error(bad):
    with pytest.raises(SystemExit, match="--variant"):
        parse_variant(bad)


def test_the_summary_is_each_figures_mean_and_range_over_seeds_not_the_seed_itself():
    runs = [{"seed": 0, "mae": 0.2, "kept_epochs": [12], "note": "a"},
            {"seed": 1, "mae": 0.3, "kept_epochs": [12], "note": "b"}]
    out = summarise(runs)
    assert out == {"mae": {"mean": 0.25, "min": 0.2, "max": 0.3, "range": 0.1}}
    # a figure one seed lacks (a set not built) is left out rather than averaged over fewer seeds
    assert summarise([{"mae": 0.2}, {"mae": None}]) == {}
