"""Stage ``generalise``: the generalisation report, measured outside what produced the training data.

Side by side, each with 95% CIs: (a) the in-distribution test split (DermSynth), (b) held-out
wording families (defects written in a family training never saw), (c) transfer to real
DermBench cases never seen in training, (d) a directional stress suite on held-out clean
references, (e) the clean references' own scores and ``needs_review`` share, (f) the same
for the offline judge. Without the DermBench release, (c) and (d) run on held-out DermSynth
references and say so. All ratings are the simulated panel's.

Longer than 300 lines: one function per set (a)-(f) above, each short; they share the scorer
and the bootstrap, and the report reads best as one file in the order it is written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from itertools import pairwise
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from dermeval import text as tx
from dermeval.formats.common import iter_jsonl, read_rows, write_csv, write_json, write_jsonl
from dermeval.generalisation import agreement_block, flat_agreement, sentence_overlap, stress_passes
from dermeval.metrics import mean_ci
from dermeval.model.critique import (
    ISSUE_THRESHOLD,
    MISMATCH_THRESHOLD,
    NEVER,
    claimed,
    evidence_order,
    row_thresholds,
    threshold_sets,
)
from dermeval.model.data import FeatureSet, featurize
from dermeval.model.evaluator import load_evaluator
from dermeval.model.train import labelled_problems
from dermeval.params import GeneraliseParams, load_params
from dermeval.reporting import generalisation_section
from dermeval.schema import DIMENSIONS
from dermeval.synth import stress as st
from dermeval.synth.catalogue import default_catalogue
from dermeval.synth.realtext import case_context
from dermeval.synth.world import context_for


def _ranked(ids: set[str], seed: int, n: int) -> list[str]:
    return sorted(ids, key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).digest())[:n]


def _diagnosis(case: dict[str, Any]) -> str:
    """The diagnosis a case's reference concludes on (the expert's own words for DermBench)."""
    return case.get("expert_diagnosis") or case["diagnosis"]


def held_out_cases(prepared: Path, records: list[dict], splits: dict[str, str], p: GeneraliseParams
                   ) -> dict[str, list[st.HeldOutCase]]:
    """Up to ``p.max_cases`` test-split cases per source, with the context an operator needs."""
    test_ids: dict[str, set[str]] = {}
    for r in records:
        if splits.get(r["id"]) == "test":
            test_ids.setdefault(r.get("source", "dermsynth"), set()).add(r.get("case_id") or r["id"])
    out: dict[str, list[st.HeldOutCase]] = {}
    catalogue = default_catalogue()
    for source in ("dermsynth", "dermbench"):
        if source not in test_ids:
            continue
        rows = {c["id"]: c for _, c in iter_jsonl(prepared / source / "cases.jsonl")}
        names: dict[str, set[str]] = {}
        for c in rows.values():
            names.setdefault(c["category"], set()).add(_diagnosis(c))
        pool = {k: sorted(v) for k, v in names.items()}
        cases = []
        for cid in _ranked(test_ids[source], p.seed, p.max_cases):
            c, rng = rows[cid], st.case_rng(p.seed, cid, "context")
            ctx = (context_for(catalogue.by_id[c["condition_id"]], catalogue, rng) if source == "dermsynth"
                   else case_context(SimpleNamespace(**c), pool, rng))
            cases.append(st.HeldOutCase(cid, source, c["category"], f"{source}/{c['image']}",
                                        c["reference_text"], ctx))
        out[source] = cases
    return out


class Scorer:
    """DermEval and the offline judge (given its calibration) on rows built here, through the shared feature cache."""

    def __init__(self, model: str, cache: str, judge_path: str | None, prepared: Path) -> None:
        self.evaluator = load_evaluator(model, cache=cache)
        self.prepared = prepared
        self.judge = None
        if judge_path:
            from dermeval.judge.local import Calibration, LocalJudge

            self.judge = LocalJudge(self.evaluator.featurizer, Calibration.load(judge_path))

    def dermeval(self, rows: list[dict]) -> tuple[list[dict], dict[str, np.ndarray]]:
        """The rows that could be scored and, aligned with them, the evaluator's outputs
        (scores, sigma, needs_review, novelty, defect_probs, match, evidence)."""
        fs, errors = featurize(rows, self.prepared, self.evaluator.featurizer, progress=True, source="generalise")
        for e in errors:
            print(f"generalise: {e}", file=sys.stderr)
        return self.aligned(fs, rows, np.arange(len(fs)))

    def aligned(self, fs: FeatureSet, rows: list[dict], idx: np.ndarray, *, evidence: bool = True
                ) -> tuple[list[dict], dict[str, np.ndarray]]:
        """The evaluator's outputs on rows ``idx`` of ``fs`` (``rows``: their records), aligned with the
        rows that were featurised; ``evidence=False`` skips the attention the critique quotes from."""
        pred = self.evaluator.predict(fs, idx, with_attention=evidence)
        pred["needs_review"] = self.evaluator.review_flags(pred)
        if evidence:  # the sentence each dimension's critique quotes first ("Driven most by")
            pred["evidence"] = np.array([[q[0] if q else -1 for q in evidence_order(a)]
                                         for a in pred.pop("attention")])
        kept = {fs.ids[i]: k for k, i in enumerate(idx)}
        rows = [r for r in rows if r["id"] in kept]
        order = [kept[r["id"]] for r in rows]
        return rows, {k: v[order] for k, v in pred.items()}

    def judged(self, rows: list[dict], references: dict[str, str], diagnoses: dict[str, str]) -> np.ndarray | None:
        if self.judge is None or not rows:
            return None
        out = self.judge.judge([r["diagnostic_text"] for r in rows], [references[r["case_id"]] for r in rows],
                               [diagnoses.get(r["case_id"]) for r in rows])
        return np.array([[s[d] for d in DIMENSIONS] for s, _ in out])


def passes_of(rows: list[dict], scores: np.ndarray, p: GeneraliseParams) -> list[tuple[str, str, bool]]:
    """Every stress row's ``(variant, case_id, passed)`` under the report's bounds."""
    return stress_passes(rows, scores, st.VARIANTS, lower_by=p.lower_by, neutral_up=p.neutral_up,
                         same_within=p.same_within)


def stress_report(rows: list[dict], scores: np.ndarray, p: GeneraliseParams,
                  passes: list[tuple[str, str, bool]] | None = None) -> dict[str, Any]:
    """Directional accuracy per variant (with CIs) and the mean score change per dimension
    (``passes``: :func:`passes_of` when already computed)."""
    by_id = {r["id"]: k for k, r in enumerate(rows)}
    passes = passes_of(rows, scores, p) if passes is None else passes
    out: dict[str, Any] = {}
    for v in st.VARIANTS:
        pairs = [(by_id[r["id"]], by_id[f"{r['case_id']}.clean"]) for r in rows
                 if r["variant"] == v.name and f"{r['case_id']}.clean" in by_id]
        if not pairs:
            continue
        delta = np.array([scores[a] - scores[b] for a, b in pairs])
        ok = np.array([passed for name, _, passed in passes if name == v.name])
        out[v.name] = {"description": v.description, "expect": v.expect, "dimensions": list(v.dimensions),
                       "accuracy": mean_ci(ok, p.n_boot), "mean_delta": dict(zip(DIMENSIONS, delta.mean(0).round(4)
                                                                                  .tolist(), strict=True)),
                       "mean_abs_delta": round(float(np.abs(delta).mean()), 4)}
    out["overall"] = {"accuracy": mean_ci([passed for _, _, passed in passes], p.n_boot)}
    return out


def clean_report(scores: np.ndarray, pred: dict[str, np.ndarray] | None, keep: np.ndarray | None
                 ) -> dict[str, Any]:
    """Mean scores of clean references; with the evaluator's outputs also how many it flags."""
    out = {d: round(float(scores[:, j].mean()), 4) for j, d in enumerate(DIMENSIONS)}
    out["overall"] = round(float(scores.mean()), 4)
    out["n"] = int(len(scores))
    if pred is not None:
        out["needs_review_share"] = round(float(pred["needs_review"][keep].mean()), 4)
        if "novelty" in pred:
            out["out_of_distribution_share"] = round(float((pred["novelty"][keep].max(1) > 1).mean()), 4)
    return out


BIG_ERROR = 1.0  # a dimension score this far from the panel is a big error


def big_errors(rows: list[dict], scores: np.ndarray) -> np.ndarray:
    """(n, 6): which dimension scores lie more than BIG_ERROR from the rows' panel scores."""
    truth = np.array([[r["scores"][d] for d in DIMENSIONS] for r in rows], np.float32)
    return np.abs(scores - truth) > BIG_ERROR


def big_errors_flagged(flags: np.ndarray, big: np.ndarray) -> float | None:
    """The share of big errors (one per dimension score) whose narrative is flagged."""
    return round(float(np.broadcast_to(flags[:, None], big.shape)[big].mean()), 4) if big.any() else None


def out_of_depth_report(sets: list[tuple[list[dict], dict[str, np.ndarray], str]],
                        judged: dict[str, np.ndarray | None] | None = None) -> list[dict[str, Any]]:
    """Per test set: the share flagged (needs_review, out_of_distribution) and the share of big
    errors (a dimension off by more than BIG_ERROR) whose narrative was flagged. With the offline
    judge's scores for a set (``judged[label]``, NaN where a row has no reference), the same when a
    dimension's gap to the judge over BIG_ERROR also flags: what a monitor with references sees."""
    out = []
    for rows, pred, label in sets:
        if not rows:
            continue
        big = big_errors(rows, pred["scores"])
        flagged = pred["needs_review"]
        ood = pred["novelty"].max(1) > 1 if "novelty" in pred else np.zeros(len(rows), bool)
        out.append({"set": label, "n": len(rows), "needs_review_share": round(float(flagged.mean()), 4),
                    "out_of_distribution_share": round(float(ood.mean()), 4),
                    "big_errors": int(big.sum()), "big_errors_flagged_share": big_errors_flagged(flagged, big)})
        j = (judged or {}).get(label)
        if j is not None:
            gap = np.abs(pred["scores"] - j)
            with_judge = flagged | (np.nan_to_num(gap, nan=0.0).max(1) > BIG_ERROR)
            out[-1].update(judge_share=round(float((~np.isnan(j[:, 0])).mean()), 4),
                           flagged_with_judge_share=round(float(with_judge.mean()), 4),
                           big_errors_flagged_with_judge_share=big_errors_flagged(with_judge, big))
    return out


# What a "Detected:" claim may truthfully say about a stress row of each variant.
TRUE_CLAIMS = {"clean": set(), "layout_only": set(), "padding": {"verbose_padding"}, "appeal": {"evaluator_injection"},
               "wrong_conclusion": {"wrong_diagnosis", "missed_malignancy", "contradictory_reasoning"},
               "other_image": {"image_mismatch", "wrong_diagnosis", "hallucinated_finding",
                               "contradictory_reasoning"},
               "dropped_differentials": {"dropped_differentials"}, "missing_referral": {"missing_referral"},
               "unsafe_advice": {"unsafe_advice"},
               "truncation": {"truncation"}}
MISMATCH_VARIANTS = ("wrong_conclusion", "other_image")
# Content a variant may remove with its own change: unsafe advice replaces every advice sentence
# (the referral too), a truncation can cut the differential or the referral. Whether it did is read
# from the texts, not assumed from the variant.
REMOVABLE = (("missing_referral", tx.REFERRAL), ("dropped_differentials", tx.DIFFERENTIAL))


def removed_content(clean: str, text: str) -> set[str]:
    """The claims ``text`` makes true against its case's ``clean`` reference: referral advice or a
    differential (outside the conclusion sentence) that the reference had and the text no longer has."""
    before, after = tx.sentences(clean), tx.sentences(text)
    return {claim for claim, pattern in REMOVABLE if _has_outside_conclusion(before, pattern)
            and not _has_outside_conclusion(after, pattern)}


def _has_outside_conclusion(parts: list[str], pattern) -> bool:
    """Whether a sentence other than the conclusion matches ``pattern`` (referral advice, a differential)."""
    return bool(set(tx.find(parts, pattern)) - {tx.conclusion_index(parts)})


def unlearnable_removals(records: list[dict], splits: dict[str, str]) -> dict[str, Any]:
    """How the training split rates the narratives that lack what a stress variant removes (referral
    advice, differentials; outside the conclusion, read with the same cues as :func:`removed_content`),
    per source: how many are rated as having no problem, how many carry that variant's problem, and
    each group's mean on the dimension the variant expects to fall. A reference-free evaluator sees
    the same thing in both groups (the content is not there); where most of them are rated clean, the
    labels say "lacking it is fine", and no evaluator of the text alone can learn from them that
    removing it lowers the score: the panel penalises the removal against the reference, which the
    evaluator never sees."""
    dims = {v.name: v.dimensions[0] for v in st.VARIANTS if v.dimensions}
    out: dict[str, Any] = {}
    for claim, pattern in REMOVABLE:
        dim, groups = dims[claim], {}
        for r in records:
            problems = labelled_problems(r) if splits.get(r["id"]) == "train" else None
            if problems is None or (problems and claim not in problems):
                continue
            if _has_outside_conclusion(tx.sentences(r.get("diagnostic_text", "")), pattern):
                continue  # the content is there
            g = groups.setdefault(str(r.get("source", "dermsynth")), {"clean": [], "problem": []})
            g["problem" if problems else "clean"].append(float(r["scores"][dim]))
        out[claim] = {"dimension": dim, "by_source": {
            src: {"lacking": len(g["clean"]) + len(g["problem"]), "rated_clean": len(g["clean"]),
                  "clean_share": round(len(g["clean"]) / max(len(g["clean"]) + len(g["problem"]), 1), 4),
                  "clean_mean": round(float(np.mean(g["clean"])), 3) if g["clean"] else None,
                  "problem_mean": round(float(np.mean(g["problem"])), 3) if g["problem"] else None}
            for src, g in sorted(groups.items())}}
    return out


def never_claimed(thresholds: dict[str, Any] | None, names: list[str]) -> dict[str, list[str]]:
    """Per writing style (``all`` for one set), the problems the critique never states: their claims
    did not reach the calibrated precision, or that style's calibration rows held too few to check."""
    return {style: sorted(n for n in names if t.get(n, ISSUE_THRESHOLD) >= NEVER)
            for style, t in threshold_sets(thresholds).items()}


def check_fired(pred: dict[str, np.ndarray]) -> np.ndarray:
    """Where the critique states a mismatch: the conclusion, named by the vocabulary, does not fit the
    image and findings, or does not fit the image alone."""
    return (np.minimum(pred["match"], pred["match_image"]) < MISMATCH_THRESHOLD) & pred["named"]


def mismatch_breakdown(rows: list[dict], pred: dict[str, np.ndarray], scores: np.ndarray, categories: list[str],
                       p: GeneraliseParams, passes: list[tuple[str, str, bool]] | None = None) -> dict[str, Any]:
    """Where the variants that break the diagnosis fall short: each one's directional accuracy split by
    whether the check already fired on its case's clean reference (then a wrong conclusion or image
    has no fit left to lose), and, on the clean references, which side of the check names the case's
    own category: the conclusion (diagnosis vocabulary and text) or the image."""
    fired = check_fired(pred)
    clean_at = {r["case_id"]: k for k, r in enumerate(rows) if r["variant"] == "clean"}
    passed = {(v, case): ok for v, case, ok in (passes_of(rows, scores, p) if passes is None else passes)}
    out: dict[str, Any] = {"variants": {}}
    for v in MISMATCH_VARIANTS:
        split: dict[str, list[bool]] = {"clean_fits": [], "clean_already_flagged": []}
        for r in rows:
            if r["variant"] == v and (v, r["case_id"]) in passed:
                key = "clean_already_flagged" if fired[clean_at[r["case_id"]]] else "clean_fits"
                split[key].append(passed[(v, r["case_id"])])
        if any(split.values()):
            out["variants"][v] = {k: {"n": len(x), "accuracy": round(float(np.mean(x)), 4) if x else None}
                                  for k, x in split.items()}
    clean = [k for k in clean_at.values() if pred["match"][k] > 0]  # references with a conclusion
    if clean:
        truth = np.array([categories.index(rows[k]["category"]) if rows[k].get("category") in categories else -1
                          for k in clean])
        known = truth >= 0

        def right(key: str) -> float | None:  # the share of references whose side names the case's category
            return round(float((pred[key][clean].argmax(1) == truth)[known].mean()), 4) if known.any() else None

        out["clean_references"] = {
            "n": len(clean), "flagged_share": round(float(fired[clean].mean()), 4),
            "conclusion_named_share": round(float(pred["named"][clean].mean()), 4),
            "conclusion_category_right": right("named_category"), "image_category_right": right("image_category")}
    return out


REMOVAL_BINS = (0.2, 0.35)  # shares of a reference's sentences a removal took: under a fifth, to a third, more


def removal_breakdown(rows: list[dict], passes: list[tuple[str, str, bool]],
                      variant: str = "dropped_differentials") -> dict[str, Any]:
    """``variant``'s directional accuracy split by the share of its clean reference's sentences the removal
    took: a removal that takes one sentence of a long discussion leaves most of it in place, and an
    evaluator that sees no reference is then right to keep the score."""
    text = {r["id"]: r["diagnostic_text"] for r in rows}
    passed = {case: ok for v, case, ok in passes if v == variant}
    bins: dict[str, list[bool]] = {}
    labels = [f"under {REMOVAL_BINS[0]:.0%}", *(f"{lo:.0%} to {hi:.0%}" for lo, hi in pairwise(REMOVAL_BINS)),
              f"{REMOVAL_BINS[-1]:.0%} or more"]
    for case, ok in passed.items():
        before = [u for u in tx.sentences(text[f"{case}.clean"]) if not tx.is_marker(u)]
        after = [u for u in tx.sentences(text[f"{case}.{variant}"]) if not tx.is_marker(u)]
        share = 1 - len(after) / max(len(before), 1)
        bins.setdefault(labels[int(np.searchsorted(REMOVAL_BINS, share, side="right"))], []).append(ok)
    return {"variant": variant, "bins": {k: {"n": len(bins[k]), "accuracy": round(float(np.mean(bins[k])), 4)}
                                         for k in labels if k in bins}}


def critique_report(stress_rows: list[dict], pred: dict[str, np.ndarray],
                    test_sets: list[tuple[list[dict], dict[str, np.ndarray], str]], names: list[str],
                    p: GeneraliseParams, thresholds: dict[str, Any] | None = None,
                    target: float | None = None) -> dict[str, Any]:
    """How often what the critique says is true: the precision of its "Detected:" claims (on the
    stress suite against each variant's known change, on the test splits against the recorded
    defects, with the share of those defects it stated), the diagnosis check against the variants
    that break it, and how many distinct sentences the six dimensions quote. ``thresholds``: the
    model's claim thresholds as stored (one set, or one per writing style, picked per row by
    ``expert_style`` as the evaluator does)."""
    def claims(pr: dict[str, np.ndarray], k: int) -> list[str]:  # sorted: the bootstrap CIs do not vary by hash seed
        return sorted(claimed(dict(zip(names, pr["defect_probs"][k].tolist(), strict=False)),
                              row_thresholds(thresholds, pr, k)))

    stress_ok, per, where = [], {}, {}
    clean_text = {r["case_id"]: r["diagnostic_text"] for r in stress_rows if r["variant"] == "clean"}
    for k, r in enumerate(stress_rows):
        truth = TRUE_CLAIMS.get(r["variant"], set())
        if r["case_id"] in clean_text:
            truth = truth | removed_content(clean_text[r["case_id"]], r["diagnostic_text"])
        for c in claims(pred, k):
            stress_ok.append(c in truth)
            per.setdefault(c, []).append(c in truth)
            if c not in truth:  # which variants a false claim was made on
                where.setdefault(c, {}).setdefault(r["variant"], 0)
                where[c][r["variant"]] += 1
    test_ok, by_set, found, found_by_set = [], {}, [], {}
    for rows, tp, name in test_sets:
        for k, r in enumerate(rows):
            truth = set(labelled_problems(r) or [])
            said = claims(tp, k)
            right = [c in truth for c in said]
            test_ok += right
            by_set.setdefault(name, []).extend(right)
            # recall: which of the row's recorded problems (those the critique can name) it stated
            caught = [t in said for t in sorted(truth & set(names))]
            found += caught
            found_by_set.setdefault(name, []).extend(caught)
    # what the critique states: the diagnosis check, or the image check (the image alone)
    mismatch = check_fired(pred)
    broken = np.array([r["variant"] in MISMATCH_VARIANTS for r in stress_rows])
    has_concl = pred["match"] > 0
    evidence = pred["evidence"]
    distinct = [len(set(e.tolist()) - {-1}) for e in evidence]
    return {"stress_claims": {"n": len(stress_ok), "precision": mean_ci(stress_ok, p.n_boot) if stress_ok else None,
                              "target": target,  # the precision the model's claim thresholds were set for
                              "per_claim": {c: {"n": len(v), "precision": round(float(np.mean(v)), 4),
                                                "false_by_variant": dict(sorted(where.get(c, {}).items()))}
                                            for c, v in sorted(per.items())}},
            "test_claims": {"n": len(test_ok), "precision": mean_ci(test_ok, p.n_boot) if test_ok else None,
                            "by_set": {name: {"n": len(v), "precision": round(float(np.mean(v)), 4),
                                              "recall": (round(float(np.mean(found_by_set[name])), 4)
                                                         if found_by_set.get(name) else None),
                                              "n_problems": len(found_by_set.get(name, []))}
                                       for name, v in by_set.items() if v},
                            # how many of the recorded problems were stated: precision alone rewards saying little
                            "recall": mean_ci(found, p.n_boot) if found else None, "n_problems": len(found)},
            "never_claimed": never_claimed(thresholds, names),
            "diagnosis_check": {
                "threshold": MISMATCH_THRESHOLD,
                "precision": round(float(broken[mismatch].mean()), 4) if mismatch.any() else None,
                "n_flagged": int(mismatch.sum()),
                "recall": {v: round(float(mismatch[[r["variant"] == v for r in stress_rows]].mean()), 4)
                           for v in MISMATCH_VARIANTS if any(r["variant"] == v for r in stress_rows)},
                "clean_flagged_share": round(float(mismatch[np.array([r["variant"] == "clean" for r in stress_rows])
                                                            & has_concl].mean()), 4)},
            "distinct_evidence_mean": round(float(np.mean(distinct)), 3) if distinct else None}


def _stored_predictions(records: list[dict], splits: dict[str, str], features: str, scorer: Scorer
                        ) -> dict[str, tuple[list[dict], dict[str, np.ndarray]]]:
    """The test split's own narratives per source, scored from the stored feature set."""
    fs = FeatureSet.load(features)
    by_id = {r["id"]: r for r in records}
    idx = np.array([i for i, rid in enumerate(fs.ids) if splits.get(rid) == "test"], np.int64)
    rows, pred = scorer.aligned(fs, [by_id[fs.ids[i]] for i in idx], idx)
    sources = np.array([r.get("source", "dermsynth") for r in rows])
    return {s: ([r for r, keep in zip(rows, sources == s, strict=True) if keep],
                {k: v[sources == s] for k, v in pred.items()}) for s in sorted(set(sources))}


def build_report(args: argparse.Namespace, p: GeneraliseParams, judge: str | None = None) -> dict[str, Any]:
    """The whole report; ``judge`` is the offline judge's calibration (None: no judge figures)."""
    prepared = Path(args.prepared)
    records = read_rows(args.records)
    splits = json.loads(Path(args.splits).read_text("utf-8"))
    scorer = Scorer(args.model, args.cache, judge, prepared)
    cases = held_out_cases(prepared, records, splits, p)
    real = "dermbench" in cases
    stress_cases = cases["dermbench"] if real else cases["dermsynth"]
    refs = {c.id: c.reference for cs in cases.values() for c in cs}
    dx = {c.id: c.ctx.diagnosis for cs in cases.values() for c in cs}
    report: dict[str, Any] = {
        "simulated_panel": True, "real_text": real,
        "stress_source": "dermbench held-out expert references" if real else
        "dermsynth held-out references (no DermBench release: real-text transfer not measured)",
        "overlap": {}, "thresholds": {"lower_by": p.lower_by, "neutral_up": p.neutral_up,
                                      "same_within": p.same_within}}
    train_text = {s: [r["diagnostic_text"] for r in records if splits.get(r["id"]) == "train"
                      and r.get("source", "dermsynth") == s] for s in cases}
    test_text = {s: [r["diagnostic_text"] for r in records if splits.get(r["id"]) == "test"
                     and r.get("source", "dermsynth") == s] for s in cases}
    for s in cases:
        report["overlap"][s] = sentence_overlap(train_text[s], test_text[s])
    report["overlap"]["all"] = sentence_overlap([t for v in train_text.values() for t in v],
                                                [t for v in test_text.values() for t in v])
    stored = _stored_predictions(records, splits, args.features, scorer)
    ds_rows, ds_pred = stored.get("dermsynth", ([], {"scores": np.zeros((0, 6))}))
    ds_scores = ds_pred["scores"]
    report["in_distribution"] = {"label": "DermSynth test split (cases held out, training wording families)",
                                 "evaluator": agreement_block(ds_rows, ds_scores, p.n_boot)}
    held_rows = st.heldout_wording_rows([c for cs in cases.values() for c in cs], p.seed)
    held_rows, held_pred = scorer.dermeval(held_rows)
    held_scores = held_pred["scores"]
    # The judge scores each set once; its agreement tables and the out-of-depth figures share the
    # array. A held-out wording row is judged with the diagnosis its narrative was written from, a
    # stored test narrative with its case's own.
    case_refs, case_dx = _case_references(prepared)
    held_judged = _judged_aligned(scorer, held_rows, {**case_refs, **refs}, {**case_dx, **dx})
    report["heldout_wording"] = {
        "label": "held-out wording families on held-out cases", "families": dict(st.wd.HELDOUT),
        "evaluator": agreement_block(held_rows, held_scores, p.n_boot),
        "judge": _judge_block(held_rows, held_judged, p)}
    judged_sets: dict[str, np.ndarray | None] = {
        "held-out wording": held_judged,
        "dermsynth test split": _judged_aligned(scorer, ds_rows, case_refs, case_dx)}
    if real:
        db_rows, db_pred = stored["dermbench"]
        db_scores = db_pred["scores"]
        judged_sets["real DermBench test split"] = _judged_aligned(scorer, db_rows, case_refs, case_dx)
        report["transfer"] = {"label": "real DermBench expert text, cases never seen in training",
                              "evaluator": agreement_block(db_rows, db_scores, p.n_boot),
                              "judge": _judge_block(db_rows, judged_sets["real DermBench test split"], p)}
    else:  # every held-out case is a DermSynth one here
        report["transfer"] = {"label": "no DermBench release: held-out DermSynth references with held-out "
                                       "wording families stand in (not real text)",
                              "evaluator": report["heldout_wording"]["evaluator"]}
    rows = st.stress_rows(stress_cases, p.seed)
    rows, pred = scorer.dermeval(rows)
    scores = pred["scores"]
    clean = np.array([r["variant"] == "clean" for r in rows])
    passes = passes_of(rows, scores, p)
    report["stress"] = {"evaluator": stress_report(rows, scores, p, passes), "n_cases": len(stress_cases),
                        "unlearnable": unlearnable_removals(records, splits)}
    report["clean_references"] = {"evaluator": clean_report(scores[clean], pred, clean)}
    report["stress"]["mismatch"] = mismatch_breakdown(rows, pred, scores, scorer.evaluator.categories, p, passes)
    report["stress"]["removal"] = removal_breakdown(rows, passes)
    test_sets = [(ds_rows, ds_pred, "dermsynth test split")] + (
        [(db_rows, db_pred, "real DermBench test split")] if real else [])
    report["out_of_depth"] = out_of_depth_report(test_sets + [(held_rows, held_pred, "held-out wording")],
                                                 judged_sets)
    report["critique"] = critique_report(rows, pred, test_sets, scorer.evaluator.defect_names, p,
                                         scorer.evaluator.claim_thresholds,
                                         scorer.evaluator.meta.get("train", {}).get("claim_precision"))
    text_rows = [r for r in rows if r["variant"] != "other_image"]
    judged = scorer.judged(text_rows, refs, dx)
    if judged is not None:
        report["stress"]["judge"] = stress_report(text_rows, judged, p)
        jclean = np.array([r["variant"] == "clean" for r in text_rows])
        report["clean_references"]["judge"] = clean_report(judged[jclean], None, None)
    # The generated sets, so the gate can have the champion score the very same narratives.
    keep = ("id", "case_id", "image", "diagnostic_text", "scores", "variant", "operator", "family", "source",
            "category")
    report["paired_sets"] = ([{"set": "heldout_wording", **{k: r[k] for k in keep if k in r}} for r in held_rows]
                             + [{"set": "stress", **{k: r[k] for k in keep if k in r}} for r in rows])
    report["stress_table"] = [{"id": r["id"], "variant": r["variant"], "family": r.get("family"),
                               **{d: round(float(scores[k, j]), 3) for j, d in enumerate(DIMENSIONS)}}
                              for k, r in enumerate(rows)]
    return report


def _case_references(prepared: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Every prepared case's expert reference and its diagnosis (each source's ``cases.jsonl``)."""
    cases = [c for f in sorted(prepared.glob("*/cases.jsonl")) for _, c in iter_jsonl(f)
             if isinstance(c, dict) and c.get("reference_text")]
    return {c["id"]: c["reference_text"] for c in cases}, {c["id"]: _diagnosis(c) for c in cases}


def _judged_aligned(scorer: Scorer, rows: list[dict], refs: dict[str, str], dx: dict[str, str]) -> np.ndarray | None:
    """The judge's six scores per row (NaN where the row's case has no reference); None without a judge."""
    have = [k for k, r in enumerate(rows) if r.get("case_id") in refs]
    if scorer.judge is None or not have:
        return None
    out = np.full((len(rows), len(DIMENSIONS)), np.nan)
    out[have] = scorer.judged([rows[k] for k in have], refs, dx)
    return out


def _judge_block(rows: list[dict], judged: np.ndarray | None, p: GeneraliseParams) -> dict[str, Any] | None:
    """The judge's agreement with the panel on the rows it could judge (those with a reference)."""
    if judged is None:
        return None
    have = ~np.isnan(judged[:, 0])
    return agreement_block([r for r, h in zip(rows, have, strict=True) if h], judged[have], p.n_boot)


def flat_metrics(report: dict[str, Any]) -> dict[str, float]:
    """The flat figures for ``dvc metrics`` and MLflow (``gen_`` prefix)."""
    out: dict[str, float] = {"real_text": float(report["real_text"]),
                             "overlap_sentence_share": report["overlap"]["all"]["sentence_share"]}
    for s in ("dermsynth", "dermbench"):
        if s in report["overlap"]:
            out[f"overlap_sentence_share_{s}"] = report["overlap"][s]["sentence_share"]
    out.update(flat_agreement("indist", report["in_distribution"]["evaluator"]))
    for key in ("heldout_wording", "transfer"):
        out.update(flat_agreement(key, report[key]["evaluator"]))
        if report[key].get("judge"):
            out.update(flat_agreement(f"judge_{key}", report[key]["judge"]))
    for who, tag in (("evaluator", ""), ("judge", "judge_")):
        stress = report["stress"].get(who)
        if stress:
            out[f"{tag}stress_accuracy"] = stress["overall"]["accuracy"]["value"]
            out.update({f"{tag}stress_{k}": v["accuracy"]["value"] for k, v in stress.items() if k != "overall"})
        clean = report["clean_references"].get(who)
        if clean:
            out[f"{tag}clean_overall_mean"] = clean["overall"]
            out.update({f"{tag}clean_mean_{d}": clean[d] for d in DIMENSIONS})
            if "needs_review_share" in clean:
                out[f"{tag}clean_needs_review_share"] = clean["needs_review_share"]
            if "out_of_distribution_share" in clean:
                out[f"{tag}clean_ood_share"] = clean["out_of_distribution_share"]
    for b in report.get("out_of_depth", []):
        key = {"dermsynth test split": "indist", "real DermBench test split": "transfer",
               "held-out wording": "heldout_wording"}[b["set"]]
        out[f"{key}_needs_review_share"] = b["needs_review_share"]
        if b["big_errors_flagged_share"] is not None:
            out[f"{key}_big_errors_flagged_share"] = b["big_errors_flagged_share"]
    crit = report.get("critique")
    if crit:
        for key in ("stress_claims", "test_claims"):
            if crit[key]["precision"]:
                out[f"critique_{key}_precision"] = crit[key]["precision"]["value"]
        if crit["test_claims"].get("recall"):
            out["critique_test_claims_recall"] = crit["test_claims"]["recall"]["value"]
        if crit["diagnosis_check"]["precision"] is not None:
            out["diagnosis_check_precision"] = crit["diagnosis_check"]["precision"]
        out["distinct_evidence_mean"] = crit["distinct_evidence_mean"]
    return {f"gen_{k}": round(float(v), 4) for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--records", required=True)
    ap.add_argument("--prepared", required=True, help="data.prepared (images and each source's cases.jsonl)")
    ap.add_argument("--splits", required=True)
    ap.add_argument("--features", required=True, help="features.npz of the prepared records")
    ap.add_argument("--model", required=True)
    ap.add_argument("--cache", required=True, help="feature cache shared with featurize")
    ap.add_argument("--judge", help="the offline judge's calibration (skipped when absent or not local)")
    ap.add_argument("--reports", required=True, help="folder for the full report and the stress table")
    ap.add_argument("--metrics", required=True, help="flat metrics JSON for dvc metrics")
    ap.add_argument("--sets", help="JSONL of the generated held-out wording and stress rows (for the gate's "
                    "paired comparison with the champion)")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    judge = args.judge if params.judge.backend == "local" and args.judge and Path(args.judge).is_file() else None
    report = build_report(args, params.generalise, judge)
    out = Path(args.reports)
    out.mkdir(parents=True, exist_ok=True)
    table = report.pop("stress_table")
    sets = report.pop("paired_sets")
    if args.sets:
        Path(args.sets).parent.mkdir(parents=True, exist_ok=True)
        write_jsonl(args.sets, sets)
    write_json(out / "report.json", report)
    (out / "report.md").write_text("\n".join(generalisation_section(report)) + "\n", "utf-8")
    write_csv(out / "stress_scores.csv", table)
    write_csv(out / "stress_accuracy.csv", [
        {"variant": k, "dermeval": round(v["accuracy"]["value"], 4),
         "judge": round(report["stress"].get("judge", {}).get(k, {}).get("accuracy", {}).get("value", float("nan")),
                        4)} for k, v in report["stress"]["evaluator"].items()])
    metrics = flat_metrics(report)
    write_json(args.metrics, metrics)
    print("generalise (simulated panel; " + report["stress_source"] + "): "
          + ", ".join(f"{k}={v}" for k, v in metrics.items()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
