"""Pooling runs of the expert-loop benchmark: only like with like, each seed once."""

from __future__ import annotations

import pytest

from benchmarks.pool_review_loop import pool


def _run(first_seed: int, diffs: list[list[float]], budget: int = 40, weight: float = 1.0,
         early: bool | None = None, strata: str | None = None) -> dict:
    run = {"budget_per_round": budget, "rounds": 2, "retrain_epochs": 25, "base_source": "dermbench",
           "seeds": len(diffs), "first_seed": first_seed, "weights": {"queue": {"uncertainty": weight}},
           "versus_random": {"queue": {"by_seed_and_round": diffs}}}
    if early is not None:  # runs from before the setting existed have no key and stopped early
        run["early_stopping"] = early
    run["stratify"] = "model,category" if strata is None else {"queue": strata}  # older runs: one string
    return run


def test_runs_pool_over_their_seeds():
    out = pool([_run(0, [[-0.02, -0.04]]), _run(1, [[0.02, -0.02], [-0.04, -0.06]])], "queue")
    assert out["seeds"] == [0, 1, 2]
    assert [r["mean"] for r in out["by_round"]] == [-0.0133, -0.04]
    assert out["all"]["n"] == 6 and out["all"]["ahead"] == 5 and out["all"]["mean"] == -0.0267
    assert out["per_seed_mean"]["n"] == 3 and out["per_seed_mean"]["ahead"] == 2  # seed 1 is level


@pytest.mark.parametrize("other", [_run(0, [[0.0, 0.0]]), _run(5, [[0.0, 0.0]], budget=20),
                                   _run(5, [[0.0, 0.0]], weight=0.5), _run(5, [[0.0, 0.0]], early=False),
                                   _run(5, [[0.0, 0.0]], strata="model,category,wording"),
                                   {**_run(5, [[0.0, 0.0]]), "feedback_repeat": 10},
                                   {**_run(5, [[0.0, 0.0]]), "budget_per_week": True}])
def test_a_repeated_seed_or_other_settings_are_not_pooled(other):
    with pytest.raises(ValueError):
        pool([_run(0, [[-0.02, -0.04]]), other], "queue")


def test_runs_without_the_schedule_key_pool_with_early_stopping_runs_only():
    assert pool([_run(0, [[-0.02, -0.04]]), _run(1, [[0.0, 0.0]], early=True)], "queue")["early_stopping"] is True
    assert pool([_run(0, [[-0.02, -0.04]], early=False), _run(1, [[0.0, 0.0]], early=False)],
                "queue")["early_stopping"] is False


def test_a_setting_s_strata_pool_whether_kept_per_setting_or_as_one_string():
    out = pool([_run(0, [[-0.02, -0.04]]), _run(1, [[0.0, 0.0]], strata="model,category")], "queue")
    assert out["stratify"] == "model,category" and out["seeds"] == [0, 1]


def test_runs_with_other_networks_per_retrain_are_not_pooled_and_older_runs_trained_one():
    ensemble = {**_run(1, [[0.0, 0.0]]), "members": 5}
    with pytest.raises(ValueError, match="members"):
        pool([_run(0, [[-0.02, -0.04]]), ensemble], "queue")
    assert pool([_run(0, [[-0.02, -0.04]]), {**_run(1, [[0.0, 0.0]]), "members": 1}], "queue")["members"] == 1


def test_runs_without_the_repeat_key_pool_with_runs_that_saw_each_rating_once():
    # runs from before the setting existed have no key and saw each rating once
    out = pool([_run(0, [[-0.02, -0.04]]), {**_run(1, [[0.0, 0.0]]), "feedback_repeat": 1}], "queue")
    assert out["feedback_repeat"] == 1 and out["seeds"] == [0, 1]
