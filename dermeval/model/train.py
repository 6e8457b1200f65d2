"""Training: a loop you can read top to bottom, then isotonic calibration on a held-out split.

Longer than 300 lines: one network's loop and the ensemble's side-by-side loop share the loss, the
batching and the early stopping, and a member of the one must train as the other would train it
alone (``tests/model/test_training_loop.py``); apart, each would import the other's internals.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.isotonic import IsotonicRegression
from torch.func import functional_call, stack_module_state, vmap
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
    """The training loss of the rows ``idx`` (every row counts)."""
    return _weighted_loss(out, _batch_targets(t, idx, len(idx)), cfg, bool(t.categories), bool(t.defect_names))


def _batch_targets(t: Targets, idx: np.ndarray, rows: int) -> dict[str, torch.Tensor]:
    """The targets of ``idx`` as tensors of ``rows`` rows: rows past ``len(idx)`` are padding
    (weight 0, no label of any kind), so batches of different sizes stack into one shape."""
    n = len(idx)

    def padded(a: np.ndarray, fill: float | int | bool) -> torch.Tensor:
        out = np.full((rows, *a.shape[1:]), fill, a.dtype)
        out[:n] = a[idx]
        return torch.from_numpy(out)

    raters = padded(t.raters, np.nan)
    valid = ~torch.isnan(raters)
    return {"weight": (torch.arange(rows) < n).to(torch.float32), "consensus": padded(t.consensus, 0.0),
            "raters": torch.nan_to_num(raters), "rater_valid": valid.to(torch.float32),
            "category": padded(t.category, 0).clamp(min=0), "image_ok": padded(t.image_ok, False).to(torch.float32),
            "conclusion_ok": padded(t.conclusion_ok, False).to(torch.float32),
            "has_defects": padded(t.has_defects, False).to(torch.float32), "defects": padded(t.defects, 0.0)}


def _mean(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The mean of ``x`` over the entries ``w`` weighs (0 where none: the term then adds nothing)."""
    return (x * w).sum() / w.sum().clamp(min=1)


def _weighted_loss(out: dict[str, torch.Tensor], y: dict[str, torch.Tensor], cfg: TrainConfig,
                   has_categories: bool, has_problems: bool) -> torch.Tensor:
    """The loss as weighted means, without selecting rows: the same function of one batch serves one
    network and, under ``torch.func.vmap``, every member of an ensemble at once. A term with no row
    to learn from (no rater breakdown, no known category, no problem labels) adds nothing."""
    w = y["weight"]
    err = (out["mean"] - y["consensus"]).abs()  # (B, 6)
    loss = _mean(err.mean(1), w)
    loss = loss + cfg.overall_weight * _mean((out["mean"].mean(1) - y["consensus"].mean(1)).abs(), w)
    # Individual raters teach the variance: their spread around the mean is the uncertainty (Gaussian
    # NLL; the log-variance is clamped to [-8, 4], so the variance needs no floor here).
    logvar = out["logvar"][:, None]  # (B, 1, 6) against raters (B, R, 6)
    nll = 0.5 * (logvar + (y["raters"] - out["mean"][:, None]) ** 2 * torch.exp(-logvar))
    loss = loss + cfg.nll_weight * _mean(nll, y["rater_valid"] * w[:, None, None])
    if has_categories:
        known = y["image_ok"] * w
        loss = loss + cfg.category_weight * _mean(F.cross_entropy(out["image_category"], y["category"],
                                                                  reduction="none"), known)
        if cfg.context_category:  # the image-and-findings estimate learns the category too
            loss = loss + cfg.category_weight * _mean(F.cross_entropy(out["seen_category"], y["category"],
                                                                      reduction="none"), known)
        loss = loss + cfg.category_weight * _mean(F.cross_entropy(out["text_category"], y["category"],
                                                                  reduction="none"), y["conclusion_ok"] * w)
    if has_problems:
        bce = F.binary_cross_entropy_with_logits(out["defect_logits"], y["defects"], reduction="none")
        loss = loss + cfg.defect_weight * _mean(bce, (y["has_defects"] * w)[:, None].expand_as(bce))
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
    idx = np.asarray(idx, dtype=np.int64)
    # Rows of similar unit counts share a batch, which pads to its longest row; outputs come back in idx's order.
    by_length = np.argsort(np.diff(fs.offsets)[idx], kind="stable")
    for start in range(0, len(idx), batch_size):
        rows = idx[by_length[start:start + batch_size]]
        out = net(**fs.batch(rows))
        for k in parts:
            parts[k].append(out[k].numpy())
        if with_attention:
            attn = out["attention"].numpy()
            attention += [attn[r, :, : int(fs.offsets[i + 1] - fs.offsets[i])] for r, i in enumerate(rows)]
    back = np.argsort(by_length)
    result: dict[str, Any] = {k: np.concatenate(v)[back] if v else np.zeros((0, 6)) for k, v in parts.items()}
    if with_attention:
        result["attention"] = [attention[j] for j in back]
    return result


def train_network(fs: FeatureSet, t: Targets, train_idx: np.ndarray, val_idx: np.ndarray, cfg: TrainConfig,
                  progress: bool = True, desc: str = "train", align_seed: int | None = None,
                  ) -> tuple[DermEvalNet, list[dict[str, float]]]:
    """Train one network with early stopping on validation MAE (``cfg.early_stopping``; else all epochs, keeping
    the last); return the network and the curves. ``align_seed``: the batches run in the order
    :func:`train_members` gives a member of an ensemble of that seed (:func:`by_width`), not their own."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    step_rng = None if align_seed is None else np.random.default_rng([align_seed, ALIGN_STREAM])
    net = DermEvalNet(NetConfig.from_train(cfg.with_(members=1), len(t.defect_names), len(t.categories)))
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    keeper, history = _BestEpoch(cfg), []
    bar = tqdm(range(1, cfg.epochs + 1), desc=desc, unit="epoch", disable=not progress)
    for epoch in bar:
        net.train()
        order = rng.permutation(train_idx)
        total = 0.0
        batches = length_batches(fs, order, cfg.batch_size, rng)
        if step_rng is not None:
            batches = by_width(fs, batches, step_rng.permutation(len(batches)))
        for idx in batches:
            loss = _loss(net(**fs.batch(idx)), idx, t, cfg)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        sched.step()
        val_mae = _val_mae(net, fs, t, val_idx)
        history.append({"epoch": epoch, "train_loss": total / len(order), "val_mae": val_mae})
        bar.set_postfix(loss=f"{total / len(order):.3f}", val_mae=f"{val_mae:.3f}")
        if not keeper.goes_on(val_mae, net):
            break
    keeper.restore(net)
    return net.eval(), history


def _val_mae(net: DermEvalNet, fs: FeatureSet, t: Targets, val_idx: np.ndarray) -> float:
    return float(np.abs(predict_raw(net, fs, val_idx)["mean"] - t.consensus[val_idx]).mean())


class _BestEpoch:
    """Early stopping for one network (``cfg.early_stopping``; otherwise it never stops and keeps the last
    epoch): remembers the weights of the best validation MAE and says when ``cfg.patience`` epochs passed
    without improvement."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.on, self.patience = cfg.early_stopping, cfg.patience
        self.best, self.state, self.stale = float("inf"), None, 0

    def goes_on(self, val_mae: float, net: DermEvalNet) -> bool:
        """Record this epoch's validation MAE; False once training should stop."""
        if not self.on:
            return True
        if val_mae < self.best - 1e-4:
            self.best, self.state, self.stale = val_mae, copy.deepcopy(net.state_dict()), 0
        else:
            self.stale += 1
        return self.stale < self.patience

    def restore(self, net: DermEvalNet) -> None:
        """Load the best epoch's weights (with early stopping; the last stay otherwise)."""
        if self.state is not None:
            net.load_state_dict(self.state)


MEMBER_SEED_STRIDE = 1000  # member m trains from seed + 1000 m (its weights and its batches)
ALIGN_STREAM = 1  # the order of an ensemble's steps: its own random stream of the seed, not a member's


def train_members(fs: FeatureSet, t: Targets, train_idx: np.ndarray, val_idx: np.ndarray, cfg: TrainConfig,
                  progress: bool = True) -> tuple[DermEvalNet | DermEvalEnsemble, list[dict[str, float]]]:
    """Train ``cfg.members`` networks, member m from seed ``seed + 1000 m`` (its initial weights and its
    data order), and return them as one (a single network as it is, several as a
    :class:`DermEvalEnsemble`), with every member's curve: each history row names its ``member`` and a
    running ``step`` across members.

    One member is :func:`train_network`. Several train side by side: their weights are stacked and one
    optimiser step updates them all (the same forward and loss under ``torch.func.vmap``), each member
    on its own batches, drawn from its own shuffled order as :func:`train_network` draws them. The
    steps line the members' batches up by width (:func:`by_width`: at every step each member runs its
    batch of the same rank in unit count), so the stacked batch pads little. A member thus learns what
    ``train_network(..., align_seed=seed)`` teaches it alone, but for the dropout draws (one stream
    for all): the same batches, in another random order than its own. Training them side by side
    takes about a quarter less time than one after another on two CPU cores
    (``benchmarks/bench_training.py``). With early stopping each member keeps its own best epoch and
    its curve ends where it alone would have stopped; training ends when every member has stopped.
    """
    if cfg.members == 1:
        net, curve = train_network(fs, t, train_idx, val_idx, cfg, progress=progress)
        return net, [{"member": 0, "step": k + 1, **h} for k, h in enumerate(curve)]
    seeds = [cfg.seed + MEMBER_SEED_STRIDE * m for m in range(cfg.members)]
    net_cfg = NetConfig.from_train(cfg.with_(members=1), len(t.defect_names), len(t.categories))
    nets = []
    for seed in seeds:  # each member's initial weights are those train_network draws for its seed
        torch.manual_seed(seed)
        nets.append(DermEvalNet(net_cfg))
    rngs = [np.random.default_rng(seed) for seed in seeds]
    step_rng = np.random.default_rng([cfg.seed, ALIGN_STREAM])
    torch.manual_seed(cfg.seed)
    params, buffers = stack_module_state(nets)
    shape = copy.deepcopy(nets[0]).to("meta")  # the wiring; the stacked tensors are the weights
    opt = torch.optim.AdamW(params.values(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    has_categories, has_problems = bool(t.categories), bool(t.defect_names)

    def member_loss(p: dict, b: dict, x: dict, y: dict) -> torch.Tensor:
        return _weighted_loss(functional_call(shape, (p, b), (), x), y, cfg, has_categories, has_problems)

    losses = vmap(member_loss, randomness="different")
    curves: list[list[dict[str, float]]] = [[] for _ in seeds]
    keepers, running = [_BestEpoch(cfg) for _ in seeds], [True] * len(seeds)
    bar = tqdm(range(1, cfg.epochs + 1), desc=f"train {len(seeds)} networks", unit="epoch", disable=not progress)
    for epoch in bar:
        shape.train()
        plans = [length_batches(fs, rng.permutation(train_idx), cfg.batch_size, rng) for rng in rngs]
        steps = step_rng.permutation(len(plans[0]))  # the same number of batches: the same rows, reordered
        plans = [by_width(fs, plan, steps) for plan in plans]
        totals = np.zeros(len(seeds))
        for batch in zip(*plans, strict=True):
            rows = max(len(ix) for ix in batch)
            per_member = losses(params, buffers, _stacked_inputs(fs, batch, rows),
                                _stack([_batch_targets(t, ix, rows) for ix in batch]))
            opt.zero_grad()
            per_member.sum().backward()
            opt.step()
            totals += per_member.detach().numpy() * [len(ix) for ix in batch]
        sched.step()
        _unstack(params, nets)
        for m, net in enumerate(nets):
            if not running[m]:
                continue
            val_mae = _val_mae(net, fs, t, val_idx)
            curves[m].append({"epoch": epoch, "train_loss": totals[m] / len(train_idx), "val_mae": val_mae})
            running[m] = keepers[m].goes_on(val_mae, net)
        bar.set_postfix(loss=f"{totals.mean() / len(train_idx):.3f}",
                        val_mae=f"{np.mean([c[-1]['val_mae'] for c in curves]):.3f}")
        if not any(running):
            break
    for net, keeper in zip(nets, keepers, strict=True):
        keeper.restore(net)
    history = [{"member": m, "epoch": h["epoch"], "train_loss": h["train_loss"], "val_mae": h["val_mae"]}
               for m, curve in enumerate(curves) for h in curve]
    history = [{**h, "step": k + 1} for k, h in enumerate(history)]
    ensemble = DermEvalEnsemble(NetConfig.from_train(cfg, len(t.defect_names), len(t.categories)), nets)
    return ensemble.eval(), history


def _stack(parts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Same-shaped per-member tensors stacked on a leading member axis."""
    return {k: torch.stack([p[k] for p in parts]) for k in parts[0]}


def _stacked_inputs(fs: FeatureSet, batch: tuple[np.ndarray, ...], rows: int) -> dict[str, torch.Tensor]:
    """Each member's batch (:meth:`FeatureSet.batch`) padded to ``rows`` rows and one unit count, then
    stacked. A padding row has no units and no conclusion; its targets weigh nothing (:func:`_batch_targets`)."""
    parts = [fs.batch(ix) for ix in batch]
    width = max(p["units"].shape[1] for p in parts)
    out = []
    for p in parts:
        padded = {}
        for key, x in p.items():
            wide = key in ("units", "mask")
            full = torch.full((rows, width, *x.shape[2:]) if wide else (rows, *x.shape[1:]),
                              -1 if key == "conclusion" else 0, dtype=x.dtype)
            full[(slice(0, x.shape[0]), slice(0, x.shape[1])) if wide else slice(0, x.shape[0])] = x
            padded[key] = full
        out.append(padded)
    return _stack(out)


@torch.no_grad()
def _unstack(params: dict[str, torch.Tensor], nets: list[DermEvalNet]) -> None:
    """Copy each member's slice of the stacked weights into its own network."""
    for name, stacked in params.items():
        for m, net in enumerate(nets):
            net.get_parameter(name).copy_(stacked[m])


def by_width(fs: FeatureSet, batches: list[np.ndarray], steps: np.ndarray) -> list[np.ndarray]:
    """``batches`` ranked by their widest row's unit count (ties keep their order), then run in the
    order ``steps`` (a permutation of the ranks). Members given the same ``steps`` run batches of
    nearly the same width at every step; each member's own order is still a uniform shuffle."""
    lengths = np.diff(fs.offsets)
    ranked = sorted(batches, key=lambda b: int(lengths[b].max()))
    return [ranked[j] for j in steps]


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

