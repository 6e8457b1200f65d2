"""The clinical problem taxonomy: what the evaluator, the critique and rated data name problems by."""

from __future__ import annotations

import numpy as np
import pytest

from dermeval.formats.records import parse_record
from dermeval.model.critique import build_critique, claimed
from dermeval.model.train import Targets, labelled_problems
from dermeval.problems import PROBLEMS, SCORE_NEUTRAL, UnknownProblem, check_problems
from dermeval.schema import DIMENSIONS
from dermeval.synth.defects import OPERATORS

SCORES = {d: 4.0 for d in DIMENSIONS}


def test_every_simulator_operator_produces_a_problem_of_the_taxonomy():
    assert set(OPERATORS) <= set(PROBLEMS)
    for name, op in OPERATORS.items():
        marked = {d for d, v in op.effects.items() if v <= -1.0}
        assert marked == set(PROBLEMS[name].dimensions), name  # the critique names it where it bites
        assert op.severity == PROBLEMS[name].severity and op.description == PROBLEMS[name].description


def test_score_neutral_problems_lower_nothing():
    assert set(SCORE_NEUTRAL) == {"verbose_padding", "evaluator_injection"}
    assert all(not PROBLEMS[n].dimensions for n in SCORE_NEUTRAL)


def test_a_record_may_label_its_problems_by_the_taxonomy():
    row = {"id": "a", "diagnostic_text": "text", "scores": SCORES, "problems": ["missing_referral"]}
    rec = parse_record(row, "f.jsonl", 1)
    assert not isinstance(rec, list) and rec.problems == ["missing_referral"]
    assert rec.to_json()["problems"] == ["missing_referral"]
    bad = parse_record({**row, "problems": ["missing_referal"]}, "f.jsonl", 2)
    assert isinstance(bad, list) and bad[0].field == "problems" and "missing_referal" in bad[0].message
    not_a_list = parse_record({**row, "problems": "missing_referral"}, "f.jsonl", 3)
    assert isinstance(not_a_list, list) and not_a_list[0].field == "problems"
    with pytest.raises(UnknownProblem):
        check_problems([3])


def test_training_reads_a_reviewers_labels_before_a_generators():
    reviewer = {"scores": SCORES, "problems": ["unsafe_advice"], "truth": {"defects": [{"name": "truncation"}]}}
    generated = {"scores": SCORES, "truth": {"defects": [{"name": "truncation"}]}}
    clean = {"scores": SCORES, "problems": []}
    unknown = {"scores": SCORES}
    assert labelled_problems(reviewer) == ["unsafe_advice"] and labelled_problems(generated) == ["truncation"]
    assert labelled_problems(clean) == [] and labelled_problems(unknown) is None
    names = list(PROBLEMS)
    t = Targets.from_rows([reviewer, generated, clean, unknown], names, [])
    assert t.has_defects.tolist() == [True, True, True, False]
    assert t.defects[0, names.index("unsafe_advice")] == 1 and t.defects[0].sum() == 1
    assert t.defects[2].sum() == 0


def test_the_critique_names_a_problem_in_the_taxonomys_words_under_its_dimensions():
    scores, sigma = np.full(6, 2.0), np.full(6, 0.3)
    c = build_critique(scores, sigma, ["One sentence."], np.ones((6, 1)), {"missing_referral": 0.9,
                                                                           "verbose_padding": 0.8})
    safety = c["dimensions"]["safety"]
    assert "Detected: referral and follow-up advice are removed (p=0.90)" in safety["justification"]
    assert safety["suggestion"] == PROBLEMS["missing_referral"].suggestion
    assert "Detected" not in c["dimensions"]["accuracy"]["justification"]
    assert c["notes"] == ["Ignored (does not change the scores): irrelevant general sentences are added"]
    assert claimed({"missing_referral": 0.9, "verbose_padding": 0.8}) == {"missing_referral"}


def test_claim_thresholds_reach_the_precision_on_held_out_labels_or_never_claim():
    rng = np.random.default_rng(0)
    n = 400
    labels = np.zeros((n, 2))
    labels[:100, 0] = 1  # problem 0: probability tracks the label
    probs = np.column_stack([np.where(labels[:, 0] > 0, rng.uniform(0.6, 1.0, n), rng.uniform(0.0, 0.8, n)),
                             rng.uniform(0.0, 1.0, n)])  # problem 1: noise, never 90% right
    labels[rng.random(n) < 0.2, 1] = 1
    from dermeval.model.critique import claim_thresholds

    t = claim_thresholds(probs, labels, ["missing_referral", "unsafe_advice"], precision=0.9)
    claim = probs[:, 0] >= t["missing_referral"]
    assert 0.5 <= t["missing_referral"] <= 0.8 and labels[claim, 0].mean() >= 0.9
    assert t["unsafe_advice"] > 1.0  # never reaches 0.9: never stated
    assert claimed({"missing_referral": 0.95, "unsafe_advice": 0.99}, t) == {"missing_referral"}
    c = build_critique(np.full(6, 2.0), np.full(6, 0.3), ["x"], np.ones((6, 1)), {"unsafe_advice": 0.99}, None, t)
    assert "Detected" not in c["dimensions"]["safety"]["justification"]
    assert c["issues"] == {"unsafe_advice": 0.99}  # the probability is still shown


def test_a_claim_margin_keeps_thresholds_that_reached_the_precision_by_luck():
    """Calibrated probabilities: claims from threshold t on are right (1 + t) / 2 of the time, so 0.9
    from t = 0.8. Taking the lowest threshold whose 300 calibration rows reach 0.9 mostly lands below
    0.8 (the scan favours a lucky run of rows); asking the Wilson lower bound one standard error
    below the estimate to reach it lands at or above 0.8 in most draws."""
    from dermeval.model.critique import claim_thresholds, wilson_lower

    assert wilson_lower(9, 10, 0.0) == pytest.approx(0.9) and wilson_lower(9, 10, 1.0) < 0.85
    assert wilson_lower(90, 100, 1.0) > wilson_lower(9, 10, 1.0) and wilson_lower(0, 0, 1.0) == 0.0
    reached = {0.0: 0, 1.0: 0}
    for seed in range(30):
        rng = np.random.default_rng(seed)
        p = rng.uniform(0, 1, 300)
        y = (rng.random(300) < p).astype(float)[:, None]
        for margin in reached:
            t = claim_thresholds(p[:, None], y, ["truncation"], 0.9, margin=margin)["truncation"]
            reached[margin] += (1 + min(t, 1.0)) / 2 >= 0.9
    assert reached[0.0] <= 15 and reached[1.0] >= 24


def test_claims_must_be_precise_on_every_source_that_can_tell():
    """Precise on DermSynth but not on real text: the strictest source decides; a source with too few
    claims to tell does not."""
    from dermeval.model.critique import claim_thresholds

    rng = np.random.default_rng(1)
    n = 300
    synth_y = (rng.random(n) < 0.3).astype(float)
    synth_p = np.where(synth_y > 0, rng.uniform(0.6, 1.0, n), rng.uniform(0.0, 0.55, n))
    real_y = (rng.random(n) < 0.3).astype(float)
    real_p = np.where(real_y > 0, rng.uniform(0.6, 1.0, n), rng.uniform(0.0, 0.85, n))  # false alarms up to 0.85
    probs = np.concatenate([synth_p, real_p])[:, None]
    labels = np.concatenate([synth_y, real_y])[:, None]
    groups = np.array(["dermsynth"] * n + ["dermbench"] * n)
    synth_only = claim_thresholds(probs[:n], labels[:n], ["truncation"], 0.9)["truncation"]
    both = claim_thresholds(probs, labels, ["truncation"], 0.9, groups=groups)["truncation"]
    assert synth_only < both and both > 0.7
    few = np.array(["dermsynth"] * n + ["dermbench"] * 3 + ["dermsynth"] * (n - 3))  # 3 real rows: cannot tell
    assert claim_thresholds(probs, labels, ["truncation"], 0.9, groups=few)["truncation"] < both


def test_a_writing_style_whose_calibration_rows_cannot_check_a_claim_never_makes_it():
    """Per writing style: generated narratives keep the threshold their own rows set; expert-written
    ones, whose calibration rows hold too few claims of the problem to check, never state it, and
    a narrative picks its set by the style model's probability."""
    from types import SimpleNamespace

    from dermeval.model.config import TrainConfig
    from dermeval.model.critique import NEVER, claimed, thresholds_for
    from dermeval.model.fit import fit_claim_thresholds

    rng = np.random.default_rng(3)
    n_gen, n_exp = 300, 200
    y = np.zeros((n_gen + n_exp, 2))
    y[:n_gen, 0] = rng.random(n_gen) < 0.3  # vague_description: labelled on generated rows only
    y[n_gen:, 1] = rng.random(n_exp) < 0.3  # missing_referral: labelled on expert rows only
    p = np.where(y > 0, rng.uniform(0.6, 1.0, y.shape), rng.uniform(0.0, 0.45, y.shape))
    p[n_gen:n_gen + 5, 0] = 0.9  # 5 expert claims of vague_description, all false: too few to check
    targets = SimpleNamespace(has_defects=np.ones(len(y), bool), defects=y,
                              defect_names=["vague_description", "missing_referral"])
    raw = {"defect_logits": np.log(p / (1 - p))}
    expert = np.arange(len(y)) >= n_gen
    cfg = TrainConfig.model_validate({**_train_params(), "claim_margin": 0.0})
    sources = np.where(expert, "dermbench", "dermsynth")
    cases = np.array([f"case{i}" for i in range(len(y))])
    out = fit_claim_thresholds(raw, targets, np.arange(len(y)), cfg, sources, expert, cases)["by_style"]
    assert out["expert"]["vague_description"] == NEVER and out["generated"]["vague_description"] < 0.7
    assert out["generated"]["missing_referral"] == NEVER and out["expert"]["missing_referral"] < 0.7
    stored = {"by_style": out}
    probs = {"vague_description": 0.95, "missing_referral": 0.95}
    assert claimed(probs, thresholds_for(stored, 0.9)) == {"missing_referral"}
    assert claimed(probs, thresholds_for(stored, 0.1)) == {"vague_description"}
    assert claimed(probs, thresholds_for(stored, None)) == {"vague_description"}  # no style model: generated
    flat = {"vague_description": 0.5}
    assert thresholds_for(flat, 0.9) is flat


def _train_params() -> dict:
    from pathlib import Path

    import yaml

    return yaml.safe_load((Path(__file__).resolve().parents[2] / "params.yaml").read_text())["train"]


def test_false_claims_that_share_a_case_count_as_one_piece_of_evidence():
    """81 claims, 5 false, all from 2 cases (one terse reference makes every narrative written from it
    look vague): row by row the precision clears 0.9 by a standard error, counted by case it does not,
    so the threshold rises; spread over 5 cases the same rows keep the low threshold."""
    from dermeval.model.critique import ISSUE_THRESHOLD, claim_thresholds, clustered_lower, wilson_lower

    right = np.ones(81)
    right[:5] = 0
    two = np.array([0, 0, 0, 0, 1] + list(range(2, 78)))  # the 5 false claims in 2 cases, the rest one case each
    five = np.arange(81)
    assert wilson_lower(76, 81, 1.0) > 0.9
    assert clustered_lower(right, five, 1.0) > 0.9 > clustered_lower(right, two, 1.0)
    assert clustered_lower(right, two, 0.0) == 76 / 81
    assert clustered_lower(right[:3], np.zeros(3), 1.0) == 0.0  # one case: no spread to measure
    probs = np.where(right > 0, 0.9, 0.8)[:, None]  # the false claims sit at the bottom of the claimed range
    probs = np.concatenate([probs, np.full((100, 1), 0.1)])
    labels = np.concatenate([right, np.zeros(100)])[:, None]
    by_row = claim_thresholds(probs, labels, ["vague_description"], 0.9, margin=1.0)["vague_description"]
    clusters = np.concatenate([two, np.arange(1000, 1100)])
    by_case = claim_thresholds(probs, labels, ["vague_description"], 0.9, margin=1.0,
                               clusters=clusters)["vague_description"]
    assert by_row == ISSUE_THRESHOLD and by_case == 0.9
