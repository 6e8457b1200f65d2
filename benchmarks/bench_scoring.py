"""Benchmark DermEval end-to-end scoring (image + narrative, encoders included) and training.

Scoring (one ``score`` call per narrative, and ``score_batch``) uses DermBench-length
narratives (the real expert texts when the release is found, else DermSynth references)
paired with rendered images, from a cold feature cache, so every image and sentence is
encoded. Prints and saves JSON (benchmarks/results/scoring.json).

Each encoder precision (fp32, the default, and bf16) is measured, with how far bf16 moves
the scores and, when the pipeline's data is present, the agreement on the default world's
test split (simulated panel) at each precision.

Usage: python benchmarks/bench_scoring.py --model models/dermeval [--n 200] [--threads 2] [--precisions fp32,bf16]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from dermeval.encoders.runtime import native_bf16
from dermeval.features import FeatureStore, Featurizer, narrative_units
from dermeval.formats.common import read_rows
from dermeval.model.evaluator import load_evaluator
from dermeval.schema import DIMENSIONS
from dermeval.synth.catalogue import default_catalogue
from dermeval.synth.narrative import reference_narrative
from dermeval.synth.render import render_condition

REPO = Path(__file__).resolve().parents[1]


def narratives(n: int) -> tuple[list[str], str]:
    release = REPO.parent / "shared" / "dermbench"
    if (release / "data/manifest/dermbench_test.jsonl").is_file():
        from dermeval.formats import load_dermbench

        cases = load_dermbench(release).records
        return [cases[i * len(cases) // n].reference_text for i in range(n)], "dermbench"
    cat, rng = default_catalogue(), np.random.default_rng(0)
    return [reference_narrative(cat.conditions[i % len(cat)], 1 + i % 6, rng) for i in range(n)], "dermsynth"


def measure(model: str, images: list, texts: list[str], precision: str, tmp: Path) -> tuple[dict, list[dict]]:
    """One precision: load time, each encoder on its own, the single-call path and the batch path."""
    t0 = time.perf_counter()
    ev = load_evaluator(model, precision=precision)
    ev.featurizer = Featurizer(FeatureStore(None), precision=precision)  # cold cache: everything is encoded
    ev.featurizer.image_vectors(images[:1])
    ev.featurizer.sentence_vectors(["warm-up sentence"])
    load_s = time.perf_counter() - t0
    # Where the time goes: each stage timed on its own, then the whole path.
    t = time.perf_counter()
    ev.featurizer.store = FeatureStore(None)
    ev.featurizer.image_vectors(images)
    image_s = time.perf_counter() - t
    units = [narrative_units(x).units for x in texts]
    t = time.perf_counter()
    ev.featurizer.sentence_vectors([u for us in units for u in us])
    text_s = time.perf_counter() - t
    ev.featurizer.store = FeatureStore(None)
    t = time.perf_counter()
    for img, text in zip(images, texts, strict=True):
        ev.score(img, text)
    total_s = time.perf_counter() - t
    # The batch path (score_batch, as the CLI and the pipeline use it): images and
    # sentences are encoded in batches of 64 narratives.
    records = [{"id": str(i), "image": f"{i}.png", "diagnostic_text": text} for i, text in enumerate(texts)]
    ev.featurizer.store = FeatureStore(None)
    t = time.perf_counter()
    rows = ev.score_batch(records, tmp, progress=False, decimals=None)
    batch_s = time.perf_counter() - t
    assert not any("error" in r for r in rows)
    n = len(texts)
    return {
        "narratives_per_s": round(n / total_s, 2), "narratives_per_s_batch": round(n / batch_s, 2),
        "seconds": {"model_and_encoders_load": round(load_s, 2), "image_encoder": round(image_s, 2),
                    "text_encoder": round(text_s, 2), "end_to_end": round(total_s, 2),
                    "fusion_and_critique": round(max(total_s - image_s - text_s, 0.0), 2),
                    "end_to_end_batch": round(batch_s, 2)},
    }, rows


def score_shift(a: list[dict], b: list[dict]) -> dict:
    """How far precision b moves the scores of precision a (same inputs, same order)."""
    sa = np.array([[r["scores"][d] for d in DIMENSIONS] for r in a])
    sb = np.array([[r["scores"][d] for d in DIMENSIONS] for r in b])
    oa, ob = np.array([r["overall"] for r in a]), np.array([r["overall"] for r in b])
    return {"max_abs_score": round(float(np.abs(sa - sb).max()), 4),
            "p99_abs_score": round(float(np.percentile(np.abs(sa - sb), 99)), 4),
            "mean_abs_score": round(float(np.abs(sa - sb).mean()), 5),
            "max_abs_overall": round(float(np.abs(oa - ob).max()), 4),
            "needs_review_changed": int(sum(x["needs_review"] != y["needs_review"] for x, y in zip(a, b, strict=True)))}


def test_split_agreement(model: str, precision: str) -> dict | None:
    """MAE against the (simulated) panel on the default world's test split, encoded at ``precision``."""
    records, splits = REPO / "data" / "prepared" / "records.jsonl", REPO / "data" / "splits.json"
    if not records.is_file() or not splits.is_file():
        return None
    split = json.loads(splits.read_text("utf-8"))
    rows = [r for r in read_rows(records) if split.get(r["id"]) == "test"]
    ev = load_evaluator(model, cache=REPO / "data" / "cache" / "features.sqlite", precision=precision)
    out = ev.score_batch(rows, records.parent, progress=False, decimals=None)
    pred = np.array([[o["scores"][d] for d in DIMENSIONS] for o in out])
    y = np.array([[r["scores"][d] for d in DIMENSIONS] for r in rows])
    return {"n": len(rows), "overall_mae": round(float(np.abs(pred.mean(1) - y.mean(1)).mean()), 4),
            **{f"mae_{d}": round(float(m), 4) for d, m in zip(DIMENSIONS, np.abs(pred - y).mean(0), strict=True)}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/dermeval")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precisions", default="fp32,bf16", help="comma-separated: fp32, bf16")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "scoring.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    texts, source = narratives(args.n)
    cat = default_catalogue()
    images = [render_condition(cat.conditions[i % len(cat)], 1 + i % 6, 500 + i) for i in range(args.n)]
    units = [narrative_units(x).units for x in texts]
    result = {
        "benchmark": "dermeval_scoring", "threads": args.threads, "narratives": args.n, "narrative_source": source,
        "mean_words": round(float(np.mean([len(x.split()) for x in texts])), 1),
        "mean_sentence_units": round(float(np.mean([len(u) for u in units])), 1),
        "native_bf16": native_bf16(), "precisions": {},
    }
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, img in enumerate(images):
            img.save(Path(tmp) / f"{i}.png")
        for precision in args.precisions.split(","):
            result["precisions"][precision], rows[precision] = measure(args.model, images, texts, precision, Path(tmp))
            agreement = test_split_agreement(args.model, precision)
            if agreement:
                result["precisions"][precision]["test_split_agreement_simulated"] = agreement
    if "fp32" in rows:
        for precision in rows:
            if precision != "fp32":
                result["precisions"][precision]["shift_from_fp32"] = score_shift(rows["fp32"], rows[precision])
    result.update(peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                  machine=platform.machine(), torch=torch.__version__)
    train = REPO / "reports" / "train" / "train.json"
    if train.is_file():
        result["training"] = json.loads(train.read_text())
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
