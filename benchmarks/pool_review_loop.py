"""Pool runs of the expert-loop benchmark over their training seeds: queue setting vs random choice.

Usage: python benchmarks/pool_review_loop.py RESULTS.json [RESULTS.json ...] [--variant no_judge]
                                             [--out benchmarks/results/review_loop_pooled.json]

Each file is a ``bench_review_loop.py`` result (simulated reviewers). Runs are pooled only when
they share the setting's weights and strata, the budget, the rounds, the retrain epochs and schedule
(early stopping or fixed), the networks per retrain and the rated rows' repeats, and no seed
appears twice. Prints and saves, per round and overall, the mean of (setting - random) held-out
overall MAE over seeds, its standard error and how many seed-and-round pairs the setting was
ahead; and the same over each seed's mean across rounds (the rounds of one seed are not
independent, so that is the cautious figure).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from dermeval.formats.common import write_json


def _summary(x: list[float]) -> dict[str, float | int]:
    a = np.asarray(x, float)
    se = float(a.std(ddof=1) / np.sqrt(len(a))) if len(a) > 1 else float("nan")
    return {"n": len(a), "mean": round(float(a.mean()), 4), "se": round(se, 4), "ahead": int((a < 0).sum())}


def _early(result: dict) -> bool:
    """Whether a run's retrains stopped early (runs from before the setting existed all did)."""
    return bool(result.get("early_stopping", True))


def _members(result: dict) -> int:
    """Networks per retrain (runs from before ensembles trained one)."""
    return int(result.get("members", 1))


def _repeat(result: dict) -> int:
    """Times each rated narrative was seen an epoch (runs from before the setting saw it once)."""
    return int(result.get("feedback_repeat", 1))


def _strata(result: dict, variant: str) -> str:
    """The strata a run's setting spread its picks over (older runs kept one string for all settings)."""
    s = result.get("stratify", "")
    return s if isinstance(s, str) else s.get(variant, "")


def pool(results: list[dict], variant: str) -> dict:
    keys = ("budget_per_round", "rounds", "retrain_epochs", "base_source")
    first = results[0]
    seeds: list[int] = []
    diffs: list[list[float]] = []
    for r in results:
        if variant not in r["versus_random"]:
            raise ValueError(f"a run has no setting {variant!r} (has {sorted(r['versus_random'])})")
        if (any(r[k] != first[k] for k in keys) or r["weights"][variant] != first["weights"][variant]
                or _early(r) != _early(first) or _strata(r, variant) != _strata(first, variant)
                or _members(r) != _members(first) or _repeat(r) != _repeat(first)):
            raise ValueError(f"runs differ in their settings ({', '.join(keys)}, early_stopping, members, "
                             "feedback_repeat, weights, strata): not pooled")
        start = r.get("first_seed", 0)
        seeds += list(range(start, start + r["seeds"]))
        diffs += r["versus_random"][variant]["by_seed_and_round"]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"a training seed appears twice ({seeds}): not pooled")
    by_round = [_summary(col) for col in zip(*diffs, strict=True)]
    return {"benchmark": "expert loop pooled over seeds (simulated reviewers)", "simulated": True,
            "variant": variant, "weights": first["weights"][variant], "stratify": _strata(first, variant),
            "seeds": seeds,
            **{k: first[k] for k in keys}, "early_stopping": _early(first), "members": _members(first),
            "feedback_repeat": _repeat(first),
            "by_seed_and_round": diffs, "by_round": by_round,
            "all": _summary([x for d in diffs for x in d]),
            # the rounds of one seed share a retrained evaluator: the per-seed mean is the cautious unit
            "per_seed_mean": _summary([float(np.mean(d)) for d in diffs])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+")
    ap.add_argument("--variant", default="queue")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "review_loop_pooled.json"))
    args = ap.parse_args()
    try:
        res = pool([json.loads(Path(f).read_text("utf-8")) for f in args.results], args.variant)
    except (OSError, ValueError, KeyError) as exc:
        sys.exit(f"pool_review_loop: {exc}")
    print(json.dumps(res, indent=2))
    write_json(args.out, res)


if __name__ == "__main__":
    main()
