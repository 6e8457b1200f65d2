"""From a featurised dataset and its splits to a calibrated, saved-ready Evaluator."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from dermeval import text as tx
from dermeval.diagnosis import DiagnosisVocabulary, conclusion_term
from dermeval.encoders import identities
from dermeval.model.critique import claim_thresholds
from dermeval.model.data import FeatureSet
from dermeval.model.evaluator import Evaluator
from dermeval.model.ood import Novelty
from dermeval.model.style import StyleModel
from dermeval.model.train import (
    Targets,
    TrainConfig,
    apply_calibration,
    fit_calibration,
    fit_style_calibration,
    predict_raw,
    train_members,
)
from dermeval.problems import PROBLEM_NAMES
from dermeval.schema import FEEDBACK_SOURCE

# Records of this source are (derived from) expert references: the calibration's "expert" style.
EXPERT_SOURCE = "dermbench"
MIN_STYLE_ROWS = 50  # fewer calibration rows of either style: one calibration for all


def split_indices(fs: FeatureSet, splits: dict[str, str]) -> dict[str, np.ndarray]:
    names = ("train", "val", "calib", "test")
    return {n: np.array([i for i, rid in enumerate(fs.ids) if splits.get(rid) == n], np.int64) for n in names}


def fit_evaluator(fs: FeatureSet, rows_by_id: dict[str, dict[str, Any]], splits: dict[str, str],
                  cfg: TrainConfig, *, progress: bool = True,
                  known_names: Iterable[tuple[str, str]] = (), icd: bool = True,
                  ) -> tuple[Evaluator, list[dict[str, float]], dict[str, np.ndarray]]:
    """Train ``cfg.members`` networks on ``train`` (stopping early on ``val`` when
    ``cfg.early_stopping``), calibrate on ``calib``; ``test`` is untouched.

    The review rules come from ``cfg`` too: ``review_threshold`` (null: the level only
    ``review_share`` of the calibration rows pass) and ``ood_quantile``.

    ``known_names`` are ``(diagnosis name, category)`` pairs the diagnosis vocabulary starts from
    (e.g. a catalogue's names and aliases) beside ICD-10-CM (``icd``) and the names the training
    split's correct conclusions set in bold.
    """
    rows, idx, targets, vocab = training_inputs(fs, rows_by_id, splits, cfg, known_names=known_names, icd=icd)
    categories = targets.categories
    sources = np.array([str(r.get("source", "")) for r in rows])
    seen = repeat_feedback(idx["train"], sources, cfg.feedback_repeat)
    net, history = train_members(fs, targets, seen, idx["val"], cfg, progress=progress)
    calib_raw = predict_raw(net, fs, idx["calib"])
    expert = sources == EXPERT_SOURCE
    calib_expert, style_prob = expert[idx["calib"]], None
    if cfg.calibrate_by_style and min(calib_expert.sum(), (~calib_expert).sum()) >= MIN_STYLE_ROWS:
        style = StyleModel.fit(fs, idx["train"], expert[idx["train"]].astype(int), seed=cfg.seed)
        style_prob = style.prob(fs, idx["calib"])
        calibration = fit_style_calibration(calib_raw, targets.consensus[idx["calib"]], calib_expert,
                                            style.to_json())
    else:  # one map (too few rows of either style on the calibration split to fit two)
        calibration = fit_calibration(calib_raw, targets.consensus[idx["calib"]])
    review_threshold = cfg.review_threshold
    if review_threshold is None:  # the level only review_share of the held-out calibration rows pass
        _, sigma = apply_calibration(calibration, calib_raw, style_prob)
        review_threshold = round(float(np.quantile(sigma.max(1), 1 - cfg.review_share)), 4)
    # the rows' cases: the narratives of one case share its reference, so their claims are right or wrong together
    cases = np.array([str(rows[i].get("case_id") or rows[i]["id"]) for i in idx["calib"]])
    thresholds = fit_claim_thresholds(calib_raw, targets, idx["calib"], cfg, sources[idx["calib"]],
                                      calib_expert if style_prob is not None else None, cases)
    novelty = Novelty.fit(fs, idx["train"], idx["calib"], quantile=cfg.ood_quantile, seed=cfg.seed)
    meta = {"name": "dermeval", "version": "local", "calibration": calibration,
            "defect_names": targets.defect_names, "categories": categories,
            "review_threshold": review_threshold, "claim_thresholds": thresholds, "train": cfg.model_dump(),
            "split_sizes": {k: int(len(v)) for k, v in idx.items()}, "encoders": identities()}
    return Evaluator(net, meta, vocabulary=vocab, novelty=novelty), history, idx


def repeat_feedback(train_idx: np.ndarray, sources: np.ndarray, repeat: int) -> np.ndarray:
    """The training positions an epoch draws from: ``train_idx`` with each row of FEEDBACK_SOURCE
    (``sources``: per row of the feature set) ``repeat`` times in all. Only the networks see the
    repeats; the vocabulary, the style model and the novelty reference count every row once."""
    if repeat == 1:
        return train_idx
    rated = train_idx[sources[train_idx] == FEEDBACK_SOURCE]
    return np.concatenate([train_idx, np.repeat(rated, repeat - 1)])


def training_inputs(fs: FeatureSet, rows_by_id: dict[str, dict[str, Any]], splits: dict[str, str],
                    cfg: TrainConfig, *, known_names: Iterable[tuple[str, str]] = (), icd: bool = True,
                    ) -> tuple[list[dict[str, Any]], dict[str, np.ndarray], Targets, DiagnosisVocabulary | None]:
    """What training reads, in the feature set's order: the rows, the split positions, the targets,
    and (``cfg.vocab_category``) the diagnosis vocabulary, attached to ``fs``."""
    idx = split_indices(fs, splits)
    for name in ("train", "val", "calib"):
        if len(idx[name]) == 0:
            raise ValueError(f"the {name} split is empty; use more data or other split fractions")
    rows = [rows_by_id[i] for i in fs.ids]
    categories = sorted({str(r["category"]) for r in rows if r.get("category")})
    targets = Targets.from_rows(rows, list(PROBLEM_NAMES), categories)
    vocab = None
    if cfg.vocab_category:
        vocab = DiagnosisVocabulary.build(categories=categories, icd=icd, catalogue=known_names,
                                          learned=learned_names(rows, idx["train"], targets))
        fs.attach_vocabulary(vocab, categories)
    return rows, idx, targets, vocab


def learned_names(rows: list[dict[str, Any]], train_idx: np.ndarray, targets: Targets) -> list[tuple[str, str]]:
    """``(name, category)`` of every training narrative whose conclusion is known to be right and
    sets the diagnosis in bold."""
    out = []
    for i in train_idx:
        if not targets.conclusion_ok[i]:
            continue
        parts = tx.sentences(rows[i].get("diagnostic_text", ""))
        k = tx.conclusion_index(parts) if parts else None
        term = conclusion_term(parts[k]) if k is not None else None
        if term:
            out.append((term, targets.categories[targets.category[i]]))
    return out


def fit_claim_thresholds(calib_raw: dict[str, np.ndarray], targets: Targets, calib_idx: np.ndarray,
                         cfg: TrainConfig, sources: np.ndarray, expert: np.ndarray | None = None,
                         cases: np.ndarray | None = None) -> dict[str, Any]:
    """The critique's claim thresholds from the calibration rows ``calib_idx`` (``calib_raw``: the
    network's raw outputs on them, ``sources`` and ``cases`` per row): one set for every narrative,
    or, given ``expert`` (per row: real expert text; for a model calibrated per writing style), one
    set per style. ``cases`` counts the margin by case as well as by row."""
    pooled = _claim_thresholds(calib_raw, targets, calib_idx, cfg.claim_precision, sources, cfg.claim_margin, cases)
    if expert is None:
        return pooled
    return _style_claim_thresholds(calib_raw, targets, calib_idx, cfg, sources, expert, pooled, cases)


def _claim_thresholds(calib_raw: dict[str, np.ndarray], targets: Targets, calib_idx: np.ndarray,
                      precision: float, sources: np.ndarray, margin: float,
                      cases: np.ndarray | None) -> dict[str, float]:
    """Per problem, where the critique's "Detected:" claims reach ``precision`` on the calibration rows
    whose problems are known, in each data source (real text as well as DermSynth), by ``margin``
    standard errors (row by row and, given the rows' ``cases``, case by case); none known: the default
    threshold for all."""
    known = targets.has_defects[calib_idx]
    if not known.any() or not targets.defect_names:
        return {}
    probs = 1.0 / (1.0 + np.exp(-calib_raw["defect_logits"][known]))
    return claim_thresholds(probs, targets.defects[calib_idx[known]], targets.defect_names, precision,
                            groups=sources[known], margin=margin, clusters=None if cases is None else cases[known])


def _style_claim_thresholds(calib_raw: dict[str, np.ndarray], targets: Targets, calib_idx: np.ndarray,
                            cfg: TrainConfig, sources: np.ndarray, expert: np.ndarray,
                            pooled: dict[str, float], cases: np.ndarray | None) -> dict[str, Any]:
    """Claim thresholds per writing style: the expert set from the calibration rows of expert text
    (``expert``: the rows of EXPERT_SOURCE, the ones the style model learned to recognise), the
    generated set from the rest. Where a style's rows hold too few claims of a problem to check its
    precision, that problem is never claimed in that style: a threshold set on generated narratives
    says nothing about how often the claim is right on expert-written text. A style without
    labelled rows at all keeps the ``pooled`` thresholds. At scoring time a narrative gets the set of
    the style the style model reads it as (:func:`dermeval.model.critique.thresholds_for`)."""
    out = {}
    for style, rows in (("expert", expert), ("generated", ~expert)):
        own = (_claim_thresholds({"defect_logits": calib_raw["defect_logits"][rows]}, targets, calib_idx[rows],
                                 cfg.claim_precision, sources[rows], cfg.claim_margin,
                                 None if cases is None else cases[rows])
               if rows.any() else {})
        out[style] = own or dict(pooled)
    return {"by_style": out}
