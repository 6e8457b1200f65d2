"""Stage ``split``: case-grouped train / val / calib / test assignment of the prepared records."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from dermeval.formats.common import read_rows
from dermeval.params import load_params
from dermeval.splits import assign_splits


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--records", required=True, help="prepared records.jsonl")
    ap.add_argument("--out", required=True, help="splits JSON (record id -> split)")
    args = ap.parse_args(argv)
    p = load_params(args.params).split
    splits = assign_splits(read_rows(args.records), val=p.val, calib=p.calib, test=p.test, seed=p.seed)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(splits, sort_keys=True) + "\n", encoding="utf-8")
    print(f"split: {dict(sorted(Counter(splits.values()).items()))}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
