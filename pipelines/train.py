"""Stage ``train``: fit DermEval (one network or an ensemble) on the train split (early-stopping on
val when ``train.early_stopping`` is set), calibrate on calib."""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

from dermeval.formats.common import read_rows
from dermeval.model.data import FeatureSet
from dermeval.model.fit import fit_evaluator
from dermeval.params import load_params
from dermeval.synth.catalogue import default_catalogue


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--records", required=True)
    ap.add_argument("--features", required=True, help="features.npz from the featurize stage")
    ap.add_argument("--splits", required=True)
    ap.add_argument("--out", required=True, help="model folder to write")
    ap.add_argument("--reports", required=True, help="folder for the training curves")
    args = ap.parse_args(argv)
    cfg = load_params(args.params).train
    rows = {r["id"]: r for r in read_rows(args.records)}
    splits = json.loads(Path(args.splits).read_text("utf-8"))
    t0 = time.perf_counter()
    evaluator, history, idx = fit_evaluator(FeatureSet.load(args.features), rows, splits, cfg,
                                            known_names=[(n, c.category) for c in default_catalogue().conditions
                                                         for n in c.names])
    seconds = time.perf_counter() - t0
    manifest = Path(args.records).with_name("manifest.json")
    if manifest.is_file():
        data = json.loads(manifest.read_text("utf-8"))
        evaluator.meta.update(data_fingerprint=data.get("fingerprint"), data_source=data.get("source"),
                              real_text=bool(data.get("real_text")))
    # No wall-clock figures in the model folder: the same inputs give byte-identical model files
    # (the training time is in reports/train/train.json).
    evaluator.save(args.out)
    reports = Path(args.reports)
    reports.mkdir(parents=True, exist_ok=True)
    with (reports / "history.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["step", "member", "epoch", "train_loss", "val_mae"])
        writer.writeheader()
        writer.writerows(history)
    members = [member_summary([h for h in history if h["member"] == m], cfg.early_stopping)
               for m in range(cfg.members)]
    summary = {"members": members, "early_stopping": cfg.early_stopping, "train_seconds": round(seconds, 1),
               "split_sizes": evaluator.meta["split_sizes"]}
    if cfg.members == 1:  # a single network: its figures at the top level, as before ensembles
        summary.update(members[0])
        summary.pop("member")
    (reports / "train.json").write_text(json.dumps(summary, indent=2) + "\n")
    for m in members:
        print(f"train: member {m['member'] + 1}/{cfg.members}: {m['epochs_run']} epochs, kept epoch "
              f"{m['kept_epoch']} (val MAE {m['kept_val_mae']:.3f}; best {m['best_val_mae']:.3f} at epoch "
              f"{m['best_epoch']})", file=sys.stderr)
    print(f"train: {seconds:.0f} s", file=sys.stderr)
    return 0


def member_summary(curve: list[dict[str, float]], early_stopping: bool) -> dict[str, float]:
    """One network's training figures: epochs run, its best epoch, and the epoch whose weights it kept."""
    best = min(curve, key=lambda h: h["val_mae"])
    kept = best if early_stopping else curve[-1]
    return {"member": int(curve[0]["member"]), "epochs_run": len(curve), "best_epoch": best["epoch"],
            "best_val_mae": round(best["val_mae"], 4), "kept_epoch": kept["epoch"],
            "kept_val_mae": round(kept["val_mae"], 4)}


if __name__ == "__main__":
    sys.exit(main())
