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


def paired_report(worse_by: float = 0.0, seed: int = 0) -> dict:
    """A real paired comparison on synthetic rated rows: the challenger ``worse_by`` further from the panel
    than the champion on every row and dimension (0: the same scores)."""
    import numpy as np

    from dermeval.evaluation import paired_comparison

    rng = np.random.default_rng(seed)
    rows = [{"id": f"c{c}-{k}", "case_id": f"c{c}", "category": "Acne", "model": f"m{k}",
             "scores": {d: float(rng.uniform(0.5, 5)) for d in DIMENSIONS}} for c in range(40) for k in range(3)]
    champion = {d: np.array([r["scores"][d] + 0.1 for r in rows]) for d in DIMENSIONS}
    challenger = {d: v + worse_by for d, v in champion.items()}
    return paired_comparison(rows, challenger, champion, n_boot=200, safety_floor=2.5)


def compare_with(worse_by: float = 0.0):
    """A ``compare`` callback for ``Registry.gate_and_promote`` that answers :func:`paired_report`."""
    return lambda champion_version: paired_report(worse_by)
