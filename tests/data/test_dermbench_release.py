"""The DermBench adapter on the real release (skipped with a reason when it is absent)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from PIL import Image

from dermeval.formats import load_dermbench
from dermeval.validate import validate_path


def test_release_loads_verified(dermbench_root: Path):
    result = load_dermbench(dermbench_root)
    result.check_accounting()
    assert result.ok
    assert len(result.records) == 4000
    assert len({c.category for c in result.records}) == 23
    assert not any(c.has_real_image for c in result.records)
    assert all(len(c.reference_text.split()) > 50 for c in result.records[:50])


def test_validate_reports_release_facts(dermbench_root: Path):
    [report] = validate_path(dermbench_root)
    assert report.facts["cases"] == 4000 and report.facts["categories"] == 23
    assert report.facts["sha256_mismatches"] == 0 and not report.errors


def _mini_release(src: Path, dst: Path, n: int) -> Path:
    """A copy of the first n cases of the release, so it can be tampered with."""
    rows = [json.loads(line) for line in (src / "data/manifest/dermbench_test.jsonl").open()][:n]
    (dst / "data/manifest").mkdir(parents=True)
    for row in rows:
        target = dst / row["cot"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / row["cot"], target)
    shutil.copyfile(src / "data/manifest/categories.csv", dst / "data/manifest/categories.csv")
    with (dst / "data/manifest/dermbench_test.jsonl").open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    return dst


def test_tampering_and_dermnet_root(dermbench_root: Path, tmp_path: Path):
    mini = _mini_release(dermbench_root, tmp_path / "rel", 6)
    rows = [json.loads(line) for line in (mini / "data/manifest/dermbench_test.jsonl").open()]
    (mini / rows[0]["cot"]).write_text("tampered", encoding="utf-8")       # sha mismatch
    (mini / rows[1]["cot"]).unlink()                                       # missing reference
    rows[2]["cot"] = "../../../etc/passwd"                                 # escape
    rows[3]["category"] = "Not A Category"                                 # unknown category
    with (mini / "data/manifest/dermbench_test.jsonl").open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    dermnet = tmp_path / "dermnet"
    for row in rows[4:]:
        img = dermnet / row["dermnet_image_path"]
        img.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 48), (180, 120, 100)).save(img, format="JPEG")
    plain = load_dermbench(mini)
    plain.check_accounting()
    assert {e.line: e.field for e in plain.errors} == {1: "cot_sha256", 2: "cot", 3: "cot", 4: "category"}
    assert "escapes" in plain.errors[2].message
    assert [c.has_real_image for c in plain.records] == [False, False]
    result = load_dermbench(mini, dermnet)
    result.check_accounting()
    assert [c.has_real_image for c in result.records] == [True, True]
    # Without images under the root, the same case is a row error naming the image field.
    (dermnet / rows[5]["dermnet_image_path"]).unlink()
    again = load_dermbench(mini, dermnet)
    assert any(e.field == "dermnet_image_path" and e.line == 6 for e in again.errors)
