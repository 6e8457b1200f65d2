"""Stage ``featurize``: encoder features of every prepared record, through the content-hash cache.

Only content never seen before is encoded; a retrain, or a rerun after adding data,
reuses every cached image and sentence vector.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from dermeval.features import FeatureStore, Featurizer
from dermeval.formats.common import read_rows, write_jsonl
from dermeval.model.data import featurize


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", required=True, help="prepared records.jsonl")
    ap.add_argument("--root", required=True, help="folder the records' image paths are relative to")
    ap.add_argument("--cache", required=True, help="feature cache (SQLite), kept between runs")
    ap.add_argument("--out", required=True, help="output folder")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = FeatureStore(args.cache)
    featurizer = Featurizer(store)
    t0 = time.perf_counter()
    fs, errors = featurize(read_rows(args.records), Path(args.root), featurizer, source=args.records)
    fs.save(out / "features.npz")
    write_jsonl(out / "rejected.jsonl", [e.to_dict() for e in errors])
    # stats.json describes the contents only, so an unchanged feature set hashes the same and DVC
    # does not retrain; how this run got there (time, cache hits) goes to stderr.
    stats = {"records": len(fs), "rejected": len(errors), "unique_images": int(fs.image.shape[0]),
             "unique_sentence_units": int(fs.units.shape[0]), "truncation_warnings": len(fs.warnings)}
    (out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    run = {"newly_encoded": featurizer.encoded, "cache_entries": {t: store.count(t) for t in store.TABLES},
           "seconds": round(time.perf_counter() - t0, 1)}
    print(f"featurize: {stats} {run}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
