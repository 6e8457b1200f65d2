"""Training time of the ensemble: members one after another against side by side (stacked weights).

Usage (after `dvc repro`, which leaves the prepared records, splits and features):
    python benchmarks/bench_training.py [--epochs 12] [--members 5] [--out benchmarks/results/training.json]

Both ways train ``--members`` networks from the same seeds on the pipeline's own train split
(params.yaml's ``train`` section, fixed schedule): "one after another" calls ``train_network``
once per member, as the pipeline did before; "side by side" is ``train_members``, which stacks the
members' weights and updates them in one step (``torch.func.vmap``). Reported for each: seconds in
all and per epoch, each member's validation MAE at the epoch kept, the ensemble's raw
(uncalibrated) overall MAE on the validation and test splits against the simulated panel, and how
far the members part ways on the test split (the mean standard deviation of their ratings, and its
Spearman correlation with the ensemble's error), so a speed-up that changed what the members learn,
or made them more alike, would show. Threads: torch's default for the
machine (the pipeline's). Prints and saves JSON figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

from dermeval.formats.common import read_rows, write_json
from dermeval.model.data import FeatureSet
from dermeval.model.fit import training_inputs
from dermeval.model.network import DermEvalEnsemble, NetConfig
from dermeval.model.train import MEMBER_SEED_STRIDE, Targets, predict_raw, train_members, train_network
from dermeval.params import load_params
from dermeval.synth.catalogue import default_catalogue

REPO = Path(__file__).resolve().parents[1]


def overall_mae(net: torch.nn.Module, fs: FeatureSet, t: Targets, idx: np.ndarray) -> float:
    pred = predict_raw(net, fs, idx)["mean"]
    return round(float(np.abs(pred.mean(1) - t.consensus[idx].mean(1)).mean()), 4)


def spread(net: DermEvalEnsemble, fs: FeatureSet, t: Targets, idx: np.ndarray) -> dict[str, float]:
    """How far the members part ways on ``idx`` (what the ensemble adds to each rating's uncertainty),
    and how well that points at the ensemble's own errors."""
    from scipy.stats import spearmanr

    means = np.stack([predict_raw(m, fs, idx)["mean"] for m in net.members])  # (members, n, 6)
    sd = means.std(0)
    err = np.abs(means.mean(0) - t.consensus[idx])
    return {"member_sd_mean": round(float(sd.mean()), 4),
            "spearman_member_sd_with_error": round(float(spearmanr(sd.ravel(), err.ravel()).statistic), 3)}


def summary(name: str, seconds: float, epochs: int, net: DermEvalEnsemble, history: list[dict],
            fs: FeatureSet, t: Targets, idx: dict[str, np.ndarray]) -> dict:
    members = sorted({h["member"] for h in history})
    return {"way": name, "seconds": round(seconds, 1), "seconds_per_epoch": round(seconds / epochs, 2),
            "member_val_mae_kept": [round([h for h in history if h["member"] == m][-1]["val_mae"], 4)
                                    for m in members],
            "ensemble_val_overall_mae_raw": overall_mae(net, fs, t, idx["val"]),
            "ensemble_test_overall_mae_raw": overall_mae(net, fs, t, idx["test"]),
            "test_split_members": spread(net, fs, t, idx["test"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default=str(REPO / "params.yaml"))
    ap.add_argument("--epochs", type=int, default=None, help="per network (default: train.epochs)")
    ap.add_argument("--members", type=int, default=None, help="networks (default: train.members)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "training.json"))
    args = ap.parse_args()
    params = load_params(args.params)
    d = params.data
    cfg = params.train.with_(early_stopping=False)
    cfg = cfg.with_(epochs=args.epochs or cfg.epochs, members=args.members or cfg.members)
    if cfg.members < 2:
        sys.exit("bench_training: compare at least 2 members (--members)")
    features = Path(d.features) / "features.npz"
    if not features.is_file():
        sys.exit(f"bench_training: no features at {features} (run `dvc repro` first)")
    rows_by_id = {r["id"]: r for r in read_rows(Path(d.prepared) / "records.jsonl")}
    splits = json.loads(Path(d.splits).read_text("utf-8"))
    fs = FeatureSet.load(features)
    known = [(n, c.category) for c in default_catalogue().conditions for n in c.names]
    _, idx, t, _ = training_inputs(fs, rows_by_id, splits, cfg, known_names=known)
    print(f"bench_training: {len(idx['train'])} training rows, {cfg.members} networks x {cfg.epochs} epochs",
          file=sys.stderr)

    t0 = time.perf_counter()
    nets, history = [], []
    for m in range(cfg.members):
        net, curve = train_network(fs, t, idx["train"], idx["val"], cfg.with_(seed=cfg.seed + MEMBER_SEED_STRIDE * m),
                                   desc=f"one after another {m + 1}/{cfg.members}")
        nets.append(net)
        history += [{"member": m, **h} for h in curve]
    one_by_one = DermEvalEnsemble(NetConfig.from_train(cfg, len(t.defect_names), len(t.categories)), nets)
    sequential = summary("one after another", time.perf_counter() - t0, cfg.epochs, one_by_one, history, fs, t, idx)

    t0 = time.perf_counter()
    stacked_net, stacked_history = train_members(fs, t, idx["train"], idx["val"], cfg)
    stacked = summary("side by side", time.perf_counter() - t0, cfg.epochs, stacked_net, stacked_history, fs, t, idx)

    res = {"benchmark": "ensemble training: members one after another vs side by side (simulated panel)",
           "simulated": True, "members": cfg.members, "epochs": cfg.epochs, "train_rows": int(len(idx["train"])),
           "batch_size": cfg.batch_size, "hidden": cfg.hidden, "torch": torch.__version__,
           "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(), "machine": platform.machine(),
           "results": [sequential, stacked],
           "speedup": round(sequential["seconds"] / stacked["seconds"], 2),
           "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    write_json(args.out, res)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
