"""``dermeval judge``: the reference-based DermBench judge (offline, or any OpenAI-compatible server)."""

from __future__ import annotations

from pathlib import Path

import typer

from dermeval.commands.common import PARAMS_OPT, data_path, err


def _read_candidates(path: Path) -> list:
    """Every input row, in order: a CandidateNarrative or an error row naming the line."""
    from dermeval.formats.candidates import parse_candidate
    from dermeval.formats.common import RowError, iter_jsonl

    out = []
    for line, obj in iter_jsonl(path):
        parsed = obj if isinstance(obj, RowError) else parse_candidate(obj, str(path), line)
        if isinstance(parsed, RowError):
            parsed = [parsed]
        if isinstance(parsed, list):
            raw = obj if isinstance(obj, dict) else {}
            out.append({"id": raw.get("id"), "candidate_model": raw.get("model"),
                        "error": "; ".join(str(e) for e in parsed)})
        else:
            out.append(parsed)
    return out


def judge(
    candidates: Path = typer.Option(..., "--candidates",
                                    help="JSONL of candidate narratives (id, model, candidate_text)."),
    references: Path = typer.Option(
        ..., "--references",
        help="DermBench release folder, DermSynth world folder, or JSONL of {id, reference_text}."),
    output: Path = typer.Option(..., "--output", help="JSONL to write, one row per candidate, in input order."),
    backend: str = typer.Option("local", "--backend", help="local (offline, deterministic) or openai (any "
                                "OpenAI-compatible server)."),
    base_url: str | None = typer.Option(None, "--base-url",
                                        help="openai backend: server URL, e.g. http://127.0.0.1:8000/v1."),
    model: str | None = typer.Option(None, "--model", help="openai backend: the judge model name."),
    concurrency: int = typer.Option(4, "--concurrency", min=1, help="openai backend: requests in flight at once."),
    api_key_env: str = typer.Option("DERMEVAL_JUDGE_API_KEY", "--api-key-env",
                                    help="openai backend: environment variable holding the API key."),
    retries: int = typer.Option(4, "--retries", min=0, help="openai backend: retries on 429, 5xx and timeouts."),
    timeout: float = typer.Option(120.0, "--timeout", help="openai backend: seconds per request."),
    cache: Path | None = typer.Option(None, "--cache", help="openai backend: answer cache (a rerun or resumed "
                                      "run costs nothing; default: data.judge_cache of params.yaml)."),
    calibration: Path | None = typer.Option(None, "--calibration", help="local backend: the fitted calibration "
                                            "(dvc repro judge makes it; default: data.judge of params.yaml)."),
    feature_cache: Path | None = typer.Option(None, "--feature-cache", help="local backend: sentence-embedding "
                                              "cache (default: data.feature_cache of params.yaml)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    params: Path = PARAMS_OPT,
) -> None:
    """Rate candidates against the expert reference of their case (DermBench judge format)."""
    from dermeval.formats.common import write_jsonl
    from dermeval.judge import run as jr
    from dermeval.judge.references import load_references

    if backend not in ("local", "openai"):
        err(f"error: --backend must be local or openai, got {backend!r}")
        raise typer.Exit(2)
    try:
        if not candidates.is_file():
            raise FileNotFoundError(f"candidates not found: {candidates}")
        loaded = load_references(references)
    except FileNotFoundError as exc:
        err(f"error: {exc}")
        raise typer.Exit(2) from None
    for e in loaded.errors[:20]:
        err(f"reference rejected: {e}")
    refs = jr.index_references(loaded.records)
    rows = _read_candidates(candidates)
    good = [r for r in rows if not isinstance(r, dict)]
    if backend == "local":
        from dermeval.features import FeatureStore, Featurizer
        from dermeval.judge.local import Calibration, LocalJudge

        try:
            cal = Calibration.load(data_path(params, "judge", calibration))
        except (FileNotFoundError, ValueError) as exc:
            err(f"error: {exc}")
            raise typer.Exit(2) from None
        store = FeatureStore(data_path(params, "feature_cache", feature_cache))
        run = jr.judge_local(good, refs, LocalJudge(Featurizer(store), cal), progress=not quiet)
    else:
        from dermeval.judge.llm import OpenAIJudge, ResponseCache

        if not base_url or not model:
            err("error: the openai backend needs --base-url and --model")
            raise typer.Exit(2)
        client = OpenAIJudge(base_url, model, api_key_env=api_key_env, timeout=timeout, retries=retries,
                             cache=ResponseCache(data_path(params, "judge_cache", cache)))
        run = jr.judge_remote(good, refs, client, concurrency=concurrency, progress=not quiet)
    judged = iter(run.rows)
    write_jsonl(output, (r if isinstance(r, dict) else next(judged) for r in rows))
    bad_input = sum(isinstance(r, dict) for r in rows)
    err(f"judge: {run.summary()}, malformed input rows {bad_input} -> {output}")
    if run.fatal:
        err(f"error: {run.fatal}; rows judged so far are in {output} and cached; rerun to resume")
        raise typer.Exit(3)
    if rows and run.judged == 0:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(judge)
