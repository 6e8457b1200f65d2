"""Spark engine: mlflow.pyfunc.spark_udf on models:/dermeval@champion, local[2], against the local engine."""

from __future__ import annotations

import base64
import json
import shutil

import pandas as pd
import pytest

from dermeval.formats.common import RowError, iter_jsonl
from dermeval.schema import DIMENSIONS
from tests.conftest import one_torch_thread, skip_unless_ci

try:
    import pyspark  # noqa: F401
except ImportError:
    skip_unless_ci("the Spark engine needs pyspark (pip install 'dermeval-ops[spark]')", module=True)
pytestmark = pytest.mark.slow

NUMERIC = [*DIMENSIONS, "overall", *[f"uncertainty_{d}" for d in DIMENSIONS]]


@pytest.fixture(scope="module")
def spark():
    if not shutil.which("java"):
        skip_unless_ci("the Spark engine needs Java 17+ on PATH")
    from dermeval.serving.spark import spark_session

    session = spark_session("local[2]", {"spark.ui.enabled": "false"})
    yield session
    session.stop()


@pytest.fixture(scope="module")
def table(champion, tmp_path_factory):
    """A JSONL batch with good rows and every kind of bad row, images under the world's root."""
    root = champion["root"]
    (root / "zero.png").write_bytes(b"")
    (root / "junk.png").write_bytes(b"not an image")
    good = [{"id": r["id"], "image": r["image"], "diagnostic_text": r["diagnostic_text"]}
            for r in champion["rows"][:24]]
    good[3]["image"] = (root / good[3]["image"]).resolve().as_uri()  # a file:// URI inside the root
    lines = [json.dumps(r) for r in good[:10]]
    lines += ["{broken", "[1, 2]", "",
              json.dumps({"id": "no-text", "image": good[0]["image"]}),
              json.dumps({"id": "zero", "image": "zero.png", "diagnostic_text": "Plaques on the trunk."}),
              json.dumps({"id": "junk", "image": "junk.png", "diagnostic_text": "Plaques on the trunk."}),
              json.dumps({"id": "escape", "image": "../outside.png", "diagnostic_text": "Plaques."}),
              json.dumps({"id": "missing", "image": "nowhere.png", "diagnostic_text": "Plaques."}),
              json.dumps({"id": "empty", "image": good[1]["image"], "diagnostic_text": ""})]
    lines += [json.dumps(r) for r in good[10:]]
    src = tmp_path_factory.mktemp("table") / "batch.jsonl"
    src.write_text("\n".join(lines) + "\n")
    return src


def local_rows(evaluator, src, root, decimals=None):
    """The local engine on ``src`` with one torch thread, as each Spark task runs it (:func:`one_torch_thread`)."""
    parsed = list(iter_jsonl(src))
    rows = [o if not isinstance(o, RowError) else {"id": None, "error": str(o)} for _, o in parsed]
    with one_torch_thread():
        return evaluator.score_batch(rows, root, progress=False, source=str(src), lines=[n for n, _ in parsed],
                                     decimals=decimals)


def test_spark_udf_on_the_champion_equals_the_local_engine(spark, champion, table, tmp_path):
    from dermeval.serving.spark import score_table

    root = champion["root"]
    out = tmp_path / "scored.parquet"
    summary = score_table(table, out, champion["model_uri"], image_root=root, spark=spark)
    expected = local_rows(champion["evaluator"], table, root)
    got = pd.read_parquet(out).sort_values("line").to_dict("records")
    assert summary.scored + summary.rejected == len(expected) == len(got) == 32
    assert summary.rejected == sum("error" in r for r in expected) == 7  # the blank line is skipped, not a row
    for want, row in zip(expected, got, strict=True):
        assert (want.get("id") or None) == row["id"]
        if "error" in want:
            assert row["error"] == want["error"]  # the same message, naming file and line
            continue
        assert row["error"] is None
        for d in DIMENSIONS:  # the issue asks for 1e-5; the same chunks in fact give the same bits
            assert row[d] == pytest.approx(want["scores"][d], abs=1e-5)
            assert row[f"uncertainty_{d}"] == pytest.approx(want["uncertainty"][d], abs=1e-5)
        assert row["overall"] == pytest.approx(want["overall"], abs=1e-5)
        assert row["needs_review"] == want["needs_review"] and row["critique"] == want["critique"]
        assert row["evaluator_version"] == want["evaluator"]["version"]
    errors = {r["id"]: r["error"] for r in got if r["error"]}
    assert "0 bytes" in errors["zero"] and "escapes" in errors["escape"] and "diagnostic_text" in errors["no-text"]
    assert [r["line"] for r in got][:13] == [*range(1, 13), 14]  # input order; the blank line 13 is skipped


def test_jsonl_output_is_the_local_engines_rows(spark, champion, table, tmp_path):
    from dermeval.serving.spark import score_table

    out = tmp_path / "scored.jsonl"
    score_table(table, out, str(champion["model_dir"]), image_root=champion["root"], spark=spark)
    got = [json.loads(line) for line in out.open()]
    want = local_rows(champion["evaluator"], table, champion["root"], decimals=3)
    assert [r.get("id") for r in got] == [r.get("id") for r in want]
    for g, w in zip(got, want, strict=True):
        assert set(g) == {k for k in w if k != "critique_json"}
        if "error" not in w:
            assert max(abs(g["scores"][d] - w["scores"][d]) for d in DIMENSIONS) <= 0.0011  # 3-place rounding


def test_parquet_table_with_image_bytes_and_missing_columns(spark, champion, tmp_path):
    from dermeval.serving.spark import SparkEngineError, score_table

    root = champion["root"]
    rows = champion["rows"][:6]
    frame = pd.DataFrame({
        "id": [r["id"] for r in rows], "diagnostic_text": [r["diagnostic_text"] for r in rows],
        "image_b64": [base64.b64encode((root / r["image"]).read_bytes()).decode() for r in rows[:5]] + ["%%%"],
    })
    src = tmp_path / "table.parquet"
    frame.to_parquet(src)
    out = tmp_path / "out.jsonl"
    summary = score_table(src, out, champion["model_uri"], spark=spark)
    got = [json.loads(line) for line in out.open()]
    want = champion["evaluator"].score_batch([{"id": r["id"], "image": r["image"],
                                               "diagnostic_text": r["diagnostic_text"]} for r in rows[:5]],
                                              root, progress=False)
    assert (summary.scored, summary.rejected) == (5, 1) and "not valid base64" in got[5]["error"]
    assert [g["overall"] for g in got[:5]] == pytest.approx([w["overall"] for w in want], abs=1.1e-3)
    frame.drop(columns=["diagnostic_text"]).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(SparkEngineError, match="no column"):
        score_table(tmp_path / "bad.parquet", out, champion["model_uri"], spark=spark)


def test_missing_model_is_one_clear_error(spark, champion, table, tmp_path):
    from dermeval.model.evaluator import EvaluatorNotFound
    from dermeval.serving.spark import score_table

    with pytest.raises(EvaluatorNotFound, match="dermeval@nobody"):
        score_table(table, tmp_path / "o.jsonl", "models:/dermeval@nobody", spark=spark)
    with pytest.raises(EvaluatorNotFound, match="does not exist"):
        score_table(table, tmp_path / "o.jsonl", str(tmp_path / "no-model"), spark=spark)
    assert not (tmp_path / "o.jsonl").exists()

