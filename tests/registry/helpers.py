"""Synthetic evaluation reports and registry versions for the registry tests."""

from __future__ import annotations

from pathlib import Path

from dermeval.schema import DIMENSIONS


def make_report(overall: float = 0.14, dims: dict[str, float] | None = None, slice_mae: float = 0.2,
                slice_n: int = 30) -> dict:
    dims = {d: 0.22 for d in DIMENSIONS} | (dims or {})

    def m(v):
        return {"mae": {"value": v, "ci_low": v - 0.02, "ci_high": v + 0.02},
                "spearman": {"value": 0.8, "ci_low": 0.75, "ci_high": 0.85}}

    return {"n": 504, "n_cases": 84, "evaluator": {**{d: m(v) for d, v in dims.items()}, "overall": m(overall)},
            "baseline_mean": {d: m(0.6) for d in (*DIMENSIONS, "overall")},
            "slices": {"category": {"Acne": {"n": slice_n, "overall": {"value": slice_mae}},
                                    "Tiny": {"n": 5, "overall": {"value": 2.0}}},
                       "skin_type": {"6": {"n": 48, "overall": {"value": 0.19}}}}}


def flat(report: dict) -> dict[str, float]:
    ev = report["evaluator"]
    return {"overall_mae": ev["overall"]["mae"]["value"], **{f"mae_{d}": ev[d]["mae"]["value"] for d in DIMENSIONS}}


def new_version(registry, tmp: Path, report: dict) -> str:
    """A run holding the report's flat metrics and a small artifact, registered as a version."""
    import mlflow

    mlflow.set_tracking_uri(registry.tracking_uri)
    art = tmp / "model"
    art.mkdir(exist_ok=True)
    (art / "MLmodel").write_text("flavors: {}\n")
    # Another test in the session may have left an active experiment of another store.
    experiment = mlflow.set_experiment("registry-tests")
    with mlflow.start_run(experiment_id=experiment.experiment_id) as run:
        mlflow.log_metrics(flat(report))
        mlflow.log_artifacts(str(art), "model")
    return registry.register(f"{run.info.artifact_uri}/model", run.info.run_id)
