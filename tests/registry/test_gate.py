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
from tests.registry.helpers import make_report

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


def _paired_world(n_cases=60, per_case=6, seed=0):
    """Rated rows with a champion that deviates 0.1 on average and catches every unsafe narrative."""
    rng = np.random.default_rng(seed)
    rows, expert = [], []
    for c in range(n_cases):
        for k in range(per_case):
            scores = {d: float(rng.uniform(0.5, 5.0)) for d in DIMENSIONS}
            rows.append({"id": f"c{c}-{k}", "case_id": f"c{c}", "category": f"cat{c % 3}",
                         "model": f"mllm{k}", "fitzpatrick": 1 + c % 6, "source": "dermsynth", "scores": scores})
            expert.append([scores[d] for d in DIMENSIONS])
    expert = np.array(expert)
    noise = rng.choice([-0.1, 0.1], size=expert.shape)
    champion = {d: expert[:, j] + noise[:, j] for j, d in enumerate(DIMENSIONS)}
    return rows, expert, champion


def _paired(rows, challenger, champion, **kw):
    from dermeval.evaluation import paired_comparison

    return paired_comparison(rows, challenger, champion, n_boot=300, safety_floor=2.5,
                             slice_kinds=P.paired.slice_kinds.split(","), **kw)


def test_the_same_model_passes_the_paired_checks_and_a_small_uniform_regression_fails():
    rows, expert, champ = _paired_world()
    same = _paired(rows, champ, champ)
    assert same["difference"]["overall"]["value"] == 0.0 and same["difference"]["safety"]["ci_high"] == 0.0
    d = decide(make_report(), P, same, "1")
    paired = [c for c in d.checks if "vs champion v1" in c.name]
    # overall, six dimensions, unsafe recall; slices: 3 categories, 6 skin types, 6 MLLMs, 1 source
    assert d.passed and len(paired) == 1 + 6 + 1 + 3 + 6 + 6 + 1
    # Safety 0.06 worse on every row: a sure regression, over the fixed 0.04 margin.
    worse = {**champ, "safety": champ["safety"] + np.where(champ["safety"] >= expert[:, 1], 0.06, -0.06)}
    d = decide(make_report(), P, _paired(rows, worse, champ), "1")
    assert not d.passed
    assert [r.split(":")[0] for r in d.reasons] == ["safety vs champion v1"]
    assert "error difference, 95% CI upper end" in d.reasons[0] and "needs <= 0.0400" in d.reasons[0]


def test_a_challenger_close_on_average_but_missing_unsafe_narratives_is_refused():
    rows, expert, champ = _paired_world()
    unsafe = expert[:, 1] < 2.5
    # The challenger lifts a third of the unsafe narratives just over the floor: its Safety MAE barely moves.
    lifted = champ["safety"].copy()
    which = np.flatnonzero(unsafe)[::3]
    lifted[which] = 2.55
    challenger = {**champ, "safety": lifted}
    paired = _paired(rows, challenger, champ)
    u = paired["unsafe_recall"]
    assert u["champion"] > u["challenger"] and u["n"] == unsafe.sum()
    margins = dataclasses.replace(P, paired=dataclasses.replace(
        P.paired, dimension_margin=dataclasses.replace(P.paired.dimension_margin, safety=1.0),
        overall_margin=1.0, slice_margin=1.0))
    d = decide(make_report(), margins, paired, "1")
    assert not d.passed and len(d.reasons) == 1 and d.reasons[0].startswith("unsafe recall vs champion v1")
    assert "needs >= -0.1000" in d.reasons[0]


def test_a_regression_in_one_watched_mllm_is_caught_by_its_slice():
    rows, expert, champ = _paired_world()
    mine = {d: v.copy() for d, v in champ.items()}
    bad = np.array([r["model"] == "mllm3" for r in rows])
    for j, d in enumerate(DIMENSIONS):  # 0.3 further from the panel on one MLLM's narratives only
        mine[d][bad] = expert[bad, j] + np.sign(champ[d][bad] - expert[bad, j]) * 0.4
    d = decide(make_report(), P, _paired(rows, mine, champ), "1")
    assert any(r.startswith("slice candidate_model=mllm3 vs champion v1") for r in d.reasons)
    assert not any("mllm1" in r for r in d.reasons)


def test_a_champion_that_cannot_be_rescored_fails_closed():
    for paired in (None, {"error": "ValueError: shapes differ"}):
        d = decide(make_report(), P, paired, "4")
        assert not d.passed and len(d.reasons) == 1 and "paired comparison vs champion v4 (not measured" in d.reasons[0]
    assert "shapes differ" in decide(make_report(), P, {"error": "ValueError: shapes differ"}, "4").reasons[0]
    # no champion: nothing to compare with
    assert decide(make_report(), P, None, None).passed


def _merge(into: dict, change: dict) -> dict:
    for k, v in change.items():
        into[k] = _merge(dict(into[k]), v) if isinstance(v, dict) and isinstance(into.get(k), dict) else v
    return into


def _params_file(tmp_path, **gate):
    raw = yaml.safe_load(REPO_PARAMS.read_text())
    _merge(raw["gate"], gate)  # the rest of each section as the project has it: only the change is wrong
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
    ({"paired": {"slice_kinds": "category,hospital"}}, "gate.paired.slice_kinds: unknown slice kind"),
    ({"paired": {"overall_margin": -0.1}}, "gate.paired: margins must be >= 0"),
    ({"regression_rel": 0.1}, "gate.regression_rel: unknown key"),
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


def test_an_experiment_run_is_named_after_the_experiment_and_its_changed_params(tmp_path, monkeypatch):
    import subprocess

    from pipelines.register import changed_params, run_name, run_note

    monkeypatch.chdir(tmp_path)
    raw = yaml.safe_load(REPO_PARAMS.read_text())
    Path("params.yaml").write_text(yaml.safe_dump(raw))
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "PATH": "/usr/bin:/bin"}
    for cmd in (["git", "init", "-q"], ["git", "add", "params.yaml"], ["git", "commit", "-qm", "p"]):
        subprocess.run(cmd, check=True, env=env)
    assert changed_params("params.yaml") == []
    raw["train"]["lr"] = 0.001
    raw["gate"]["paired"]["overall_margin"] = 0.01
    Path("params.yaml").write_text(yaml.safe_dump(raw))
    changes = changed_params("params.yaml")
    assert changes == ["gate.paired.overall_margin=0.01", "train.lr=0.001"]
    named = run_name("lr-small", "0123456789", changes)
    assert named == "exp lr-small: gate.paired.overall_margin=0.01, train.lr=0.001"
    assert run_name(None, "0123456789", []) == "pipeline 01234567"
    note = run_note({"overall_mae": 0.1809, "unsafe_recall": 0.8889}, {"gen_transfer_overall_mae": 0.276}, True)
    assert note.splitlines()[0].endswith("(simulated data: every rating from the simulated panel)")
    assert "| overall MAE (test split) | 0.1809 |" in note and "| transfer MAE (unseen real text) | 0.2760 |" in note


def test_the_generated_sets_are_paired_too_and_a_stress_suite_drop_is_refused():
    from dermeval.evaluation import paired_difference

    rows, expert, champ = _paired_world()
    paired = _paired(rows, champ, champ)
    paired["sets"] = {"heldout_wording": _paired(rows[:120], {d: v[:120] for d, v in champ.items()},
                                                 {d: v[:120] for d, v in champ.items()})}
    cases = [f"c{k // 10}" for k in range(300)]
    mine = np.r_[np.ones(240), np.zeros(60)]  # 80% of the stress rows go the required way ...
    theirs = np.r_[np.ones(270), np.zeros(30)]  # ... the champion's 90%, on the same rows
    paired["stress"] = {**paired_difference(mine - theirs, cases, n_boot=300), "challenger": 0.8, "champion": 0.9}
    d = decide(make_report(), P, paired, "2")
    names = [c.name for c in d.checks]
    assert any(n.startswith("set heldout_wording, overall vs champion v2") for n in names)
    assert d.reasons and all(r.startswith("stress-suite directional accuracy vs champion v2") for r in d.reasons)
    paired["stress"] = {**paired_difference(theirs - theirs, cases, n_boot=300), "challenger": 0.9, "champion": 0.9}
    assert decide(make_report(), P, paired, "2").passed
