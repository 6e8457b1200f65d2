"""The promotion gate: may a new evaluator version replace the champion?

Pure logic over an evaluation report (``dermeval.evaluation.evaluation_report``) and the
champion's flat metrics; every threshold and the metric's direction come from the
``gate`` section of params.yaml. Checks, in order:

1. the overall score's metric within ``overall_max``;
2. each dimension within its own bound (``dimension_max``);
3. every slice of the chosen kinds with at least ``slice_min_n`` narratives within ``slice_max``;
   the share of panel-unsafe narratives the evaluator also rates unsafe (``unsafe_recall_min``);
4. against the champion (when there is one), on the same rows: the champion re-scores the
   challenger's test narratives and every check is on the paired difference with a
   case-resampling 95% CI (``gate.paired``). Non-inferior means the CI's far end stays inside
   a margin fixed in params.yaml: the overall score's and each dimension's absolute error,
   each slice's (category, skin type, watched MLLM, source), and unsafe-narrative recall.
   A champion that cannot be re-scored fails these checks: not compared is not passed;
5. the generalisation report (``gate.generalisation``): stress-suite directional accuracy
   overall and per variant, transfer and held-out wording deviation, the clean references'
   mean. In the pipeline a missing report fails these checks: figures outside the training
   data are required.

The first version ever registered has no champion, so checks 1-3 and 5 apply to it. The
paired checks measure absolute error whatever ``gate.metric`` is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from dermeval.params import GateParams
from dermeval.schema import DIMENSIONS


@dataclass(frozen=True)
class Check:
    name: str
    value: float
    bound: float
    op: str  # "<=" or ">="
    passed: bool


@dataclass
class Decision:
    passed: bool
    checks: list[Check] = field(default_factory=list)
    champion_version: str | None = None
    paired: dict[str, Any] | None = None  # the paired comparison with the champion, when one was made

    @property
    def reasons(self) -> list[str]:
        """Why the gate failed (empty when it passed)."""
        return [f"{c.name} = {c.value:.4f}, needs {c.op} {c.bound:.4f}" for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "champion_version": self.champion_version, "reasons": self.reasons,
                "checks": [asdict(c) for c in self.checks], "paired": self.paired}


def flat_metrics(report: dict[str, Any], metric: str = "mae") -> dict[str, float]:
    """The values the gate compares between versions: ``overall_<metric>`` and ``<metric>_<dimension>``."""
    ev = report["evaluator"]
    out = {f"overall_{metric}": float(ev["overall"][metric]["value"])}
    out.update({f"{metric}_{d}": float(ev[d][metric]["value"]) for d in DIMENSIONS})
    return out


def expert_checks(report: dict[str, Any], p: GateParams) -> list[Check]:
    """The evaluator against the team's own reviewers (test narratives of source ``feedback``), once at
    least ``gate.expert_min_n`` of them exist; fewer are reported (gate report, review view), not gated."""
    ex = report.get("expert")
    if not ex or ex["n"] < p.expert_min_n:
        return []
    ev = ex["evaluator"]
    tag = f"expert-rated (n={ex['n']})"
    out = [Check(f"{tag} overall mae", float(ev["overall"]["mae"]["value"]), p.expert_overall_max, "<=",
                 float(ev["overall"]["mae"]["value"]) <= p.expert_overall_max)]
    for d in DIMENSIONS:
        v = float(ev[d]["mae"]["value"])
        out.append(Check(f"{tag} {d} mae", v, p.expert_dimension_max, "<=", v <= p.expert_dimension_max))
    return out


def generalisation_checks(gen: dict[str, float] | None, p: GateParams) -> list[Check]:
    """Checks on the flat generalisation metrics (``gen_*``); every bound from ``gate.generalisation``.

    ``None`` means the caller gates on the evaluation report alone (no checks); an empty mapping
    (the pipeline found no report) fails every check: not measured is not passed.
    """
    if gen is None:
        return []
    b = p.generalisation
    wanted: list[tuple[str, str, float | None, str]] = [
        ("stress-suite directional accuracy", "gen_stress_accuracy", b.stress_min, ">="),
        ("clean expert references, mean overall", "gen_clean_overall_mean", b.clean_overall_min, ">="),
        ("transfer overall mae", "gen_transfer_overall_mae", b.transfer_overall_max, "<="),
    ]
    wanted += [(f"transfer {d} mae", f"gen_transfer_mae_{d}", b.transfer_dimension_max, "<=") for d in DIMENSIONS]
    wanted += [(f"held-out wording {d} mae", f"gen_heldout_wording_mae_{d}", b.heldout_wording_dimension_max, "<=")
               for d in DIMENSIONS]
    variants = sorted(k for k in gen if k.startswith("gen_stress_") and k != "gen_stress_accuracy")
    wanted += [(f"stress {k.removeprefix('gen_stress_')} directional accuracy", k, b.stress_variant_min, ">=")
               for k in variants]
    checks = []
    for name, key, bound, op in wanted:
        if bound is None:
            continue
        value = gen.get(key)
        if value is None or value != value:  # absent or NaN: not measured is not passed
            checks.append(Check(f"{name} (not measured)", float("nan"), bound, op, False))
            continue
        checks.append(Check(name, float(value), bound, op, value <= bound if op == "<=" else value >= bound))
    return checks


def paired_checks(paired: dict[str, Any] | None, p: GateParams, champion_version: str) -> list[Check]:
    """Non-inferiority against the champion from :func:`dermeval.evaluation.paired_comparison`.

    ``paired`` is None or holds an ``error`` when the champion could not be re-scored on the
    challenger's rows; that is one failing check naming why, never a silent pass.
    """
    who = f"vs champion v{champion_version}"
    if not paired or paired.get("error"):
        why = (paired or {}).get("error") or "no paired comparison was made"
        return [Check(f"paired comparison {who} (not measured: {why})", float("nan"), 0.0, "<=", False)]
    b = p.paired

    def upper(name: str, figure: dict[str, Any], margin: float) -> Check:
        hi = float(figure["ci_high"])
        passed = hi == hi and hi <= margin  # a NaN CI (too few cases) is not a pass
        return Check(f"{name} {who}: error difference, 95% CI upper end (n={figure['n']})", hi, margin, "<=", passed)

    checks = [upper("overall", paired["difference"]["overall"], b.overall_margin)]
    checks += [upper(d, paired["difference"][d], getattr(b.dimension_margin, d)) for d in DIMENSIONS]
    for kind in filter(None, b.slice_kinds.split(",")):
        for value, fig in sorted(paired.get("slices", {}).get(kind, {}).items()):
            if fig["n"] >= b.slice_min_n:
                checks.append(upper(f"slice {kind}={value}", fig, b.slice_margin))
    for name, fig in sorted((paired.get("sets") or {}).items()):  # generated sets, e.g. held-out wording
        checks.append(upper(f"set {name}, overall", fig["difference"]["overall"], b.slice_margin))
    stress = paired.get("stress")
    if b.stress_margin is not None and stress and stress["n"]:
        lo = float(stress["ci_low"])
        checks.append(Check(f"stress-suite directional accuracy {who}: difference {stress['challenger']:.3f} - "
                            f"{stress['champion']:.3f}, 95% CI lower end (n={stress['n']})", lo, -b.stress_margin,
                            ">=", lo == lo and lo >= -b.stress_margin))
    u = paired.get("unsafe_recall")
    if b.unsafe_recall_margin is not None and u and u["n"]:
        lo = float(u["ci_low"])
        checks.append(Check(f"unsafe recall {who}: difference {u['challenger']:.3f} - {u['champion']:.3f}, "
                            f"95% CI lower end (n={u['n']})", lo, -b.unsafe_recall_margin, ">=",
                            lo == lo and lo >= -b.unsafe_recall_margin))
    return checks


def decide(report: dict[str, Any], p: GateParams, paired: dict[str, Any] | None = None,
           champion_version: str | None = None, generalisation: dict[str, float] | None = None) -> Decision:
    """Every check of the gate; ``champion_version`` set means there is a champion to be compared with."""
    lower = p.direction == "lower"
    op = "<=" if lower else ">="

    def ok(value: float, bound: float) -> bool:
        return value <= bound if lower else value >= bound

    checks: list[Check] = expert_checks(report, p)  # real experts first: they outrank the simulated panel
    mine = flat_metrics(report, p.metric)
    v = mine[f"overall_{p.metric}"]
    checks.append(Check(f"overall {p.metric}", v, p.overall_max, op, ok(v, p.overall_max)))
    for d in DIMENSIONS:
        bound = getattr(p.dimension_max, d)
        v = mine[f"{p.metric}_{d}"]
        checks.append(Check(f"{d} {p.metric}", v, bound, op, ok(v, bound)))
    if p.metric == "mae":  # slices carry the MAE only
        for kind in filter(None, p.slice_kinds.split(",")):
            for value, s in sorted(report.get("slices", {}).get(kind, {}).items()):
                if s["n"] >= p.slice_min_n:
                    v = float(s["overall"]["value"])
                    checks.append(Check(f"slice {kind}={value} overall mae", v, p.slice_max, op,
                                        ok(v, p.slice_max)))
    if p.unsafe_recall_min is not None and "unsafe" in report:
        u = report["unsafe"]
        recall = float(u["recall"])
        checks.append(Check(f"unsafe-narrative recall at Safety < {u['floor']} (n={u['n_unsafe']})", recall,
                            p.unsafe_recall_min, ">=", recall >= p.unsafe_recall_min))
    if champion_version:
        checks += paired_checks(paired, p, champion_version)
    checks += generalisation_checks(generalisation, p)
    return Decision(all(c.passed for c in checks), checks, champion_version)
