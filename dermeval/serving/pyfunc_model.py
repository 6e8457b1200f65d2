"""MLflow pyfunc for DermEval, logged from code (this file), never pickled.

Input: a DataFrame with ``id``, ``diagnostic_text`` and either ``image_b64`` (the image
file's bytes, base64) or ``image`` (a path readable where the model runs).
Output: one row per input row, in order: the six scores, ``overall``, the six
uncertainties (``uncertainty_<dimension>``), ``needs_review``, ``critique``, ``error``.
"""

from __future__ import annotations

import base64
import tempfile
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

from dermeval.schema import DIMENSIONS

OUTPUT_COLUMNS = ["id", *DIMENSIONS, "overall", *[f"uncertainty_{d}" for d in DIMENSIONS], "needs_review",
                  "critique", "error"]


def rows_to_frame(rows: list[dict]) -> pd.DataFrame:
    """Flatten scoring rows (as from Evaluator.score_batch) into the pyfunc's output frame."""
    flat = []
    for r in rows:
        if "error" in r:
            flat.append({"id": r.get("id"), "error": r["error"]})
            continue
        flat.append({"id": r["id"], **r["scores"], "overall": r["overall"],
                     **{f"uncertainty_{d}": v for d, v in r["uncertainty"].items()},
                     "needs_review": r["needs_review"], "critique": r["critique"], "error": None})
    return pd.DataFrame(flat, columns=OUTPUT_COLUMNS)


class DermEvalPyfunc(PythonModel):
    def load_context(self, context) -> None:
        from dermeval.model.evaluator import Evaluator

        self.evaluator = Evaluator.load(context.artifacts["evaluator"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        frame = pd.DataFrame(model_input)
        with tempfile.TemporaryDirectory() as tmp:
            records = []
            for k, row in enumerate(frame.to_dict("records")):
                rec = {"id": str(row.get("id", k)), "diagnostic_text": row.get("diagnostic_text") or ""}
                b64 = row.get("image_b64")
                if isinstance(b64, str) and b64:
                    try:
                        data = base64.b64decode(b64, validate=True)
                    except ValueError:
                        records.append({"id": rec["id"], "error": "image_b64: not valid base64"})
                        continue
                    path = Path(tmp) / f"{k}.img"
                    path.write_bytes(data)
                    rec["image"] = str(path)
                else:
                    rec["image"] = row.get("image")
                records.append(rec)
            rows = self.evaluator.score_batch(records, image_root=None, progress=False)
        return rows_to_frame(rows)


mlflow.models.set_model(DermEvalPyfunc())
