"""Every bad input of the foundation issue: a clear per-row error, every other row loaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from dermeval.formats import load_candidates, load_judge_outputs, load_records
from dermeval.formats.common import MAX_TEXT_CHARS
from dermeval.schema import DIMENSIONS, TITLES

GOOD_SCORES = {d: 4.0 for d in DIMENSIONS}


def _row(i, **kw):
    return {"id": f"r{i}", "image": "ok.png", "diagnostic_text": "Erythematous plaques.", "scores": GOOD_SCORES, **kw}


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    Image.new("RGB", (32, 32), (200, 150, 120)).save(tmp_path / "ok.png")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not an image")
    # A decompression bomb: a tiny file that declares a huge canvas.
    Image.new("1", (9000, 9000)).save(tmp_path / "bomb.png")
    return tmp_path


def _write(path: Path, lines: list[bytes | dict]) -> Path:
    with path.open("wb") as fh:
        for line in lines:
            fh.write(line if isinstance(line, bytes) else json.dumps(line).encode())
            fh.write(b"\n")
    return path


def test_every_bad_row_rejected_with_file_line_field(root: Path):
    lines = [
        _row(1),                                                        # 1 good
        b'{"id": "r2", "image": "ok.png", "diagnostic_text": ',         # 2 malformed JSON
        {"id": "r3", "image": "ok.png", "scores": GOOD_SCORES},         # 3 no text
        _row(4, scores={**GOOD_SCORES, "safety": 7}),                   # 4 out of range
        _row(5, scores={**GOOD_SCORES, "safety": float("nan")}),        # 5 NaN
        _row(6, scores={**GOOD_SCORES, "helpfulness": 3}),              # 6 unknown dimension
        _row(7, image="missing.png"),                                   # 7 missing image
        _row(8, image="empty.png"),                                     # 8 zero-byte image
        _row(9, image="corrupt.png"),                                   # 9 corrupt image
        _row(10, image="../../etc/passwd"),                             # 10 escapes the root
        _row(11, image="/etc/passwd"),                                  # 11 absolute path
        b'{"id": "r12", "diagnostic_text": "caf\xe9"}',                 # 12 not UTF-8
        _row(13, diagnostic_text="x" * (5 * 1024 * 1024)),              # 13 a 5 MB narrative
        _row(1),                                                        # 14 duplicate id
        _row(15, image="bomb.png"),                                     # 15 decompression bomb
        _row(16, scores=None, **{TITLES[d]: 3.5 for d in DIMENSIONS}),  # 16 good: top-level titles
        {"id": "r17", "image": "ok.png", "narrative": "Scaly plaques.",
         "scores": {TITLES[d]: 2.5 for d in DIMENSIONS}},               # 17 good: 'narrative', titles
        [1, 2, 3],                                                      # 18 not an object
    ]
    lines[15].pop("scores")
    path = _write(root / "records.jsonl", [x if not isinstance(x, list) else json.dumps(x).encode() for x in lines])
    result = load_records(path, image_root=root)
    result.check_accounting()
    assert result.rows_in == 18
    assert [r.id for r in result.records] == ["r1", "r16", "r17"]
    by_line = {e.line: e for e in result.errors}
    assert set(by_line) == set(range(2, 16)) | {18}
    expect = {2: ("<row>", "malformed JSON"), 3: ("diagnostic_text", "missing narrative"),
              4: ("scores.safety", "outside"), 5: ("scores.safety", "finite"),
              6: ("scores.helpfulness", "unknown dimension"), 7: ("image", "not found"),
              8: ("image", "0 bytes"), 9: ("image", "cannot be decoded"), 10: ("image", "escapes"),
              11: ("image", "absolute"), 12: ("<row>", "UTF-8"), 13: ("<row>", "limit"),
              14: ("id", "duplicate id (first seen on line 1)"), 15: ("image", "bomb"), 18: ("<row>", "JSON object")}
    for line, (field, words) in expect.items():
        err = by_line[line]
        assert err.file == str(path) and err.field == field and words in err.message, (line, err)
    assert result.records[1].scores == {d: 3.5 for d in DIMENSIONS}
    assert result.records[2].diagnostic_text == "Scaly plaques."


def test_long_text_under_row_limit_gets_text_error(tmp_path: Path):
    path = _write(tmp_path / "r.jsonl", [_row(1, image=None, diagnostic_text="y" * (MAX_TEXT_CHARS + 1))])
    result = load_records(path)
    assert result.errors[0].field == "diagnostic_text" and "100,000" in result.errors[0].message


def test_extra_fields_kept_but_separate(tmp_path: Path):
    path = _write(tmp_path / "r.jsonl", [_row(1, truth={"defects": []}, raters={"a": GOOD_SCORES})])
    rec = load_records(path).records[0]
    assert rec.extra == {"truth": {"defects": []}} and rec.raters == {"a": GOOD_SCORES}


def test_missing_file_is_a_source_error(tmp_path: Path):
    result = load_records(tmp_path / "nope.jsonl")
    assert not result.ok and result.source_errors[0].message == "file not found"


def test_candidates(tmp_path: Path):
    path = _write(tmp_path / "c.jsonl", [
        {"id": "a", "model": "m1", "candidate_text": "text"},
        {"id": "a", "model": "m2", "candidate_text": "text"},
        {"id": "a", "model": "m1", "candidate_text": "again"},
        {"id": "b", "candidate_text": "no model"},
        {"id": "c", "model": "m1"},
        {"id": "d", "model": "m1", "candidate_text": ""},
    ])
    result = load_candidates(path)
    result.check_accounting()
    assert [(c.id, c.model) for c in result.records] == [("a", "m1"), ("a", "m2"), ("d", "m1")]
    assert [(e.line, e.field) for e in result.errors] == [(3, "id"), (4, "model"), (5, "candidate_text")]


def test_judge_output(tmp_path: Path):
    full = {TITLES[d]: 4 for d in DIMENSIONS}
    partial = {"Accuracy": 3, "Safety": 4}
    path = _write(tmp_path / "j.jsonl", [
        {"id": "a", "candidate_model": "m", "judge_model": "j", "scores": full, "justification": "ok"},
        {"id": "b", "candidate_model": "m", "judge_model": "j", "scores": partial,
         "missing_metrics": ["Medical Groundedness"]},
        {"id": "c", "candidate_model": "m", "judge_model": "j", "scores": partial},
        {"id": "d", "candidate_model": "m", "judge_model": "j", "scores": {"Accuracy": 9}},
    ])
    result = load_judge_outputs(path)
    result.check_accounting()
    assert [j.id for j in result.records] == ["a", "b"]
    assert result.records[1].missing_metrics == [d for d in DIMENSIONS if d not in ("accuracy", "safety")]
    assert result.records[0].to_json()["scores"] == full
    assert {e.line for e in result.errors} == {3, 4}


def test_bom_deep_nesting_lone_surrogates_and_non_ids(root: Path):
    """A byte-order mark costs no row; nesting, lone surrogates, ``true`` and ``""`` as ids are row errors."""
    bom_first = b"\xef\xbb\xbf" + json.dumps(_row(0)).encode()
    lines = [bom_first, _row(1),
             b'{"id": "deep", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
             b'{"id": "sur", "image": "ok.png", "diagnostic_text": "Plaques \\ud800 here.", "scores": '
             + json.dumps(GOOD_SCORES).encode() + b"}",
             _row(4, id=True), _row(5, id=""), _row(6, diagnostic_text="Pair \ud83d\ude00 is fine.")]
    res = load_records(_write(root / "odd.jsonl", lines), image_root=root)
    assert [r.id for r in res.records] == ["r0", "r1", "r6"]
    by_line = {e.line: e.message for e in res.errors}
    assert "nested too deeply" in by_line[3] and "surrogate" in by_line[4]
    assert set(by_line) == {3, 4, 5, 6} and res.rows_in == 7
