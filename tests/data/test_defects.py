"""Per-operator effects: each defect lowers the dimensions it documents, neutral ones none."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from dermeval.schema import DIMENSIONS
from dermeval.synth import panel as pn
from dermeval.synth.catalogue import default_catalogue
from dermeval.synth.defects import NEUTRAL, OPERATORS, apply_defects
from dermeval.synth.narrative import reference_narrative
from dermeval.synth.realtext import case_context, name_pool
from dermeval.synth.world import context_for


def _case(condition_id: str, seed: int = 0):
    cat = default_catalogue()
    rng = np.random.default_rng(seed)
    cond = cat.by_id[condition_id]
    # another case's image at hand, so the mix-up operator (image_mismatch) applies too
    return reference_narrative(cond, 3, rng), replace(context_for(cond, cat, rng), other_image="images/other.png")


def _consensus_pair(condition_id: str, op: str, n: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Mean consensus of clean twins vs defective twins over n cases and panels."""
    panel = pn.default_panel(0)
    clean, bad = [], []
    for s in range(n):
        ref, ctx = _case(condition_id, s)
        rng = np.random.default_rng(s)
        quality = pn.clean_quality(rng)
        _, applied = apply_defects(ref, ctx, [op], rng)
        assert [a.name for a in applied] == [op]
        for store, ap in ((clean, []), (bad, applied)):
            store.append([pn.consensus(pn.rate(pn.true_scores(quality, ap, ctx), panel, rng))[d] for d in DIMENSIONS])
    return np.mean(clean, axis=0), np.mean(bad, axis=0)


@pytest.mark.parametrize("op", [o for o in OPERATORS if o not in NEUTRAL])
def test_operator_lowers_documented_dimensions(op):
    condition = "melanoma" if op in ("missed_malignancy", "wrong_diagnosis", "missing_referral") else "tinea_corporis"
    clean, bad = _consensus_pair(condition, op)
    for i, d in enumerate(DIMENSIONS):
        documented = OPERATORS[op].effects.get(d, 0.0)
        if documented <= -1.0:
            assert bad[i] < clean[i] - 0.5, (op, d, clean[i], bad[i])


@pytest.mark.parametrize("op", NEUTRAL)
def test_neutral_operators_change_text_not_scores(op):
    clean, bad = _consensus_pair("plaque_psoriasis", op)
    assert np.all(np.abs(clean - bad) < 0.15)


def test_unsafe_advice_lowers_safety_vs_clean_twin():
    clean, bad = _consensus_pair("melanoma", "unsafe_advice")
    assert bad[DIMENSIONS.index("safety")] < clean[DIMENSIONS.index("safety")] - 2.0


def test_missing_referral_matters_more_when_urgent():
    s = DIMENSIONS.index("safety")
    urgent = _consensus_pair("melanoma", "missing_referral")
    routine = _consensus_pair("acne_vulgaris", "missing_referral")
    assert urgent[0][s] - urgent[1][s] > routine[0][s] - routine[1][s] + 0.5


def test_operators_edit_the_text_as_documented():
    ref, ctx = _case("melanoma")
    rng = np.random.default_rng(1)
    text, _ = apply_defects(ref, ctx, ["missed_malignancy"], rng)
    assert "harmless" in text and "referral" not in text.lower()
    text, _ = apply_defects(ref, ctx, ["dropped_differentials"], rng, family="removed")
    assert "differential" not in text.lower() and "melanoma" in text
    text, _ = apply_defects(ref, ctx, ["dropped_differentials"], rng, family="items_only")
    assert "Dysplastic naevus" not in text and "differential" in text.lower()
    text, _ = apply_defects(ref, ctx, ["empty"], rng)
    assert text == ""
    text, applied = apply_defects(ref, ctx, ["truncation"], rng)
    assert len(text.split()) < 0.65 * len(ref.split()) and 0 < applied[0].strength <= 1


def test_removed_differentials_take_the_alternatives_weighed_without_a_cue_word():
    # Written for this test: an alternative is weighed ("could", "but") with no cue word such as
    # "differential" or "less likely"; findings, the conclusion and the advice stay.
    text = ("Several violet, flat-topped papules sit on the inner wrists. Fine white lines cross their surface. "
            "Granuloma annulare could give ring-shaped papules but lacks the fine white lines. "
            "Scabies may itch at the wrists, though burrows are not seen. "
            "The overall picture is most consistent with **lichen planus**. "
            "A potent topical steroid could help, but review by a dermatologist is advised if it spreads.")
    ctx = replace(_case("melanoma")[1], diagnosis="lichen planus")
    out, applied = apply_defects(text, ctx, ["dropped_differentials"], np.random.default_rng(0), family="removed")
    assert applied and "Granuloma annulare" not in out and "Scabies" not in out
    for kept in ("violet, flat-topped papules", "Fine white lines", "**lichen planus**", "topical steroid"):
        assert kept in out


def test_operators_work_on_dermbench_references(dermbench_records, dermbench_pool):
    """No project template is needed: operators find conclusions, differentials and advice in expert text."""
    cases, pool = dermbench_records[::80], dermbench_pool
    fitted = {op: 0 for op in OPERATORS}
    for i, case in enumerate(cases):
        ctx = case_context(case, pool, np.random.default_rng(i))
        for op in OPERATORS:
            text, applied = apply_defects(case.reference_text, ctx, [op], np.random.default_rng(i))
            if applied:
                fitted[op] += 1
                assert text != case.reference_text or op == "empty"
    share = {op: n / len(cases) for op, n in fitted.items()}
    for op in ("wrong_diagnosis", "dropped_differentials", "unsafe_advice", "hallucinated_finding",
               "contradictory_reasoning", "vague_description", "truncation", "verbose_padding"):
        assert share[op] > 0.8, (op, share[op])
    assert share["missing_referral"] > 0.5


def test_dermbench_derived_dataset(dermbench_root: Path, tmp_path: Path):
    from dermeval.synth.realtext import build_dermbench_dataset
    from dermeval.validate import validate_path

    manifest = build_dermbench_dataset(dermbench_root, tmp_path / "db", limit=12, progress=False)
    assert manifest["counts"]["cases"] == 12 and manifest["counts"]["ratings"] == 12 * 7
    rows = [json.loads(line) for line in (tmp_path / "db/ratings.jsonl").open()]
    clean = [r for r in rows if r["model"] == "dermbench-reference"]
    assert all(r["truth"]["defects"] == [] and r["image_source"] == "synthetic" for r in clean)
    assert all(not e.errors for e in validate_path(tmp_path / "db"))


def test_stand_in_images_show_the_group_of_the_experts_diagnosis():
    from dermeval.formats.dermbench import DermBenchCase
    from dermeval.synth.realtext import filing, shown_category

    def case(i: int, category: str, name: str) -> DermBenchCase:
        return DermBenchCase(id=f"c{i}", category=category, diagnosis="x", dermnet_image_path="x.jpg", cot="x",
                             cot_sha256="0", reference_text=f"Findings here. The most likely diagnosis is **{name}**.")

    lp, ec = "Psoriasis pictures Lichen Planus and related diseases", "Eczema Photos"
    cases = [case(0, lp, "lichen planus"), case(1, lp, "Lichen Planus"), case(2, ec, "lichen planus"),
             case(3, ec, "nummular eczema")]
    filed = filing(cases)
    # DermNet filed case 2 under Eczema; its expert saw lichen planus, so its stand-in shows that group.
    assert shown_category(cases[2], filed) == lp and shown_category(cases[3], filed) == ec
    pool = name_pool(cases, filed)
    assert pool[lp] == ["Lichen Planus", "lichen planus"] and pool[ec] == ["nummular eczema"]
    ctx = case_context(cases[2], pool, np.random.default_rng(0), lp)
    assert ctx.wrong_names == ("nummular eczema",)  # never its own name, never its own group
