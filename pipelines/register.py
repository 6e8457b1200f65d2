"""Stage ``register``: log the run to MLflow, register the evaluator, gate its promotion.

One MLflow run per pipeline execution: every param, the git commit, the ``dvc.lock``
hash and the data fingerprint as tags, the training curves, every agreement metric (per
dimension, per slice, with CIs, baselines and the inter-rater ceiling), the judge-vs-DermEval
table, figures, a model card, and the model logged from code with its signature. The
version is registered with the ``challenger`` alias and becomes ``champion`` only if the
gate passes. A failed gate is a decision, not a crash: exit 0 unless ``--strict``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dermeval.formats.common import write_json
from dermeval.params import ParamsError, load_params


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def _flatten(obj: Any, prefix: str = "") -> dict[str, str]:
    if dataclasses.is_dataclass(obj):
        obj = dataclasses.asdict(obj)
    if isinstance(obj, dict):
        out: dict[str, str] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): str(obj)}


def _key(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_\-./ ]+", "_", text).replace(" ", "_")


def changed_params(params_path: str) -> list[str]:
    """``section.key=value`` for every param that differs from the committed params.yaml (an experiment's -S)."""
    import yaml

    committed = _git("show", f"HEAD:{params_path}")
    if not committed:
        return []
    try:
        before = _flatten(yaml.safe_load(committed) or {})
        now = _flatten(yaml.safe_load(Path(params_path).read_text("utf-8")) or {})
    except (yaml.YAMLError, OSError):
        return []
    return [f"{k}={v}" for k, v in sorted(now.items()) if before.get(k) != v]


def run_name(experiment: str | None, commit: str, changes: list[str]) -> str:
    """``exp lr-small: train.lr=0.001`` for a DVC experiment, ``pipeline 1a2b3c4d`` for the main run."""
    head = f"exp {experiment}" if experiment else f"pipeline {commit[:8] or 'no-git'}"
    tail = ", ".join(changes[:4]) + (f" (+{len(changes) - 4})" if len(changes) > 4 else "")
    return f"{head}: {tail}"[:240] if tail else head


def run_note(flat: dict[str, Any], gen: dict[str, Any], simulated: bool) -> str:
    """The run's description (MLflow shows it first): the figures a reviewer looks at before any other."""
    keys = [("overall MAE (test split)", flat.get("overall_mae")), ("Safety MAE", flat.get("mae_safety")),
            ("unsafe-narrative recall", flat.get("unsafe_recall")),
            ("transfer MAE (unseen real text)", gen.get("gen_transfer_overall_mae")),
            ("stress-suite directional accuracy", gen.get("gen_stress_accuracy")),
            ("clean references, mean overall", gen.get("gen_clean_overall_mean"))]
    lines = ["DermEval pipeline run" + (" (simulated data: every rating from the simulated panel)" if simulated
                                         else ""), "", "| key figure | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4f} |" for k, v in keys if isinstance(v, (int, float)) and v == v]
    return "\n".join(lines)


def agreement_metrics(report: dict[str, Any], judge: dict[str, Any] | None) -> dict[str, float]:
    """Every agreement number as a flat MLflow metric name -> value (NaNs left out)."""
    out: dict[str, float] = {}
    for d, table in report["evaluator"].items():
        for m, v in table.items():
            out[f"{d}.{m}"] = v["value"]
            out[f"{d}.{m}_ci_low"] = v["ci_low"]
            out[f"{d}.{m}_ci_high"] = v["ci_high"]
    for label in ("baseline_mean", "inter_rater_ceiling"):
        for d, table in report.get(label, {}).items():
            out[f"{label}.{d}.mae"] = table["mae"]["value"]
    for kind, table in report.get("slices", {}).items():
        for value, s in table.items():
            out[_key(f"slice.{kind}.{value}.overall_mae")] = s["overall"]["value"]
            out[_key(f"slice.{kind}.{value}.n")] = s["n"]
    if judge:
        for d, table in judge["evaluator"].items():
            out[f"judge.{d}.mae"] = table["mae"]["value"]
            out[f"judge.{d}.spearman"] = table["spearman"]["value"]
    return {k: float(v) for k, v in out.items() if v == v}


def _history(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    with path.open() as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def gate_markdown(gate: dict[str, Any]) -> str:
    d = gate["decision"]
    lines = [f"# Gate: {gate['model']} v{gate['version']} — {'PASSED' if d['passed'] else 'FAILED'}", "",
             f"- champion before: {('v' + d['champion_version']) if d['champion_version'] else 'none'}",
             f"- champion after: {('v' + gate['champion_after']) if gate['champion_after'] else 'none'}",
             f"- MLflow run: `{gate['run_id']}` ({gate['tracking_uri']})", f"- time: {gate['time']}"]
    if gate.get("note"):
        lines.append(f"- note: {gate['note']}")
    if gate.get("simulated"):
        lines.append("- figures are from simulated data")
    lines += ["", "| check | value | bound | result |", "|---|---|---|---|"]
    lines += [f"| {c['name']} | {c['value']:.4f} | {c['op']} {c['bound']:.4f} | {'pass' if c['passed'] else 'FAIL'} |"
              for c in d["checks"]]
    paired = d.get("paired")
    if paired and not paired.get("error"):
        lines += ["", f"## Challenger vs champion v{d['champion_version']}, same {paired['n']} test narratives "
                  f"({paired['n_cases']} cases)", "",
                  "Mean absolute error of each, and the paired difference (challenger - champion) with its 95% CI "
                  "(cases resampled).", "",
                  "| | challenger | champion | difference | 95% CI |", "|---|---|---|---|---|"]
        from dermeval.evaluation import paired_rows

        for r in paired_rows(paired):
            f = ".3f" if r["share"] else ".4f"
            lines.append(f"| {r['figure']} | {r['challenger']:{f}} | {r['champion']:{f}} | {r['difference']:+{f}} | "
                         f"[{r['ci_low']:+{f}}, {r['ci_high']:+{f}}] |")
    return "\n".join(lines) + "\n"


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
    from dermeval.generalisation import stress_passes
    from dermeval.model.data import FeatureSet, featurize
    from dermeval.model.evaluator import load_evaluator
    from dermeval.schema import DIMENSIONS
    from dermeval.synth.stress import VARIANTS

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
            kw = {"lower_by": g.lower_by, "neutral_up": g.neutral_up, "same_within": g.same_within}
            ours = stress_passes(srows, mine[stress], VARIANTS, **kw)
            other = stress_passes(srows, theirs[stress], VARIANTS, **kw)
            if ours:
                diff = np.array([a[2] for a in ours], float) - np.array([t[2] for t in other], float)
                fig = paired_difference(diff, [a[1] for a in ours], n_boot=b.n_boot)
                out["stress"] = {**fig, "challenger": float(np.mean([a[2] for a in ours])),
                                 "champion": float(np.mean([t[2] for t in other]))}
        return out

    return compare


def paired_metrics(paired: dict[str, Any] | None) -> dict[str, float]:
    """The paired comparison as flat MLflow metrics (``vs_champion.*``)."""
    if not paired or paired.get("error"):
        return {}
    out = {}
    for k, fig in paired["difference"].items():
        out.update({f"vs_champion.{k}.error_diff": fig["value"], f"vs_champion.{k}.error_diff_ci_high": fig["ci_high"]})
    if paired.get("unsafe_recall"):
        u = paired["unsafe_recall"]
        out.update({"vs_champion.unsafe_recall_diff": u["value"], "vs_champion.unsafe_recall_diff_ci_low": u["ci_low"]})
    return {k: float(v) for k, v in out.items() if v == v}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--model", required=True, help="the trained evaluator folder")
    ap.add_argument("--reports", required=True, help="the reports folder (train/, eval/, judge/ inside)")
    ap.add_argument("--out", required=True, help="folder for the gate report (JSON + markdown)")
    ap.add_argument("--records", help="records.jsonl, for re-scoring the champion on the test split "
                    "(default: <data.prepared>/records.jsonl)")
    ap.add_argument("--features", help="features.npz (default: <data.features>/features.npz)")
    ap.add_argument("--splits", help="splits.json (default: <data.splits>)")
    ap.add_argument("--sets", help="the generalise stage's generated held-out wording and stress rows (JSONL): "
                    "the champion scores them too")
    ap.add_argument("--strict", action="store_true", help="exit 1 when the gate fails")
    args = ap.parse_args(argv)
    try:
        params = load_params(args.params)
    except ParamsError as exc:
        print(f"register: {exc}", file=sys.stderr)
        return 2
    from registry.mlflow_registry import (
        CHAMPION,
        Registry,
        TrackingUnavailable,
        check_reachable,
        masked,
        resolve_tracking_uri,
    )

    rp = params.register
    uri = resolve_tracking_uri(rp.tracking_uri)
    from dermeval.portable import relocate_tracking

    relocate_tracking(uri, rp.artifact_root)  # a copied or moved project registers into its own folder
    try:
        check_reachable(uri)
    except TrackingUnavailable as exc:
        print(f"register: {exc}; nothing was logged or registered", file=sys.stderr)
        return 2

    import mlflow

    from dermeval.model.evaluator import Evaluator
    from dermeval.reporting import model_card, save_figures
    from dermeval.serving.mlflow_model import log_evaluator

    reports = Path(args.reports)
    report = json.loads((reports / "eval" / "agreement.json").read_text("utf-8"))
    judge_path = reports / "judge" / "agreement.json"
    judge = json.loads(judge_path.read_text("utf-8")) if judge_path.is_file() else None
    gen_path = reports / "generalisation" / "report.json"
    generalisation = json.loads(gen_path.read_text("utf-8")) if gen_path.is_file() else None
    # The flat figures feed MLflow and the gate; without them the gate's generalisation checks fail.
    gen_flat_path = reports / "generalisation.json"
    gen_flat = json.loads(gen_flat_path.read_text("utf-8")) if gen_flat_path.is_file() else {}
    meta = Evaluator.load(args.model).meta
    prepared = Path(params.data.prepared) / "manifest.json"
    data_manifest = json.loads(prepared.read_text("utf-8")) if prepared.is_file() else {}
    simulated = bool(data_manifest.get("simulated_ratings", True))
    lock = Path("dvc.lock")

    compare = champion_comparer(Path(args.records or Path(params.data.prepared) / "records.jsonl"),
                                Path(args.features or Path(params.data.features) / "features.npz"),
                                Path(args.splits or params.data.splits), Path(args.model), rp.model_name, params,
                                Path(args.sets) if args.sets else None)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    registry = Registry(uri, rp.model_name, rp.audit_log)
    try:
        if mlflow.get_experiment_by_name(rp.experiment) is None:
            mlflow.create_experiment(rp.experiment, artifact_location=Path(rp.artifact_root).resolve().as_uri())
        mlflow.set_experiment(rp.experiment)
        seen = registry.version_of(CHAMPION)
    except TrackingUnavailable as exc:  # fail closed: an unreadable champion is not "no champion"
        print(f"register: {exc}; nothing was logged or registered", file=sys.stderr)
        return 2
    except Exception as exc:  # the server answered, but not as a tracking server should
        print(f"register: cannot use MLflow at {masked(uri)}: {str(exc).strip().splitlines()[0]}; nothing was "
              "logged or registered", file=sys.stderr)
        return 2
    seen_champion = str(seen.version) if seen else None
    version = None
    commit = _git("rev-parse", "HEAD")
    experiment = os.environ.get("DVC_EXP_NAME") or None
    flat = json.loads((reports / "metrics.json").read_text("utf-8"))
    with mlflow.start_run(run_name=run_name(experiment, commit, changed_params(args.params))) as run:
        try:
            mlflow.log_params(_flatten({k: getattr(params, k) for k in ("prepare", "split", "train", "judge",
                                                                         "evaluate", "gate")}))
            mlflow.set_tags({
                "git_commit": commit or "unknown", "git_dirty": str(bool(_git("status", "--porcelain"))),
                "dvc_lock_sha256": hashlib.sha256(lock.read_bytes()).hexdigest() if lock.is_file() else "none",
                "data_fingerprint": data_manifest.get("fingerprint", meta.get("data_fingerprint", "unknown")),
                "data_source": data_manifest.get("source", "unknown"), "simulated": str(simulated),
                "real_text": str(bool(data_manifest.get("real_text"))),
                "data_source_reason": data_manifest.get("source_reason", "unknown"),
                "mlflow.note.content": run_note(flat, gen_flat, simulated),
            })
            for h in _history(reports / "train" / "history.csv"):
                mlflow.log_metrics({"train_loss": h["train_loss"], "val_mae": h["val_mae"]}, step=int(h["epoch"]))
            metrics = agreement_metrics(report, judge)
            metrics.update({k: float(v) for k, v in flat.items()})
            metrics.update({k: float(v) for k, v in gen_flat.items() if v == v})  # NaN: a set not built
            keys = sorted(metrics)
            for start in range(0, len(keys), 500):
                mlflow.log_metrics({k: metrics[k] for k in keys[start:start + 500]})
            with tempfile.TemporaryDirectory() as tmp:
                tables = {}
                for csv_path in (reports / "eval").glob("*.csv"):
                    with csv_path.open() as fh:
                        tables[csv_path.stem] = list(csv.DictReader(fh))
                for fig in save_figures(tables, Path(tmp) / "plots"):
                    mlflow.log_artifact(str(fig), "plots")
                card = Path(tmp) / "model_card.md"
                card.write_text(model_card(report, meta, simulated=simulated, judge=judge,
                                           generalisation=generalisation), "utf-8")
                mlflow.log_artifact(str(card))
            mlflow.log_artifacts(str(reports / "eval"), "eval")
            if judge:
                mlflow.log_artifact(str(judge_path), "judge")
            if generalisation:
                mlflow.log_artifacts(str(gen_path.parent), "generalisation")
            info = log_evaluator(args.model, name="model")
            version = registry.register(info.model_uri, run.info.run_id,
                                        tags={"data_fingerprint": str(meta.get("data_fingerprint")),
                                              "simulated": str(simulated), "git_commit": commit or "unknown"},
                                        model_id=getattr(info, "model_id", None))
            mlflow.set_tag("registered_version", version)
            # `dvc exp run` sets DVC_EXP_NAME: an experiment registers a challenger with its verdict only.
            decision, note = registry.gate_and_promote(version, report, params.gate, seen_champion,
                                                       experiment=experiment,
                                                       generalisation=gen_flat, compare=compare)
            mlflow.log_metrics(paired_metrics(decision.paired))
        except Exception as exc:
            if version is not None:  # best effort: no half-registered version; the original error matters
                with contextlib.suppress(Exception):
                    registry.client.delete_model_version(rp.model_name, version)
            if isinstance(exc, TrackingUnavailable):  # a known registry failure: the message, not a traceback
                mlflow.end_run(status="FAILED")
                print(f"register: {exc}; v{version} was not kept" if version else f"register: {exc}",
                      file=sys.stderr)
                return 2
            print(f"register: failed against {masked(uri)}: {type(exc).__name__}: {exc}", file=sys.stderr)
            raise
        mlflow.set_tags({"gate.decision": "passed" if decision.passed else "failed"})
    after = registry.version_of(CHAMPION)
    gate = {"model": rp.model_name, "version": version, "run_id": run.info.run_id, "tracking_uri": masked(uri),
            "time": registry._now(), "decision": decision.to_dict(), "note": note, "simulated": simulated,
            "champion_after": str(after.version) if after else None,
            "experiment": experiment,
            "metrics": {k: flat[k] for k in flat}}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "gate.json", gate)
    (out / "gate.md").write_text(gate_markdown(gate), "utf-8")
    try:  # the review view on the version itself, in MLflow's model registry UI
        registry.client.update_model_version(rp.model_name, version, description=gate_markdown(gate)[:20000])
    except Exception as exc:  # the decision is recorded already (tags, audit log, gate.json)
        print(f"register: could not write v{version}'s description: {str(exc).splitlines()[0]}", file=sys.stderr)
    verdict = ("promoted to champion" if decision.passed and (after and str(after.version) == version)
               else "passed the gate, not promoted" if decision.passed
               else "NOT promoted: " + "; ".join(decision.reasons))
    print(f"register: {rp.model_name} v{version} {verdict}" + (f" ({note})" if note else ""), file=sys.stderr)
    return 1 if args.strict and not decision.passed else 0


if __name__ == "__main__":
    sys.exit(main())
