"""Measure the diagnosis vocabulary on the DermBench release: conclusions of held-out cases -> category.

Usage: python benchmarks/bench_vocabulary.py [--root ../shared/dermbench] [--out results.json]
Each conclusion is the diagnosis the expert set in bold (else the manifest's label); the
release's own ``category`` field is the answer key, and each fold is classified by a
vocabulary built without it. Prints and saves JSON figures (results/ by default).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from dermeval.diagnosis import held_out_coverage
from dermeval.formats.dermbench import load_dermbench
from dermeval.synth.catalogue import default_catalogue
from dermeval.synth.realtext import conclusion_name


def measure(root: Path, folds: int = 5, seed: int = 0) -> dict:
    cases = load_dermbench(root).records
    pairs = [(conclusion_name(c), c.category) for c in cases]
    catalogue = [(n, c.category) for c in default_catalogue().conditions for n in c.names]
    out = {}
    for label, kw in (("icd10cm+catalogue+learned", {"catalogue": catalogue, "icd": True}),
                      ("icd10cm+catalogue (nothing learned from DermBench)", None),
                      ("learned only", {"catalogue": [], "icd": False})):
        t = time.perf_counter()
        if kw is None:  # every case held out of the learned names: folds of one
            res = held_out_coverage(pairs, folds=folds, seed=seed, catalogue=catalogue, icd=True, learn=False)
        else:
            res = held_out_coverage(pairs, folds=folds, seed=seed, **kw)
        res["seconds"] = round(time.perf_counter() - t, 1)
        out[label] = res
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "dermbench"))
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "vocabulary.json"))
    args = ap.parse_args()
    res = {"benchmark": "diagnosis vocabulary on held-out DermBench conclusions", "target_distinct": 0.90,
           "results": measure(Path(args.root), args.folds)}
    text = json.dumps(res, indent=2)
    print(text)
    Path(args.out).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
