"""`dvc repro` on a tiny world in a temporary git repository.

The first run trains, judges, evaluates, registers v1 and promotes it; the second does
nothing; changed labels make training stale, and new expert ratings retrain (once).
Heavy (``make test-all``): impossible gate thresholds register v2 and leave the champion
alone; an experiment with another training param runs through `dvc exp run -S` and
`dvc exp show`; a reviewer's promotion makes the monitor rescore with the new champion.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "PYTHONPATH": str(cwd), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _tiny_project(tmp_path: Path) -> tuple[Path, dict, str]:
    """A copy of the pipeline on a 46-case world in a fresh git + DVC repository, after its first
    `dvc repro`: (root, params, dvc)."""
    work = tmp_path / "proj"
    work.mkdir()
    for name in ("dvc.yaml", "pipelines", "dermeval", "registry", "data/feedback"):
        src = REPO / name
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copyfile)(src, work / name)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["prepare"].update(cases=46, weeks=2, batch_cases=3)
    params["train"].update(epochs=4, members=1)
    params["evaluate"].update(n_boot=20)
    # A 4-epoch model on 46 cases is poor: loose bounds so the first version passes on them.
    params["gate"].update(overall_max=5.0, slice_max=5.0,
                          dimension_max=dict.fromkeys(params["gate"]["dimension_max"], 5.0),
                          generalisation={"stress_min": 0.0, "stress_variant_min": 0.0, "transfer_overall_max": 5.0,
                                          "transfer_dimension_max": 5.0, "heldout_wording_dimension_max": 5.0,
                                          "clean_overall_min": 0.0}, unsafe_recall_min=None)
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    dvc = str(Path(sys.executable).parent / "dvc")
    for cmd in (["git", "init", "-q"], [dvc, "init", "-q"], [dvc, "config", "core.analytics", "false"]):
        assert _run(cmd, work).returncode == 0
    first = _run([dvc, "repro"], work)
    assert first.returncode == 0, first.stderr[-2000:]
    return work, params, dvc


@pytest.mark.slow
def test_dvc_repro_twice(tmp_path: Path):
    work, params, dvc = _tiny_project(tmp_path)
    manifest = json.loads((work / "data/prepared/manifest.json").read_text())
    assert manifest["records"] == 46 * 6 and manifest["simulated_ratings"] is True
    assert (work / "models/dermeval/model.safetensors").is_file()
    metrics = json.loads((work / "reports/metrics.json").read_text())
    assert 0 <= metrics["overall_mae"] <= 5 and metrics["n_test"] > 0
    # No DermBench release next to this copy: DermSynth alone, and every output says so.
    assert manifest["source"] == "dermsynth" and manifest["real_text"] is False
    assert "no DermBench release" in manifest["source_reason"]
    gen = json.loads((work / "reports/generalisation.json").read_text())
    assert gen["gen_real_text"] == 0 and 0 <= gen["gen_stress_accuracy"] <= 1
    assert 0 <= gen["gen_overlap_sentence_share"] <= 1 and gen["gen_heldout_wording_n"] > 0
    report = json.loads((work / "reports/generalisation/report.json").read_text())
    assert "not measured" in report["stress_source"] and "not real text" in report["transfer"]["label"]
    second = _run([dvc, "repro"], work)
    assert second.returncode == 0
    assert "didn't change, skipping" in second.stdout + second.stderr
    assert "Running stage" not in second.stdout + second.stderr
    shown = _run([dvc, "metrics", "show"], work)
    assert shown.returncode == 0 and "overall_mae" in shown.stdout
    plots = _run([dvc, "plots", "show", "--json"], work)
    assert plots.returncode == 0 and "Predicted vs expert" in plots.stdout and "Calibration" in plots.stdout
    assert "Judge vs DermEval" in plots.stdout and "Stress suite" in plots.stdout
    gate = json.loads((work / "reports/gate/gate.json").read_text())
    assert gate["version"] == "1" and gate["decision"]["passed"] is True and gate["champion_after"] == "1"
    assert (work / "mlflow.db").is_file() and (work / "reports/gate/gate.md").read_text().startswith("# Gate")

    # New labels alone (same narratives, other ratings) must retrain and re-evaluate.
    records = work / "data/prepared/records.jsonl"
    lines = records.read_text().splitlines()
    row = json.loads(lines[0])
    row["scores"] = {k: 0.5 for k in row["scores"]}
    records.write_text("\n".join([json.dumps(row), *lines[1:]]) + "\n")
    status = _run([dvc, "status", "train", "evaluate"], work)
    assert status.returncode == 0
    changed = [line.strip().rstrip(":") for line in status.stdout.splitlines() if line.endswith(":")
               and not line.startswith((" ", "\t"))]
    assert {"train", "evaluate"} <= set(changed) and "records.jsonl" in status.stdout, status.stdout
    records.write_text("\n".join(lines) + "\n")

    # Expert ratings exported to data/feedback: prepare merges them and the evaluator retrains on them.
    rated = {**json.loads(lines[1]), "id": "expert-1", "scores": dict.fromkeys(row["scores"], 2.0),
             "raters": {"ana": dict.fromkeys(row["scores"], 2.0)}, "feedback": {"batch": "week_01", "reviewers": 1}}
    (work / "data/feedback/images").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(work / "data/prepared" / rated["image"], work / "data/feedback/images/expert-1.png")
    rated["image"] = "images/expert-1.png"
    for key in ("source", "truth", "rationale"):
        rated.pop(key, None)
    (work / "data/feedback/records.jsonl").write_text(json.dumps(rated, sort_keys=True) + "\n")
    status = _run([dvc, "status", "prepare"], work)
    assert "data/feedback" in status.stdout, status.stdout
    retrain = _run([dvc, "repro", "train"], work)
    assert retrain.returncode == 0, retrain.stderr[-2000:]
    assert "Running stage 'train'" in retrain.stdout
    manifest = json.loads((work / "data/prepared/manifest.json").read_text())
    assert manifest["records"] == 46 * 6 + 1 and manifest["feedback"] == {"records": 1, "ratings": 1,
                                                                         "batches": ["week_01"]}
    again = _run([dvc, "repro", "train"], work)  # the same ratings: nothing reruns
    assert "Running stage" not in again.stdout, again.stdout


@pytest.mark.slow
@pytest.mark.heavy
def test_gate_experiment_and_promotion_through_dvc(tmp_path: Path):
    """The registry's side of the pipeline: a version the gate rejects, an experiment, a reviewer's promotion."""
    work, params, dvc = _tiny_project(tmp_path)
    metrics = json.loads((work / "reports/metrics.json").read_text())
    assert json.loads((work / "reports/gate/gate.json").read_text())["champion_after"] == "1"

    # Impossible thresholds: only `register` reruns; v2 is registered, the champion stays v1, reasons kept.
    params["gate"]["overall_max"] = 0.0001
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    rejected = _run([dvc, "repro"], work)
    assert rejected.returncode == 0, rejected.stderr[-2000:]
    assert "Running stage 'register'" in rejected.stdout and "Running stage 'train'" not in rejected.stdout
    gate = json.loads((work / "reports/gate/gate.json").read_text())
    assert gate["version"] == "2" and gate["decision"]["passed"] is False and gate["champion_after"] == "1"
    assert any("overall mae" in r and "<= 0.0001" in r for r in gate["decision"]["reasons"])
    # v1, fetched from the registry, re-scored v2's test rows: the same model, so no difference at all.
    paired = gate["decision"]["paired"]
    assert paired["n"] == metrics["n_test"] and paired["difference"]["overall"]["value"] == 0.0
    assert any(c["name"].startswith("overall vs champion v1") and c["passed"] for c in gate["decision"]["checks"])
    assert "Challenger vs champion v1" in (work / "reports/gate/gate.md").read_text()
    strict = _run([sys.executable, "-m", "pipelines.register", "--params", "params.yaml", "--model",
                   "models/dermeval", "--reports", "reports", "--out", "reports/tmp_gate", "--strict"], work)
    assert strict.returncode == 1 and "NOT promoted" in strict.stderr
    audit = [json.loads(x) for x in (work / "data/registry/audit.jsonl").read_text().splitlines()]
    assert [a["event"] for a in audit].count("promote") == 1 and audit[-1]["event"] == "gate"

    # An experiment with another training param, under bounds it passes: it still must not promote.
    # A 3-epoch model may regress against the champion; not the point here.
    params["gate"]["overall_max"] = 5.0
    params["gate"]["paired"].update(overall_margin=5.0, slice_margin=5.0, unsafe_recall_margin=None, stress_margin=None,
                                    dimension_margin=dict.fromkeys(params["gate"]["dimension_max"], 5.0))
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    for cmd in (["git", "add", "-A"], ["git", "commit", "-qm", "tiny project"]):
        assert _run(cmd, work).returncode == 0
    exp = _run([dvc, "exp", "run", "-S", "train.epochs=3", "-n", "three-epochs"], work)
    assert exp.returncode == 0, exp.stderr[-2000:]
    shown = _run([dvc, "exp", "show", "--json"], work)
    assert shown.returncode == 0 and "three-epochs" in shown.stdout
    # The experiment proposed a version with its verdict; it did not move the champion.
    audit = [json.loads(x) for x in (work / "data/registry/audit.jsonl").read_text().splitlines()]
    gates = [a for a in audit if a["event"] == "gate"]
    assert gates[-1]["experiment"] == "three-epochs" and gates[-1]["passed"], json.dumps(gates[-1])[:3000]
    assert gates[-1]["version"] == str(max(int(g["version"]) for g in gates)) != "1"
    assert [a["event"] for a in audit].count("promote") == 1 and audit[-1]["event"] == "gate"

    # A reviewer promotes the experiment's version: the monitor stage is stale (the audit log moved) and its
    # rerun scores every batch with the new champion, keeping the previous champion's view beside it.
    exp_version = gates[-1]["version"]
    promoted = _run([str(Path(sys.executable).parent / "dermeval"), "registry", "promote", exp_version,
                     "--reason", "experiment reviewed", "--by", "dr.t"], work)
    assert promoted.returncode == 0, promoted.stderr[-2000:]
    status = _run([dvc, "status", "monitor"], work)
    assert "audit.jsonl" in status.stdout, status.stdout
    rerun = _run([dvc, "repro", "monitor"], work)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    summary = json.loads((work / "reports/monitor_summary.json").read_text())
    assert summary["evaluator_version"] == f"dermeval/v{exp_version}" and summary["narratives_stored"] > 0
    from dermeval.store import queries
    from dermeval.store.db import open_store

    engine = open_store(f"sqlite:///{work}/data/store/dermeval.db", create=False)
    assert set(queries.evaluator_versions(engine)) == {"dermeval/v1", f"dermeval/v{exp_version}"}
    engine.dispose()
