"""Pool runs of the expert-loop benchmark over their training seeds: queue setting vs random choice.

Usage: python benchmarks/pool_review_loop.py RESULTS.json [RESULTS.json ...] [--variant no_judge]
                                             [--out benchmarks/results/review_loop_pooled.json]

Each file is a ``bench_review_loop.py`` result (simulated reviewers). Runs are pooled only when
they share the setting's weights and strata, the budget, the rounds, the retrain epochs and
schedule (early stopping or fixed), the networks per retrain, the rated rows' repeats and whether
the budget counted per week, and no seed appears twice. Prints and saves, per round and overall,
the mean of (setting - random) held-out overall MAE over seeds, its standard error and how many
seed-and-round pairs the setting was ahead; and the same over each seed's mean across rounds (the
rounds of one seed are not independent, so that is the cautious figure).
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


# Settings a run records that earlier runs lacked, with the value those runs had: their retrains
# stopped early, trained one network, saw each rating once and spent the budget per round.
OPTIONAL = {"early_stopping": True, "members": 1, "feedback_repeat": 1, "budget_per_week": False}


def _setting(result: dict, key: str) -> object:
    return result.get(key, OPTIONAL[key])


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
                or _strata(r, variant) != _strata(first, variant)
                or any(_setting(r, k) != _setting(first, k) for k in OPTIONAL)):
            raise ValueError(f"runs differ in their settings ({', '.join([*keys, *OPTIONAL])}, weights, strata): "
                             "not pooled")
        start = r.get("first_seed", 0)
        seeds += list(range(start, start + r["seeds"]))
        diffs += r["versus_random"][variant]["by_seed_and_round"]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"a training seed appears twice ({seeds}): not pooled")
    by_round = [_summary(col) for col in zip(*diffs, strict=True)]
    return {"benchmark": "expert loop pooled over seeds (simulated reviewers)", "simulated": True,
            "variant": variant, "weights": first["weights"][variant], "stratify": _strata(first, variant),
            "seeds": seeds,
            **{k: first[k] for k in keys}, **{k: _setting(first, k) for k in OPTIONAL},
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
