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


def test_truncated_jpeg_text_scores_and_scores_in_two_places_are_row_errors(root: Path):
    import io

    import numpy as np

    pixels = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype("uint8")
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG")
    (root / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])  # verify() alone passes this
    lines = [_row(0), _row(1, image="cut.jpg"), _row(2, scores={**GOOD_SCORES, "safety": "4"}),
             _row(3, accuracy=2.0), _row(4)]
    res = load_records(_write(root / "odd.jsonl", lines), image_root=root)
    assert [r.id for r in res.records] == ["r0", "r4"]
    by_line = {e.line: e.message for e in res.errors}
    assert "cannot be decoded" in by_line[2] and "truncated" in by_line[2]
    assert by_line[3] == "score must be a number, got the string '4'"
    assert "given both as 'scores' and as top-level field(s) accuracy" in by_line[4]


def test_an_over_long_line_is_refused_without_being_held_in_memory(tmp_path: Path):
    import tracemalloc

    from dermeval.formats.common import MAX_LINE_BYTES, iter_jsonl

    path = tmp_path / "big.jsonl"
    with path.open("wb") as fh:
        fh.write(json.dumps({"id": "a"}).encode() + b"\n")
        fh.write(b'{"id": "huge", "diagnostic_text": "' + b"x" * (40 * MAX_LINE_BYTES) + b'"}\n')
        fh.write(json.dumps({"id": "b"}).encode() + b"\n")
    tracemalloc.start()
    rows = list(iter_jsonl(path))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [n for n, _ in rows] == [1, 2, 3] and rows[0][1] == {"id": "a"} and rows[2][1] == {"id": "b"}
    assert "over the" in rows[1][1].message and "byte limit" in rows[1][1].message
    assert peak < 8 * MAX_LINE_BYTES  # a few blocks at a time: the 40x line was never held whole


def test_exif_orientation_is_applied(tmp_path: Path):
    from dermeval.images import load_rgb

    img = Image.new("RGB", (40, 20), (200, 150, 120))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    img.save(tmp_path / "phone.jpg", exif=exif)
    assert load_rgb(tmp_path / "phone.jpg").size == (20, 40)


def test_validating_one_records_file_checks_its_images(root: Path):
    from typer.testing import CliRunner

    from dermeval.cli import app

    lines = [_row(0), _row(1, image="missing.png"), _row(2, image="../outside.png"), _row(3, image="corrupt.png")]
    path = _write(root / "ratings.jsonl", lines)
    out = CliRunner().invoke(app, ["validate", str(path), "--json"])
    assert out.exit_code == 1
    errors = json.loads(out.output)["sources"][0]["errors"]
    assert {e["line"] for e in errors} == {2, 3, 4} and all(e["field"] == "image" for e in errors)
    # another root given: the same file's relative paths are read under it
    other = root / "elsewhere"
    other.mkdir()
    out = CliRunner().invoke(app, ["validate", str(path), "--image-root", str(other), "--json"])
    assert {e["line"] for e in json.loads(out.output)["sources"][0]["errors"]} == {1, 2, 3, 4}


def test_outputs_are_written_whole_or_not_at_all(tmp_path: Path):
    from dermeval.formats.common import write_jsonl

    path = tmp_path / "scores.jsonl"
    write_jsonl(path, [{"id": "a"}, {"id": "b"}])

    def broken():
        yield {"id": "c"}
        raise RuntimeError("killed midway")

    with pytest.raises(RuntimeError):
        write_jsonl(path, broken())
    assert path.read_text() == '{"id": "a"}\n{"id": "b"}\n'  # the previous file, intact
    assert [p.name for p in tmp_path.iterdir()] == ["scores.jsonl"]  # no temporary left behind
