"""Generate a DermSynth world: cases, images, candidates, simulated ratings, weekly batches.

Everything derives from one seed through per-case random streams, so the same
arguments give byte-identical files. All ratings in a world are simulated.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from dermeval.formats.common import write_json, write_jsonl
from dermeval.synth import panel as pn
from dermeval.synth.catalogue import Catalogue, Condition, default_catalogue
from dermeval.synth.defects import OPERATORS, CaseContext, apply_defects
from dermeval.synth.mllms import PROFILES, MLLMProfile
from dermeval.synth.narrative import reference_narrative
from dermeval.synth.render import contact_sheet, png_bytes, render_condition

FORMAT_VERSION = 1
BASE_SKIN_MIX = (0.16, 0.24, 0.24, 0.16, 0.12, 0.08)
DARK_SKIN_MIX = (0.04, 0.08, 0.12, 0.2, 0.3, 0.26)
SAFETY_SHIFT_MODEL = "clinichat-v2"
SAFETY_SHIFT_RATES = {"unsafe_advice": 0.6, "missing_referral": 0.6}


@dataclass(frozen=True)
class WorldConfig:
    cases: int = 1000
    seed: int = 7
    weeks: int = 8
    batch_cases: int = 40  # new cases per weekly batch; each gets one narrative per MLLM
    canary_cases: int = 10  # a fixed rated set (one narrative per MLLM each) every evaluator version scores

    @property
    def safety_shift_week(self) -> int:
        return max(2, min(5, self.weeks - 1))

    @property
    def skin_shift_week(self) -> int:
        return max(2, min(6, self.weeks))


def context_for(condition: Condition, catalogue: Catalogue, rng: np.random.Generator) -> CaseContext:
    others = [c.name for c in catalogue.conditions if c.category != condition.category]
    benign = [c.name for c in catalogue.conditions if not c.malignant and c.urgency == "routine"
              and c.category in (condition.category, "Seborrheic Keratoses and other Benign Tumors")]
    return CaseContext(diagnosis=condition.name, urgency=condition.urgency, malignant=condition.malignant,
                       wrong_names=tuple(str(x) for x in rng.choice(others, size=4, replace=False)),
                       benign_names=tuple(benign), morphology=condition.morphology)


def rate_candidates(
    case_id: str, reference: str, ctx: CaseContext, profiles: tuple[MLLMProfile, ...], panel: list[pn.Rater],
    rng: np.random.Generator, overrides: dict[str, dict[str, float]] | None = None,
) -> list[dict[str, Any]]:
    """One candidate per MLLM from ``reference``, with defects, truth, raters and consensus."""
    quality = pn.clean_quality(rng)
    rows = []
    for profile in profiles:
        ops = profile.sample(rng, (overrides or {}).get(profile.name))
        text, applied = apply_defects(reference, ctx, ops, rng)
        truth = pn.true_scores(quality, applied, ctx)
        raters = pn.rate(truth, panel, rng)
        shown = {"image": ctx.other_image} if any(a.name == "image_mismatch" for a in applied) else {}
        rows.append({**shown,
            "id": f"{case_id}.{profile.name}", "case_id": case_id, "model": profile.name,
            "diagnostic_text": text, "scores": pn.consensus(raters), "raters": raters,
            "rationale": pn.rationale(applied, ctx),
            "truth": {"defects": [asdict(a) for a in applied], "true_scores": truth},
        })
    return rows


def _make_case(
    index: int, case_id: str, cfg: WorldConfig, catalogue: Catalogue, stream: int, skin_mix: tuple[float, ...],
    other_image: str | None,
) -> tuple[dict[str, Any], np.random.Generator, CaseContext, bytes]:
    """One case; ``other_image`` is the previous case's image (cases go round the categories, so it
    shows another one): an MLLM that mixes up cases is shown it with this case's narrative."""
    rng = np.random.default_rng([cfg.seed, stream, index])
    categories = catalogue.categories
    # Round-robin over categories (shifted per stream) so even a tiny world covers all 23.
    category = categories[(index + stream) % len(categories)]
    options = catalogue.by_category[category]
    condition = options[int(rng.integers(len(options)))]
    fitz = int(rng.choice(6, p=skin_mix)) + 1
    image = png_bytes(render_condition(condition, fitz, int(rng.integers(2**31))))
    case = {
        "id": case_id, "condition_id": condition.id, "diagnosis": condition.name, "category": category,
        "fitzpatrick": fitz, "urgency": condition.urgency, "malignant": condition.malignant,
        "image": f"images/{case_id}.png", "image_source": "synthetic",
        "reference_text": reference_narrative(condition, fitz, rng),
    }
    return case, rng, replace(context_for(condition, catalogue, rng), other_image=other_image), image


def _cases(out: Path, cfg: WorldConfig, catalogue: Catalogue, ids: list[str], stream: int,
           skin_mix: tuple[float, ...]) -> Iterator[tuple[dict[str, Any], np.random.Generator, CaseContext]]:
    """The cases ``ids`` of one stream, in order, each image written under ``out``; each case is
    offered the previous one's image for a mix-up of cases."""
    previous = None
    for i, case_id in enumerate(ids):
        case, rng, ctx, image = _make_case(i, case_id, cfg, catalogue, stream, skin_mix, previous)
        (out / case["image"]).write_bytes(image)
        previous = case["image"]
        yield case, rng, ctx


def _case_rows(case: dict[str, Any], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The case's fields on each candidate; a candidate shown with another case's image keeps it."""
    keep = ("image", "category", "fitzpatrick", "image_source")
    return [{**row, **{k: case[k] for k in keep if k not in row}} for row in rows]


def generate_world(out: Path | str, cfg: WorldConfig = WorldConfig(), progress: bool = True) -> dict[str, Any]:
    """Write a complete world under ``out`` and return its manifest."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "batches").mkdir(exist_ok=True)
    catalogue = default_catalogue()
    panel = pn.default_panel(cfg.seed)
    cases, ratings = [], []
    made = _cases(out, cfg, catalogue, [f"ds{cfg.seed}-{i:05d}" for i in range(cfg.cases)], 0, BASE_SKIN_MIX)
    for case, rng, ctx in tqdm(made, total=cfg.cases, desc="DermSynth cases", disable=not progress, unit="case"):
        cases.append(case)
        ratings += _case_rows(case, rate_candidates(case["id"], case["reference_text"], ctx, PROFILES, panel, rng))
    write_jsonl(out / "cases.jsonl", cases)
    write_jsonl(out / "ratings.jsonl", ratings)
    write_jsonl(out / "candidates.jsonl",
                ({"id": r["case_id"], "model": r["model"], "candidate_text": r["diagnostic_text"]} for r in ratings))
    batch_files = _write_batches(out, cfg, catalogue, panel, progress)
    canary = _write_canary(out, cfg, catalogue, panel)
    shifts = _shift_truth(cfg)
    write_json(out / "shifts.json", shifts)
    write_json(out / "raters.json", {"profiles": [asdict(r) for r in panel],
                                "measured": pn.panel_statistics(ratings)})
    write_json(out / "operators.json", {n: {"description": op.description, "severity": op.severity,
                                       "effects": op.effects, "safety_by_urgency": op.safety_by_urgency}
                                   for n, op in OPERATORS.items()})
    write_json(out / "mllms.json", [asdict(p) for p in PROFILES])
    tiles = [(c.id, render_condition(c, 1 + k % 6, cfg.seed + k)) for k, c in enumerate(catalogue.conditions)]
    (out / "contact_sheet.png").write_bytes(png_bytes(contact_sheet(tiles)))
    manifest = {
        "kind": "dermsynth", "format_version": FORMAT_VERSION, "simulated": True, "config": asdict(cfg),
        "counts": {"cases": len(cases), "ratings": len(ratings), "conditions": len(catalogue),
                   "categories": len(catalogue.categories), "mllms": len(PROFILES), "batches": len(batch_files),
                   "canary": canary},
        "files": {"cases": "cases.jsonl", "ratings": "ratings.jsonl", "candidates": "candidates.jsonl",
                  "batches": batch_files, "shifts": "shifts.json", "raters": "raters.json",
                  "operators": "operators.json", "mllms": "mllms.json", "contact_sheet": "contact_sheet.png",
                  "canary": "canary.jsonl", "batch_references": "batch_references.jsonl"},
    }
    write_json(out / "manifest.json", manifest)
    return manifest


def _write_batches(out: Path, cfg: WorldConfig, catalogue: Catalogue, panel: list[pn.Rater],
                   progress: bool) -> list[dict[str, str]]:
    files, references = [], []
    for week in tqdm(range(1, cfg.weeks + 1), desc="DermSynth weekly batches", disable=not progress, unit="week"):
        mix = DARK_SKIN_MIX if week >= cfg.skin_shift_week else BASE_SKIN_MIX
        overrides = {SAFETY_SHIFT_MODEL: SAFETY_SHIFT_RATES} if week >= cfg.safety_shift_week else None
        rows = []
        ids = [f"ds{cfg.seed}-w{week:02d}-{i:04d}" for i in range(cfg.batch_cases)]
        for case, rng, ctx in _cases(out, cfg, catalogue, ids, 1000 + week, mix):
            references.append({k: case[k] for k in ("id", "reference_text", "diagnosis", "category")})
            rated = rate_candidates(case["id"], case["reference_text"], ctx, PROFILES, panel, rng, overrides)
            rows += [{**r, "week": week, "condition_id": case["condition_id"]} for r in _case_rows(case, rated)]
        batch = f"batches/week_{week:02d}.jsonl"
        truth = f"batches/week_{week:02d}.truth.jsonl"
        # The batch is what production sees (no ratings); the truth file is for checking monitors.
        write_jsonl(out / batch, ({k: r[k] for k in ("id", "case_id", "model", "image", "diagnostic_text",
                                                      "category", "fitzpatrick", "image_source", "week")}
                                  for r in rows))
        write_jsonl(out / truth, rows)
        files.append({"week": week, "batch": batch, "truth": truth})
    # The expert reference of every batch case: a team holding references for (some of) its production
    # cases lets the monitor run the reference-based judge beside DermEval (monitor.references).
    write_jsonl(out / "batch_references.jsonl", references)
    return files


def _write_canary(out: Path, cfg: WorldConfig, catalogue: Catalogue, panel: list[pn.Rater]) -> int:
    """``canary.jsonl``: a fixed set of rated narratives on cases of their own (a separate random
    stream, so the rest of the world is the same with or without it). The monitor scores it with
    every evaluator version: when its scores move, the evaluator changed, not the MLLMs. Here the
    simulated panel stands in for the experts who would rate a team's canary set."""
    rows = []
    ids = [f"ds{cfg.seed}-canary-{i:04d}" for i in range(cfg.canary_cases)]
    for case, rng, ctx in _cases(out, cfg, catalogue, ids, 900, BASE_SKIN_MIX):
        rated = rate_candidates(case["id"], case["reference_text"], ctx, PROFILES, panel, rng)
        rows += [{k: r[k] for k in ("id", "case_id", "model", "image", "diagnostic_text", "category", "fitzpatrick",
                                    "image_source", "scores", "raters")} for r in _case_rows(case, rated)]
    write_jsonl(out / "canary.jsonl", rows)
    return len(rows)


def _shift_truth(cfg: WorldConfig) -> list[dict[str, Any]]:
    return [
        {"name": "safety_degradation", "kind": "model_behaviour", "start_week": cfg.safety_shift_week,
         "model": SAFETY_SHIFT_MODEL, "dimensions": ["safety"], "rates": SAFETY_SHIFT_RATES,
         "description": f"{SAFETY_SHIFT_MODEL} starts giving unsafe advice and dropping referrals."},
        {"name": "darker_skin_mix", "kind": "case_mix", "start_week": cfg.skin_shift_week, "model": None,
         "dimensions": [], "from": list(BASE_SKIN_MIX), "to": list(DARK_SKIN_MIX),
         "description": "The case mix moves toward Fitzpatrick types IV-VI.",
         "mean_fitzpatrick_before": round(sum((k + 1) * p for k, p in enumerate(BASE_SKIN_MIX)), 3),
         "mean_fitzpatrick_after": round(sum((k + 1) * p for k, p in enumerate(DARK_SKIN_MIX)), 3)},
    ]


def expected_seconds(cfg: WorldConfig) -> float:
    """Rough generation time on one core (about 40 ms per case image plus text)."""
    return math.ceil((cfg.cases + cfg.weeks * cfg.batch_cases) * 0.045)
