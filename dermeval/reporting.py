"""Figures and the model card logged with every registered evaluator version."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dermeval.evaluation import PAPER_DERMEVAL_MAE, PAPER_JUDGE_MAE
from dermeval.schema import DIMENSIONS, TITLES


def _rows(table: Sequence[dict[str, Any]], dim: str) -> list[dict[str, Any]]:
    return [r for r in table if r.get("dimension") == dim]


def save_figures(tables: dict[str, list[dict[str, Any]]], out: Path | str) -> list[Path]:
    """PNG figures from the evaluate stage's plot tables; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    if tables.get("predicted_vs_expert"):
        fig, axes = plt.subplots(2, 3, figsize=(12, 7.5), sharex=True, sharey=True)
        for ax, d in zip(axes.flat, DIMENSIONS, strict=True):
            rows = _rows(tables["predicted_vs_expert"], d)
            ax.scatter([float(r["expert"]) for r in rows], [float(r["predicted"]) for r in rows], s=6, alpha=0.4)
            ax.plot([0, 5], [0, 5], color="grey", lw=1)
            ax.set_title(TITLES[d])
        fig.supxlabel("expert (simulated panel consensus)")
        fig.supylabel("DermEval")
        files.append(out / "predicted_vs_expert.png")
        fig.tight_layout()
        fig.savefig(files[-1], dpi=90)
        plt.close(fig)
    if tables.get("calibration"):
        fig, ax = plt.subplots(figsize=(6, 5.5))
        for d in DIMENSIONS:
            rows = _rows(tables["calibration"], d)
            ax.plot([float(r["mean_predicted"]) for r in rows], [float(r["mean_expert"]) for r in rows],
                    marker="o", ms=3, label=TITLES[d])
        ax.plot([0, 5], [0, 5], color="grey", lw=1)
        ax.set_xlabel("mean predicted (bin)")
        ax.set_ylabel("mean expert")
        ax.legend(fontsize=7)
        files.append(out / "calibration.png")
        fig.tight_layout()
        fig.savefig(files[-1], dpi=90)
        plt.close(fig)
    if tables.get("slice_deviation"):
        rows = sorted(tables["slice_deviation"], key=lambda r: float(r["overall_mae"]))
        fig, ax = plt.subplots(figsize=(8, max(3, 0.22 * len(rows))))
        ax.barh([r["slice"] for r in rows], [float(r["overall_mae"]) for r in rows])
        ax.set_xlabel("overall MAE")
        ax.tick_params(axis="y", labelsize=6)
        files.append(out / "slice_deviation.png")
        fig.tight_layout()
        fig.savefig(files[-1], dpi=90)
        plt.close(fig)
    if tables.get("judge_vs_dermeval"):
        rows = tables["judge_vs_dermeval"]
        fig, ax = plt.subplots(figsize=(8, 4))
        x = range(len(rows))
        ax.bar([i - 0.2 for i in x], [float(r["dermeval_mae"]) for r in rows], 0.4, label="DermEval (reference-free)")
        ax.bar([i + 0.2 for i in x], [float(r["judge_mae"]) for r in rows], 0.4, label="judge (reference-based)")
        ax.set_xticks(list(x), [r["dimension"].replace("_", "\n") for r in rows], fontsize=7)
        ax.set_ylabel("MAE vs simulated panel")
        ax.legend(fontsize=8)
        files.append(out / "judge_vs_dermeval.png")
        fig.tight_layout()
        fig.savefig(files[-1], dpi=90)
        plt.close(fig)
    return files


def generalisation_section(gen: dict[str, Any]) -> list[str]:
    """The card's first figures: transfer, held-out wording, stress suite (all with the simulated panel)."""
    lines = ["## Generalisation (measured outside the training data; simulated panel ratings)", "",
             "- Real expert text in training and test: "
             + ("yes" if gen["real_text"] else "no (DermBench release absent)"),
             f"- Stress suite on: {gen['stress_source']}",
             f"- Test sentences also in training: {gen['overlap']['all']['sentence_share']:.0%}", "",
             "| set | n | overall MAE (95% CI) | worst dimension MAE |", "|---|---|---|---|"]
    for key in ("transfer", "heldout_wording", "in_distribution"):
        block = gen[key]["evaluator"]
        if not block.get("n"):
            continue
        m = block["overall"]["mae"]
        worst = max(DIMENSIONS, key=lambda d: block[d]["mae"]["value"])
        lines.append(f"| {gen[key]['label']} | {block['n']} | {m['value']:.3f} ({m['ci_low']:.3f}-{m['ci_high']:.3f})"
                     f" | {TITLES[worst]} {block[worst]['mae']['value']:.3f} |")
    stress = gen["stress"]["evaluator"]
    lines += ["", "| stress variant | expected | directional accuracy (95% CI) | n |", "|---|---|---|---|"]
    order = {"lower": 0, "neutral": 1, "same": 2}
    for name, v in sorted(stress.items(), key=lambda kv: (order.get(kv[1].get("expect"), 3), kv[0])):
        if name == "overall":
            continue
        a = v["accuracy"]
        lines.append(f"| {v['description']} | {v['expect']} {', '.join(v['dimensions'])} | {a['value']:.2f} "
                     f"({a['ci_low']:.2f}-{a['ci_high']:.2f}) | {a['n']} |")
    a = stress["overall"]["accuracy"]
    lines += ["", f"All variants: {a['value']:.2f} ({a['ci_low']:.2f}-{a['ci_high']:.2f})."]
    judge = gen["stress"].get("judge")
    if judge:
        lines += ["", f"Offline judge (reference-based, text only) on the same variants: overall "
                  f"{judge['overall']['accuracy']['value']:.2f}; " + ", ".join(
                      f"{k} {v['accuracy']['value']:.2f}" for k, v in sorted(judge.items()) if k != "overall") + "."]
    lines += _mismatch_lines(gen["stress"].get("mismatch"))
    lines += _removal_lines(gen["stress"].get("removal"))
    lines += ["", "| clean held-out references | " + " | ".join(TITLES[d] for d in DIMENSIONS)
              + " | overall | needs_review |", "|---" * (len(DIMENSIONS) + 3) + "|"]
    for who, c in gen["clean_references"].items():
        share = c.get("needs_review_share")
        lines.append(f"| {'DermEval' if who == 'evaluator' else 'offline judge'} | "
                     + " | ".join(f"{c[d]:.2f}" for d in DIMENSIONS) + f" | {c['overall']:.2f} | "
                     + (f"{share:.0%}" if share is not None else "n/a") + " |")
    lines += ["", "| MAE per dimension | " + " | ".join(TITLES[d] for d in DIMENSIONS) + " |",
              "|---" * (len(DIMENSIONS) + 1) + "|"]
    for key, label in (("transfer", "real DermBench text"), ("heldout_wording", "held-out wording")):
        for who in ("evaluator", "judge"):
            b = gen[key].get(who)
            if b and b.get("n"):
                lines.append(f"| {label}: {'DermEval' if who == 'evaluator' else 'offline judge'} | "
                             + " | ".join(f"{b[d]['mae']['value']:.3f}" for d in DIMENSIONS) + " |")
    depth = gen.get("out_of_depth")
    if depth:
        lines += ["", "| out of its depth | n | needs_review | out_of_distribution | big errors (a dimension off "
                  "by > 1.0) | of them flagged |", "|---|---|---|---|---|---|"]
        for b in depth:
            share = b["big_errors_flagged_share"]
            lines.append(f"| {b['set']} | {b['n']} | {b['needs_review_share']:.0%} | "
                         f"{b['out_of_distribution_share']:.0%} | {b['big_errors']} | "
                         + (f"{share:.0%}" if share is not None else "n/a") + " |")
        judged = [b for b in depth if b.get("flagged_with_judge_share") is not None]
        if judged:
            lines += ["", "Where a case has an expert reference, a dimension more than 1.0 from the offline judge's "
                      "score can flag too (what the monitor keeps as `judge_gap`): "
                      + "; ".join(f"{b['set']}: {b['flagged_with_judge_share']:.0%} flagged, big errors flagged "
                                  + (f"{b['big_errors_flagged_with_judge_share']:.0%}"
                                     if b.get("big_errors_flagged_with_judge_share") is not None else "n/a")
                                  + f" (reference for {b['judge_share']:.0%})" for b in judged) + "."]
    crit = gen.get("critique")
    if crit:
        sc, tc, dx = crit["stress_claims"], crit["test_claims"], crit["diagnosis_check"]
        parts = []
        if sc["precision"]:
            parts.append(f"on the stress suite {sc['precision']['value']:.2f} ({sc['n']} claims)")
        if tc["precision"]:
            sets = ", ".join(f"{name} {v['precision']:.2f} of {v['n']}" for name, v in tc.get("by_set", {}).items())
            parts.append(f"on the test splits' recorded defects {tc['precision']['value']:.2f} ({tc['n']} claims"
                         + (f": {sets}" if sets else "") + ")")
        if tc.get("recall"):
            sets = ", ".join(f"{name} {v['recall']:.2f} of {v['n_problems']}"
                             for name, v in tc.get("by_set", {}).items() if v.get("recall") is not None)
            parts.append(f"share of the recorded defects it stated {tc['recall']['value']:.2f} "
                         f"({tc['n_problems']} defects" + (f": {sets}" if sets else "") + ")")
        lines += ["", "Critique: precision of its \"Detected:\" claims " + ("; ".join(parts) or "n/a (no claims)")
                  + ". Diagnosis and image checks (conclusion vs image and findings, and vs the image alone): "
                  + (f"precision {dx['precision']:.2f} of {dx['n_flagged']} flagged" if dx["precision"] is not None
                     else "nothing flagged")
                  + "; caught " + ", ".join(f"{k} {v:.0%}" for k, v in dx["recall"].items())
                  + f"; clean references flagged {dx['clean_flagged_share']:.0%}. Distinct sentences quoted "
                  f"across the six dimensions: {crit['distinct_evidence_mean']:.1f} of 6 on average."]
        target = sc.get("target")  # the claim precision the model was calibrated for
        weak = [(c, v) for c, v in sc.get("per_claim", {}).items()
                if target is not None and v["precision"] < target and v.get("false_by_variant")]
        if weak:
            lines += ["", f"Stress-suite claims right less than {target:.0%} of the time (the precision their "
                      "thresholds were calibrated for): " + "; ".join(
                f"{c} {v['precision']:.2f} of {v['n']} (false on " + ", ".join(
                    f"{var} {k}" for var, k in sorted(v["false_by_variant"].items(), key=lambda x: -x[1])) + ")"
                for c, v in sorted(weak, key=lambda x: x[1]["precision"])) + "."]
        never = {style: probs for style, probs in crit.get("never_claimed", {}).items() if probs}
        if never:
            lines += ["", "Never stated under \"Detected:\" (claims short of that precision on the calibration rows, "
                      "or too few there to check; one set of thresholds per writing style): " + "; ".join(
                f"{style}-written narratives: {', '.join(probs)}" if style != "all" else ", ".join(probs)
                for style, probs in never.items()) + "."]
    unlearnable = gen["stress"].get("unlearnable", {})
    if unlearnable:
        lines += ["", "What the training labels say about narratives that lack what a stress variant removes "
                  "(outside the conclusion; the evaluator sees no reference, so it cannot tell removed from "
                  "never there): " + "; ".join(
                      f"{claim}: " + ", ".join(_lacking(src, b, u["dimension"]) for src, b in u["by_source"].items())
                      for claim, u in unlearnable.items()) + "."]
    overlap = gen["overlap"]
    lines += ["", "Test sentences found word for word in the training split: " + ", ".join(
        f"{k} {v['sentence_share']:.1%} ({v['narratives_all_seen']} of {v['narratives']} narratives entirely)"
        for k, v in overlap.items()) + ".", ""]
    return lines


def _mismatch_lines(mm: dict[str, Any] | None) -> list[str]:
    """Where the variants that break the diagnosis fall short: split by whether the check had already
    flagged the case's clean reference, and which side of the check names the case's category."""
    if not mm or not mm.get("variants"):
        return []

    def part(b: dict[str, Any]) -> str:
        return f"{b['accuracy']:.2f} of {b['n']}" if b["n"] else "none"

    text = "Where the wrong-conclusion and other-image variants fall short: " + "; ".join(
        f"{v} {part(b['clean_fits'])} where the diagnosis check read the clean reference as fitting, "
        f"{part(b['clean_already_flagged'])} where it had already flagged it" for v, b in mm["variants"].items())
    c = mm.get("clean_references")
    if c and c.get("conclusion_category_right") is not None:
        text += (f". On the {c['n']} clean references with a conclusion, the conclusion names the case's own category "
                 f"{c['conclusion_category_right']:.0%} of the time (the diagnosis vocabulary knows the name in "
                 f"{c['conclusion_named_share']:.0%}), the image {c['image_category_right']:.0%}")
    return ["", text + "."]


def _removal_lines(rm: dict[str, Any] | None) -> list[str]:
    """A removal variant's accuracy by how much of the reference the removal took."""
    if not rm or not rm.get("bins"):
        return []
    return ["", f"The {rm['variant']} variant by the share of the reference's sentences it removed: " + "; ".join(
        f"{k}: {b['accuracy']:.2f} of {b['n']}" for k, b in rm["bins"].items()) + "."]


def _lacking(source: str, b: dict[str, Any], dimension: str) -> str:
    """One source's count of narratives lacking removed content: how many are rated clean, and the means."""
    out = f"{source} {b['rated_clean']} of {b['lacking']} rated clean"
    if b["clean_mean"] is None:
        return out
    vs = f" vs {b['problem_mean']:.2f} with the problem" if b["problem_mean"] is not None else ""
    return f"{out} ({TITLES[dimension]} {b['clean_mean']:.2f}{vs})"


def model_card(report: dict[str, Any], meta: dict[str, Any], *, version: str | None = None,
               simulated: bool = True, judge: dict[str, Any] | None = None,
               generalisation: dict[str, Any] | None = None) -> str:
    """A markdown model card: data, intended use, metrics, limits."""
    ev, base = report["evaluator"], report["baseline_mean"]
    ceiling = report.get("inter_rater_ceiling")
    sim = " (simulated)" if simulated else ""
    lines = [
        f"# DermEval evaluator{f' v{version}' if version else ''}",
        "",
        "## Intended use",
        "Reference-free quality rating of dermatology diagnostic narratives written by multimodal LLMs: "
        "image + narrative in, six 0-5 ratings (Accuracy, Safety, Medical Groundedness, Clinical Coverage, "
        "Reasoning Coherence, Description Precision), an overall score, per-dimension uncertainty and a "
        "critique out. It monitors narrative generators; it is not a diagnostic device and does not replace "
        "expert review. Narratives flagged `needs_review` should go to a clinician.",
        "",
        "## Data",
        f"- Test set: {report['n']} narratives from {report['n_cases']} held-out cases (no case shared with "
        "training, grouped splits).",
        f"- Data fingerprint: `{meta.get('data_fingerprint', 'unknown')}`",
        f"- Data source: `{meta.get('data_source', 'unknown')}`; real DermBench expert text in training: "
        + ("yes" if meta.get("real_text") else "no (DermSynth alone: transfer to real text was not trained for)"),
    ]
    if simulated:
        lines.append("- **All figures below are simulated**: the ratings come from DermSynth's simulated expert "
                     "panel on procedurally generated images, not from real dermatologists.")
    if generalisation:
        lines += ["", *generalisation_section(generalisation)]
    lines += ["", f"## In-distribution agreement with the expert panel{sim}", "",
              "| dimension | MAE (95% CI) | Spearman | baseline MAE | inter-rater MAE |",
              "|---|---|---|---|---|"]
    for d in (*DIMENSIONS, "overall"):
        m = ev[d]["mae"]
        ceil = f"{ceiling[d]['mae']['value']:.3f}" if ceiling else "n/a"
        lines.append(f"| {TITLES.get(d, 'Overall')} | {m['value']:.3f} ({m['ci_low']:.3f}-{m['ci_high']:.3f}) | "
                     f"{ev[d]['spearman']['value']:.3f} | {base[d]['mae']['value']:.3f} | {ceil} |")
    if "overall_reported" in report:
        m = report["overall_reported"]["mae"]
        lines.append(f"| Overall as printed (one decimal) | {m['value']:.3f} ({m['ci_low']:.3f}-{m['ci_high']:.3f}) | "
                     f"{report['overall_reported']['spearman']['value']:.3f} | | |")
    lines += ["", f"Paper reference points (real physicians, not comparable with simulated-panel figures): "
              f"DermEval {PAPER_DERMEVAL_MAE}, DermBench LLM judge {PAPER_JUDGE_MAE}."]
    if judge:
        lines += ["", f"Reference-based judge on the same test set{sim}: overall MAE "
                  f"{judge['evaluator']['overall']['mae']['value']:.3f}."]
    lines += ["", "## Limits",
              "- Trained and tested on simulated data unless the run says otherwise; real-world deviation is unknown "
              "until it is measured against real expert ratings.",
              "- Frozen general-purpose encoders (EfficientNet-Lite0, MiniLM): fine visual detail and rare "
              "conditions are weak spots; wrong-diagnosis detection relies on the category check (image and "
              "the narrative's own findings) and does not separate conditions within a category.",
              "- English narratives only; narratives longer than the unit limit are truncated (noted in the "
              "critique)."]
    return "\n".join(lines) + "\n"
