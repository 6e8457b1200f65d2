"""DermSynth: determinism, completeness, and the stated labelling rule."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dermeval.formats import load_records
from dermeval.schema import DIMENSIONS
from dermeval.synth.catalogue import DERMBENCH_CATEGORIES, CatalogueError, default_catalogue, load_catalogue
from dermeval.synth.world import WorldConfig, generate_world


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_byte_identical(tmp_path: Path):
    cfg = WorldConfig(cases=12, seed=3, weeks=2, batch_cases=3)
    generate_world(tmp_path / "a", cfg, progress=False)
    generate_world(tmp_path / "b", cfg, progress=False)
    a, b = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    assert a == b and len(a) > 20
    generate_world(tmp_path / "c", WorldConfig(cases=12, seed=4, weeks=2, batch_cases=3), progress=False)
    assert _digest(tmp_path / "c")["ratings.jsonl"] != a["ratings.jsonl"]


def test_world_files_and_counts(tiny_world: Path):
    manifest = json.loads((tiny_world / "manifest.json").read_text())
    assert manifest["simulated"] is True and manifest["counts"]["categories"] == 23
    for name in ("cases.jsonl", "ratings.jsonl", "candidates.jsonl", "shifts.json", "raters.json",
                 "operators.json", "mllms.json", "contact_sheet.png"):
        assert (tiny_world / name).is_file(), name
    cases = [json.loads(line) for line in (tiny_world / "cases.jsonl").open()]
    assert {c["category"] for c in cases} == set(DERMBENCH_CATEGORIES)
    words = [len(c["reference_text"].split()) for c in cases]
    assert min(words) >= 150 and max(words) <= 450
    with Image.open(tiny_world / cases[0]["image"]) as im:
        assert im.size == (224, 224) and im.mode == "RGB"
    result = load_records(tiny_world / "ratings.jsonl", image_root=tiny_world)
    assert result.ok and len(result.records) == 46 * 6
    assert len({r.model for r in result.records}) >= 6
    assert all(set(r.raters) == {"rater_1", "rater_2", "rater_3"} for r in result.records)
    assert all(all(v * 2 == int(v * 2) for s in r.raters.values() for v in s.values()) for r in result.records)
    with Image.open(tiny_world / "contact_sheet.png") as sheet:
        assert sheet.size[0] >= 8 * 100


def test_catalogue_is_complete_and_validated(tmp_path: Path):
    cat = default_catalogue()
    assert len(cat) >= 40 and set(cat.categories) == set(DERMBENCH_CATEGORIES)
    assert {"routine", "treat", "urgent"} <= {c.urgency for c in cat.conditions}
    assert cat.by_id["melanoma"].urgency == "urgent" and cat.by_id["atopic_dermatitis"].urgency == "routine"
    broken = tmp_path / "c.yaml"
    broken.write_text("conditions:\n  - id: x\n    name: x\n    category: Nope\n")
    with pytest.raises(CatalogueError, match="condition x: category"):
        load_catalogue(broken)


def test_rater_statistics(tiny_world: Path):
    rows = [json.loads(line) for line in (tiny_world / "ratings.jsonl").open()]
    report = json.loads((tiny_world / "raters.json").read_text())
    for r in report["profiles"]:
        err = np.array([row["raters"][r["id"]][d] - row["truth"]["true_scores"][d]
                        for row in rows for d in DIMENSIONS if 0.5 < row["truth"]["true_scores"][d] < 4.5])
        mean_bias = np.mean(list(r["bias"].values()))
        # Measured bias and spread match the rater's profile (rounding adds ~0.14 sd).
        assert abs(err.mean() - mean_bias) < 0.1, (r["id"], err.mean(), mean_bias)
        assert abs(err.std() - np.hypot(r["noise"], 0.144)) < 0.1
        assert report["measured"]["raters"][r["id"]]["bias"] == pytest.approx(err.mean(), abs=1e-3)
    assert all(0.7 < p["pearson"] < 1 for p in report["measured"]["pairs"].values())
    cons = np.array([[row["scores"][d] for d in DIMENSIONS] for row in rows])
    one = np.array([[row["raters"]["rater_1"][d] for d in DIMENSIONS] for row in rows])
    # Inter-rater agreement is high but not perfect.
    assert 0.7 < np.corrcoef(cons.ravel(), one.ravel())[0, 1] < 0.999


def test_shift_truth_and_batches(tiny_world: Path):
    shifts = json.loads((tiny_world / "shifts.json").read_text())
    by_name = {s["name"]: s for s in shifts}
    safety, skin = by_name["safety_degradation"], by_name["darker_skin_mix"]
    assert (safety["start_week"], skin["start_week"]) == (5, 6)

    def week_rows(w):
        return [json.loads(line) for line in (tiny_world / f"batches/week_{w:02d}.truth.jsonl").open()]

    before = [r for w in range(1, 5) for r in week_rows(w)]
    after = [r for w in (5, 6) for r in week_rows(w)]
    model = safety["model"]
    unsafe = lambda rows: np.mean([any(d["name"] in ("unsafe_advice", "missing_referral")  # noqa: E731
                                       for d in r["truth"]["defects"]) for r in rows if r["model"] == model])
    # Rates 0.2/0.2 before (about 36% of narratives), 0.6/0.6 after (84%); 16-32 rows a side here.
    assert unsafe(after) > unsafe(before) + 0.25 and unsafe(after) >= 0.6
    fitz = lambda rows: np.mean([r["fitzpatrick"] for r in rows])  # noqa: E731
    assert fitz(week_rows(6)) > fitz([r for w in range(1, 6) for r in week_rows(w)]) + 0.8
    batch = [json.loads(line) for line in (tiny_world / "batches/week_01.jsonl").open()]
    assert batch and all("scores" not in r and "truth" not in r for r in batch)


def test_the_canary_set_is_its_own_stream(tmp_path):
    """Adding the canary changes nothing else in the world (its cases come from a separate random stream)."""
    with_canary = WorldConfig(cases=4, seed=3, weeks=1, batch_cases=2, canary_cases=2)
    without = WorldConfig(cases=4, seed=3, weeks=1, batch_cases=2, canary_cases=0)
    generate_world(tmp_path / "a", with_canary, progress=False)
    generate_world(tmp_path / "b", without, progress=False)
    for name in ("ratings.jsonl", "cases.jsonl", "batches/week_01.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    rows = [json.loads(x) for x in (tmp_path / "a" / "canary.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and all(r["scores"] and r["raters"] for r in rows)
    assert not {r["case_id"] for r in rows} & {json.loads(x)["case_id"] for x in
                                               (tmp_path / "a" / "ratings.jsonl").read_text().splitlines()}


def test_a_mixed_up_case_is_shown_with_another_categorys_image(tmp_path: Path):
    """image_mismatch leaves the narrative as written and pairs it with another case's image, of
    another category; the record still says which case (and category) the narrative describes."""
    out = tmp_path / "w"
    generate_world(out, WorldConfig(cases=120, seed=5, weeks=1, batch_cases=2), progress=False)
    cases = {c["id"]: c for c in map(json.loads, (out / "cases.jsonl").open())}
    by_image = {c["image"]: c for c in cases.values()}
    rows = [json.loads(line) for line in (out / "ratings.jsonl").open()]
    mixed = [r for r in rows if "image_mismatch" in {d["name"] for d in r["truth"]["defects"]}]
    assert len(mixed) >= 2
    for r in mixed:
        own = cases[r["case_id"]]
        assert r["image"] != own["image"] and r["category"] == own["category"]
        assert by_image[r["image"]]["category"] != own["category"]
        assert (out / r["image"]).is_file()
        assert r["truth"]["true_scores"]["accuracy"] < 3.0
    others = [r for r in rows if r not in mixed]
    assert all(r["image"] == cases[r["case_id"]]["image"] for r in others)
