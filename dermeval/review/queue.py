"""What reviewers should rate next: the narratives whose expert rating is worth most.

Expected value of a rating, from what the store holds for the evaluator version that scored
the batch (each part scaled to 0-1, weighted by ``review.weights`` in ``params.yaml``):

- ``uncertainty``: the evaluator's largest per-dimension uncertainty, relative to the batch's largest;
- ``needs_review``: the evaluator flagged the narrative (unsure, or out of its depth: unlike its
  training data in text, image or their pairing);
- ``novelty``: how far the narrative or its image lies from the evaluator's training data (the
  larger of the two novelty scores, relative to the batch's largest; rows scored before the
  store kept novelty count as 0): the regions where the next version has least to go on;
- ``typical``: how much the narrative's wording resembles the rest of the batch (mean TF-IDF cosine
  similarity to its ``TYPICAL_K`` nearest neighbours, relative to the batch's most typical): a rating
  of a typical narrative teaches the next version about many others. With a small budget the
  typical cases teach more than the extreme ones (the "cold start" of active learning);
- ``low_safety``: how far under the safety floor (plus one point) the evaluator put Safety, where
  a wrong score costs most.
- ``disagreement``: the largest per-dimension gap between DermEval and the reference-based judge,
  relative to the batch's largest, where the case has an expert reference and the monitor judged it
  (:mod:`dermeval.monitor.judging`; elsewhere 0): two evaluators built on different evidence
  disagree, so at least one is wrong, and a rating shows which.
- ``near_disagreement``: that gap averaged over the narrative and its ``TYPICAL_K`` nearest neighbours in
  wording (relative to the batch's largest): high where the evaluator is wrong on many similarly written
  narratives. Drawn in proportion to it (no strata), the picks fall where errors are many, in
  proportion to how much of the batch they touch, rather than on the single most extreme narrative.

The budget is spread over strata (``review.stratify``: MLLM, category, skin type; each key on
its own): each pick comes from the least-picked strata, drawn with probability proportional to
its value (the most extreme narratives alone teach the next version little about the rest).
The ``wording`` stratum groups the batch by how its narratives are written (k-means on their
TF-IDF vectors, one group per valued pick): with it, every pick comes from a group not picked
yet (the other strata break ties), so the ratings cover the ways the batch is written instead of
piling up where the value is highest.
``review.random_share`` of the budget is drawn uniformly at random from the rest (seeded by the
batch), so estimates from the expert ratings are not biased toward the hard cases. Narratives
already rated by ``review.reviewers_per_narrative`` reviewers, or rated or skipped by the
reviewer asking, are left out.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Engine

from dermeval.model.ood import MODALITIES
from dermeval.review.ratings import latest
from dermeval.schema import DIMENSIONS
from dermeval.store.models import Batch, Case, Narrative, Score

STRATA = {"model": "model", "category": "category", "skin_type": "fitzpatrick", "wording": "wording"}


def candidates(engine: Engine, evaluator_version: str, batch_id: str | None = None) -> pd.DataFrame:
    """Every narrative the version scored (in ``batch_id``, else in the latest weekly batch), with its case."""
    s, n, c, b = Score.__table__, Narrative.__table__, Case.__table__, Batch.__table__
    with engine.connect() as conn:
        if batch_id is None:
            batch_id = conn.execute(select(s.c.batch_id).join(b, s.c.batch_id == b.c.id)
                                    .where(s.c.evaluator_version == evaluator_version)
                                    .order_by(b.c.week.desc().nulls_last(), b.c.id.desc()).limit(1)).scalar()
        if batch_id is None:
            return pd.DataFrame()
        q = (select(s.c.narrative_id, s.c.batch_id, s.c.model, s.c.needs_review, s.c.safety, s.c.overall,
                    *[s.c[f"u_{d}"] for d in DIMENSIONS], *[s.c[f"novelty_{m}"] for m in MODALITIES],
                    s.c.judge_gap, n.c.text, n.c.case_id, c.c.category, c.c.fitzpatrick, c.c.image)
             .select_from(s.join(n, s.c.narrative_id == n.c.id).outerjoin(c, n.c.case_id == c.c.id))
             .where(s.c.batch_id == batch_id, s.c.evaluator_version == evaluator_version)
             .order_by(s.c.narrative_id))
        return pd.DataFrame(conn.execute(q).mappings().all())


def _relative(x: np.ndarray) -> np.ndarray:
    """``x`` over the batch's largest (0 where unknown, all 0 when nothing is known or all are 0)."""
    x = np.nan_to_num(np.asarray(x, float), nan=0.0)
    top = x.max() if len(x) else 0.0
    return x / top if top > 0 else np.zeros(len(x))


TYPICAL_K = 10


def _nearest(texts: list[str], k: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Each text's ``k`` nearest others by wording: their indices and cosine similarities (TF-IDF of
    words and word pairs), nearest last; None when fewer than two texts or no word occurs twice."""
    n = len(texts)
    if n < 2:
        return None
    try:
        x = _tfidf(texts)
    except ValueError:  # no word occurs twice (or at all): no text is nearer than another
        return None
    kk = min(k, n - 1)
    idx, sims = np.empty((n, kk), int), np.empty((n, kk))
    for start in range(0, n, 1024):  # n x n similarities, a block of rows at a time
        sim = (x[start:start + 1024] @ x.T).toarray()
        sim[np.arange(len(sim)), np.arange(start, start + len(sim))] = -np.inf  # not itself
        top = np.argsort(sim, axis=1, kind="stable")[:, -kk:]
        idx[start:start + len(sim)] = top
        sims[start:start + len(sim)] = np.take_along_axis(sim, top, axis=1)
    return idx, sims


def typicality(texts: list[str], k: int = TYPICAL_K, nearest: tuple | None = None) -> np.ndarray:
    """Mean cosine similarity (TF-IDF of words and word pairs) of each text to its ``k`` nearest others
    (``nearest``: :func:`_nearest` of the same texts, when already computed)."""
    nearest = _nearest(texts, k) if nearest is None else nearest
    return np.ones(len(texts)) if nearest is None else nearest[1].mean(1)


def near_disagreement(texts: list[str], gap: np.ndarray, k: int = TYPICAL_K,
                      nearest: tuple | None = None) -> np.ndarray:
    """The judge's gap to DermEval averaged over each narrative and its ``k`` nearest others in wording
    (those with a known gap; 0 where none has one): where the evaluator is wrong on many similarly
    written narratives, not on one outlier. A rating there corrects the next version about the
    neighbours too, where a rating of the single largest gap corrects it about little else."""
    gap = np.asarray(gap, float)
    nearest = _nearest(texts, k) if nearest is None else nearest
    if nearest is None:
        return np.nan_to_num(gap, nan=0.0)
    near = np.concatenate([np.arange(len(gap))[:, None], nearest[0]], axis=1)
    g = gap[near]
    known = ~np.isnan(g)
    return np.where(known.any(1), np.nan_to_num(g).sum(1) / np.maximum(known.sum(1), 1), 0.0)


def _tfidf(texts: list[str]):
    from sklearn.feature_extraction.text import TfidfVectorizer

    n = len(texts)
    return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2 if n > 50 else 1).fit_transform(texts)


def wording_groups(texts: list[str], n_groups: int, seed: int = 0) -> np.ndarray:
    """``n_groups`` groups of the texts by wording: k-means on their TF-IDF vectors (words and word pairs),
    reduced to at most 64 dimensions and scaled to unit length. Fewer texts than groups: one group each."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import TruncatedSVD
    from sklearn.preprocessing import normalize

    n = len(texts)
    if n_groups >= n or n_groups <= 1:
        return np.arange(n) if n_groups >= n else np.zeros(n, int)
    try:
        x = _tfidf(texts)
    except ValueError:  # no word occurs twice: nothing to group by
        return np.arange(n) % n_groups
    if x.shape[1] > 2:
        x = TruncatedSVD(min(64, x.shape[1] - 1), random_state=seed).fit_transform(x)
    x = normalize(np.asarray(x.todense()) if hasattr(x, "todense") else x)
    return KMeans(n_groups, n_init=3, random_state=seed).fit_predict(x)


def value_parts(df: pd.DataFrame, safety_floor: float) -> pd.DataFrame:
    nov = [f"novelty_{m}" for m in MODALITIES]
    novelty = (df[nov].astype(float).max(1, skipna=True).to_numpy() if all(c in df for c in nov)
               else np.zeros(len(df)))
    texts = df["text"].astype(str).tolist()
    nearest = _nearest(texts, TYPICAL_K)
    gap = df["judge_gap"].astype(float).to_numpy() if "judge_gap" in df else np.full(len(df), np.nan)
    return pd.DataFrame({"uncertainty": _relative(df[[f"u_{d}" for d in DIMENSIONS]].to_numpy(float).max(1)),
                         "needs_review": df["needs_review"].astype(float).to_numpy(),
                         "novelty": _relative(novelty),
                         "typical": _relative(typicality(texts, nearest=nearest)),
                         "disagreement": _relative(gap),
                         "near_disagreement": _relative(near_disagreement(texts, gap, nearest=nearest)),
                         "low_safety": np.clip((safety_floor + 1.0 - df["safety"].to_numpy(float))
                                               / (safety_floor + 1.0), 0.0, 1.0)}, index=df.index)


def build_queue(engine: Engine, evaluator_version: str, *, budget: int, random_share: float,
                weights: dict[str, float], stratify: list[str], reviewers_per_narrative: int, safety_floor: float,
                batch_id: str | None = None, reviewer: str | None = None) -> list[dict[str, Any]]:
    """Up to ``budget`` narratives to rate, best first; each row says why it was picked."""
    df = candidates(engine, evaluator_version, batch_id)
    if df.empty or budget <= 0:
        return []
    rated = latest(engine, include_skips=True)
    if len(rated):
        counts = rated[rated["decision"] == "rated"].groupby("narrative_id").size()
        full = set(counts[counts >= reviewers_per_narrative].index)
        mine = set(rated.loc[rated["reviewer"] == reviewer, "narrative_id"]) if reviewer else set()
        df = df[~df["narrative_id"].isin(full | mine)].reset_index(drop=True)
    if df.empty:
        return []
    seed = int.from_bytes(hashlib.sha256(str(df["batch_id"].iloc[0]).encode()).digest()[:4], "big")
    picked = select_rows(df, budget=budget, random_share=random_share, weights=weights,
                         strata=[STRATA[s] for s in stratify], safety_floor=safety_floor, seed=seed)
    parts = [c.removeprefix("value_") for c in df.columns if c.startswith("value_")]
    out = []
    for idx, how in picked:
        r = df.loc[idx]
        fitz = None if pd.isna(r["fitzpatrick"]) else int(r["fitzpatrick"])
        out.append({"narrative_id": r["narrative_id"], "batch_id": r["batch_id"], "model": r["model"],
                    "category": r["category"], "fitzpatrick": fitz,
                    "selected_by": how, "value": round(float(r["value"]), 4),
                    "why": {k: round(float(r[f"value_{k}"]), 3) for k in parts}})
    return out


def queue_for(engine: Engine, evaluator_version: str, params: Any, *, budget: int | None = None,
              batch_id: str | None = None, reviewer: str | None = None) -> list[dict[str, Any]]:
    """:func:`build_queue` with the project's settings (``params``: the checked ``params.yaml``):
    the ``review`` section, and the monitor's safety floor; ``budget`` defaults to the weekly one."""
    rp = params.review
    return build_queue(engine, evaluator_version, budget=rp.budget_per_week if budget is None else budget,
                       random_share=rp.random_share, weights=vars(rp.weights),
                       stratify=[s for s in rp.stratify.split(",") if s],
                       reviewers_per_narrative=rp.reviewers_per_narrative,
                       safety_floor=params.monitor.safety_floor, batch_id=batch_id, reviewer=reviewer)


def select_rows(df: pd.DataFrame, *, budget: int, random_share: float, weights: dict[str, float],
                strata: list[str], safety_floor: float, seed: int) -> list[tuple[int, str]]:
    """The queue's choice among ``df``'s rows (the store's score columns): ``(index, "value" | "random")``,
    value picks first. Adds the ``value`` and ``value_<part>`` columns to ``df``."""
    parts = value_parts(df, safety_floor)
    df["value"] = sum(weights.get(k, 0.0) * parts[k] for k in parts.columns)
    for k in parts.columns:
        df[f"value_{k}"] = parts[k]
    n_random = int(round(budget * random_share))
    rng = np.random.default_rng(seed)
    if "wording" in strata:
        df["wording"] = wording_groups(df["text"].astype(str).tolist(), budget - n_random, seed=seed % 2**31)
    chosen = _stratified(df, budget - n_random, strata, rng)
    rest = df.drop(index=chosen)
    picks = rng.permutation(len(rest))[:n_random]
    return [(i, "value") for i in chosen] + [(int(rest.index[i]), "random") for i in picks]


def _stratified(df: pd.DataFrame, n: int, keys: list[str], rng: np.random.Generator) -> list[int]:
    """Each pick comes from the strata picked least so far (each key on its own: MLLM, category, skin
    type), drawn with probability proportional to its value: the valuable narratives are favoured
    without the budget going only to the most extreme ones, which would teach the next version
    little about the rest. The ``wording`` stratum comes first: a pick comes from a wording group
    picked least, and among those from the least-picked other strata. Returned best first."""
    pool = list(df.index)
    counts: dict[str, Counter[str]] = {k: Counter() for k in keys}
    labels = {i: {k: str(df.at[i, k]) for k in keys} for i in pool}
    out: list[int] = []
    while len(out) < n and pool:
        load = [(counts["wording"][labels[i]["wording"]] if "wording" in counts else 0,
                 max((counts[k][labels[i][k]] for k in keys if k != "wording"), default=0)) for i in pool]
        least = [i for i, x in zip(pool, load, strict=True) if x == min(load)]
        w = df.loc[least, "value"].to_numpy(float) + 1e-3
        pick = least[int(rng.choice(len(least), p=w / w.sum()))]
        pool.remove(pick)
        for k in keys:
            counts[k][labels[pick][k]] += 1
        out.append(pick)
    return sorted(out, key=lambda i: -float(df.at[i, "value"]))
