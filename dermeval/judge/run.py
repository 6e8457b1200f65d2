"""Judge a file of candidate narratives against their references, with either backend.

Output rows keep the input order and follow the DermBench judge format::

    {"id", "candidate_model", "judge_model", "scores": {six title-case names}, "justification"}

plus ``"missing_metrics"`` when the judge left dimensions out, or
``{"id", "candidate_model", "error"}`` for a row that could not be judged.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from dermeval.formats.candidates import CandidateNarrative
from dermeval.formats.judge import JudgeOutput
from dermeval.judge.references import Reference
from dermeval.schema import DIMENSIONS


@dataclass
class JudgeRun:
    rows: list[dict[str, Any]]
    judged: int = 0
    errors: int = 0
    cached: int = 0
    missing_metrics: int = 0
    fatal: str | None = None  # the endpoint went away; rows after it carry an error
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = (f"judged {self.judged}, rejected {self.errors}, from cache {self.cached}, "
                f"with missing metrics {self.missing_metrics}")
        return text + (f"; stopped: {self.fatal}" if self.fatal else "")


def _error(c: CandidateNarrative, message: str) -> dict[str, Any]:
    return {"id": c.id, "candidate_model": c.model, "error": message}


def _row(c: CandidateNarrative, judge_model: str, scores: dict[str, float], why: str) -> dict[str, Any]:
    return JudgeOutput(id=c.id, candidate_model=c.model, judge_model=judge_model, scores=scores,
                       justification=why, missing_metrics=[d for d in DIMENSIONS if d not in scores]).to_json()


def _start(candidates: Sequence[CandidateNarrative], refs: dict[str, Reference]) -> tuple[JudgeRun, list[int]]:
    """A run with an error row for every candidate without a reference, and the indices of the others."""
    run = JudgeRun(rows=[None] * len(candidates))  # type: ignore[list-item]
    todo = []
    for i, c in enumerate(candidates):
        if c.id in refs:
            todo.append(i)
        else:
            run.rows[i] = _error(c, f"no reference narrative for case id {c.id!r}")
            run.errors += 1
    return run, todo


def judge_local(candidates: Sequence[CandidateNarrative], refs: dict[str, Reference], judge: Any, *,
                batch_size: int = 256, progress: bool = True) -> JudgeRun:
    """Judge with a :class:`~dermeval.judge.local.LocalJudge` in batches (one cache lookup per batch)."""
    from dermeval.judge.local import JUDGE_NAME

    run, todo = _start(candidates, refs)
    bar = tqdm(total=len(todo), desc="judge (local)", unit="cand", disable=not progress)
    for start in range(0, len(todo), batch_size):
        chunk = todo[start:start + batch_size]
        results = judge.judge([candidates[i].candidate_text for i in chunk],
                              [refs[candidates[i].id].text for i in chunk],
                              [refs[candidates[i].id].diagnosis for i in chunk])
        for i, (scores, why) in zip(chunk, results, strict=True):
            run.rows[i] = _row(candidates[i], JUDGE_NAME, scores, why)
            run.judged += 1
        bar.update(len(chunk))
    bar.close()
    return run


def judge_remote(candidates: Sequence[CandidateNarrative], refs: dict[str, Reference], judge: Any, *,
                 concurrency: int = 4, progress: bool = True) -> JudgeRun:
    """Judge with an :class:`~dermeval.judge.llm.OpenAIJudge`, at most ``concurrency`` calls in flight.

    When the endpoint stays unreachable after the retries, no new call is started; every
    row already judged is kept (and cached), the rest carry an error naming the cause.
    """
    from dermeval.judge.llm import JudgeUnavailable

    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    run, todo = _start(candidates, refs)
    pending = []
    for i in todo:
        c = candidates[i]
        if not c.candidate_text.strip():
            run.rows[i] = _row(c, judge.model, {d: 0.0 for d in DIMENSIONS}, "Empty candidate narrative: "
                               "every dimension at the floor.")
            run.judged += 1
        else:
            pending.append(i)
    bar = tqdm(total=len(pending), desc=f"judge ({judge.model})", unit="cand", disable=not progress)
    queue = list(reversed(pending))
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        running: dict[Future, int] = {}
        while queue or running:
            while queue and len(running) < concurrency and run.fatal is None:
                i = queue.pop()
                c = candidates[i]
                running[pool.submit(judge.judge_one, c.candidate_text, refs[c.id].text)] = i
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                i = running.pop(fut)
                c = candidates[i]
                try:
                    scores, why, cached = fut.result()
                except JudgeUnavailable as exc:
                    run.fatal = run.fatal or str(exc)
                    run.rows[i] = _error(c, str(exc))
                    run.errors += 1
                except ValueError as exc:
                    run.rows[i] = _error(c, str(exc))
                    run.errors += 1
                else:
                    run.rows[i] = _row(c, judge.model, scores, why)
                    run.judged += 1
                    run.cached += cached
                    run.missing_metrics += len(scores) < len(DIMENSIONS)
                bar.update(1)
    bar.close()
    for i, row in enumerate(run.rows):
        if row is None:
            run.rows[i] = _error(candidates[i], f"not judged: {run.fatal}")
            run.errors += 1
    return run


def index_references(refs: Sequence[Reference]) -> dict[str, Reference]:
    return {r.id: r for r in refs}


def report(run: JudgeRun) -> None:
    print(f"judge: {run.summary()}", file=sys.stderr)
