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
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dermeval.formats.common import write_json
from dermeval.params import ParamsError, load_params
from pipelines.champion import champion_comparer
from pipelines.run_record import (
    _flatten,
    _git,
    _history,
    agreement_metrics,
    changed_params,
    gate_markdown,
    paired_metrics,
    run_name,
    run_note,
)


@dataclasses.dataclass
class Inputs:
    """What the earlier stages left for this one."""

    report: dict[str, Any]  # reports/eval/agreement.json
    judge: dict[str, Any] | None
    generalisation: dict[str, Any] | None  # the full generalisation report
    gen_flat: dict[str, Any]  # its flat figures (the gate's generalisation checks read them)
    flat: dict[str, Any]  # reports/metrics.json
    meta: dict[str, Any]  # the evaluator's saved meta
    data_manifest: dict[str, Any]

    @property
    def simulated(self) -> bool:
        return bool(self.data_manifest.get("simulated_ratings", True))


def _json(path: Path) -> Any:
    return json.loads(path.read_text("utf-8")) if path.is_file() else None


def read_inputs(reports: Path, model: Path, prepared: Path) -> Inputs:
    from dermeval.model.evaluator import Evaluator

    return Inputs(report=json.loads((reports / "eval" / "agreement.json").read_text("utf-8")),
                  judge=_json(reports / "judge" / "agreement.json"),
                  generalisation=_json(reports / "generalisation" / "report.json"),
                  gen_flat=_json(reports / "generalisation.json") or {},
                  flat=json.loads((reports / "metrics.json").read_text("utf-8")),
                  meta=Evaluator.load(model).meta, data_manifest=_json(prepared / "manifest.json") or {})


def _parser() -> argparse.ArgumentParser:
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
    return ap


class StageFailed(Exception):
    """A known failure: the message is printed, the stage exits 2, nothing half-done is kept."""


def open_registry(params: Any) -> tuple[Any, str, str | None]:
    """The registry and the champion it holds now; fails closed (an unreadable champion is not "no champion")."""
    import mlflow

    from dermeval.portable import relocate_tracking
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
    relocate_tracking(uri, rp.artifact_root)  # a copied or moved project registers into its own folder
    try:
        check_reachable(uri)
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        registry = Registry(uri, rp.model_name, rp.audit_log)
        if mlflow.get_experiment_by_name(rp.experiment) is None:
            mlflow.create_experiment(rp.experiment, artifact_location=Path(rp.artifact_root).resolve().as_uri())
        mlflow.set_experiment(rp.experiment)
        seen = registry.version_of(CHAMPION)
    except TrackingUnavailable as exc:
        raise StageFailed(f"{exc}; nothing was logged or registered") from None
    except Exception as exc:  # the server answered, but not as a tracking server should
        raise StageFailed(f"cannot use MLflow at {masked(uri)}: {str(exc).strip().splitlines()[0]}; nothing was "
                          "logged or registered") from None
    return registry, uri, str(seen.version) if seen else None


def log_run(inputs: Inputs, params: Any, reports: Path, commit: str) -> None:
    """Params, tags, training curves, every metric, figures, the model card and the reports, on the active run."""
    import mlflow

    from dermeval.reporting import model_card, save_figures

    lock = Path("dvc.lock")
    manifest = inputs.data_manifest
    mlflow.log_params(_flatten({k: getattr(params, k) for k in ("prepare", "split", "train", "judge",
                                                                 "evaluate", "gate")}))
    mlflow.set_tags({
        "git_commit": commit or "unknown", "git_dirty": str(bool(_git("status", "--porcelain"))),
        "dvc_lock_sha256": hashlib.sha256(lock.read_bytes()).hexdigest() if lock.is_file() else "none",
        "data_fingerprint": manifest.get("fingerprint", inputs.meta.get("data_fingerprint", "unknown")),
        "data_source": manifest.get("source", "unknown"), "simulated": str(inputs.simulated),
        "real_text": str(bool(manifest.get("real_text"))),
        "data_source_reason": manifest.get("source_reason", "unknown"),
        "feedback_records": str((manifest.get("feedback") or {}).get("records", 0)),
        "feedback_batches": ",".join((manifest.get("feedback") or {}).get("batches", []))[:500] or "none",
        "mlflow.note.content": run_note(inputs.flat, inputs.gen_flat, inputs.simulated),
    })
    for h in _history(reports / "train" / "history.csv"):
        # the members of an ensemble one after another (a file written before ensembles has no step)
        step = int(h.get("step") or h["epoch"])
        mlflow.log_metrics({"train_loss": h["train_loss"], "val_mae": h["val_mae"]}, step=step)
    metrics = agreement_metrics(inputs.report, inputs.judge)
    metrics.update({k: float(v) for k, v in inputs.flat.items()})
    metrics.update({k: float(v) for k, v in inputs.gen_flat.items() if v == v})  # NaN: a set not built
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
        card.write_text(model_card(inputs.report, inputs.meta, simulated=inputs.simulated, judge=inputs.judge,
                                   generalisation=inputs.generalisation), "utf-8")
        mlflow.log_artifact(str(card))
    mlflow.log_artifacts(str(reports / "eval"), "eval")
    if inputs.judge:
        mlflow.log_artifact(str(reports / "judge" / "agreement.json"), "judge")
    if inputs.generalisation:
        mlflow.log_artifacts(str(reports / "generalisation"), "generalisation")


def register_and_gate(registry: Any, run: Any, model: str, inputs: Inputs, params: Any, seen_champion: str | None,
                      experiment: str | None, commit: str, compare: Callable[[str], dict[str, Any]]):
    """Log the model, register it as challenger, gate it; a version that fails midway is deleted again."""
    import mlflow

    from dermeval.serving.mlflow_model import log_evaluator
    from registry.mlflow_registry import TrackingUnavailable

    version = None
    try:
        info = log_evaluator(model, name="model")
        version = registry.register(info.model_uri, run.info.run_id,
                                    tags={"data_fingerprint": str(inputs.meta.get("data_fingerprint")),
                                          "simulated": str(inputs.simulated), "git_commit": commit or "unknown"},
                                    model_id=getattr(info, "model_id", None))
        mlflow.set_tag("registered_version", version)
        # `dvc exp run` sets DVC_EXP_NAME: an experiment registers a challenger with its verdict only.
        decision, note = registry.gate_and_promote(version, inputs.report, params.gate, seen_champion,
                                                   experiment=experiment, generalisation=inputs.gen_flat,
                                                   compare=compare)
        mlflow.log_metrics(paired_metrics(decision.paired))
    except Exception as exc:
        if version is not None:  # best effort: no half-registered version; the original error matters
            with contextlib.suppress(Exception):
                registry.client.delete_model_version(registry.model_name, version)
        if isinstance(exc, TrackingUnavailable):  # a known registry failure: the message, not a traceback
            raise StageFailed(f"{exc}; v{version} was not kept" if version else str(exc)) from None
        raise
    return version, decision, note


def write_gate_report(registry: Any, uri: str, run: Any, version: str, decision: Any, note: str | None,
                      inputs: Inputs, experiment: str | None, out: Path, gate_min_n: int) -> dict[str, Any]:
    """gate.json and gate.md, and the same review on the model version's description in MLflow."""
    from registry.mlflow_registry import CHAMPION, masked

    after = registry.version_of(CHAMPION)
    gate = {"model": registry.model_name, "version": version, "run_id": run.info.run_id, "tracking_uri": masked(uri),
            "time": registry._now(), "decision": decision.to_dict(), "note": note, "simulated": inputs.simulated,
            "champion_after": str(after.version) if after else None, "experiment": experiment,
            "metrics": dict(inputs.flat),
            "expert": {"n": int((inputs.report.get("expert") or {}).get("n", 0)), "min_n": gate_min_n}}
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "gate.json", gate)
    (out / "gate.md").write_text(gate_markdown(gate), "utf-8")
    try:  # the review view on the version itself, in MLflow's model registry UI
        registry.client.update_model_version(registry.model_name, version, description=gate_markdown(gate)[:20000])
    except Exception as exc:  # the decision is recorded already (tags, audit log, gate.json)
        print(f"register: could not write v{version}'s description: {str(exc).splitlines()[0]}", file=sys.stderr)
    return gate


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        params = load_params(args.params)
    except ParamsError as exc:
        print(f"register: {exc}", file=sys.stderr)
        return 2
    import mlflow

    from registry.mlflow_registry import masked

    data = params.data
    commit, experiment = _git("rev-parse", "HEAD"), os.environ.get("DVC_EXP_NAME") or None
    try:
        registry, uri, seen_champion = open_registry(params)  # first: an unreadable registry stops everything
        inputs = read_inputs(Path(args.reports), Path(args.model), Path(data.prepared))
        compare = champion_comparer(Path(args.records or Path(data.prepared) / "records.jsonl"),
                                    Path(args.features or Path(data.features) / "features.npz"),
                                    Path(args.splits or data.splits), Path(args.model), params.register.model_name,
                                    params, Path(args.sets) if args.sets else None)
        with mlflow.start_run(run_name=run_name(experiment, commit, changed_params(args.params))) as run:
            try:
                log_run(inputs, params, Path(args.reports), commit)
                version, decision, note = register_and_gate(registry, run, args.model, inputs, params,
                                                            seen_champion, experiment, commit, compare)
            except StageFailed:
                mlflow.end_run(status="FAILED")
                raise
            except Exception as exc:
                print(f"register: failed against {masked(uri)}: {type(exc).__name__}: {exc}", file=sys.stderr)
                raise
            mlflow.set_tags({"gate.decision": "passed" if decision.passed else "failed"})
    except StageFailed as exc:
        print(f"register: {exc}", file=sys.stderr)
        return 2
    gate = write_gate_report(registry, uri, run, version, decision, note, inputs, experiment, Path(args.out),
                             params.gate.expert_min_n)
    after = gate["champion_after"]
    verdict = ("promoted to champion" if decision.passed and after == version
               else "passed the gate, not promoted" if decision.passed
               else "NOT promoted: " + "; ".join(decision.reasons))
    print(f"register: {registry.model_name} v{version} {verdict}" + (f" ({note})" if note else ""), file=sys.stderr)
    return 1 if args.strict and not decision.passed else 0


if __name__ == "__main__":
    sys.exit(main())
