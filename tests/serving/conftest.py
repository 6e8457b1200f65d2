"""A DermEval registered as ``models:/dermeval@champion`` in a throwaway MLflow store."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def champion(trained, tmp_path_factory):
    import mlflow
    from mlflow import MlflowClient

    from dermeval.model.evaluator import load_evaluator
    from dermeval.serving.mlflow_model import log_evaluator

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.set_experiment("serving-tests")
    with mlflow.start_run(experiment_id=experiment.experiment_id):
        info = log_evaluator(trained["model_dir"], registered_model_name="dermeval")
    MlflowClient(uri).set_registered_model_alias("dermeval", "champion", info.registered_model_version)
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    # The local engine as a user runs it: a fresh process has no feature cache (the session's
    # evaluator reads vectors cached when the world was encoded in other batches: float noise).
    local = load_evaluator(trained["model_dir"])
    yield {**trained, "tracking_uri": uri, "model_uri": "models:/dermeval@champion", "evaluator": local}
    mp.undo()
