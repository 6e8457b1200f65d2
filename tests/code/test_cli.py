from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from dermeval.cli import app
from dermeval.schema import DIMENSIONS

runner = CliRunner()


def _commands(group, path=()):
    """Every command path of a click group, groups included, walked from the app itself."""
    yield path
    for name, cmd in getattr(group, "commands", {}).items():
        yield from _commands(cmd, (*path, name))


def test_help_on_every_command():
    import typer.main

    paths = list(_commands(typer.main.get_command(app)))
    assert {("registry", "promote"), ("alerts", "ack"), ("store", "upgrade"), ("score-batch",)} <= set(paths)
    for cmd in paths:
        result = runner.invoke(app, [*cmd, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output, (cmd, result.output)
        assert len(result.output.split("Usage", 1)[1].strip()) > 20, cmd  # says more than its name


def test_validate_exit_codes(tmp_path: Path):
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"id": "a", "diagnostic_text": "t", "scores": {d: 3 for d in DIMENSIONS}}) + "\n")
    assert runner.invoke(app, ["validate", str(good)]).exit_code == 0
    bad = tmp_path / "bad.jsonl"
    bad.write_text(good.read_text() + "{oops\n")
    result = runner.invoke(app, ["validate", str(bad), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    [src] = report["sources"]
    assert (src["rows_in"], src["loaded"], src["rejected"]) == (2, 1, 1)
    assert src["errors"][0]["line"] == 2 and src["errors"][0]["file"] == str(bad)
    assert runner.invoke(app, ["validate", str(tmp_path / "missing")]).exit_code == 1


def test_validate_world(tiny_world: Path):
    result = runner.invoke(app, ["validate", str(tiny_world)])
    assert result.exit_code == 0, result.output
    assert "OK" in result.output


def test_validate_release_cli(dermbench_root: Path):
    result = runner.invoke(app, ["validate", str(dermbench_root)])
    assert result.exit_code == 0
    assert "cases: 4000, categories: 23, sha256 mismatches: 0" in result.output


def test_score_batch_engine_options_are_checked_before_any_work(tmp_path: Path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "a", "image": "a.png", "diagnostic_text": "t"}) + "\n")
    out = tmp_path / "out.jsonl"
    bad_engine = runner.invoke(app, ["score-batch", "--input", str(src), "--output", str(out), "--engine", "ray"])
    assert bad_engine.exit_code == 2 and "local or spark" in bad_engine.output
    bad_conf = runner.invoke(app, ["score-batch", "--input", str(src), "--output", str(out), "--engine", "spark",
                                   "--spark-conf", "spark.executor.cores"])
    assert bad_conf.exit_code == 2 and "KEY=VALUE" in bad_conf.output
    missing = runner.invoke(app, ["score-batch", "--input", str(tmp_path / "nope.jsonl"), "--output", str(out),
                                  "--engine", "spark"])
    assert missing.exit_code == 2 and "input not found" in missing.output
    bad_precision = runner.invoke(app, ["score-batch", "--input", str(src), "--output", str(out),
                                        "--precision", "fp16"])
    assert bad_precision.exit_code == 2 and "fp32 or bf16" in bad_precision.output
    spark_bf16 = runner.invoke(app, ["score-batch", "--input", str(src), "--output", str(out), "--engine", "spark",
                                     "--precision", "bf16"])
    assert spark_bf16.exit_code == 2 and "local engine only" in spark_bf16.output
    assert not out.exists()
