"""A real-text dataset from the DermBench release, made with DermSynth's machinery.

Each expert narrative becomes a clean candidate ("dermbench-reference") plus one
defective variant per simulated MLLM, all rated by the simulated panel. Images are
the real DermNet ones when a DermNet root is given, else a stand-in rendered for the
case's category (``image_source: "synthetic"``). Ratings here are simulated too.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from dermeval import text as tx
from dermeval.diagnosis import conclusion_term, name_key
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


def conclusion_name(case: DermBenchCase) -> str:
    """The diagnosis as the expert wrote it: the first bold term of the conclusion, else the manifest label."""
    parts = tx.sentences(case.reference_text)
    concl = tx.conclusion_index(parts)
    term = conclusion_term(parts[concl]) if concl is not None else None
    return term or case.diagnosis


def filing(cases: list[DermBenchCase]) -> dict[tuple[str, ...], str]:
    """Per conclusion name, the category the release files it under most often (ties: the first by name).

    DermNet's folders overlap (lichen planus under Eczema, impetigo under Acne): a case's folder
    is not always the group its expert's diagnosis belongs to.
    """
    counts: dict[tuple[str, ...], Counter[str]] = defaultdict(Counter)
    for case in cases:
        counts[name_key(conclusion_name(case))][case.category] += 1
    return {k: min(c, key=lambda cat: (-c[cat], cat)) for k, c in counts.items()}


def shown_category(case: DermBenchCase, filed: dict[tuple[str, ...], str]) -> str:
    """The category a stand-in image of the case shows: the group of what the expert saw (the
    release's usual filing of the expert's diagnosis), else the case's folder. A real DermNet
    image shows what it shows: its folder."""
    if case.image_path is not None:
        return case.category
    return filed.get(name_key(conclusion_name(case)), case.category)


def name_pool(cases: list[DermBenchCase], filed: dict[tuple[str, ...], str] | None = None) -> dict[str, list[str]]:
    """Per category, the distinct diagnoses the experts' conclusions name (the wrong-diagnosis source),
    each under the category the release usually files it (``filed``; default: the case's folder)."""
    pool: dict[str, set[str]] = {}
    for case in cases:
        name = conclusion_name(case)
        pool.setdefault((filed or {}).get(name_key(name), case.category), set()).add(name)
    return {k: sorted(v) for k, v in sorted(pool.items())}


BENIGN_CATEGORY = "Seborrheic Keratoses and other Benign Tumors"


def case_context(case: DermBenchCase, pool: dict[str, list[str]], rng: np.random.Generator,
                 category: str | None = None) -> CaseContext:
    """Urgency and malignancy from the diagnosis and the reference text, by a stated keyword rule.

    A substituted diagnosis comes from the same world as the text: another category's diagnosis
    as DermBench's experts wrote it, never a DermSynth catalogue name (which would let a model
    learn "a catalogue name in an expert narrative means wrong"), and never a name of the case's
    own category (``category``, default the case's folder) or the expert's own diagnosis.
    """
    diagnosis = conclusion_name(case)
    malignant = bool(MALIGNANT.search(case.diagnosis) or MALIGNANT.search(diagnosis))
    urgency = "urgent" if malignant or URGENT_ADVICE.search(case.reference_text) else "treat"
    own = category or case.category
    others = sorted({n for cat, names in pool.items() if cat != own for n in names
                     if name_key(n) != name_key(diagnosis)})
    benign = [n for n in pool.get(BENIGN_CATEGORY, []) if not MALIGNANT.search(n)] or ["seborrheic keratosis"]
    return CaseContext(diagnosis=diagnosis, urgency=urgency, malignant=malignant,
                       wrong_names=tuple(str(x) for x in rng.choice(others, size=min(4, len(others)), replace=False)),
                       benign_names=tuple(benign))


def _image(case: DermBenchCase, category: str, catalogue: Catalogue, rng: np.random.Generator
           ) -> tuple[bytes, str, int | None]:
    if case.image_path is not None:
        with Image.open(case.image_path) as im:
            return png_bytes(im.convert("RGB").resize((224, 224))), "dermnet", None
    options = catalogue.by_category[category]
    fitz = int(rng.choice(6, p=BASE_SKIN_MIX)) + 1
    condition = options[int(rng.integers(len(options)))]
    return png_bytes(render_condition(condition, fitz, int(rng.integers(2**31)))), "synthetic", fitz


def build_dermbench_dataset(
    release: Path | str, out: Path | str, *, seed: int = 7, dermnet_root: Path | str | None = None,
    limit: int | None = None, progress: bool = True,
) -> dict[str, Any]:
    """Write cases, images and rated candidates for the release (or a ``limit``-case sample of it)."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    loaded = load_dermbench(release, dermnet_root)
    if loaded.source_errors:
        raise FileNotFoundError("; ".join(str(e) for e in loaded.source_errors))
    catalogue, panel = default_catalogue(), pn.default_panel(seed)
    filed = filing(loaded.records)
    pool = name_pool(loaded.records, filed)
    cases_in = loaded.records
    if limit:  # a hash-ordered sample, so every category is represented whatever the limit
        chosen = set(sorted((c.id for c in cases_in), key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).digest())
                     [:limit])
        cases_in = [c for c in cases_in if c.id in chosen]
    cases, ratings = [], []
    last_image: dict[str, str] = {}  # per shown category, the latest case image (for a mix-up of cases)
    for case in tqdm(cases_in, desc="DermBench cases", disable=not progress, unit="case"):
        key = int.from_bytes(hashlib.sha256(case.id.encode()).digest()[:4], "big")
        rng = np.random.default_rng([seed, 2, key])
        category = shown_category(case, filed)
        image, source, fitz = _image(case, category, catalogue, rng)
        rel = f"images/{case.id}.png"
        (out / rel).write_bytes(image)
        ctx = case_context(case, pool, rng, category)
        other = [img for cat, img in last_image.items() if cat != category]
        ctx = replace(ctx, other_image=other[int(rng.integers(len(other)))] if other else None)
        last_image[category] = rel
        row = {"id": case.id, "diagnosis": case.diagnosis, "expert_diagnosis": ctx.diagnosis,
               "category": category, "release_category": case.category, "fitzpatrick": fitz,
               "urgency": ctx.urgency, "malignant": ctx.malignant, "image": rel, "image_source": source,
               "reference_text": case.reference_text, "cot": case.cot}
        cases.append({k: v for k, v in row.items() if v is not None})
        rated = rate_candidates(case.id, case.reference_text, ctx, (CLEAN, *PROFILES), panel, rng)
        ratings += [{**r, "image": r.get("image", rel), "category": category, "image_source": source,
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

