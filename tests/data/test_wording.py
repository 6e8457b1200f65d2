"""Operators leave no fingerprints: layout untouched, many phrasings, one family per operator held out."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from dermeval import text as tx
from dermeval.generalisation import directional_pass, sentence_overlap
from dermeval.synth import wording as wd
from dermeval.synth.catalogue import default_catalogue
from dermeval.synth.defects import OPERATORS, apply_defects
from dermeval.synth.narrative import reference_narrative
from dermeval.synth.realtext import case_context
from dermeval.synth.stress import layout_rewrite
from dermeval.synth.world import context_for

# Operators whose defect *is* the layout or the whole text (nothing of the original layout survives).
WHOLE_TEXT = {"off_topic", "empty", "truncation"}
NO_TEXT = {"image_mismatch"}  # changes which image the narrative is shown with, never its text
DELETING = {"dropped_differentials", "missing_referral", "unsafe_advice", "missed_malignancy"}


def _layout(text: str) -> tuple:
    """What a model could read an operator off from besides content: breaks, list markers, bold, trailing spaces."""
    return (text.count("\n\n"), len(re.findall(r"\n\s*(\d+\.|[-•])\s", text)), len(re.findall(r"[ \t]+\n", text)),
            text.startswith(" "), text.endswith("\n"))


def test_pieces_round_trip_every_dermbench_reference(dermbench_records):
    for case in dermbench_records:
        lead, parts = tx.pieces(case.reference_text)
        assert tx.render(lead, parts) == case.reference_text
        assert tx.texts(parts) == tx.sentences(case.reference_text)


@pytest.mark.parametrize("op", sorted(set(OPERATORS) - WHOLE_TEXT - NO_TEXT))
def test_operators_keep_the_layout_of_expert_text(op, dermbench_records, dermbench_pool):
    release, pool = dermbench_records, dermbench_pool
    changed = 0
    for i, case in enumerate(release[::100]):
        ctx = case_context(case, pool, np.random.default_rng(i))
        for wording in ("train", "heldout"):
            text, applied = apply_defects(case.reference_text, ctx, [op], np.random.default_rng(i), wording)
            if not applied:
                continue
            changed += 1
            before, after = _layout(case.reference_text), _layout(text)
            # Breaks and trailing spaces may only go with removed sentences; nothing else about the layout moves.
            assert after[0] <= before[0] and after[2] <= before[2] and after[3:] == before[3:], (op, case.id)
            if op not in DELETING:  # list items may only go with sentences an operator removes
                assert after[1] == before[1], (op, case.id)
    assert changed >= 5


def test_wrong_diagnosis_on_expert_text_uses_expert_names(dermbench_records, dermbench_pool):
    release, pool = dermbench_records, dermbench_pool
    catalogue_names = {c.name.lower() for c in default_catalogue().conditions}
    expert_names = {n for names in pool.values() for n in names}
    for i, case in enumerate(release[::200]):
        ctx = case_context(case, pool, np.random.default_rng(i))
        assert set(ctx.wrong_names) <= expert_names
        assert not set(pool[case.category]) & set(ctx.wrong_names) - set(n for c, ns in pool.items()
                                                                         if c != case.category for n in ns)
    assert len(expert_names - catalogue_names) > 300  # the experts' own vocabulary, not the catalogue's


def test_every_family_has_many_phrasings():
    for op, families in wd.FAMILIES.items():
        assert len(families) >= 2 or op in {"empty"} | NO_TEXT, op
        for name, templates in families.items():
            if templates:
                assert sum(wd.phrasings(t) for t in templates) >= 12, (op, name)


def test_held_out_families_never_reach_the_training_world(tiny_world: Path):
    rows = [json.loads(line) for line in (tiny_world / "ratings.jsonl").open()]
    used = {(d["name"], d["family"]) for r in rows for d in r["truth"]["defects"]}
    assert used, "the world applied no defects"
    assert not {(op, fam) for op, fam in wd.HELDOUT.items()} & used
    # and several training families of the common operators do appear
    assert len({fam for op, fam in used if op == "unsafe_advice"}) >= 2


def test_heldout_wording_draws_only_the_held_out_family():
    cat = default_catalogue()
    cond = cat.by_id["melanoma"]
    for s in range(10):
        rng = np.random.default_rng(s)
        ref, ctx = reference_narrative(cond, 2, rng), context_for(cond, cat, rng)
        for op in wd.HELDOUT:
            _, applied = apply_defects(ref, ctx, [op], np.random.default_rng(s), "heldout")
            assert all(a.family == wd.HELDOUT[op] for a in applied)


def test_dermsynth_references_vary_their_wording():
    cat = default_catalogue()
    cond = cat.by_id["plaque_psoriasis"]
    texts = [reference_narrative(cond, 3, np.random.default_rng(s)) for s in range(40)]
    overlap = sentence_overlap(texts[:20], texts[20:])
    # 20 narratives of the same condition: most sentences are still new wording
    assert overlap["sentence_share"] < 0.4, overlap


def test_layout_rewrite_changes_layout_not_words():
    ref = reference_narrative(default_catalogue().by_id["melanoma"], 3, np.random.default_rng(0))
    out = layout_rewrite(ref, np.random.default_rng(1))
    assert "**" not in out and out != ref
    assert out.split() == ref.replace("**", "").split()


def test_directional_pass_rules():
    d = np.zeros((3, 6))
    d[0, 0], d[1, 0], d[2, 3] = -0.3, -0.2, 0.15
    assert directional_pass(d, "lower", ["accuracy"], lower_by=0.25, neutral_up=0.1, same_within=0.25).tolist() \
        == [True, False, False]
    assert directional_pass(d, "neutral", [], lower_by=0.25, neutral_up=0.1, same_within=0.25).tolist() \
        == [True, True, False]
    assert directional_pass(d, "same", [], lower_by=0.25, neutral_up=0.1, same_within=0.25).tolist() \
        == [False, True, True]
