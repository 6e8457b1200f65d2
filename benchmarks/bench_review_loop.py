"""The expert loop on the default world: a rating budget spent by the review queue vs at random.

Usage: python benchmarks/bench_review_loop.py [--budget 40 [--per-week]] [--rounds 3] [--epochs 25] [--seeds 2]
                                               [--first-seed 0] [--base-source dermbench] [--feedback-repeat N]
                                               [--all-rated] [--out results.json]

Simulated reviewers stand in for experts (say so wherever the figures go): two per narrative, each
the world's true scores plus rater noise (SD 0.3, rounded to 0.5). Every round reviews the next
weekly batches: the current evaluator scores them, ``budget`` narratives (``--per-week``:
``budget`` per week of the round) are picked (by the queue's own ranking,
:func:`dermeval.review.queue.select_rows`, or uniformly at random), rated, added to the training
split as expert-rated records (source ``feedback``, each seen ``--feedback-repeat`` times an epoch,
default ``train.feedback_repeat``), and the evaluator is retrained. Measured after each round:
overall and per-dimension MAE on held-out batch narratives (half of each week's cases, never
offered for review) against the simulated panel. Both strategies start from the same evaluator and
see the same batches; only the choice differs. ``--base-source`` trains the starting evaluator on
one source only (default ``dermbench``: real expert text, so the MLLMs' narratives in the batches
are new to it, as production narratives are to a team's evaluator; ``all``: the pipeline's training
split). A retrain moves the held-out MAE by about 0.01 on its own, so every curve is the mean over
``--seeds`` training seeds (each seed's curve is kept). Needs the pipeline's outputs (``dvc
repro``). Retrains use ``--epochs`` (fewer than the pipeline's) to keep the run short, on a fixed
schedule that keeps the last epoch: with early stopping (``--early-stopping``, the pipeline's way)
the epoch kept moves with a few changed rows and a seed's curve moved by up to 0.03 between rounds
from that alone. Both strategies use the same settings, one network per retrain (``--members``; the
pipeline trains an ensemble, which would take ``train.members`` times as long). Prints and saves
JSON figures; the file is rewritten after every seed (``complete`` says whether all seeds ran), so
a run stopped early keeps the seeds it finished. ``--all-rated`` adds one retrain per seed with every
reviewable narrative rated (``all_rated``): the error the ratings can bring the held-out narratives to
at all, against which the budget's curves show how much room a better choice has.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from dermeval.features import FeatureStore, Featurizer
from dermeval.formats.common import read_rows, write_json
from dermeval.judge.local import Calibration, LocalJudge
from dermeval.judge.references import load_references
from dermeval.model.data import featurize
from dermeval.model.fit import fit_evaluator
from dermeval.model.ood import MODALITIES
from dermeval.params import load_params
from dermeval.review.queue import STRATA, select_rows, value_parts
from dermeval.schema import DIMENSIONS, FEEDBACK_SOURCE
from dermeval.synth.catalogue import default_catalogue
from dermeval.synth.panel import consensus

REPO = Path(__file__).resolve().parents[1]


def _held_out(case_id: str) -> bool:
    return hashlib.sha256(case_id.encode()).digest()[0] < 128


def _reviewers(row: dict, rng: np.random.Generator, n: int = 2) -> dict[str, dict[str, float]]:
    true = row["truth"]["true_scores"]
    return {f"sim-reviewer-{k + 1}": {d: float(np.clip(np.round((true[d] + rng.normal(0, 0.3)) * 2) / 2, 0, 5))
                                      for d in DIMENSIONS} for k in range(n)}


def _rated(row: dict, rng: np.random.Generator) -> dict:
    """What a rated narrative adds to its record, as `dermeval review export` writes it: the reviewers'
    ratings and their mean, source ``feedback``; reviewers rate, they name no defects."""
    raters = _reviewers(row, rng)
    return {"raters": raters, "truth": None, "source": FEEDBACK_SOURCE, "scores": consensus(raters)}


def _mae(pred: dict, rows: list[dict], idx: list[int]) -> dict[str, float]:
    truth = np.array([[rows[i]["scores"][d] for d in DIMENSIONS] for i in idx])
    p = pred["scores"]
    out = {d: round(float(np.abs(p[:, j] - truth[:, j]).mean()), 4) for j, d in enumerate(DIMENSIONS)}
    out["overall"] = round(float(np.abs(p.mean(1) - truth.mean(1)).mean()), 4)
    return out


def _judge_scores(params, world: Path, rows: list[dict], idx: list[int], featurizer: Featurizer) -> np.ndarray:
    """The offline judge's six scores for the rows ``idx`` whose case has a reference in the world's
    ``batch_references.jsonl`` (what the monitor stores beside DermEval's); NaN elsewhere."""
    out = np.full((len(rows), len(DIMENSIONS)), np.nan)
    cal, ref_file = Path(params.data.judge), world / "batch_references.jsonl"
    if not (cal.is_file() and ref_file.is_file()):
        print(f"bench_review_loop: no judge scores ({cal} or {ref_file} missing): disagreement counts 0",
              file=sys.stderr)
        return out
    refs = {r.id: r for r in load_references(ref_file).records}
    have = [i for i in idx if rows[i].get("case_id") in refs]
    judged = LocalJudge(featurizer, Calibration.load(cal)).judge(
        [rows[i]["diagnostic_text"] for i in have], [refs[rows[i]["case_id"]].text for i in have],
        [refs[rows[i]["case_id"]].diagnosis for i in have])
    for i, (scores, _) in zip(have, judged, strict=True):
        out[i] = [scores[d] for d in DIMENSIONS]
    return out


def _frame(pred: dict, flags: np.ndarray, rows: list[dict], idx: list[int], judge: np.ndarray) -> pd.DataFrame:
    """The columns the store would hold for these narratives (what the queue ranks by)."""
    df = pd.DataFrame({"i": idx, "model": [rows[i]["model"] for i in idx],
                       "category": [rows[i].get("category") for i in idx],
                       "fitzpatrick": [rows[i].get("fitzpatrick") for i in idx],
                       "text": [rows[i]["diagnostic_text"] for i in idx],
                       "needs_review": flags, "safety": pred["scores"][:, DIMENSIONS.index("safety")]})
    for j, d in enumerate(DIMENSIONS):
        df[f"u_{d}"] = pred["sigma"][:, j]
    for j, m in enumerate(MODALITIES):
        df[f"novelty_{m}"] = pred["novelty"][:, j]
    gap = np.abs(pred["scores"] - judge[idx])
    df["judge_gap"] = np.where(np.isnan(gap).any(1), np.nan, np.nan_to_num(gap).max(1))
    return df


def _signals(evaluator, fs, rows: list[dict], idx: list[int], judge: np.ndarray, safety_floor: float) -> dict:
    """How well each value part of the starting evaluator points at its own errors on the reviewable
    narratives: Spearman correlation with the largest per-dimension error (the simulated panel's)."""
    from scipy.stats import spearmanr

    pred = evaluator.predict(fs, idx)
    df = _frame(pred, evaluator.review_flags(pred), rows, idx, judge)
    truth = np.array([[rows[i]["scores"][d] for d in DIMENSIONS] for i in idx])
    err = np.abs(pred["scores"] - truth).max(1)
    known = ~np.isnan(judge[idx, 0])
    out = {"narratives": len(idx), "judged": int(known.sum()),
           "judge_overall_mae": round(float(np.abs(judge[idx][known].mean(1) - truth[known].mean(1)).mean()), 4)
           if known.any() else None,
           "dermeval_overall_mae": round(float(np.abs(pred["scores"].mean(1) - truth.mean(1)).mean()), 4)}
    parts = value_parts(df, safety_floor=safety_floor)
    out["spearman_with_largest_error"] = {k: round(float(spearmanr(parts[k], err).statistic), 3)
                                          for k in parts.columns if parts[k].std() > 0}
    return out


def _variant(spec: str, defaults: dict[str, float], strata: str) -> tuple[str, dict]:
    """``NAME[@STRATA]=part:weight,part:weight`` (parts not named weigh 0; ``STRATA``: keys joined by ``+``,
    e.g. ``model+category+wording``, ``none`` for no strata, default params.yaml's ``review.stratify``);
    ``NAME[@STRATA]`` alone: params.yaml's weights."""
    head, _, body = spec.partition("=")
    name, _, keys = head.partition("@")
    keys = "" if keys == "none" else keys.replace("+", ",") if keys else strata
    unknown = set(keys.split(",")) - {*STRATA, ""}
    if unknown:
        sys.exit(f"bench_review_loop: unknown stratum {sorted(unknown)} in --variant {spec!r}")
    if not body:
        return name, {"weights": dict(defaults), "stratify": keys}
    weights = dict.fromkeys(defaults, 0.0)
    for item in body.split(","):
        part, _, w = item.partition(":")
        if part not in weights:
            sys.exit(f"bench_review_loop: unknown value part {part!r} in --variant {spec!r} (known: {sorted(weights)})")
        weights[part] = float(w)
    return name, {"weights": weights, "stratify": keys}


def _versus_random(queue: list[list[dict]], random: list[list[dict]]) -> dict:
    """(queue - random) overall MAE per seed and round; negative: the queue's choice left the smaller error."""
    diffs = [[round(q[k]["overall"] - r[k]["overall"], 4) for k in range(1, len(q))]
             for q, r in zip(queue, random, strict=True)]
    flat = [x for run in diffs for x in run]
    mean_by_round = [round(float(np.mean(col)), 4) for col in zip(*diffs, strict=True)]
    verdict = ("the queue's choice left a smaller held-out error in every round of every seed"
               if all(x < 0 for x in flat) else
               "random choice left a smaller held-out error in every round of every seed"
               if all(x > 0 for x in flat) else
               "the queue's choice left a smaller held-out error in every round on average over seeds, "
               "not in every seed" if all(x < 0 for x in mean_by_round) else
               "no consistent difference: the sign of (queue - random) changes across rounds or seeds")
    return {"by_seed_and_round": diffs, "mean_by_round": mean_by_round,
            "beats_random_every_seed": bool(all(x < 0 for x in flat)),
            "beats_random_on_average": bool(all(x < 0 for x in mean_by_round)), "verdict": verdict}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default=str(REPO / "params.yaml"))
    ap.add_argument("--budget", type=int, default=None, help="ratings per round, or per week with --per-week "
                                                                   "(default: review.budget_per_week)")
    ap.add_argument("--per-week", action="store_true",
                    help="the budget counts per weekly batch, as review.budget_per_week does in production: a round "
                         "of k weeks gets k x budget ratings (default: budget per round, as every earlier run)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--members", type=int, default=1,
                    help="networks per retrain (default 1, as every recorded run; the pipeline trains train.members)")
    ap.add_argument("--early-stopping", action="store_true",
                    help="retrains stop early on the validation split (default: a fixed schedule of --epochs, "
                         "keeping the last epoch, so both strategies' retrains differ only by their data)")
    ap.add_argument("--first-seed", type=int, default=0,
                    help="training seeds first-seed .. first-seed+seeds-1 (more seeds for an earlier run's figures)")
    ap.add_argument("--base-source", default="dermbench", help="dermbench, dermsynth or all")
    ap.add_argument("--variant", action="append", default=None,
                    help="a queue setting to compare with random choice: NAME (params.yaml's review.weights) or "
                         "NAME=part:weight,... (e.g. typical=typical:1,low_safety:1); NAME@model+wording=... also sets "
                         "the strata (default: review.stratify); repeatable; default: queue")
    ap.add_argument("--feedback-repeat", type=int, default=None,
                    help="times each rated narrative is seen an epoch in a retrain (default: train.feedback_repeat)")
    ap.add_argument("--all-rated", action="store_true",
                    help="also retrain once per seed with every reviewable narrative of every week rated: how far "
                         "the rated narratives can take the held-out error at all, the room a choice of a few has")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "review_loop.json"))
    args = ap.parse_args()
    params = load_params(args.params)
    d, rp = params.data, params.review
    budget = rp.budget_per_week if args.budget is None else args.budget
    repeat = params.train.feedback_repeat if args.feedback_repeat is None else args.feedback_repeat
    prepared = Path(d.prepared)
    world = prepared / "dermsynth"
    if not (world / "manifest.json").is_file():
        sys.exit(f"bench_review_loop: no prepared DermSynth world under {prepared} (run `dvc repro` first)")
    base = read_rows(prepared / "records.jsonl")
    splits = json.loads(Path(d.splits).read_text("utf-8"))
    weeks = sorted(world.glob("batches/week_*.truth.jsonl"))
    batch = [{**r, "image": f"dermsynth/{r['image']}", "source": "batch"} for w in weeks for r in read_rows(w)]
    rows = base + batch
    t0 = time.perf_counter()
    featurizer = Featurizer(FeatureStore(d.feature_cache))
    fs, errors = featurize(rows, prepared, featurizer, progress=True)
    by_id = {r["id"]: r for r in rows}
    rows = [by_id[i] for i in fs.ids]
    print(f"featurised {len(rows)} rows ({len(errors)} rejected) in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    pos = {rid: k for k, rid in enumerate(fs.ids)}
    held = [pos[r["id"]] for r in rows if r.get("source") == "batch" and _held_out(r["case_id"])]
    week_of = {pos[r["id"]]: r["week"] for r in rows if r.get("source") == "batch" and not _held_out(r["case_id"])}
    all_weeks = sorted(set(week_of.values()))
    judge = _judge_scores(params, world, rows, list(week_of), featurizer)
    print(f"judged {int((~np.isnan(judge[:, 0])).sum())} batch narratives (the judge beside DermEval)", file=sys.stderr)
    per_round = np.array_split(np.array(all_weeks), args.rounds)
    base_splits = {rid: sp for rid, sp in splits.items()
                   if args.base_source == "all" or by_id.get(rid, {}).get("source") == args.base_source}
    if not any(v == "train" for v in base_splits.values()):
        sys.exit(f"bench_review_loop: no training rows of source {args.base_source!r}")
    known = [(n, c.category) for c in default_catalogue().conditions for n in c.names]
    variants = dict(_variant(v, vars(rp.weights), rp.stratify) for v in (args.variant or ["queue"]))
    per_seed: dict[str, list[list[dict]]] = {**{v: [] for v in variants}, "random": []}
    signals: list[dict] = []
    all_rated: list[dict] = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        cfg = params.train.with_(epochs=args.epochs, patience=min(params.train.patience, args.epochs), seed=seed,
                                 early_stopping=args.early_stopping, members=args.members,
                                 feedback_repeat=repeat)
        rng = np.random.default_rng(seed)

        def train(extra: dict[str, dict], cfg=cfg) -> object:
            rows_now = [{**r, **extra.get(r["id"], {})} for r in rows]
            s = {**base_splits, **{rid: "train" for rid in extra}}
            ev, _, _ = fit_evaluator(fs, {r["id"]: r for r in rows_now}, s, cfg, progress=False, known_names=known)
            return ev

        start = train({})
        signals.append(_signals(start, fs, rows, list(week_of), judge, params.monitor.safety_floor))
        for strategy in per_seed:
            evaluator, extra = start, {}
            curve = [{"round": 0, "ratings": 0, **_mae(start.predict(fs, held), rows, held)}]
            for k, wk in enumerate(per_round, start=1):
                these_weeks = set(wk.tolist())
                offer = [i for i, w in week_of.items() if w in these_weeks]
                pred = evaluator.predict(fs, offer)
                spend = budget * (len(wk) if args.per_week else 1)  # this round's ratings
                df = _frame(pred, evaluator.review_flags(pred), rows, offer, judge)
                if strategy != "random":
                    picked = [int(df.at[i, "i"]) for i, _ in select_rows(
                        df, budget=spend, random_share=rp.random_share, weights=variants[strategy]["weights"],
                        strata=[STRATA[x] for x in variants[strategy]["stratify"].split(",") if x],
                        safety_floor=params.monitor.safety_floor, seed=100 * seed + k)]
                else:
                    picked = [offer[j] for j in
                              np.random.default_rng(1000 + 100 * seed + k).permutation(len(offer))[:spend]]
                for i in picked:
                    extra[rows[i]["id"]] = _rated(rows[i], rng)
                t = time.perf_counter()
                evaluator = train(extra)
                curve.append({"round": k, "weeks": [int(w) for w in wk], "ratings": len(extra),
                              "retrain_seconds": round(time.perf_counter() - t, 1),
                              **_mae(evaluator.predict(fs, held), rows, held)})
                print(f"seed {seed} {strategy} round {k}: {len(extra)} ratings, held-out overall MAE "
                      f"{curve[-1]['overall']}", file=sys.stderr)
            per_seed[strategy].append(curve)
        if args.all_rated:  # the headroom: every reviewable narrative of every week rated (reviewers of their own)
            raters_rng = np.random.default_rng([seed, 7])
            extra = {rows[i]["id"]: _rated(rows[i], raters_rng) for i in week_of}
            all_rated.append({"seed": seed, "ratings": len(extra), **_mae(train(extra).predict(fs, held), rows, held)})
            print(f"seed {seed} all {len(extra)} reviewable narratives rated: held-out overall MAE "
                  f"{all_rated[-1]['overall']}", file=sys.stderr)
        # Saved after every seed: a long run stopped early keeps its finished seeds (poolable as they are).
        res = {"benchmark": "expert loop: review queue vs random choice at equal budget (simulated reviewers)",
               "simulated": True, "base_source": args.base_source, "seeds": seed - args.first_seed + 1,
               "seeds_planned": args.seeds, "complete": seed == args.first_seed + args.seeds - 1,
               "first_seed": args.first_seed, "budget_per_round": budget, "budget_per_week": args.per_week,
               "rounds": args.rounds,
               "retrain_epochs": args.epochs, "early_stopping": args.early_stopping,
               "members": args.members, "feedback_repeat": repeat,
               "random_share": rp.random_share, "stratify": {v: c["stratify"] for v, c in variants.items()},
               "weights": {v: c["weights"] for v, c in variants.items()},
               "held_out_narratives": len(held), "reviewers_per_narrative": 2, "reviewer_noise_sd": 0.3,
               **_summaries(per_seed, variants), "per_seed": per_seed, "signals_at_round_0": signals}
        if all_rated:
            res["all_rated"] = {"per_seed": all_rated,
                                "overall": round(float(np.mean([a["overall"] for a in all_rated])), 4)}
        write_json(args.out, res)
        print(f"seed {seed} done: saved {args.out} ({res['seeds']} of {args.seeds} seeds)", file=sys.stderr)
    print(json.dumps(res, indent=2))


def _summaries(per_seed: dict[str, list[list[dict]]], variants: dict) -> dict:
    """Mean curves over the seeds run so far, final MAE per strategy, and each setting against random."""
    curves = {s: [{"round": k, "ratings": runs[0][k]["ratings"],
                   **{m: round(float(np.mean([r[k][m] for r in runs])), 4) for m in [*DIMENSIONS, "overall"]}}
                  for k in range(len(runs[0]))] for s, runs in per_seed.items()}
    return {"curves": curves, "final_overall_mae": {s: c[-1]["overall"] for s, c in curves.items()},
            "versus_random": {v: _versus_random(per_seed[v], per_seed["random"]) for v in variants}}


if __name__ == "__main__":
    main()
