"""Training: a loop you can read top to bottom, then isotonic calibration on a held-out split."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.isotonic import IsotonicRegression
from torch.nn import functional as F
from tqdm import tqdm

from dermeval.model.config import TrainConfig
from dermeval.model.data import FeatureSet
from dermeval.model.network import DermEvalEnsemble, DermEvalNet, NetConfig
from dermeval.problems import CHANGES_DIAGNOSIS, CHANGES_IMAGE
from dermeval.schema import DIMENSIONS


@dataclass
class Targets:
    """Training targets aligned with a FeatureSet: consensus, raters (masked), defects (masked)."""

    consensus: np.ndarray  # (n, 6)
    raters: np.ndarray  # (n, R, 6), NaN where a rater is absent
    defects: np.ndarray  # (n, K) 0/1
    has_defects: np.ndarray  # (n,) whether defect labels are known
    defect_names: list[str]
    category: np.ndarray  # (n,) index into categories, -1 if unknown
    conclusion_ok: np.ndarray  # (n,) the conclusion is known to name the case's own diagnosis
    image_ok: np.ndarray  # (n,) the image is known to show that category (not another case's image)
    categories: list[str]

    @classmethod
    def from_rows(cls, rows: list[dict[str, Any]], defect_names: list[str], categories: list[str]) -> Targets:
        rater_ids = sorted({r for row in rows for r in (row.get("raters") or {})})
        n = len(rows)
        raters = np.full((n, max(len(rater_ids), 1), 6), np.nan, np.float32)
        defects = np.zeros((n, max(len(defect_names), 1)), np.float32)
        has = np.zeros(n, bool)
        for i, row in enumerate(rows):
            for j, rid in enumerate(rater_ids):
                if rid in (row.get("raters") or {}):
                    raters[i, j] = [row["raters"][rid][d] for d in DIMENSIONS]
            labels = labelled_problems(row)
            if labels is not None:
                has[i] = True
                for name in labels:
                    if name in defect_names:
                        defects[i, defect_names.index(name)] = 1.0
        consensus = np.array([[row["scores"][d] for d in DIMENSIONS] for row in rows], np.float32)
        cat_pos = {c: i for i, c in enumerate(categories)}
        category = np.array([cat_pos.get(row.get("category"), -1) for row in rows], np.int64)
        def none_of(problems: tuple[str, ...]) -> np.ndarray:
            return defects[:, [defect_names.index(n) for n in problems if n in defect_names]].sum(1) == 0

        ok = has & none_of(CHANGES_DIAGNOSIS) & (category >= 0)
        # A narrative shown with another case's image: the category is what the text describes, not the image.
        image_ok = none_of(CHANGES_IMAGE) & (category >= 0)
        return cls(consensus, raters, defects, has, defect_names, category, ok, image_ok, categories)


def labelled_problems(row: dict[str, Any]) -> list[str] | None:
    """The clinical problems a rated row is labelled with (:mod:`dermeval.problems`): its ``problems``
    field (written by a reviewer; an empty list says "none"), else the defects a generator recorded in
    ``truth``; None when the row says nothing about its problems."""
    if isinstance(row.get("problems"), list):
        return [str(n) for n in row["problems"]]
    truth = row.get("truth")
    if isinstance(truth, dict) and isinstance(truth.get("defects"), list):
        return [str(d["name"]) for d in truth["defects"] if isinstance(d, dict) and "name" in d]
    return None


def _loss(out: dict[str, torch.Tensor], idx: np.ndarray, t: Targets, cfg: TrainConfig) -> torch.Tensor:
    y = torch.from_numpy(t.consensus[idx])
    loss = F.l1_loss(out["mean"], y) + cfg.overall_weight * F.l1_loss(out["mean"].mean(1), y.mean(1))
    raters = torch.from_numpy(t.raters[idx])  # (B, R, 6)
    valid = ~torch.isnan(raters)
    # Individual raters teach the variance: their spread around the mean is the uncertainty.
    var = out["logvar"].exp()[:, None].expand_as(raters)
    mean = out["mean"][:, None].expand_as(raters)
    if valid.any():  # rows rated without a per-rater breakdown (a team's own records) teach no variance
        nll = F.gaussian_nll_loss(mean[valid], raters[valid], var[valid], reduction="mean")
        loss = loss + cfg.nll_weight * nll
    cat = torch.from_numpy(t.category[idx])
    known = torch.from_numpy(t.image_ok[idx])
    if known.any() and t.categories:
        loss = loss + cfg.category_weight * F.cross_entropy(out["image_category"][known], cat[known])
        if cfg.context_category:  # the image-and-findings estimate learns the category too
            loss = loss + cfg.category_weight * F.cross_entropy(out["seen_category"][known], cat[known])
        ok = torch.from_numpy(t.conclusion_ok[idx])
        if ok.any():
            loss = loss + cfg.category_weight * F.cross_entropy(out["text_category"][ok], cat[ok])
    has = torch.from_numpy(t.has_defects[idx])
    if has.any() and t.defect_names:
        bce = F.binary_cross_entropy_with_logits(out["defect_logits"][has], torch.from_numpy(t.defects[idx])[has])
        loss = loss + cfg.defect_weight * bce
    return loss


@torch.inference_mode()
def predict_raw(net: DermEvalNet | DermEvalEnsemble, fs: FeatureSet, idx: np.ndarray, batch_size: int = 256,
                with_attention: bool = False) -> dict[str, Any]:
    """Network outputs for ``idx``; with ``with_attention`` also each row's (6, n_units) attention."""
    net.eval()
    parts: dict[str, list[np.ndarray]] = {"mean": [], "logvar": [], "defect_logits": [], "match": [],
                                          "match_image": [], "image_category": [],
                                          "seen_category": [], "named_category": []}
    attention: list[np.ndarray] = []
    for start in range(0, len(idx), batch_size):
        rows = idx[start:start + batch_size]
        out = net(**fs.batch(rows))
        for k in parts:
            parts[k].append(out[k].numpy())
        if with_attention:
            attn = out["attention"].numpy()
            attention += [attn[r, :, : int(fs.offsets[i + 1] - fs.offsets[i])] for r, i in enumerate(rows)]
    result: dict[str, Any] = {k: np.concatenate(v) if v else np.zeros((0, 6)) for k, v in parts.items()}
    if with_attention:
        result["attention"] = attention
    return result


def train_network(fs: FeatureSet, t: Targets, train_idx: np.ndarray, val_idx: np.ndarray, cfg: TrainConfig,
                  progress: bool = True, desc: str = "train") -> tuple[DermEvalNet, list[dict[str, float]]]:
    """Train one network with early stopping on validation MAE (``cfg.early_stopping``; else all epochs, keeping
    the last); return the network and the curves."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    net = DermEvalNet(NetConfig.from_train(cfg.with_(members=1), len(t.defect_names), len(t.categories)))
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    best, best_state, history, stale = float("inf"), None, [], 0
    bar = tqdm(range(1, cfg.epochs + 1), desc=desc, unit="epoch", disable=not progress)
    for epoch in bar:
        net.train()
        order = rng.permutation(train_idx)
        total = 0.0
        for idx in length_batches(fs, order, cfg.batch_size, rng):
            loss = _loss(net(**fs.batch(idx)), idx, t, cfg)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        sched.step()
        val_mae = float(np.abs(predict_raw(net, fs, val_idx)["mean"] - t.consensus[val_idx]).mean())
        history.append({"epoch": epoch, "train_loss": total / len(order), "val_mae": val_mae})
        bar.set_postfix(loss=f"{total / len(order):.3f}", val_mae=f"{val_mae:.3f}")
        if not cfg.early_stopping:
            continue
        if val_mae < best - 1e-4:
            best, best_state, stale = val_mae, copy.deepcopy(net.state_dict()), 0
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    if best_state is not None:
        net.load_state_dict(best_state)
    return net.eval(), history


MEMBER_SEED_STRIDE = 1000  # member m trains from seed + 1000 m: member 0 is the single network of that seed


def train_members(fs: FeatureSet, t: Targets, train_idx: np.ndarray, val_idx: np.ndarray, cfg: TrainConfig,
                  progress: bool = True) -> tuple[DermEvalNet | DermEvalEnsemble, list[dict[str, float]]]:
    """Train ``cfg.members`` networks (:func:`train_network`, member m from seed ``seed + 1000 m``) and
    return them as one (a single network as it is, several as a :class:`DermEvalEnsemble`), with every
    member's curve: each history row names its ``member`` and a running ``step`` across members."""
    nets, history = [], []
    for m in range(cfg.members):
        desc = f"train {m + 1}/{cfg.members}" if cfg.members > 1 else "train"
        net, curve = train_network(fs, t, train_idx, val_idx, cfg.with_(seed=cfg.seed + MEMBER_SEED_STRIDE * m),
                                   progress=progress, desc=desc)
        nets.append(net)
        history += [{"member": m, "step": len(history) + k + 1, **h} for k, h in enumerate(curve)]
    if cfg.members == 1:
        return nets[0], history
    return DermEvalEnsemble(NetConfig.from_train(cfg, len(t.defect_names), len(t.categories)), nets).eval(), history


def length_batches(fs: FeatureSet, order: np.ndarray, batch_size: int, rng: np.random.Generator,
                   pool_batches: int = 50) -> list[np.ndarray]:
    """``order`` (already shuffled) cut into batches of rows with similar sentence-unit counts, in
    shuffled batch order. Within each pool of ``pool_batches`` batches, rows are sorted by length, so a
    batch pads to little more than its rows' own lengths: real expert narratives run to 40 units and
    DermSynth's to 10, and random batches padded every row to the longest (most of the work)."""
    lengths = np.diff(fs.offsets)[order]
    pool = batch_size * pool_batches
    batches = []
    for start in range(0, len(order), pool):
        chunk = order[start:start + pool][np.argsort(lengths[start:start + pool], kind="stable")]
        batches += [chunk[k:k + batch_size] for k in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def fit_calibration(raw: dict[str, np.ndarray], y: np.ndarray) -> dict[str, Any]:
    """Per dimension: an isotonic map of the mean, and a scale making sigma match the errors."""
    cal: dict[str, Any] = {}
    for j, d in enumerate(DIMENSIONS):
        iso = IsotonicRegression(y_min=0.0, y_max=5.0, increasing=True, out_of_bounds="clip")
        iso.fit(raw["mean"][:, j], y[:, j])
        mapped = iso.predict(raw["mean"][:, j])
        var = np.exp(raw["logvar"][:, j])
        scale = float(np.sqrt(np.mean((mapped - y[:, j]) ** 2) / max(np.mean(var), 1e-9)))
        cal[d] = {"x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist(), "sigma_scale": scale}
    return cal


def fit_style_calibration(raw: dict[str, np.ndarray], y: np.ndarray, expert: np.ndarray,
                          style: dict[str, Any]) -> dict[str, Any]:
    """One calibration (as :func:`fit_calibration`) for the rows written like the expert references
    (``expert``), one for the rest; applied blended by the style model's probability (``style``:
    :meth:`dermeval.model.style.StyleModel.to_json`)."""
    expert = np.asarray(expert, bool)

    def part(mask: np.ndarray) -> dict[str, np.ndarray]:
        return {k: v[mask] for k, v in raw.items() if isinstance(v, np.ndarray) and len(v) == len(mask)}

    return {"by_style": {"expert": fit_calibration(part(expert), y[expert]),
                         "generated": fit_calibration(part(~expert), y[~expert])}, "style": style}


def _apply_one(cal: dict[str, Any], raw: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    mean = np.stack([np.interp(raw["mean"][:, j], cal[d]["x"], cal[d]["y"]) for j, d in enumerate(DIMENSIONS)], 1)
    sigma = np.stack([np.sqrt(np.exp(raw["logvar"][:, j])) * cal[d]["sigma_scale"]
                      for j, d in enumerate(DIMENSIONS)], 1)
    return mean, sigma


def apply_calibration(cal: dict[str, Any], raw: dict[str, np.ndarray],
                      expert_prob: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated means and SDs. A calibration per writing style needs ``expert_prob`` (the style
    model's probability per row) and blends the two: the mixture's mean and SD."""
    if "by_style" not in cal:
        return _apply_one(cal, raw)
    if expert_prob is None:
        raise ValueError("this calibration is per writing style: pass the style model's probabilities")
    ma, sa = _apply_one(cal["by_style"]["expert"], raw)
    mb, sb = _apply_one(cal["by_style"]["generated"], raw)
    p = np.asarray(expert_prob, float)[:, None]
    mean = p * ma + (1 - p) * mb
    sigma = np.sqrt(p * (sa**2 + ma**2) + (1 - p) * (sb**2 + mb**2) - mean**2)
    return mean, sigma

