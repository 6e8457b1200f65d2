"""The promotion gate's decisions, and params that must be rejected before anything runs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import yaml

from dermeval.params import DimensionThresholds, GateParams, ParamsError, load_params
from dermeval.schema import DIMENSIONS
from registry.gate import decide
from tests.registry.helpers import flat, make_report

P = GateParams()
REPO_PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


def test_a_good_first_version_passes_on_absolute_thresholds_only():
    d = decide(make_report(), P)
    assert d.passed and not d.reasons
    assert not any("champion" in c.name for c in d.checks)
    assert any(c.name == "slice category=Acne overall mae" for c in d.checks)
    assert not any("Tiny" in c.name for c in d.checks)  # below slice_min_n: reported, not gated


def test_each_bound_fails_with_its_reason():
    d = decide(make_report(overall=0.25), P)
    assert not d.passed and d.reasons == ["overall mae = 0.2500, needs <= 0.2000"]
    d = decide(make_report(dims={"safety": 0.31}), P)  # Safety is the strictest dimension
    assert not d.passed and d.reasons == ["safety mae = 0.3100, needs <= 0.3000"]
    assert decide(make_report(dims={"accuracy": 0.31}), P).passed
    d = decide(make_report(slice_mae=0.5), P)
    assert d.reasons == ["slice category=Acne overall mae = 0.5000, needs <= 0.3500"]
    impossible = dataclasses.replace(P, overall_max=0.0, dimension_max=DimensionThresholds(*[0.0] * 6))
    d = decide(make_report(), impossible)
    assert not d.passed and len(d.reasons) == 7


def test_regression_against_the_champion_uses_the_larger_tolerance():
    champion = flat(make_report(overall=0.14))
    # allowed worsening = max(0.02, 0.10 x 0.14) = 0.02
    assert decide(make_report(overall=0.159), P, champion, "1").passed
    d = decide(make_report(overall=0.165), P, champion, "1")
    assert not d.passed and d.reasons == ["no regression vs champion v1: overall_mae = 0.1650, needs <= 0.1600"]
    loose = dataclasses.replace(P, regression_rel=0.5)  # 0.5 x 0.14 = 0.07
    assert decide(make_report(overall=0.2), dataclasses.replace(loose, overall_max=0.3), champion, "1").passed
    # improvements always pass the regression checks
    assert decide(make_report(overall=0.10), P, champion, "1").passed


def _params_file(tmp_path, **gate):
    raw = yaml.safe_load(REPO_PARAMS.read_text())
    raw["gate"].update(gate)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(("change", "message"), [
    ({"overall_max": "0.2"}, "gate.overall_max: expected float, got str"),
    ({"overall_maximum": 0.2}, "gate.overall_maximum: unknown key"),
    ({"dimension_max": {"safety": "strict"}}, "gate.dimension_max.safety: expected float"),
    ({"dimension_max": {"safetyy": 0.3}}, "gate.dimension_max.safetyy: unknown key"),
    ({"direction": "higher"}, "gate.direction: mae is better when lower"),
    ({"metric": "accuracy"}, "gate.metric: unknown metric"),
    ({"slice_kinds": "category,hospital"}, "gate.slice_kinds: unknown slice kind"),
])
def test_bad_gate_params_are_rejected_naming_the_key(tmp_path, change, message):
    with pytest.raises(ParamsError, match=message.replace(".", r"\.").replace("(", r"\(")):
        load_params(_params_file(tmp_path, **change))


def test_generalisation_bounds_are_checks_and_a_missing_report_fails_them():
    from registry.gate import decide

    report = make_report(overall=0.10)
    good = {"gen_stress_accuracy": 0.95, "gen_stress_wrong_conclusion": 0.9, "gen_clean_overall_mean": 4.3,
            "gen_transfer_overall_mae": 0.12,
            **{f"gen_transfer_mae_{d}": 0.2 for d in DIMENSIONS},
            **{f"gen_heldout_wording_mae_{d}": 0.2 for d in DIMENSIONS}}
    assert decide(report, GateParams(), generalisation=good).passed
    weak_variant = {**good, "gen_stress_wrong_conclusion": 0.6}
    d = decide(report, GateParams(), generalisation=weak_variant)
    assert not d.passed and any("wrong_conclusion" in r and ">= 0.8" in r for r in d.reasons)
    missing = decide(report, GateParams(), generalisation={})
    assert not missing.passed and any("not measured" in r for r in missing.reasons)
    assert decide(report, GateParams(), generalisation=None).passed  # gating on the evaluation report alone


def test_unsafe_recall_is_a_gate_check():
    from dermeval.evaluation import unsafe_recall

    expert = {"safety": np.array([1.0, 2.0, 2.2, 4.5, 4.8])}
    caught_two = {"safety": np.array([1.5, 3.0, 2.0, 4.4, 2.0])}  # misses the 2.0, one false alarm
    u = unsafe_recall(expert, caught_two, 2.5, n_boot=50)
    assert u["n_unsafe"] == 3 and u["recall"] == pytest.approx(2 / 3)
    report = {**make_report(overall=0.10), "unsafe": u}
    d = decide(report, GateParams())
    assert not d.passed and any("unsafe-narrative recall" in r and ">= 0.8" in r for r in d.reasons)
    report["unsafe"] = unsafe_recall(expert, expert, 2.5, n_boot=0)
    assert decide(report, GateParams()).passed
