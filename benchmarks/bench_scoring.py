"""Benchmark DermEval end-to-end scoring (image + narrative, encoders included) and training.

Scoring (one ``score`` call per narrative, and ``score_batch``) uses DermBench-length
narratives (the real expert texts when the release is found, else DermSynth references)
paired with rendered images, from a cold feature cache, so every image and sentence is
encoded. Prints and saves JSON (benchmarks/results/scoring.json).

Usage: python benchmarks/bench_scoring.py --model models/dermeval [--n 200] [--threads 2]
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

from dermeval.features import FeatureStore, Featurizer, narrative_units
from dermeval.model.evaluator import load_evaluator
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/dermeval")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "scoring.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    texts, source = narratives(args.n)
    cat = default_catalogue()
    images = [render_condition(cat.conditions[i % len(cat)], 1 + i % 6, 500 + i) for i in range(args.n)]
    t0 = time.perf_counter()
    ev = load_evaluator(args.model)
    ev.featurizer = Featurizer(FeatureStore(None))  # cold cache: everything is encoded
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
    with tempfile.TemporaryDirectory() as tmp:
        records = []
        for i, (img, text) in enumerate(zip(images, texts, strict=True)):
            img.save(Path(tmp) / f"{i}.png")
            records.append({"id": str(i), "image": f"{i}.png", "diagnostic_text": text})
        ev.featurizer.store = FeatureStore(None)
        t = time.perf_counter()
        rows = ev.score_batch(records, tmp, progress=False)
        batch_s = time.perf_counter() - t
    assert not any("error" in r for r in rows)
    result = {
        "benchmark": "dermeval_scoring", "threads": args.threads, "narratives": args.n, "narrative_source": source,
        "mean_words": round(float(np.mean([len(x.split()) for x in texts])), 1),
        "mean_sentence_units": round(float(np.mean([len(u) for u in units])), 1),
        "narratives_per_s": round(args.n / total_s, 2),
        "narratives_per_s_batch": round(args.n / batch_s, 2),
        "seconds": {"model_and_encoders_load": round(load_s, 2), "image_encoder": round(image_s, 2),
                    "text_encoder": round(text_s, 2), "end_to_end": round(total_s, 2),
                    "fusion_and_critique": round(max(total_s - image_s - text_s, 0.0), 2),
                    "end_to_end_batch": round(batch_s, 2)},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "machine": platform.machine(), "torch": torch.__version__,
    }
    train = REPO / "reports" / "train" / "train.json"
    if train.is_file():
        result["training"] = json.loads(train.read_text())
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
