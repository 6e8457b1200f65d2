"""MLflow pyfunc for DermEval, logged from code (this file), never pickled.

Input: a DataFrame with ``id``, ``diagnostic_text`` and either ``image_b64`` (the image
file's bytes, base64) or ``image`` (a path or ``file://`` URI readable where the model runs);
optionally ``line`` (the row's line in its source file, for error messages).
Params: ``image_root`` (relative image paths are resolved inside it and may not escape it) and
``source`` (the input's name in error messages).

Image paths are read only where whoever runs the model allows it: the environment variable
``DERMEVAL_IMAGE_ROOT`` of the serving process (or of the Spark executors, which the Spark
engine sets). A request's ``image_root`` may name that folder or one inside it, never more;
without ``DERMEVAL_IMAGE_ROOT`` a row with an image path is rejected and images must come as
``image_b64``. A client of ``mlflow models serve`` cannot make the server open a file it names.
Output: one row per input row, in order: the six scores, ``overall``, the six uncertainties
(``uncertainty_<dimension>``), ``needs_review``, ``critique``, ``warning``, the evaluator's
name and version, and ``error`` (set, with everything else empty, on a rejected row).
Scores are returned at full precision; the JSONL writers round them.
"""

from __future__ import annotations

import base64
import binascii
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

from dermeval.schema import DIMENSIONS

INPUT_COLUMNS = ["id", "diagnostic_text", "image", "image_b64", "line"]
OUTPUT_COLUMNS = ["id", *DIMENSIONS, "overall", *[f"uncertainty_{d}" for d in DIMENSIONS], "needs_review",
                  "out_of_distribution", "novelty_text", "novelty_image", "critique", "warning", "evaluator_name",
                  "evaluator_version", "error"]
DEFAULT_PARAMS = {"image_root": "", "source": "<input>"}
ROOT_ENV = "DERMEVAL_IMAGE_ROOT"


def allowed_root(requested: str | None) -> tuple[str | None, str | None]:
    """``(root, None)``: the folder image paths are read under; ``(None, why)`` when paths are refused."""
    import os

    configured = os.environ.get(ROOT_ENV)
    if not configured:
        return None, (f"image paths are not read by this model server ({ROOT_ENV} is not set where it runs); "
                      "send the image's bytes as image_b64")
    base = Path(configured).resolve()
    if not requested:
        return str(base), None
    wanted = Path(requested).resolve()
    if not wanted.is_relative_to(base):
        return None, f"image_root {requested} is outside the folder this server reads images from"
    return str(wanted), None


NUMERIC_COLUMNS = [*DIMENSIONS, "overall", *[f"uncertainty_{d}" for d in DIMENSIONS],
                   "novelty_text", "novelty_image"]
TEXT_COLUMNS = ["id", "critique", "warning", "evaluator_name", "evaluator_version", "error"]


def rows_to_frame(rows: list[dict]) -> pd.DataFrame:
    """Flatten scoring rows (as from Evaluator.score_batch) into the pyfunc's output frame.

    Text columns are Python objects with None (never NaN), ``needs_review`` bools (None on a
    rejected row); scores are floats, held as objects with None on rejected rows when there are any.
    """
    flat = []
    for r in rows:
        if "error" in r:
            flat.append({"id": r.get("id"), "error": r["error"]})
            continue
        flat.append({"id": r["id"], **r["scores"], "overall": r["overall"],
                     **{f"uncertainty_{d}": v for d, v in r["uncertainty"].items()},
                     "needs_review": r["needs_review"], "out_of_distribution": r.get("out_of_distribution", False),
                     **{f"novelty_{m}": v for m, v in (r.get("novelty") or {}).items()},
                     "critique": r["critique"], "warning": r.get("warning"),
                     "evaluator_name": r["evaluator"]["name"], "evaluator_version": r["evaluator"]["version"],
                     "error": None})
    frame = pd.DataFrame(flat, columns=OUTPUT_COLUMNS)
    frame[NUMERIC_COLUMNS] = frame[NUMERIC_COLUMNS].astype("float64")
    if frame["error"].notna().any():  # null, not NaN, on rejected rows: NaN is not JSON
        frame[NUMERIC_COLUMNS] = frame[NUMERIC_COLUMNS].astype(object).where(frame[NUMERIC_COLUMNS].notna(), None)
    other = [c for c in OUTPUT_COLUMNS if c not in NUMERIC_COLUMNS]
    frame[other] = frame[other].astype(object).where(frame[other].notna(), None)
    return frame


def frame_to_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The inverse of :func:`rows_to_frame`: the JSONL rows of ``dermeval score-batch``, rounded to 3 places."""
    rows = []
    for r in frame.to_dict("records"):
        if isinstance(r.get("error"), str):
            rows.append({"id": r["id"], "error": r["error"]})
            continue
        row = {"id": r["id"], "scores": {d: round(float(r[d]), 3) for d in DIMENSIONS},
               "overall": round(float(r["overall"]), 3),
               "uncertainty": {d: round(float(r[f"uncertainty_{d}"]), 3) for d in DIMENSIONS},
               "needs_review": bool(r["needs_review"]), "out_of_distribution": bool(r["out_of_distribution"]),
               "critique": r["critique"],
               "evaluator": {"name": r["evaluator_name"], "version": r["evaluator_version"]}}
        if all(isinstance(r.get(f"novelty_{m}"), float) and r[f"novelty_{m}"] == r[f"novelty_{m}"]
               for m in ("text", "image")):  # absent for an evaluator saved without a novelty model
            row["novelty"] = {m: round(float(r[f"novelty_{m}"]), 3) for m in ("text", "image")}
        if isinstance(r.get("warning"), str):
            row["warning"] = r["warning"]
        rows.append(row)
    return rows


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and value != value)


class DermEvalPyfunc(PythonModel):
    def load_context(self, context) -> None:
        import os

        import torch

        from dermeval.model.evaluator import Evaluator

        if os.environ.get("DERMEVAL_TORCH_THREADS"):  # set per Spark executor: one task, N threads
            torch.set_num_threads(int(os.environ["DERMEVAL_TORCH_THREADS"]))

        self.evaluator = Evaluator.load(context.artifacts["evaluator"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        params = {**DEFAULT_PARAMS, **(params or {})}
        source = params["source"]
        root, refused = allowed_root(params["image_root"] or None)
        out: list[dict[str, Any] | None] = []
        # Rows with a path are read under the image root; rows carrying their bytes are written
        # to a private folder and read from there (as given).
        by_path: list[tuple[int, int, dict[str, Any]]] = []
        by_bytes: list[tuple[int, int, dict[str, Any]]] = []
        with tempfile.TemporaryDirectory() as tmp:
            for k, row in enumerate(pd.DataFrame(model_input).to_dict("records")):
                line = int(row["line"]) if _present(row.get("line")) else k + 1
                rec = {key: row[key] for key in ("id", "diagnostic_text", "image") if _present(row.get(key))}
                out.append(None)
                b64 = row.get("image_b64")
                if not (isinstance(b64, str) and b64):
                    if refused and rec.get("image"):
                        out[k] = {"id": rec.get("id"), "error": f"{source}:{line}: image: {refused}"}
                    else:
                        by_path.append((k, line, rec))
                    continue
                try:
                    data = base64.b64decode(b64, validate=True)
                except (binascii.Error, ValueError):
                    out[k] = {"id": rec.get("id"), "error": f"{source}:{line}: image_b64: not valid base64"}
                    continue
                path = Path(tmp) / f"{k}.img"
                path.write_bytes(data)
                by_bytes.append((k, line, {**rec, "image": str(path)}))
            for group, group_root in ((by_path, root), (by_bytes, None)):
                if group:
                    scored = self.evaluator.score_batch([r for _, _, r in group], group_root, progress=False,
                                                        source=source, lines=[ln for _, ln, _ in group],
                                                        decimals=None)
                    for (k, _, _), row in zip(group, scored, strict=True):
                        out[k] = row
        return rows_to_frame([r for r in out if r is not None])


mlflow.models.set_model(DermEvalPyfunc())
