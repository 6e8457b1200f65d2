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
        for k, fig in paired["difference"].items():
            m = paired["mae"][k]
            lines.append(f"| {k} | {m['challenger']:.4f} | {m['champion']:.4f} | {fig['value']:+.4f} | "
                         f"[{fig['ci_low']:+.4f}, {fig['ci_high']:+.4f}] |")
        u = paired.get("unsafe_recall")
        if u and u["n"]:
            lines.append(f"| unsafe recall (Safety < {u['floor']}, n={u['n']}) | {u['challenger']:.3f} | "
                         f"{u['champion']:.3f} | {u['value']:+.3f} | [{u['ci_low']:+.3f}, {u['ci_high']:+.3f}] |")
    return "\n".join(lines) + "\n"


def champion_comparer(records: Path, features: Path, splits: Path, challenger: Path, model_name: str,
                      params: Any) -> Callable[[str], dict[str, Any]]:
    """``compare(champion_version)``: that registered version re-scores the challenger's own test rows.

    Both evaluators read the same feature set, so the paired differences measure the models,
    not two test sets. The challenger is scored once, on first use.
    """
    from dermeval.evaluation import paired_comparison
    from dermeval.formats.common import read_rows
    from dermeval.model.data import FeatureSet
    from dermeval.model.evaluator import load_evaluator
    from dermeval.schema import DIMENSIONS

    cache: dict[str, Any] = {}

    def scores(evaluator, fs, idx) -> dict[str, Any]:
        pred = evaluator.predict(fs, idx)["scores"]
        return {d: pred[:, j] for j, d in enumerate(DIMENSIONS)}

    def compare(version: str) -> dict[str, Any]:
        if not cache:
            split = json.loads(splits.read_text("utf-8"))
            rows = {r["id"]: r for r in read_rows(records)}
            fs = FeatureSet.load(features)
            idx = [i for i, rid in enumerate(fs.ids) if split.get(rid) == "test"]
            cache.update(fs=fs, idx=idx, rows=[rows[fs.ids[i]] for i in idx],
                         mine=scores(load_evaluator(challenger), fs, idx))
        champion = load_evaluator(f"models:/{model_name}/{version}")
        mine_enc = json.loads((challenger / "config.json").read_text("utf-8")).get("encoders")
        # A champion from before encoder identities were recorded is tried as is (other shapes raise).
        if champion.meta.get("encoders") and champion.meta["encoders"] != mine_enc:
            raise ValueError(f"v{version} was trained on other encoders ({champion.meta.get('encoders')}); "
                             "the challenger's features do not fit it")
        theirs = scores(champion, cache["fs"], cache["idx"])
        b = params.gate.paired
        return paired_comparison(cache["rows"], cache["mine"], theirs, n_boot=b.n_boot,
                                 safety_floor=params.monitor.safety_floor,
                                 slice_kinds=[k for k in b.slice_kinds.split(",") if k], slice_min_n=b.slice_min_n)

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
                                Path(args.splits or params.data.splits), Path(args.model), rp.model_name, params)
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
    with mlflow.start_run(run_name=f"pipeline {commit[:8] or 'no-git'}") as run:
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
                "mlflow.note.content": "DermEval pipeline run" + (" (simulated data)" if simulated else ""),
            })
            for h in _history(reports / "train" / "history.csv"):
                mlflow.log_metrics({"train_loss": h["train_loss"], "val_mae": h["val_mae"]}, step=int(h["epoch"]))
            metrics = agreement_metrics(report, judge)
            flat = json.loads((reports / "metrics.json").read_text("utf-8"))
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
                                                       experiment=os.environ.get("DVC_EXP_NAME") or None,
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
            "experiment": os.environ.get("DVC_EXP_NAME") or None,
            "metrics": {k: flat[k] for k in flat}}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "gate.json", gate)
    (out / "gate.md").write_text(gate_markdown(gate), "utf-8")
    verdict = ("promoted to champion" if decision.passed and (after and str(after.version) == version)
               else "passed the gate, not promoted" if decision.passed
               else "NOT promoted: " + "; ".join(decision.reasons))
    print(f"register: {rp.model_name} v{version} {verdict}" + (f" ({note})" if note else ""), file=sys.stderr)
    return 1 if args.strict and not decision.passed else 0


if __name__ == "__main__":
    sys.exit(main())
