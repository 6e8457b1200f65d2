"""The champion re-scores the challenger's own rows, for the gate's paired comparison."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def champion_comparer(records: Path, features: Path, splits: Path, challenger: Path, model_name: str,
                      params: Any, sets: Path | None = None) -> Callable[[str], dict[str, Any]]:
    """``compare(champion_version)``: that registered version re-scores the challenger's own rows.

    The rows: the test split (both evaluators read the same feature set), and, when the
    generalise stage wrote them (``sets``), its generated held-out wording and stress-suite
    narratives (featurised once through the shared feature cache). The paired differences
    then measure the models, not two test sets. The challenger is scored once, on first use.
    """
    from dermeval.evaluation import paired_comparison, paired_difference
    from dermeval.formats.common import RowError, iter_jsonl, read_rows
    from dermeval.model.data import FeatureSet, featurize
    from dermeval.model.evaluator import load_evaluator
    from dermeval.schema import DIMENSIONS
    from pipelines.generalise import passes_of

    cache: dict[str, Any] = {}
    b, g = params.gate.paired, params.generalise

    def scores(evaluator, fs, idx=None) -> np.ndarray:
        return evaluator.predict(fs, idx)["scores"]

    def by_dim(matrix: np.ndarray) -> dict[str, np.ndarray]:
        return {d: matrix[:, j] for j, d in enumerate(DIMENSIONS)}

    def prepare() -> None:
        mine = load_evaluator(challenger, cache=params.data.feature_cache)
        split = json.loads(splits.read_text("utf-8"))
        rows = {r["id"]: r for r in read_rows(records)}
        fs = FeatureSet.load(features)
        idx = [i for i, rid in enumerate(fs.ids) if split.get(rid) == "test"]
        cache.update(mine=mine, fs=fs, idx=idx, rows=[rows[fs.ids[i]] for i in idx], mine_test=scores(mine, fs, idx))
        if sets is not None and sets.is_file():
            generated = [r for _, r in iter_jsonl(sets) if not isinstance(r, RowError)]
            gfs, _ = featurize(generated, Path(params.data.prepared), mine.featurizer, progress=False,
                               source=str(sets))
            at = {rid: k for k, rid in enumerate(gfs.ids)}
            generated = [r for r in generated if r["id"] in at]  # a row its image failed for is left out
            order = np.array([at[r["id"]] for r in generated], int)
            cache.update(gfs=gfs, order=order, generated=generated, mine_gen=scores(mine, gfs)[order])

    def compare(version: str) -> dict[str, Any]:
        if not cache:
            prepare()
        champion = load_evaluator(f"models:/{model_name}/{version}", cache=params.data.feature_cache)
        mine_enc = cache["mine"].meta.get("encoders")
        # A champion from before encoder identities were recorded is tried as is (other shapes raise).
        if champion.meta.get("encoders") and champion.meta["encoders"] != mine_enc:
            raise ValueError(f"v{version} was trained on other encoders ({champion.meta.get('encoders')}); "
                             "the challenger's features do not fit it")
        out = paired_comparison(cache["rows"], by_dim(cache["mine_test"]),
                                by_dim(scores(champion, cache["fs"], cache["idx"])), n_boot=b.n_boot,
                                safety_floor=params.monitor.safety_floor,
                                slice_kinds=[k for k in b.slice_kinds.split(",") if k], slice_min_n=b.slice_min_n)
        if "generated" in cache:
            rows, mine = cache["generated"], cache["mine_gen"]
            theirs = scores(champion, cache["gfs"])[cache["order"]]
            held = np.array([r["set"] == "heldout_wording" for r in rows])
            if held.any():
                out["sets"] = {"heldout_wording": paired_comparison(
                    [r for r, h in zip(rows, held, strict=True) if h], by_dim(mine[held]), by_dim(theirs[held]),
                    n_boot=b.n_boot, slice_kinds=())}
            stress = ~held
            srows = [r for r, s in zip(rows, stress, strict=True) if s]
            ours = passes_of(srows, mine[stress], g)
            other = passes_of(srows, theirs[stress], g)
            if ours:
                diff = np.array([a[2] for a in ours], float) - np.array([t[2] for t in other], float)
                fig = paired_difference(diff, [a[1] for a in ours], n_boot=b.n_boot)
                out["stress"] = {**fig, "challenger": float(np.mean([a[2] for a in ours])),
                                 "champion": float(np.mean([t[2] for t in other]))}
        return out

    return compare
