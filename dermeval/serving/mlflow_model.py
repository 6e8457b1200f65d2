"""Log a saved evaluator to MLflow as a pyfunc from code, with signature and input example."""

from __future__ import annotations

import base64
import io
import tempfile
from pathlib import Path

import pandas as pd
from PIL import Image

PYFUNC_FILE = Path(__file__).with_name("pyfunc_model.py")


def input_example() -> pd.DataFrame:
    buf = io.BytesIO()
    Image.new("RGB", (224, 224), (206, 162, 124)).save(buf, format="PNG")
    return pd.DataFrame([{
        "id": "example-1", "image_b64": base64.b64encode(buf.getvalue()).decode("ascii"),
        "diagnostic_text": "<think> First, I observe annular scaly plaques with central clearing on the trunk. "
                           "</think> The most likely diagnosis is tinea corporis. I recommend a topical azole.",
    }])


def log_evaluator(evaluator_dir: Path | str, *, name: str = "model", registered_model_name: str | None = None):
    """Log the evaluator folder as an MLflow pyfunc (models-from-code); returns the ModelInfo."""
    import mlflow
    from mlflow.models import infer_signature

    from dermeval.model.evaluator import Evaluator
    from dermeval.serving.pyfunc_model import rows_to_frame

    example = input_example()
    evaluator = Evaluator.load(evaluator_dir)
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "example.png"
        image.write_bytes(base64.b64decode(example.loc[0, "image_b64"]))
        rows = evaluator.score_batch([{"id": "example-1", "image": str(image),
                                       "diagnostic_text": example.loc[0, "diagnostic_text"]}],
                                     image_root=None, progress=False)
    output = rows_to_frame(rows).astype({"error": "string"})
    signature = infer_signature(example, output)
    return mlflow.pyfunc.log_model(
        name=name, python_model=str(PYFUNC_FILE), artifacts={"evaluator": str(evaluator_dir)},
        signature=signature, input_example=example, registered_model_name=registered_model_name,
        pip_requirements=["dermeval-ops", "mlflow", "torch", "pandas<3"])
