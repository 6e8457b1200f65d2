"""Batch scoring on Apache Spark: ``mlflow.pyfunc.spark_udf`` over the registered DermEval.

The table (JSONL or Parquet, one DermEval record per row, images as paths or ``file://``
URIs readable on the executors, or as ``image_b64``) is validated on the executors with the
same checks as the local engine, scored by the MLflow pyfunc in each Python worker, and
written back in input order (JSONL, the ``dermeval score-batch`` row format) or as Parquet
(flat columns, with ``line`` giving the input order). Rejected rows come back as rows with an
error, never dropped. ``local[2]`` runs it on one machine; any cluster is reached through the
usual Spark settings (``--spark-master``, ``--spark-conf``, ``spark-defaults.conf``).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dermeval.model.evaluator import SCORE_CHUNK
from dermeval.schema import DIMENSIONS
from dermeval.serving.pyfunc_model import OUTPUT_COLUMNS, ROOT_ENV, TEXT_COLUMNS, frame_to_rows

DEFAULT_MODEL_URI = "models:/dermeval@champion"
# Every column the pyfunc returns, as Spark SQL types (the UDF's result struct).
def _spark_type(column: str) -> str:
    if column in DIMENSIONS or column == "overall" or column.startswith(("uncertainty_", "novelty_")):
        return "double"
    return "boolean" if column in ("needs_review", "out_of_distribution") else "string"


RESULT_DDL = ", ".join(f"{c} {_spark_type(c)}" for c in OUTPUT_COLUMNS)
VALIDATED_COLUMNS = ["line", "id", "diagnostic_text", "image", "image_b64", "error"]
VALIDATED_DDL = ", ".join(f"{c} {'long' if c == 'line' else 'string'}" for c in VALIDATED_COLUMNS)
SPARK_DEFAULTS = {
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # rows per call of the pyfunc: large enough to batch the encoders, small enough to stream
    "spark.sql.execution.arrow.maxRecordsPerBatch": str(SCORE_CHUNK),
    "spark.python.worker.reuse": "true",
    "spark.ui.showConsoleProgress": "true",
}


class SparkEngineError(RuntimeError):
    """Spark could not be started or the input could not be read."""


@dataclass
class SparkScoreSummary:
    scored: int
    rejected: int
    output: str
    seconds: float


def spark_session(master: str | None = None, conf: dict[str, str] | None = None, *,
                  app_name: str = "dermeval-score-batch", threads_per_task: int = 1):
    """A SparkSession (``master`` None: whatever the usual Spark settings say, else ``local[*]``).

    Each Python worker runs torch with ``threads_per_task`` threads, so ``local[N]`` uses N cores.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise SparkEngineError("the Spark engine needs pyspark: pip install 'dermeval-ops[spark]'") from None
    # Workers must run the same interpreter (and so the same installed packages) as the driver.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    threads = {"spark.executorEnv.OMP_NUM_THREADS": str(threads_per_task),
               "spark.executorEnv.DERMEVAL_TORCH_THREADS": str(threads_per_task)}
    for key, value in {**SPARK_DEFAULTS, **threads, **(conf or {})}.items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # py4j / JVM start-up failures come in several types
        raise SparkEngineError(f"Spark did not start ({exc}); the engine needs Java 17+ on PATH or JAVA_HOME") \
            from None
    spark.sparkContext.setLogLevel(os.environ.get("DERMEVAL_SPARK_LOG_LEVEL", "WARN"))
    return spark


def _is_jsonl(path: str) -> bool:
    p = Path(path)
    if p.is_dir():
        return any(q.suffix in (".jsonl", ".json") for q in p.iterdir())
    return p.suffix in (".jsonl", ".json")


def _validator(source: str, image_root: str | None, from_json: bool):
    """The per-partition check, run on the executors: every row becomes a record or an error row."""

    def validate(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from dermeval.formats.common import RowError, parse_jsonl_line
        from dermeval.model.evaluator import prepare_input

        for frame in batches:
            out = []
            for row in frame.to_dict("records"):
                line = int(row.pop("line"))
                if from_json:
                    obj: Any = parse_jsonl_line(row["value"].encode("utf-8"), source, line)
                else:
                    obj = {k: v for k, v in row.items() if v is not None and not (isinstance(v, float) and v != v)}
                if isinstance(obj, RowError):
                    out.append({"line": line, "id": None, "error": str(obj)})
                    continue
                b64 = obj.pop("image_b64", None) if isinstance(obj, dict) else None
                # bytes carried in the row stand in for the file: check the rest of the record only
                rec, err = prepare_input(obj, source, line, None if b64 else image_root)
                rid = obj.get("id") if isinstance(obj, dict) else None
                # the original image string goes on: the pyfunc resolves it again where it runs
                out.append({"line": line, "id": None if rid is None else str(rid), "error": err and err["error"],
                            "diagnostic_text": rec["diagnostic_text"] if rec else None,
                            "image": obj.get("image") if rec else None,
                            "image_b64": b64 if isinstance(b64, str) else None})
            # explicit dtypes: an empty batch must not turn ``line`` into an object column
            # explicit dtypes: text columns stay Python objects (None, never NaN), ``line`` an integer
            frame = pd.DataFrame(out, columns=VALIDATED_COLUMNS).astype(object)
            frame = frame.where(frame.notna(), None).astype({"line": "int64"})
            yield frame

    return validate


def read_table(spark, path: Path | str, image_root: Path | str | None = None):
    """Read and validate a JSONL file or a Parquet table: a DataFrame of ``VALIDATED_DDL`` rows.

    ``line`` is the row's 1-based line (JSONL, blank lines skipped as the local engine does) or
    row number (Parquet), so the output can be put back in input order.
    """
    path = str(path)
    if not Path(path).exists() and "://" not in path:
        raise SparkEngineError(f"input not found: {path}")
    root = str(Path(image_root).resolve()) if image_root is not None else None
    if _is_jsonl(path):
        text = spark.read.text(path)
        numbered = text.rdd.zipWithIndex().map(lambda p: (p[1] + 1, p[0][0]))
        frame = spark.createDataFrame(numbered, "line long, value string").filter("trim(value) != ''")
        return frame.mapInPandas(_validator(path, root, from_json=True), VALIDATED_DDL)
    try:
        table = spark.read.parquet(path)
    except Exception as exc:
        raise SparkEngineError(f"cannot read {path} as Parquet or JSONL: {str(exc).splitlines()[0]}") from None
    missing = {"id", "diagnostic_text"} - set(table.columns)
    if missing:
        raise SparkEngineError(f"{path}: the table has no column(s) {sorted(missing)}")
    if not {"image", "image_b64"} & set(table.columns):
        raise SparkEngineError(f"{path}: the table needs an 'image' (path or file:// URI) or 'image_b64' column")
    keep = [c for c in ("id", "diagnostic_text", "image", "image_b64") if c in table.columns]
    numbered = table.select(*keep).rdd.zipWithIndex().map(lambda p: (p[1] + 1, *p[0]))
    schema = "line long, " + ", ".join(f"{c} string" for c in keep)
    frame = spark.createDataFrame(numbered, schema)
    return frame.mapInPandas(_validator(path, root, from_json=False), VALIDATED_DDL)


def _pyfunc_uri(model: str, workdir: Path) -> str:
    """An MLflow model URI for ``model``: URIs and MLflow model folders as they are; an
    evaluator folder (config.json + model.safetensors) is wrapped as a pyfunc first."""
    from dermeval.model.evaluator import URI_SCHEMES, EvaluatorNotFound

    if model.startswith(URI_SCHEMES):
        return model
    folder = Path(model)
    if (folder / "MLmodel").is_file():
        return str(folder.resolve())
    if (folder / "config.json").is_file() and (folder / "model.safetensors").is_file():
        from dermeval.serving.mlflow_model import save_evaluator

        return str(save_evaluator(folder, workdir / "pyfunc"))
    raise EvaluatorNotFound(f"model path does not exist or holds no evaluator: {model}")


def _local_engine_chunks(spark, ok):
    """Lay the valid rows out so each Arrow batch the UDF receives is one chunk of the local engine.

    The local engine encodes valid rows in consecutive chunks of 64 (length-sorted sentence
    batches within a chunk). Numbering the valid rows in input order and range-partitioning
    by ``number // 64`` puts whole chunks, in order, in each partition, and the Arrow batch
    size is the chunk size, so every row is encoded together with the same neighbours as
    locally: the two engines then agree to the last bit, not only to float noise.
    """

    chunk = int(spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch", str(SCORE_CHUNK)))
    numbered = ok.orderBy("line").rdd.zipWithIndex().map(lambda p: (*p[0], p[1] // chunk))
    frame = spark.createDataFrame(numbered, VALIDATED_DDL + ", chunk long")
    parts = max(1, spark.sparkContext.defaultParallelism * 4)
    return frame.repartitionByRange(parts, "chunk").sortWithinPartitions("line").drop("chunk")


def score_dataframe(spark, validated, model: str = DEFAULT_MODEL_URI, *, image_root: Path | str | None = None,
                    source: str = "<input>", workdir: Path | None = None):
    """Score a validated DataFrame (from :func:`read_table`): ``line`` plus the pyfunc's columns.

    Valid rows go through ``mlflow.pyfunc.spark_udf``; rejected rows keep their error.
    """
    import mlflow.pyfunc
    from pyspark.sql import functions as F

    workdir = workdir or Path(tempfile.mkdtemp(prefix="dermeval-spark-"))
    uri = _pyfunc_uri(model, workdir)
    params = {"image_root": str(Path(image_root).resolve()) if image_root is not None else "", "source": source}
    # The executors' own permission to read image paths (the driver is the user's; a REST client is not):
    # under the given root, or as given when none was named.
    spark.sparkContext.environment[ROOT_ENV] = params["image_root"] or "/"
    try:
        udf = mlflow.pyfunc.spark_udf(spark, uri, result_type=RESULT_DDL, env_manager="local", params=params)
    except Exception as exc:  # MLflow raises several types for a model it cannot fetch or load
        from dermeval.model.evaluator import EvaluatorNotFound

        raise EvaluatorNotFound(f"cannot load {model} for Spark: {str(exc).splitlines()[0]}") from None
    ok = _local_engine_chunks(spark, validated.filter(F.col("error").isNull()))
    raw = ok.withColumn("r", udf(F.struct("id", "diagnostic_text", "image", "image_b64", "line")))
    # MLflow casts a text field holding both None and strings with astype(str), so an absent value
    # arrives as the string "None" (or "nan"); put the nulls back. The pyfunc never emits those strings.
    def text(c: str):
        return F.when(F.col(f"r.{c}").isin("None", "nan"), F.lit(None)).otherwise(F.col(f"r.{c}"))

    error = text("error")
    columns = []
    for c in OUTPUT_COLUMNS:
        if c == "id":
            value = F.col("id")  # as validated, untouched by the cast
        elif c == "error":
            value = error
        else:
            value = text(c) if c in TEXT_COLUMNS else F.col(f"r.{c}")
            value = F.when(error.isNull(), value)  # a rejected row carries its error only
        columns.append(value.alias(c))
    scored = raw.select("line", *columns)
    rejected = validated.filter(F.col("error").isNotNull()).select("line", "id", "error")
    return scored.unionByName(rejected, allowMissingColumns=True)


def score_table(input: Path | str, output: Path | str, model: str = DEFAULT_MODEL_URI, *,
                image_root: Path | str | None = None, master: str | None = None,
                conf: dict[str, str] | None = None, spark=None) -> SparkScoreSummary:
    """Score a JSONL or Parquet table with Spark and write ``output`` (``.jsonl``: the local engine's
    rows in input order; anything else: a Parquet folder with flat columns and ``line``)."""
    import time

    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from dermeval.formats.common import write_jsonl

    start = time.perf_counter()
    own = spark is None
    spark = spark or spark_session(master, conf)
    try:
        with tempfile.TemporaryDirectory(prefix="dermeval-spark-") as tmp:
            validated = read_table(spark, input, image_root)
            result = score_dataframe(spark, validated, model, image_root=image_root, source=str(input),
                                     workdir=Path(tmp))
            # Score once: the sort below (and the counts) read the cached rows, not the UDF again.
            result = result.persist(StorageLevel.MEMORY_AND_DISK)
            ordered = result.orderBy("line")
            out = str(output)
            if out.endswith(".jsonl"):
                def rows() -> Iterator[dict[str, Any]]:
                    for part in _chunks(ordered.toLocalIterator(), 1000):
                        frame = pd.DataFrame([r.asDict() for r in part], columns=["line", *OUTPUT_COLUMNS])
                        yield from frame_to_rows(frame)

                counts = {"scored": 0, "rejected": 0}

                def counted() -> Iterator[dict[str, Any]]:
                    for row in rows():
                        counts["rejected" if "error" in row else "scored"] += 1
                        yield row

                write_jsonl(Path(out), counted())
                scored, rejected = counts["scored"], counts["rejected"]
            else:
                ordered.write.mode("overwrite").parquet(out)
                back = spark.read.parquet(out)
                rejected = back.filter(F.col("error").isNotNull()).count()
                scored = back.count() - rejected
            result.unpersist()
    finally:
        if own:
            spark.stop()
    return SparkScoreSummary(scored, rejected, str(output), round(time.perf_counter() - start, 2))


def _chunks(it, n: int) -> Iterator[list]:
    part: list = []
    for item in it:
        part.append(item)
        if len(part) == n:
            yield part
            part = []
    if part:
        yield part


def read_scores(path: Path | str) -> list[dict[str, Any]]:
    """Rows of a Spark output (JSONL or Parquet folder) as the local engine writes them, in input order."""
    path = Path(path)
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.open(encoding="utf-8")]
    frame = pd.read_parquet(path).sort_values("line")
    return frame_to_rows(frame)
