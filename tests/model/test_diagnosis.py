"""The diagnosis vocabulary, the diagnosis check in the critique, and the out-of-distribution flag."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dermeval.diagnosis import DiagnosisVocabulary, category_features, conclusion_term, held_out_coverage
from dermeval.model.critique import build_critique, critique_text
from dermeval.model.evaluator import EvaluatorNotFound, load_evaluator
from dermeval.schema import DERMBENCH_CATEGORIES, DIMENSIONS

VIRAL = "Warts Molluscum and other Viral Infections"
BULLOUS = "Bullous Disease Photos"
ECZEMA = "Eczema Photos"


@pytest.fixture(scope="module")
def icd_vocab() -> DiagnosisVocabulary:
    return DiagnosisVocabulary.build()  # ICD-10-CM alone: nothing from the catalogue or DermBench


def test_coded_terms_name_diseases_the_catalogue_never_lists(icd_vocab):
    assert icd_vocab.sources == {"icd10cm": icd_vocab.sources["icd10cm"]} and icd_vocab.sources["icd10cm"] > 1000
    assert icd_vocab.category("common wart") == VIRAL
    assert icd_vocab.category("bullous pemphigoid") == BULLOUS
    assert icd_vocab.category("Tinea corporis") == "Tinea Ringworm Candidiasis and other Fungal Infections"
    assert icd_vocab.category("scabies") == "Scabies Lyme Disease and other Infestations and Bites"
    assert icd_vocab.category("nothing clinical here") is None


def test_the_name_is_found_inside_a_conclusion_sentence(icd_vocab):
    m = icd_vocab.classify("The picture is most consistent with Bullous  Pemphigoid, rather than eczema.")
    assert m.name == "bullous pemphigoid" and m.best(icd_vocab.categories) == BULLOUS


def test_learned_names_outrank_a_coding_convention_and_round_trip(tmp_path, icd_vocab):
    v = DiagnosisVocabulary.build(icd=False, learned=[("Gianotti-Crosti", "Exanthems and Drug Eruptions")] * 2,
                                  catalogue=[("verruca vulgaris", VIRAL)])
    assert v.category("Conclusion: gianotti crosti syndrome") == "Exanthems and Drug Eruptions"
    assert v.category("verruca vulgaris") == VIRAL
    v.save(tmp_path)
    back = DiagnosisVocabulary.load(tmp_path)
    assert back.to_dict() == v.to_dict()
    feats = category_features(["likely verruca vulgaris", "", "no name here"], back, list(DERMBENCH_CATEGORIES))
    assert feats[0, -1] == 1.0 and feats[0, DERMBENCH_CATEGORIES.index(VIRAL)] == 1.0
    assert feats[1].sum() == 0 and feats[2].sum() == 0


def test_conclusion_term_skips_headings():
    assert conclusion_term("**Conclusion:** the most likely diagnosis is **nummular eczema**.") == "nummular eczema"
    assert conclusion_term("**Final Diagnosis**") is None


def test_critique_names_a_mismatch_in_clinical_words():
    scores, sigma = np.full(6, 2.0), np.full(6, 0.3)
    check = {"conclusion": "common wart", "conclusion_category": VIRAL, "seen_category": ECZEMA, "agreement": 0.05}
    crit = build_critique(scores, sigma, ["a", "b"], np.ones((6, 2)) / 2, {}, check)
    text = critique_text(crit, 2.0)
    assert ("Diagnosis check: conclusion: common wart (viral infection group (warts, molluscum)); "
            "image and findings: eczema group.") in text
    assert crit["diagnosis_check"]["fits"] is False
    assert "Diagnosis check" in crit["dimensions"]["accuracy"]["justification"]
    fits = build_critique(scores, sigma, ["a"], np.ones((6, 1)), {}, {**check, "agreement": 0.9})
    assert "Diagnosis check" not in critique_text(fits, 2.0) and fits["diagnosis_check"]["fits"]
    unnamed = build_critique(scores, sigma, ["a"], np.ones((6, 1)), {}, {**check, "conclusion": None})
    assert "Diagnosis check" not in critique_text(unnamed, 2.0)  # no recognised name: nothing claimed


def test_critique_says_when_the_image_alone_does_not_fit():
    """Findings that agree with the conclusion do not hide an image of another group."""
    scores, sigma = np.full(6, 2.0), np.full(6, 0.3)
    check = {"conclusion": "common wart", "conclusion_category": VIRAL, "seen_category": VIRAL, "agreement": 0.8,
             "image_category": ECZEMA, "image_agreement": 0.04}
    crit = build_critique(scores, sigma, ["a"], np.ones((6, 1)), {}, check)
    text = critique_text(crit, 2.0)
    assert ("Image check: conclusion: common wart (viral infection group (warts, molluscum)); image: eczema group; "
            "the narrative does not fit the image.") in crit["dimensions"]["accuracy"]["justification"]
    assert crit["diagnosis_check"]["fits"] is False
    assert "Image check" not in crit["dimensions"]["safety"]["justification"]
    assert "Image check" in text
    fits = build_critique(scores, sigma, ["a"], np.ones((6, 1)), {}, {**check, "image_agreement": 0.7})
    assert "check:" not in critique_text(fits, 2.0) and fits["diagnosis_check"]["fits"]


def test_the_vocabulary_maps_held_out_dermbench_conclusions(dermbench_records):
    from dermeval.synth.realtext import conclusion_name

    pairs = [(conclusion_name(c), c.category) for c in dermbench_records]
    with_learning = held_out_coverage(pairs, folds=5)
    coded_only = held_out_coverage(pairs, folds=5, learn=False)
    # Measured 0.74 (target 0.90; the release files one name under several categories, see the
    # benchmark): a guard against regressions, and learning from the release must help.
    assert with_learning["distinct_accuracy"] >= 0.70
    assert with_learning["distinct_accuracy"] > coded_only["distinct_accuracy"] + 0.1
    assert with_learning["cases_accuracy"] <= with_learning["cases_ceiling"]


def test_saved_evaluator_carries_vocabulary_and_novelty(trained, tmp_path):
    model = trained["model_dir"]
    assert (model / "vocabulary.json").is_file() and (model / "ood.safetensors").is_file()
    meta = json.loads((model / "config.json").read_text())
    assert meta["ood"]["text_radius"] > 0 and meta["net"]["vocab_category"]
    broken = tmp_path / "m"
    broken.mkdir()
    for f in ("config.json", "model.safetensors"):
        (broken / f).write_bytes((model / f).read_bytes())
    with pytest.raises(EvaluatorNotFound, match="vocabulary.json is missing"):
        load_evaluator(broken)


def test_a_dermsynth_evaluator_flags_real_expert_text_as_out_of_distribution(trained, dermbench_records):
    ev = trained["evaluator"]
    rows = trained["rows"]
    test = [r for r in rows if trained["splits"][r["id"]] == "test"][:60]
    own = ev.score_batch([{"id": r["id"], "image": r["image"], "diagnostic_text": r["diagnostic_text"]}
                          for r in test], trained["root"], progress=False)
    refs = dermbench_records[::67]  # 60 cases across the categories
    real = ev.score_batch([{"id": c.id, "image": test[k % len(test)]["image"], "diagnostic_text": c.reference_text}
                           for k, c in enumerate(refs)], trained["root"], progress=False)
    own_ood = np.mean([r["out_of_distribution"] for r in own])
    real_ood = np.mean([r["out_of_distribution"] for r in real])
    assert real_ood >= 0.6, real_ood   # trained on DermSynth alone: most real narratives are new to it
    assert own_ood <= 0.15, own_ood    # its own held-out cases are not
    assert all(r["needs_review"] for r in real if r["out_of_distribution"])
    assert set(real[0]["novelty"]) == {"text", "image"} and set(real[0]["scores"]) == set(DIMENSIONS)


def test_each_dimension_quotes_its_own_sentence_when_attention_allows():
    from dermeval.model.critique import evidence_order

    spread = np.tile([0.5, 0.3, 0.2], (6, 1))
    leads = [q[0] for q in evidence_order(spread)]
    assert len(set(leads)) == 3  # three sentences carry weight: three different leads
    peaked = np.tile([0.97, 0.02, 0.01], (6, 1))
    assert {q[0] for q in evidence_order(peaked)} == {0}  # a sentence hardly read is never quoted instead
    assert evidence_order(np.zeros((6, 0))) == [[] for _ in range(6)]
