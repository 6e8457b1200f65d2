"""The openai backend end to end against a local OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dermeval.cli import app
from dermeval.judge.llm import parse_answer
from tests.conftest import free_port
from tests.judge.fake_openai import GOOD, FakeOpenAI

SECRET = "sk-test-DO-NOT-LEAK-1234567890"
REFERENCE = ("The lesion is a well-demarcated erythematous plaque with silvery scale. "
             "The most likely diagnosis is **psoriasis**.")


def _write(tmp: Path, modes: list[str]) -> tuple[Path, Path]:
    cands = tmp / "cands.jsonl"
    refs = tmp / "refs.jsonl"
    rows = [{"id": f"c{i}", "model": "m1", "candidate_text": f"Narrative {i}. MODE={mode}"}
            for i, mode in enumerate(modes)]
    cands.write_text("".join(json.dumps(r) + "\n" for r in rows))
    refs.write_text("".join(json.dumps({"id": f"c{i}", "reference_text": REFERENCE}) + "\n"
                            for i in range(len(modes))))
    return cands, refs


def _run(tmp: Path, cands: Path, refs: Path, url: str, *extra: str, out: str = "out.jsonl"):
    args = ["judge", "--candidates", str(cands), "--references", str(refs), "--output", str(tmp / out),
            "--backend", "openai", "--base-url", url, "--model", "fake-judge", "--cache", str(tmp / "cache.sqlite"),
            "--quiet", "--timeout", "0.8", "--retries", "2", *extra]
    result = CliRunner().invoke(app, args, env={"DERMEVAL_JUDGE_API_KEY": SECRET})
    rows = [json.loads(x) for x in (tmp / out).read_text().splitlines()] if (tmp / out).exists() else []
    return result, rows


def test_well_formed_malformed_partial_slow_and_429(tmp_path):
    modes = ["good", "lines", "partial", "malformed", "slow", "ratelimit", "error500", "good"]
    cands, refs = _write(tmp_path, modes)
    with FakeOpenAI(slow_seconds=1.5) as server:
        result, rows = _run(tmp_path, cands, refs, server.base_url, "--concurrency", "3")
        assert result.exit_code == 0, result.output
        assert [r["id"] for r in rows] == [f"c{i}" for i in range(len(modes))]  # input order
        good = rows[0]
        assert good["scores"] == GOOD and good["judge_model"] == "fake-judge" and "missing_metrics" not in good
        assert rows[1]["scores"] == {"Accuracy": 4.0, "Safety": 4.0, "Medical Groundedness": 3.5,
                                     "Clinical Coverage": 3.0, "Reasoning Coherence": 4.5, "Description Precision": 2.0}
        assert rows[2]["missing_metrics"] == ["reasoning_coherence", "description_precision"]
        assert set(rows[2]["scores"]) == {"Accuracy", "Safety", "Medical Groundedness", "Clinical Coverage"}
        assert rows[3]["scores"] == {} and len(rows[3]["missing_metrics"]) == 6  # never an invented score
        assert rows[4]["scores"] == GOOD  # the timed-out first attempt was retried
        assert rows[5]["scores"] == GOOD  # two 429s, then an answer
        assert "error" in rows[6] and "HTTP 500" in rows[6]["error"]
        assert server.requests[next(k for k in server.requests if "MODE=ratelimit" in k)] == 3
        assert all(h == f"Bearer {SECRET}" for h in server.auth_headers)
        calls = server.total
        # A rerun is answered from the cache for complete answers only: the failing, the partial and the
        # malformed rows go back to the server (a malformed answer is not a verdict to keep).
        result2, rows2 = _run(tmp_path, cands, refs, server.base_url, out="again.jsonl")
        assert result2.exit_code == 0
        assert server.total - calls == 3 + 1 + 1  # error500: 1 + 2 retries; partial and malformed: once each
        assert [r.get("scores") for r in rows2] == [r.get("scores") for r in rows]
        assert "from cache 5" in result2.output
    # The key is never written anywhere.
    for f in tmp_path.iterdir():
        assert SECRET.encode() not in f.read_bytes(), f
    assert SECRET not in result.output and SECRET not in result2.output


def test_only_the_documented_key_variable_is_read_and_plain_http_elsewhere_warns(monkeypatch):
    from dermeval.judge.llm import OpenAIJudge, insecure_remote

    monkeypatch.delenv("DERMEVAL_JUDGE_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-for-another-service")
    with FakeOpenAI() as server:
        judge = OpenAIJudge(server.base_url, "fake-judge")
        judge.judge_one("Narrative. MODE=good", REFERENCE)
        assert server.auth_headers == ["Bearer not-needed"]  # OPENAI_API_KEY is not sent to this endpoint
    assert insecure_remote("http://10.0.0.5:8000/v1") and not insecure_remote("https://judge.example/v1")
    assert not insecure_remote("http://127.0.0.1:8000/v1") and not insecure_remote("http://localhost:8000/v1")
    with pytest.warns(UserWarning, match="plain http on another machine"):
        OpenAIJudge("http://user:pw@10.0.0.5:8000/v1", "m")


def test_server_down_keeps_what_was_judged_and_resumes(tmp_path):
    cands, refs = _write(tmp_path, ["good", "lines", "good", "partial"])
    first_two = tmp_path / "first.jsonl"
    first_two.write_text("".join(cands.read_text().splitlines(keepends=True)[:2]))
    with FakeOpenAI() as server:
        result, _ = _run(tmp_path, first_two, refs, server.base_url)
        assert result.exit_code == 0
    down = f"http://127.0.0.1:{free_port()}/v1"
    result, rows = _run(tmp_path, cands, refs, down, "--concurrency", "1")
    assert result.exit_code == 3
    assert "unreachable after 3 attempts" in result.output and "rerun to resume" in result.output
    assert [("scores" in r) for r in rows] == [True, True, False, False]  # judged rows kept (from the cache)
    assert all("unreachable" in r["error"] for r in rows[2:])
    with FakeOpenAI() as server:  # back up: the run resumes, asking only for what is missing
        result, rows = _run(tmp_path, cands, refs, server.base_url)
        assert result.exit_code == 0 and server.total == 2
        assert all("scores" in r for r in rows)


def test_bad_candidates_and_missing_reference_are_rows(tmp_path):
    cands, refs = _write(tmp_path, ["good", "good"])
    with cands.open("a") as fh:
        fh.write('{"id": "c9", "model": "m1", "candidate_text": "MODE=good"}\n')  # no reference for c9
        fh.write('{"id": "c10", "candidate_text": "no model"}\n')
        fh.write("not json\n")
        fh.write('{"id": "c11", "model": "m1", "candidate_text": ""}\n')  # empty: the floor, no call
    refs.write_text(refs.read_text() + json.dumps({"id": "c11", "reference_text": REFERENCE}) + "\n")
    with FakeOpenAI() as server:
        result, rows = _run(tmp_path, cands, refs, server.base_url)
        assert result.exit_code == 0, result.output
        assert server.total == 2
    assert len(rows) == 6
    assert "no reference narrative for case id 'c9'" in rows[2]["error"]
    assert "model" in rows[3]["error"] and ":4" in rows[3]["error"]
    assert "error" in rows[4]
    assert rows[5]["scores"] == dict.fromkeys(GOOD, 0.0)


@pytest.mark.parametrize(("text", "expected"), [
    ('{"Accuracy": 4, "Safety": "3/5", "medical_groundedness": 2.5, "Clinical Coverage": 9, '
     '"Reasoning Coherence": "8/10", "Description Precision": true}',
     {"accuracy": 4.0, "safety": 3.0, "medical_groundedness": 2.5, "reasoning_coherence": 4.0}),
    ('{"scores": {"Accuracy": 5, "Safety": 5, "Medical Groundedness": 5, "Clinical Coverage": 5, '
     '"Reasoning Coherence": 5, "Description Precision": 5}, "justification": "ok"}',
     dict.fromkeys(["accuracy", "safety", "medical_groundedness", "clinical_coverage", "reasoning_coherence",
                    "description_precision"], 5.0)),
    ("Accuracy: 7/10\nSafety = 4\nno more", {"accuracy": 3.5, "safety": 4.0}),
    ("Accuracy: 12", {}),
    ("", {}),
])
def test_parse_answer(text, expected):
    scores, _ = parse_answer(text)
    assert scores == expected
