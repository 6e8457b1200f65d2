"""Pieces of the generalisation work that need no model: layout-blind units, the report's text, the monitor's
refusal to score with an evaluator that never passed the gate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dermeval import text as tx
from dermeval.features import narrative_units
from dermeval.reporting import generalisation_section
from dermeval.synth.catalogue import default_catalogue
from dermeval.synth.narrative import reference_narrative
from dermeval.synth.stress import layout_rewrite


def test_plain_drops_markup_and_inner_whitespace():
    assert tx.plain("  The **most likely** diagnosis\n   is  **acne**. ") == "The most likely diagnosis is acne."


def test_units_do_not_see_layout():
    cat = default_catalogue()
    for k, cond in enumerate(cat.conditions[::7]):
        ref = reference_narrative(cond, 1 + k % 6, np.random.default_rng(k))
        same = layout_rewrite(ref, np.random.default_rng(k))
        assert narrative_units(ref).units == narrative_units(same).units, cond.id


def test_list_items_split_alike_inline_or_one_per_line():
    one_per_line = "The differentials are:\n1. **Tinea**: ring-shaped.\n2. **Eczema**: no scale."
    inline = "The differentials are: 1. Tinea: ring-shaped. 2. Eczema: no scale."
    assert narrative_units(one_per_line).units == narrative_units(inline).units
    assert len(narrative_units(inline).units) == 3


def _block(n: int, mae: float) -> dict:
    cell = {"mae": {"value": mae, "ci_low": mae - 0.01, "ci_high": mae + 0.01}, "spearman": {"value": 0.5}}
    dims = ("accuracy", "safety", "medical_groundedness", "clinical_coverage", "reasoning_coherence",
            "description_precision", "overall")
    return {"n": n, **{d: cell for d in dims}}


def _report(acc: dict, stress: dict, **extra) -> dict:
    """A generalisation report with the given stress block and extra sections."""
    clean = {d: 4.0 for d in ("accuracy", "safety", "medical_groundedness", "clinical_coverage",
                              "reasoning_coherence", "description_precision")}
    return {"real_text": True, "stress_source": "dermbench held-out expert references",
            "overlap": {"all": {"sentence_share": 0.2, "narratives_all_seen": 1, "narratives": 9}},
            "transfer": {"label": "real text", "evaluator": _block(5, 0.3)},
            "heldout_wording": {"label": "held-out wording", "evaluator": _block(6, 0.25)},
            "in_distribution": {"label": "in-distribution", "evaluator": _block(7, 0.15)},
            "stress": {"evaluator": {"overall": {"accuracy": acc}, **stress}},
            "clean_references": {"evaluator": {**clean, "overall": 4.0, "needs_review_share": 0.1}}, **extra}


def test_report_section_leads_with_transfer_and_labels_the_panel():
    acc = {"value": 0.5, "ci_low": 0.4, "ci_high": 0.6, "n": 10}
    gen = _report(acc, {"wrong_conclusion": {"description": "wrong", "expect": "lower",
                                             "dimensions": ["accuracy"], "accuracy": acc}})
    text = "\n".join(generalisation_section(gen))
    assert "simulated panel" in text
    assert text.index("real text") < text.index("held-out wording") < text.index("in-distribution")
    assert "| wrong | lower accuracy | 0.50 (0.40-0.60) | 10 |" in text


def test_monitor_scores_nothing_without_a_champion(tmp_path: Path):
    from pipelines import monitor

    gate = tmp_path / "gate.json"
    gate.write_text(json.dumps({"model": "dermeval", "version": "1", "champion_after": None,
                                "decision": {"passed": False, "reasons": ["overall mae 0.21 > 0.20"]}}))
    summary = tmp_path / "summary.json"
    code = monitor.main(["--params", str(Path(__file__).parents[2] / "params.yaml"), "--prepared", str(tmp_path),
                         "--cache", str(tmp_path / "c.sqlite"), "--reports", str(tmp_path / "rep"),
                         "--summary", str(summary), "--gate", str(gate)])
    out = json.loads(summary.read_text())
    assert code == 0 and out["evaluator_version"] is None and out["narratives_stored"] == 0
    assert "failed the gate" in out["skipped"] and "0.21" in out["skipped"] and (tmp_path / "rep").is_dir()


def test_report_section_shows_what_is_flagged_and_how_true_the_critique_is():
    acc = {"value": 0.9, "ci_low": 0.8, "ci_high": 0.95, "n": 10}
    gen = _report(acc, {}, out_of_depth=[{"set": "real DermBench test split", "n": 40, "needs_review_share": 0.25,
                                         "out_of_distribution_share": 0.05, "big_errors": 8,
                                         "big_errors_flagged_share": 0.5, "judge_share": 1.0,
                                         "flagged_with_judge_share": 0.4,
                                         "big_errors_flagged_with_judge_share": 0.875}],
                  critique={"stress_claims": {"n": 20, "precision": acc, "target": 0.9, "per_claim": {
                                "truncation": {"n": 12, "precision": 1.0, "false_by_variant": {}},
                                "vague_description": {"n": 8, "precision": 0.5,
                                                      "false_by_variant": {"clean": 1, "padding": 3}}}},
                            "test_claims": {"n": 0, "precision": None},
                            "diagnosis_check": {"precision": 0.8, "n_flagged": 10,
                                                "recall": {"wrong_conclusion": 0.7}, "clean_flagged_share": 0.05},
                            "distinct_evidence_mean": 2.5})
    text = "\n".join(generalisation_section(gen))
    assert "| real DermBench test split | 40 | 25% | 5% | 8 | 50% |" in text
    assert "real DermBench test split: 40% flagged, big errors flagged 88% (reference for 100%)" in text
    assert 'precision of its "Detected:" claims on the stress suite 0.90 (20 claims)' in text
    assert "caught wrong_conclusion 70%; clean references flagged 5%" in text
    assert ("Stress-suite claims right less than 90% of the time (the precision their thresholds were "
            "calibrated for): vague_description 0.50 of 8 (false on padding 3, clean 1).") in text
    assert "truncation 1.00" not in text
    assert "| real DermBench text: DermEval | 0.300 |" in text


def test_a_large_gap_to_the_judge_flags_big_errors_only_where_a_reference_exists():
    from dermeval.schema import DIMENSIONS
    from pipelines.generalise import out_of_depth_report

    truth = np.full((4, 6), 3.0)
    rows = [{"scores": dict(zip(DIMENSIONS, t, strict=True))} for t in truth]
    scores = truth.copy()
    scores[:3, 0] = 4.5  # three narratives with a big Accuracy error, none flagged by DermEval
    pred = {"scores": scores, "needs_review": np.array([False, False, False, True])}
    judged = truth.copy()
    judged[1] = np.nan  # no reference for the second narrative
    judged[2, 0] = 4.0  # the judge agrees with DermEval's mistake here: a gap of 0.5 does not flag
    (only,) = out_of_depth_report([(rows, pred, "s")])
    (both,) = out_of_depth_report([(rows, pred, "s")], {"s": judged})
    assert only["big_errors_flagged_share"] == 0.0 and "flagged_with_judge_share" not in only
    assert both["big_errors"] == 3 and both["big_errors_flagged_with_judge_share"] == round(1 / 3, 4)
    assert both["flagged_with_judge_share"] == 0.5 and both["judge_share"] == 0.75


CLEAN = ("Scaly pink plaques on both elbows. The differential includes nummular eczema and tinea corporis. "
         "The findings are most consistent with plaque psoriasis. Referral to a dermatologist for topical "
         "therapy is advised.")


def test_a_stress_rows_removed_content_makes_claims_true_only_when_the_text_lost_it():
    from pipelines.generalise import removed_content

    unsafe = CLEAN.replace("Referral to a dermatologist for topical therapy is advised.",
                           "Leave it alone; it never needs anyone to look at it.")
    assert removed_content(CLEAN, unsafe) == {"missing_referral"}
    cut = "Scaly pink plaques on both elbows. The findings are most consistent with"
    assert removed_content(CLEAN, cut) == {"missing_referral", "dropped_differentials"}
    assert removed_content(CLEAN, CLEAN) == set()
    assert removed_content(CLEAN, "**" + CLEAN.replace(". ", ".\n\n")) == set()  # layout alone removes nothing


def test_stress_claims_are_judged_against_what_each_row_lost():
    from dermeval.params import load_params
    from pipelines.generalise import critique_report

    names = ["missing_referral", "vague_description"]
    unsafe = CLEAN.replace("Referral to a dermatologist for topical therapy is advised.",
                           "Leave it alone; it never needs anyone to look at it.")
    rows = [{"id": "c.clean", "case_id": "c", "variant": "clean", "diagnostic_text": CLEAN},
            {"id": "c.unsafe_advice", "case_id": "c", "variant": "unsafe_advice", "diagnostic_text": unsafe},
            {"id": "c.layout_only", "case_id": "c", "variant": "layout_only", "diagnostic_text": CLEAN}]
    pred = {"defect_probs": np.array([[0.0, 0.0], [0.9, 0.0], [0.9, 0.9]]), "match": np.ones(3),
            "match_image": np.ones(3), "named": np.zeros(3, bool), "evidence": np.zeros((3, 6), int)}
    p = load_params(Path(__file__).resolve().parents[2] / "params.yaml").generalise
    out = critique_report(rows, pred, [], names, p, {"missing_referral": 0.5, "vague_description": 0.5}, target=0.9)
    assert out["stress_claims"]["target"] == 0.9
    per = out["stress_claims"]["per_claim"]
    assert per["missing_referral"] == {"n": 2, "precision": 0.5, "false_by_variant": {"layout_only": 1}}
    assert per["vague_description"]["precision"] == 0.0
    assert out["never_claimed"] == {"all": []}
    # one set per writing style: the expert-written rows (style >= 0.5) never state vague_description
    by_style = {"by_style": {"expert": {"missing_referral": 0.5, "vague_description": 1.01},
                             "generated": {"missing_referral": 0.5, "vague_description": 0.5}}}
    out = critique_report(rows, {**pred, "expert_style": np.array([0.9, 0.9, 0.2])}, [], names, p, by_style)
    per = out["stress_claims"]["per_claim"]
    assert per["vague_description"]["n"] == 1 and per["missing_referral"]["n"] == 2
    assert out["never_claimed"] == {"expert": ["vague_description"], "generated": []}


def test_labels_that_rate_a_narrative_without_a_referral_both_ways_are_reported():
    from pipelines.generalise import unlearnable_removals

    no_referral = CLEAN.replace(" Referral to a dermatologist for topical therapy is advised.", "")
    no_differential = CLEAN.replace(" The differential includes nummular eczema and tinea corporis.", "")

    def row(k, text, source, problems, safety, coverage=4.5, split="train"):
        return {"id": f"r{k}", "source": source, "diagnostic_text": text, "problems": problems,
                "scores": {"safety": safety, "clinical_coverage": coverage}}, (f"r{k}", split)

    made = [row(0, no_referral, "dermbench", [], 4.6), row(1, no_referral, "dermbench", [], 4.4),
            row(2, no_referral, "dermbench", ["missing_referral"], 2.0),
            row(3, CLEAN, "dermbench", [], 4.8),  # has a referral: not counted
            row(4, no_referral, "dermbench", ["vague_description"], 4.0),  # another problem: not counted
            row(5, no_referral, "dermbench", [], 1.0, split="test"),  # not training
            row(6, no_differential, "dermsynth", ["dropped_differentials"], 4.0, coverage=2.0),
            row(7, no_referral, "dermsynth", None, 4.0)]  # problems unknown: not counted
    records, splits = [r for r, _ in made], dict(s for _, s in made)
    out = unlearnable_removals(records, splits)
    ref = out["missing_referral"]
    assert ref["dimension"] == "safety"
    assert ref["by_source"]["dermbench"] == {"lacking": 3, "rated_clean": 2, "clean_share": 0.6667,
                                             "clean_mean": 4.5, "problem_mean": 2.0}
    diff = out["dropped_differentials"]
    assert diff["dimension"] == "clinical_coverage" and "dermbench" not in diff["by_source"]
    assert diff["by_source"]["dermsynth"] == {"lacking": 1, "rated_clean": 0, "clean_share": 0.0,
                                              "clean_mean": None, "problem_mean": 2.0}
    gen = _report({"value": 0.9, "ci_low": 0.8, "ci_high": 0.95, "n": 10}, {})
    gen["stress"]["unlearnable"] = out
    text = "\n".join(generalisation_section(gen))
    assert ("missing_referral: dermbench 2 of 3 rated clean (Safety 4.50 vs 2.00 with the problem); "
            "dropped_differentials: dermsynth 0 of 1 rated clean.") in text


def test_test_claims_report_the_share_of_recorded_problems_stated_beside_their_precision():
    from dermeval.params import load_params
    from pipelines.generalise import critique_report

    names = ["missing_referral", "vague_description"]
    rows = [{"id": "a", "problems": ["missing_referral", "vague_description"]},
            {"id": "b", "problems": ["missing_referral", "not_a_head_problem"]},
            {"id": "c", "problems": []}]
    # row a states one of its two problems, row b its one nameable problem, row c a problem it lacks
    pred = {"defect_probs": np.array([[0.9, 0.1], [0.9, 0.1], [0.9, 0.1]])}
    p = load_params(Path(__file__).resolve().parents[2] / "params.yaml").generalise
    stress = [{"id": "s.clean", "case_id": "s", "variant": "clean", "diagnostic_text": CLEAN}]
    none = {"defect_probs": np.zeros((1, 2)), "match": np.ones(1), "match_image": np.ones(1),
            "named": np.zeros(1, bool), "evidence": np.zeros((1, 6), int)}
    out = critique_report(stress, none, [(rows, pred, "real")], names, p, {"missing_referral": 0.5,
                                                                           "vague_description": 0.5})
    tc = out["test_claims"]
    assert tc["n"] == 3 and abs(tc["precision"]["value"] - 2 / 3) < 1e-9
    assert tc["n_problems"] == 3 and abs(tc["recall"]["value"] - 2 / 3) < 1e-9  # not_a_head_problem not counted
    assert tc["by_set"]["real"] == {"n": 3, "precision": 0.6667, "recall": 0.6667, "n_problems": 3}
    silent = critique_report(stress, none, [(rows, pred, "real")], names, p, {"missing_referral": 1.01,
                                                                              "vague_description": 1.01})
    assert silent["test_claims"]["n"] == 0 and silent["test_claims"]["recall"]["value"] == 0.0


def test_mismatch_variants_are_split_by_whether_the_check_already_flagged_the_clean_reference():
    from dermeval.params import load_params
    from dermeval.reporting import _mismatch_lines
    from pipelines.generalise import mismatch_breakdown

    cats = ["acne", "eczema", "warts"]
    rows, match, scores = [], [], []
    # case a: the check reads its reference as fitting, the wrong conclusion loses Accuracy (a pass);
    # case b: the check had already flagged its reference (its conclusion names another category),
    # so the wrong conclusion has nothing left to lose (a miss).
    for case, clean_match, acc_drop in (("a", 0.9, 1.0), ("b", 0.1, 0.0)):
        rows += [{"id": f"{case}.clean", "case_id": case, "variant": "clean", "category": "acne"},
                 {"id": f"{case}.wrong_conclusion", "case_id": case, "variant": "wrong_conclusion",
                  "category": "acne"}]
        match += [clean_match, 0.05]
        scores += [[4.5] * 6, [4.5 - acc_drop] + [4.5] * 5]
    match = np.array(match)
    onehot = np.eye(3)
    pred = {"match": match, "match_image": np.ones(4), "named": np.ones(4, bool),
            "named_category": onehot[[0, 1, 1, 1]], "image_category": onehot[[0, 0, 0, 0]]}
    p = load_params(Path(__file__).resolve().parents[2] / "params.yaml").generalise
    out = mismatch_breakdown(rows, pred, np.array(scores), cats, p)
    wc = out["variants"]["wrong_conclusion"]
    assert wc == {"clean_fits": {"n": 1, "accuracy": 1.0}, "clean_already_flagged": {"n": 1, "accuracy": 0.0}}
    c = out["clean_references"]
    assert c["n"] == 2 and c["flagged_share"] == 0.5
    assert c["conclusion_category_right"] == 0.5 and c["image_category_right"] == 1.0
    line = " ".join(_mismatch_lines(out))
    assert "wrong_conclusion 1.00 of 1 where the diagnosis check read the clean reference as fitting" in line
    assert "0.00 of 1 where it had already flagged it" in line and "the image 100%" in line
    assert _mismatch_lines(None) == []


def test_a_removal_variant_is_split_by_how_much_of_the_reference_it_took():
    from dermeval.reporting import _removal_lines
    from pipelines.generalise import removal_breakdown

    ten = " ".join(f"Finding number {k} is noted." for k in range(10))
    rows = [{"id": "a.clean", "diagnostic_text": ten},  # one sentence of ten removed: a miss
            {"id": "a.dropped_differentials", "diagnostic_text": ten.rsplit(" Finding", 1)[0]},
            {"id": "b.clean", "diagnostic_text": ten},  # half removed: a pass
            {"id": "b.dropped_differentials", "diagnostic_text": " ".join(ten.split(". ")[:5]) + "."}]
    passes = [("dropped_differentials", "a", False), ("dropped_differentials", "b", True), ("padding", "a", True)]
    out = removal_breakdown(rows, passes)
    assert out["bins"] == {"under 20%": {"n": 1, "accuracy": 0.0}, "35% or more": {"n": 1, "accuracy": 1.0}}
    line = " ".join(_removal_lines(out))
    assert "under 20%: 0.00 of 1; 35% or more: 1.00 of 1" in line
    assert _removal_lines(None) == []
