"""What the register stage writes about a run: MLflow run names, notes, flat metrics, the gate report.

Pure functions over the stage's reports (no MLflow calls), so each is tested on its own.
"""

from __future__ import annotations

import csv
import dataclasses
import re
import subprocess
from pathlib import Path
from typing import Any


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def _flatten(obj: Any, prefix: str = "") -> dict[str, str]:
    if dataclasses.is_dataclass(obj):
        obj = dataclasses.asdict(obj)
    if isinstance(obj, dict):
        out: dict[str, str] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): str(obj)}


def _key(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_\-./ ]+", "_", text).replace(" ", "_")


def changed_params(params_path: str) -> list[str]:
    """``section.key=value`` for every param that differs from the committed params.yaml (an experiment's -S)."""
    import yaml

    committed = _git("show", f"HEAD:{params_path}")
    if not committed:
        return []
    try:
        before = _flatten(yaml.safe_load(committed) or {})
        now = _flatten(yaml.safe_load(Path(params_path).read_text("utf-8")) or {})
    except (yaml.YAMLError, OSError):
        return []
    return [f"{k}={v}" for k, v in sorted(now.items()) if before.get(k) != v]


def run_name(experiment: str | None, commit: str, changes: list[str]) -> str:
    """``exp lr-small: train.lr=0.001`` for a DVC experiment, ``pipeline 1a2b3c4d`` for the main run."""
    head = f"exp {experiment}" if experiment else f"pipeline {commit[:8] or 'no-git'}"
    tail = ", ".join(changes[:4]) + (f" (+{len(changes) - 4})" if len(changes) > 4 else "")
    return f"{head}: {tail}"[:240] if tail else head


def run_note(flat: dict[str, Any], gen: dict[str, Any], simulated: bool) -> str:
    """The run's description (MLflow shows it first): the figures a reviewer looks at before any other."""
    keys = [("overall MAE (test split)", flat.get("overall_mae")), ("Safety MAE", flat.get("mae_safety")),
            ("unsafe-narrative recall", flat.get("unsafe_recall")),
            ("transfer MAE (unseen real text)", gen.get("gen_transfer_overall_mae")),
            ("stress-suite directional accuracy", gen.get("gen_stress_accuracy")),
            ("clean references, mean overall", gen.get("gen_clean_overall_mean"))]
    lines = ["DermEval pipeline run" + (" (simulated data: every rating from the simulated panel)" if simulated
                                         else ""), "", "| key figure | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4f} |" for k, v in keys if isinstance(v, (int, float)) and v == v]
    return "\n".join(lines)


def agreement_metrics(report: dict[str, Any], judge: dict[str, Any] | None) -> dict[str, float]:
    """Every agreement number as a flat MLflow metric name -> value (NaNs left out)."""
    out: dict[str, float] = {}
    for d, table in report["evaluator"].items():
        for m, v in table.items():
            out[f"{d}.{m}"] = v["value"]
            out[f"{d}.{m}_ci_low"] = v["ci_low"]
            out[f"{d}.{m}_ci_high"] = v["ci_high"]
    for label in ("baseline_mean", "inter_rater_ceiling"):
        for d, table in report.get(label, {}).items():
            out[f"{label}.{d}.mae"] = table["mae"]["value"]
    for kind, table in report.get("slices", {}).items():
        for value, s in table.items():
            out[_key(f"slice.{kind}.{value}.overall_mae")] = s["overall"]["value"]
            out[_key(f"slice.{kind}.{value}.n")] = s["n"]
    if judge:
        for d, table in judge["evaluator"].items():
            out[f"judge.{d}.mae"] = table["mae"]["value"]
            out[f"judge.{d}.spearman"] = table["spearman"]["value"]
    return {k: float(v) for k, v in out.items() if v == v}


def _history(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    with path.open() as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def gate_markdown(gate: dict[str, Any]) -> str:
    d = gate["decision"]
    lines = [f"# Gate: {gate['model']} v{gate['version']} — {'PASSED' if d['passed'] else 'FAILED'}", "",
             f"- champion before: {('v' + d['champion_version']) if d['champion_version'] else 'none'}",
             f"- champion after: {('v' + gate['champion_after']) if gate['champion_after'] else 'none'}",
             f"- MLflow run: `{gate['run_id']}` ({gate['tracking_uri']})", f"- time: {gate['time']}"]
    if gate.get("note"):
        lines.append(f"- note: {gate['note']}")
    ex = gate.get("expert")
    if ex is not None:
        lines.append(f"- expert-rated test narratives: {ex['n']}" + (
            " (gated first: real experts outrank the simulated panel)" if ex["n"] >= ex["min_n"]
            else f" (gated from {ex['min_n']}; until then the simulated panel decides)"))
    if gate.get("simulated"):
        lines.append("- figures are from simulated data")
    lines += ["", "| check | value | bound | result |", "|---|---|---|---|"]
    lines += [f"| {c['name']} | {c['value']:.4f} | {c['op']} {c['bound']:.4f} | {'pass' if c['passed'] else 'FAIL'} |"
              for c in d["checks"]]
    paired = d.get("paired")
    if paired and not paired.get("error"):
        lines += ["", f"## Challenger vs champion v{d['champion_version']}, same {paired['n']} test narratives "
                  f"({paired['n_cases']} cases)", "",
                  "Mean absolute error of each, and the paired difference (challenger - champion) with its 95% CI "
                  "(cases resampled).", "",
                  "| | challenger | champion | difference | 95% CI |", "|---|---|---|---|---|"]
        from dermeval.evaluation import paired_rows

        for r in paired_rows(paired):
            f = ".3f" if r["share"] else ".4f"
            lines.append(f"| {r['figure']} | {r['challenger']:{f}} | {r['champion']:{f}} | {r['difference']:+{f}} | "
                         f"[{r['ci_low']:+{f}}, {r['ci_high']:+{f}}] |")
    return "\n".join(lines) + "\n"


def paired_metrics(paired: dict[str, Any] | None) -> dict[str, float]:
    """The paired comparison as flat MLflow metrics (``vs_champion.*``)."""
    if not paired or paired.get("error"):
        return {}
    out = {}
    for k, fig in paired["difference"].items():
        out.update({f"vs_champion.{k}.error_diff": fig["value"], f"vs_champion.{k}.error_diff_ci_high": fig["ci_high"]})
    if paired.get("unsafe_recall"):
        u = paired["unsafe_recall"]
        out.update({"vs_champion.unsafe_recall_diff": u["value"], "vs_champion.unsafe_recall_diff_ci_low": u["ci_low"]})
    return {k: float(v) for k, v in out.items() if v == v}
