"""The ``dermeval`` command line. JSONL in, JSONL out; summaries go to stderr."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import typer

from dermeval.commands.alerts import alerts_app

app = typer.Typer(help="DermEval Ops: train, gate, serve and monitor dermatology narrative evaluators.",
                  no_args_is_help=True, add_completion=False)
app.add_typer(alerts_app, name="alerts")


def _err(msg: str) -> None:
    typer.echo(msg, err=True)


@app.command()
def synth(
    out: Path = typer.Option(..., "--out", help="Folder to write the world into (created if missing)."),
    cases: int = typer.Option(1000, "--cases", min=1, help="Number of training/evaluation cases."),
    seed: int = typer.Option(7, "--seed", help="Seed; the same seed gives byte-identical output."),
    weeks: int = typer.Option(8, "--weeks", min=1, help="Number of weekly production batches."),
    batch_cases: int = typer.Option(40, "--batch-cases", min=1, help="New cases per weekly batch."),
    dermbench: Path | None = typer.Option(
        None, "--dermbench", help="Build the real-text dataset from this DermBench release instead."),
    dermnet_root: Path | None = typer.Option(
        None, "--dermnet-root", help="DermNet test-image root (with --dermbench); else stand-in images."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="With --dermbench: only the first N cases."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Generate the DermSynth world (simulated data) or a DermBench-derived dataset."""
    if dermbench is not None:
        from dermeval.synth.realtext import build_dermbench_dataset

        try:
            manifest = build_dermbench_dataset(dermbench, out, seed=seed, dermnet_root=dermnet_root, limit=limit,
                                               progress=not quiet)
        except FileNotFoundError as exc:
            _err(f"error: {exc}")
            raise typer.Exit(2) from None
    else:
        from dermeval.synth.world import WorldConfig, generate_world

        manifest = generate_world(out, WorldConfig(cases=cases, seed=seed, weeks=weeks, batch_cases=batch_cases),
                                  progress=not quiet)
    counts = ", ".join(f"{k}={v}" for k, v in manifest["counts"].items())
    _err(f"wrote {manifest['kind']} to {out} ({counts}); ratings are simulated")


@app.command()
def validate(
    path: Path = typer.Argument(..., help="A dataset file (JSONL) or folder (DermBench release, DermSynth world)."),
    dermnet_root: Path | None = typer.Option(None, "--dermnet-root", help="Also check DermNet images under this root."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
    max_errors: int = typer.Option(200, "--max-errors", help="Print at most this many problems per source."),
    image_root: Path | None = typer.Option(None, "--image-root", help="Folder the records' image paths are relative "
                                           "to (default: the file's folder, or the folder validated)."),
) -> None:
    """Check a dataset without running anything else; exit 1 if any problem is found."""
    from dermeval.validate import validate_path

    reports = validate_path(path, dermnet_root, image_root)
    problems = sum(len(r.errors) for r in reports)
    if as_json:
        typer.echo(json.dumps({"ok": problems == 0, "sources": [r.to_dict() for r in reports]}, indent=2))
    else:
        for r in reports:
            facts = "".join(f", {k.replace('_', ' ')}: {v}" for k, v in r.facts.items())
            typer.echo(f"{r.path} [{r.kind}]: {r.rows_in} rows, {r.loaded} loaded, "
                       f"{r.to_dict()['rejected']} rejected{facts}")
            for e in r.errors[:max_errors]:
                typer.echo(f"  {e}")
            if len(r.errors) > max_errors:
                typer.echo(f"  ... and {len(r.errors) - max_errors} more")
        typer.echo(f"{'OK' if problems == 0 else 'FAILED'}: {len(reports)} source(s), {problems} problem(s)")
    raise typer.Exit(1 if problems else 0)


DEFAULT_MODEL = "models/dermeval"
MODEL_HELP = "Evaluator folder or MLflow model URI (e.g. models:/dermeval@champion)."


PRECISION_HELP = ("Encoder arithmetic: fp32 (what the evaluator was trained on) or bf16 (about 2x faster "
                  "on CPUs with native bf16; scores move by a few thousandths, see the README).")


def _load_model(model: str, precision: str = "fp32"):
    from dermeval.encoders.runtime import PRECISIONS
    from dermeval.model.evaluator import EvaluatorNotFound, load_evaluator

    if precision not in PRECISIONS:
        _err(f"error: --precision must be {' or '.join(PRECISIONS)}, not {precision!r}")
        raise typer.Exit(2)
    try:
        return load_evaluator(model, precision=precision)
    except EvaluatorNotFound as exc:
        _err(f"error: {exc}")
        raise typer.Exit(2) from None


@app.command()
def score(
    image: Path = typer.Option(..., "--image", help="The skin image (PNG or JPEG)."),
    narrative: str = typer.Option(..., "--narrative", help="A text file with the narrative, or - for stdin."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", help=MODEL_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the full result as JSON instead of the critique."),
    precision: str = typer.Option("fp32", "--precision", help=PRECISION_HELP),
) -> None:
    """Score one image and narrative: six ratings, overall score, uncertainty and critique."""
    from dermeval.images import ImageError, check_image_file

    evaluator = _load_model(model, precision)
    try:
        check_image_file(image)
        text = sys.stdin.read() if narrative == "-" else Path(narrative).read_text("utf-8")
    except (ImageError, OSError, UnicodeDecodeError) as exc:
        _err(f"error: {exc}")
        raise typer.Exit(2) from None
    result = evaluator.score(image, text)
    if as_json:
        typer.echo(json.dumps({k: v for k, v in result.items() if k != "critique_json"}, indent=2))
    else:
        typer.echo(result["critique"])
        if result["needs_review"]:
            _err("needs_review: the evaluator is unsure about at least one dimension")


@app.command("score-batch")
def score_batch(
    input: Path = typer.Option(..., "--input", help="DermEval records (id, image, diagnostic_text): JSONL; "
                                                     "with --engine spark also a Parquet table."),
    output: Path = typer.Option(..., "--output", help="JSONL to write: one row per input row, in order "
                                                      "(--engine spark: a path not ending in .jsonl is Parquet)."),
    image_root: Path | None = typer.Option(
        None, "--image-root", help="Folder the image paths are relative to (default: the input's folder)."),
    model: str | None = typer.Option(None, "--model", help=MODEL_HELP + f" Default: {DEFAULT_MODEL} (local), "
                                                                         "models:/dermeval@champion (spark)."),
    engine: str = typer.Option("local", "--engine", help="local (this process) or spark (mlflow.pyfunc.spark_udf)."),
    spark_master: str | None = typer.Option(
        None, "--spark-master", help="Spark master, e.g. local[2] or spark://host:7077 (default: Spark's settings)."),
    spark_conf: list[str] = typer.Option([], "--spark-conf", help="Extra Spark setting KEY=VALUE (repeatable)."),
    precision: str = typer.Option("fp32", "--precision", help=PRECISION_HELP + " Local engine only."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Score a batch; rejected rows come back as {"id", "error"}, nothing is dropped."""
    from dermeval.formats.common import RowError, iter_jsonl, write_jsonl

    if engine not in ("local", "spark"):
        _err(f"error: --engine must be local or spark, not {engine!r}")
        raise typer.Exit(2)
    if engine == "spark" and precision != "fp32":
        _err("error: --precision applies to the local engine only (the Spark engine scores in fp32)")
        raise typer.Exit(2)
    if engine == "spark":
        scored, rejected = _score_batch_spark(input, output, image_root, model, spark_master, spark_conf)
    else:
        evaluator = _load_model(model or DEFAULT_MODEL, precision)
        if not input.is_file():
            _err(f"error: input not found: {input}")
            raise typer.Exit(2)
        parsed = list(iter_jsonl(input))
        rows = [obj if not isinstance(obj, RowError) else {"id": None, "error": str(obj)} for _, obj in parsed]
        results = evaluator.score_batch(rows, image_root or input.parent, progress=not quiet, source=str(input),
                                        lines=[n for n, _ in parsed])
        write_jsonl(output, ({k: v for k, v in r.items() if k != "critique_json"} for r in results))
        rejected = sum("error" in r for r in results)
        scored = len(results) - rejected
    _err(f"scored {scored}, rejected {rejected} -> {output}")
    if rejected and not scored:
        raise typer.Exit(1)


def _score_batch_spark(input: Path, output: Path, image_root: Path | None, model: str | None,
                       master: str | None, conf: list[str]) -> tuple[int, int]:
    from dermeval.model.evaluator import EvaluatorNotFound
    from dermeval.serving.spark import DEFAULT_MODEL_URI, SparkEngineError, score_table

    settings = {}
    for item in conf:
        key, sep, value = item.partition("=")
        if not sep or not key:
            _err(f"error: --spark-conf expects KEY=VALUE, got {item!r}")
            raise typer.Exit(2)
        settings[key.strip()] = value.strip()
    if not input.exists():
        _err(f"error: input not found: {input}")
        raise typer.Exit(2)
    try:
        summary = score_table(input, output, model or DEFAULT_MODEL_URI,
                              image_root=image_root or (input.parent if input.is_file() else input),
                              master=master, conf=settings)
    except (SparkEngineError, EvaluatorNotFound) as exc:
        _err(f"error: {exc}")
        raise typer.Exit(2) from None
    return summary.scored, summary.rejected


DEFAULT_JUDGE_CALIBRATION = "models/judge.json"


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


@app.command()
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
    cache: Path = typer.Option(Path("data/cache/judge.sqlite"), "--cache",
                               help="openai backend: answer cache (a rerun or resumed run costs nothing)."),
    calibration: Path = typer.Option(Path(DEFAULT_JUDGE_CALIBRATION), "--calibration",
                                     help="local backend: the fitted calibration (dvc repro judge makes it)."),
    feature_cache: Path = typer.Option(Path("data/cache/features.sqlite"), "--feature-cache",
                                       help="local backend: sentence-embedding cache."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Rate candidates against the expert reference of their case (DermBench judge format)."""
    from dermeval.formats.common import write_jsonl
    from dermeval.judge import run as jr
    from dermeval.judge.references import load_references

    if backend not in ("local", "openai"):
        _err(f"error: --backend must be local or openai, got {backend!r}")
        raise typer.Exit(2)
    try:
        if not candidates.is_file():
            raise FileNotFoundError(f"candidates not found: {candidates}")
        loaded = load_references(references)
    except FileNotFoundError as exc:
        _err(f"error: {exc}")
        raise typer.Exit(2) from None
    for e in loaded.errors[:20]:
        _err(f"reference rejected: {e}")
    refs = jr.index_references(loaded.records)
    rows = _read_candidates(candidates)
    good = [r for r in rows if not isinstance(r, dict)]
    if backend == "local":
        from dermeval.features import FeatureStore, Featurizer
        from dermeval.judge.local import Calibration, LocalJudge

        try:
            cal = Calibration.load(calibration)
        except (FileNotFoundError, ValueError) as exc:
            _err(f"error: {exc}")
            raise typer.Exit(2) from None
        run = jr.judge_local(good, refs, LocalJudge(Featurizer(FeatureStore(feature_cache)), cal), progress=not quiet)
    else:
        from dermeval.judge.llm import OpenAIJudge, ResponseCache

        if not base_url or not model:
            _err("error: the openai backend needs --base-url and --model")
            raise typer.Exit(2)
        client = OpenAIJudge(base_url, model, api_key_env=api_key_env, timeout=timeout, retries=retries,
                             cache=ResponseCache(cache))
        run = jr.judge_remote(good, refs, client, concurrency=concurrency, progress=not quiet)
    judged = iter(run.rows)
    write_jsonl(output, (r if isinstance(r, dict) else next(judged) for r in rows))
    bad_input = sum(isinstance(r, dict) for r in rows)
    _err(f"judge: {run.summary()}, malformed input rows {bad_input} -> {output}")
    if run.fatal:
        _err(f"error: {run.fatal}; rows judged so far are in {output} and cached; rerun to resume")
        raise typer.Exit(3)
    if rows and run.judged == 0:
        raise typer.Exit(1)


registry_app = typer.Typer(help="Review the registered evaluator: status, history, promote, rollback.",
                           no_args_is_help=True)
app.add_typer(registry_app, name="registry")


def _registry(params: Path):
    from dermeval.params import ParamsError, load_params
    from registry.mlflow_registry import Registry, TrackingUnavailable, check_reachable, resolve_tracking_uri

    try:
        rp = load_params(params).register
    except (ParamsError, OSError) as exc:
        _err(f"error: {exc}")
        raise typer.Exit(2) from None
    uri = resolve_tracking_uri(rp.tracking_uri)
    from dermeval.portable import relocate_tracking

    relocate_tracking(uri, rp.artifact_root)
    try:
        check_reachable(uri)
    except TrackingUnavailable as exc:
        _err(f"error: {exc}")
        raise typer.Exit(2) from None
    return Registry(uri, rp.model_name, rp.audit_log)


PARAMS_OPT = typer.Option(Path("params.yaml"), "--params", help="params.yaml with the register section.")
JSON_OPT = typer.Option(False, "--json", help="Print JSON instead of text.")


@contextlib.contextmanager
def _fail_closed():
    """A registry that cannot be read is an error (exit 2), never an empty registry."""
    from registry.mlflow_registry import TrackingUnavailable

    try:
        yield
    except TrackingUnavailable as exc:
        _err(f"error: {exc}")
        raise typer.Exit(2) from None


@registry_app.command("status")
def registry_status(params: Path = PARAMS_OPT, as_json: bool = JSON_OPT) -> None:
    """Champion, challenger and every version with its gate decision and deviation."""
    with _fail_closed():
        st = _registry(params).status()
    if as_json:
        typer.echo(json.dumps(st, indent=2))
        return
    typer.echo(f"{st['model']} @ {st['tracking_uri']}: champion "
               f"{'v' + st['champion'] if st['champion'] else 'none'}, challenger "
               f"{'v' + st['challenger'] if st['challenger'] else 'none'}")
    for v in st["versions"]:
        mae = f"{v['overall_mae']:.4f}" if v["overall_mae"] is not None else "n/a"
        typer.echo(f"  v{v['version']:<4} overall_mae={mae:<8} gate={v['gate'] or '-':<7} "
                   f"aliases={','.join(v['aliases']) or '-'}")


@registry_app.command("history")
def registry_history(params: Path = PARAMS_OPT, as_json: bool = JSON_OPT,
                     limit: int = typer.Option(50, "--limit", help="Show the last N events.")) -> None:
    """The audit trail: every gate decision and alias move, oldest first."""
    events = _registry(params).history()[-limit:]
    if as_json:
        typer.echo(json.dumps(events, indent=2))
        return
    for e in events:
        typer.echo(f"{e['time']}  {e['event']:<15} v{e.get('version')}  by {e.get('by')}: {e.get('reason')}")
    if not events:
        typer.echo("no registry events yet (run `dvc repro` to register a first version)")


@registry_app.command("promote")
def registry_promote(version: str = typer.Argument(..., help="The version to make champion."),
                     reason: str = typer.Option(..., "--reason", help="Why (kept in the audit log)."),
                     by: str | None = typer.Option(None, "--by", help="Reviewer name (default: your user)."),
                     params: Path = PARAMS_OPT, as_json: bool = JSON_OPT) -> None:
    """Make VERSION the champion (a reviewer's decision; the gate is not re-run)."""
    from registry.mlflow_registry import RegistryError

    try:
        with _fail_closed():
            previous = _registry(params).promote(version, reason, by)
    except RegistryError as exc:
        _err(f"error: {exc}")
        raise typer.Exit(1) from None
    out = {"champion": version, "previous_champion": previous}
    typer.echo(json.dumps(out) if as_json else f"champion: v{version} (was {'v' + previous if previous else 'none'})")


@registry_app.command("rollback")
def registry_rollback(reason: str = typer.Option(..., "--reason", help="Why (kept in the audit log)."),
                      by: str | None = typer.Option(None, "--by", help="Reviewer name (default: your user)."),
                      params: Path = PARAMS_OPT, as_json: bool = JSON_OPT) -> None:
    """Give the champion alias back to the version that held it before the current one."""
    from registry.mlflow_registry import RegistryError

    try:
        with _fail_closed():
            old, new = _registry(params).rollback(reason, by)
    except RegistryError as exc:
        _err(f"error: {exc}")
        raise typer.Exit(1) from None
    typer.echo(json.dumps({"champion": new, "rolled_back": old}) if as_json
               else f"champion: v{new} (rolled back v{old})")


store_app = typer.Typer(help="The scored-narrative store: schema status and upgrades.", no_args_is_help=True)
app.add_typer(store_app, name="store")
STORE_HELP = "Store URL (default: $DERMEVAL_STORE_URL, else sqlite:///data/store/dermeval.db)."


@store_app.command("upgrade")
def store_upgrade(url: str | None = typer.Option(None, "--url", help=STORE_HELP)) -> None:
    """Create the store or migrate it to the newest schema (Alembic)."""
    from dermeval.store.db import StoreError, masked, store_url, upgrade

    try:
        revision = upgrade(url)
    except (StoreError, Exception) as exc:  # a driver error names the database problem
        _err(f"error: cannot upgrade the store at {masked(store_url(url))}: {exc}")
        raise typer.Exit(2) from None
    typer.echo(f"store at {masked(store_url(url))}: schema revision {revision}")


@store_app.command("status")
def store_status(url: str | None = typer.Option(None, "--url", help=STORE_HELP),
                 as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Schema revision and row counts."""
    from dermeval.store.db import StoreError, current_revision, head_revision, make_engine, masked, store_url
    from dermeval.store.queries import table_counts

    u = store_url(url)
    try:
        engine = make_engine(u)
        out = {"url": masked(u), "revision": current_revision(engine), "head": head_revision()}
        out["counts"] = table_counts(engine) if out["revision"] == out["head"] else {}
    except (StoreError, Exception) as exc:
        _err(f"error: cannot read the store at {masked(u)}: {exc}")
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(out, indent=2))
    else:
        state = "current" if out["revision"] == out["head"] else "OUTDATED: run `dermeval store upgrade`"
        typer.echo(f"{out['url']}: revision {out['revision']} ({state})")
        for k, v in out["counts"].items():
            typer.echo(f"  {k}: {v}")


@app.command()
def monitor(
    batch: Path = typer.Option(..., "--batch", help="JSONL batch of narratives (DermEval record schema, with model)."),
    image_root: Path | None = typer.Option(None, "--image-root", help="Folder the image paths are relative to "
                                           "(default: the batch's folder)."),
    model: str | None = typer.Option(None, "--model", help="Evaluator (default: monitor.model in params, "
                                     "models:/dermeval@champion)."),
    store: str | None = typer.Option(None, "--store", help=STORE_HELP),
    batch_id: str | None = typer.Option(None, "--batch-id", help="Name of the batch (default: the file name)."),
    reports: Path = typer.Option(Path("reports/monitor"), "--reports", help="Folder for the HTML drift report "
                                 "and the JSON summary."),
    params: Path = typer.Option(Path("params.yaml"), "--params", help="params.yaml (section monitor)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Score a batch with the champion, store the scores, compute drift and trust, raise alerts."""
    from dermeval.model.evaluator import EvaluatorNotFound, load_evaluator
    from dermeval.monitor.run import MonitorError, evaluator_version, monitor_batch
    from dermeval.params import MonitorParams, ParamsError, load_params
    from dermeval.store.db import StoreError, open_store

    try:
        loaded = load_params(params) if params.is_file() else None
        p = loaded.monitor if loaded else MonitorParams()
        register = loaded.register if loaded else None
    except ParamsError as exc:
        _err(f"error: {exc}")
        raise typer.Exit(2) from None
    target = model or p.model
    if target.startswith("models:/") and register is not None:
        import os

        import mlflow

        from dermeval.portable import relocate_tracking

        tracking = os.environ.get("MLFLOW_TRACKING_URI") or register.tracking_uri
        relocate_tracking(tracking, register.artifact_root)
        mlflow.set_tracking_uri(tracking)
    try:
        if not batch.is_file():
            raise MonitorError(f"batch not found: {batch}")
        version = evaluator_version(target)  # before anything is written
        evaluator = load_evaluator(target, cache="data/cache/features.sqlite")
        engine = open_store(store or p.store_url, upgrade_schema=True)
        result = monitor_batch(batch, evaluator, version, engine, p, image_root=image_root, batch_id=batch_id,
                               reports=reports, audit_log=Path(register.audit_log) if register else None,
                               progress=not quiet)
    except (MonitorError, EvaluatorNotFound, StoreError) as exc:
        _err(f"error: {exc}")
        raise typer.Exit(2) from None
    for r in result.rejected:
        _err(f"rejected: {r['error']}")
    s = result.summary()
    _err(f"monitor {s['batch']}: {s['stored']} stored ({s['scored_now']} scored now, {s['already_scored']} "
         f"already), {s['rejected']} rejected, {len(s['alerts'])} alert(s), evaluator {version}")


@app.command()
def dashboard(
    port: int = typer.Option(8501, "--port", help="Port to serve on."),
    address: str = typer.Option("127.0.0.1", "--address", help="Address to bind (0.0.0.0 to share)."),
    project: Path = typer.Option(Path("."), "--project", help="Project folder (params.yaml, reports/, data/)."),
) -> None:
    """Start the Streamlit dashboard (read-only) over the store, the registry and the reports."""
    import os
    import subprocess

    import dashboards

    app_file = Path(dashboards.__file__).with_name("app.py")
    env = {**os.environ, "DERMEVAL_PROJECT": str(project.resolve())}
    cmd = [sys.executable, "-m", "streamlit", "run", str(app_file), "--server.port", str(port),
           "--server.address", address, "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    _err(f"dashboard on http://{address}:{port} (project {project.resolve()})")
    import signal

    server = subprocess.Popen(cmd, env=env)

    def stop(signum, _frame) -> None:  # SIGTERM (a service manager, `kill`): the server stops with us
        server.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)
    try:
        code = server.wait()
    except KeyboardInterrupt:  # Ctrl-C reaches both; wait for the server to finish shutting down
        code = server.wait()
    raise typer.Exit(code)


@app.command()
def plots(
    out: Path = typer.Option(Path("dvc_plots"), "--out", help="Folder for the page (index.html)."),
    cache: Path = typer.Option(Path(".dvc/tmp/plots-js"), "--cache", help="Where Vega is installed with npm, once."),
) -> None:
    """`dvc plots show` as a page that works offline (Vega inlined instead of loaded from a CDN)."""
    from dermeval.plots import PlotsError, render

    try:
        page = render(out, cache)
    except PlotsError as exc:
        _err(f"error: {exc}")
        raise typer.Exit(2) from None
    typer.echo(f"plots: {page} (opens without a network)")


def main() -> None:  # pragma: no cover - thin wrapper for `python -m dermeval`
    app(prog_name="dermeval")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
