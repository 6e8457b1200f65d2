"""A real-text dataset from the DermBench release, made with DermSynth's machinery.

Each expert narrative becomes a clean candidate ("dermbench-reference") plus one
defective variant per simulated MLLM, all rated by the simulated panel. Images are
the real DermNet ones when a DermNet root is given, else a stand-in rendered for the
case's category (``image_source: "synthetic"``). Ratings here are simulated too.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from dermeval import text as tx
from dermeval.formats.common import write_json, write_jsonl
from dermeval.formats.dermbench import DermBenchCase, load_dermbench
from dermeval.synth import panel as pn
from dermeval.synth.catalogue import Catalogue, default_catalogue
from dermeval.synth.defects import CaseContext
from dermeval.synth.mllms import PROFILES, MLLMProfile
from dermeval.synth.render import png_bytes, render_condition
from dermeval.synth.world import BASE_SKIN_MIX, rate_candidates

MALIGNANT = re.compile(r"melanoma|carcinoma|malignan|lymphoma|sarcoma|bowen|lentigo maligna|mycosis", re.I)
URGENT_ADVICE = re.compile(r"\burgent\w*|immediate\w*|as soon as possible|promptly|biopsy\b", re.I)
CLEAN = MLLMProfile("dermbench-reference", "The expert reference narrative itself, unchanged.", {})


def case_context(case: DermBenchCase, catalogue: Catalogue, rng: np.random.Generator) -> CaseContext:
    """Urgency and malignancy from the diagnosis and the reference text, by a stated keyword rule."""
    concl = tx.conclusion_index(parts := tx.sentences(case.reference_text))
    bold = tx.bold_terms(parts[concl]) if concl is not None else []
    diagnosis = bold[0] if bold else case.diagnosis
    malignant = bool(MALIGNANT.search(case.diagnosis) or MALIGNANT.search(diagnosis))
    urgency = "urgent" if malignant or URGENT_ADVICE.search(case.reference_text) else "treat"
    others = [c.name for c in catalogue.conditions if c.category != case.category]
    benign = [c.name for c in catalogue.conditions if not c.malignant and c.urgency == "routine"]
    return CaseContext(diagnosis=diagnosis, urgency=urgency, malignant=malignant,
                       wrong_names=tuple(str(x) for x in rng.choice(others, size=4, replace=False)),
                       benign_names=tuple(benign))


def _image(case: DermBenchCase, catalogue: Catalogue, rng: np.random.Generator) -> tuple[bytes, str, int | None]:
    if case.image_path is not None:
        with Image.open(case.image_path) as im:
            return png_bytes(im.convert("RGB").resize((224, 224))), "dermnet", None
    options = catalogue.by_category[case.category]
    fitz = int(rng.choice(6, p=BASE_SKIN_MIX)) + 1
    condition = options[int(rng.integers(len(options)))]
    return png_bytes(render_condition(condition, fitz, int(rng.integers(2**31)))), "synthetic", fitz


def build_dermbench_dataset(
    release: Path | str, out: Path | str, *, seed: int = 7, dermnet_root: Path | str | None = None,
    limit: int | None = None, progress: bool = True,
) -> dict[str, Any]:
    """Write cases, images and rated candidates for the release (or its first ``limit`` cases)."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    loaded = load_dermbench(release, dermnet_root)
    if loaded.source_errors:
        raise FileNotFoundError("; ".join(str(e) for e in loaded.source_errors))
    catalogue, panel = default_catalogue(), pn.default_panel(seed)
    cases_in = loaded.records[:limit] if limit else loaded.records
    cases, ratings = [], []
    for case in tqdm(cases_in, desc="DermBench cases", disable=not progress, unit="case"):
        key = int.from_bytes(hashlib.sha256(case.id.encode()).digest()[:4], "big")
        rng = np.random.default_rng([seed, 2, key])
        image, source, fitz = _image(case, catalogue, rng)
        rel = f"images/{case.id}.png"
        (out / rel).write_bytes(image)
        ctx = case_context(case, catalogue, rng)
        row = {"id": case.id, "diagnosis": case.diagnosis, "category": case.category, "fitzpatrick": fitz,
               "urgency": ctx.urgency, "malignant": ctx.malignant, "image": rel, "image_source": source,
               "reference_text": case.reference_text, "cot": case.cot}
        cases.append({k: v for k, v in row.items() if v is not None})
        rated = rate_candidates(case.id, case.reference_text, ctx, (CLEAN, *PROFILES), panel, rng)
        ratings += [{**r, "image": rel, "category": case.category, "image_source": source,
                     **({"fitzpatrick": fitz} if fitz else {})} for r in rated]
    write_jsonl(out / "cases.jsonl", cases)
    write_jsonl(out / "ratings.jsonl", ratings)
    write_jsonl(out / "rejected.jsonl", (e.to_dict() for e in loaded.errors))
    manifest = {"kind": "dermbench-derived", "simulated": True, "seed": seed, "release": str(release),
                "counts": {"cases": len(cases), "ratings": len(ratings), "rejected": len(loaded.errors),
                           "real_images": sum(c["image_source"] == "dermnet" for c in cases)},
                "files": {"cases": "cases.jsonl", "ratings": "ratings.jsonl", "rejected": "rejected.jsonl"}}
    write_json(out / "manifest.json", manifest)
    return manifest

