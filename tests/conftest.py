"""Shared fixtures: a tiny DermSynth world, a DermEval trained once per session, the DermBench release."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pytest
import torch

from dermeval.features import FeatureStore, Featurizer
from dermeval.model.config import TrainConfig
from dermeval.model.data import featurize
from dermeval.model.fit import fit_evaluator
from dermeval.splits import assign_splits
from dermeval.synth.world import WorldConfig, generate_world

REPO = Path(__file__).resolve().parents[1]


def train_config(**changes) -> TrainConfig:
    """The project's training configuration (params.yaml is its only source), with ``changes``."""
    from dermeval.params import load_params

    return load_params(REPO / "params.yaml").train.with_(**changes)
TINY = WorldConfig(cases=46, seed=11, weeks=6, batch_cases=8)


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("world")
    generate_world(out, TINY, progress=False)
    return out


def _dermbench_root() -> Path:
    return Path(os.environ.get("DERMBENCH_ROOT", REPO.parent / "shared" / "dermbench"))


@pytest.fixture(scope="session")
def dermbench_root() -> Path:
    root = _dermbench_root()
    if not (root / "data" / "manifest" / "dermbench_test.jsonl").is_file():
        pytest.skip(f"DermBench text release not found at {root} (clone it there or set DERMBENCH_ROOT)")
    return root


# The release, loaded and its name pool built once per session (frozen records, so safe to share):
# about 3.5 s each, and a dozen tests read them.
@pytest.fixture(scope="session")
def dermbench_records(dermbench_root: Path) -> tuple:
    from dermeval.formats.dermbench import load_dermbench

    return tuple(load_dermbench(dermbench_root).records)


@pytest.fixture(scope="session")
def dermbench_pool(dermbench_records: tuple) -> dict[str, tuple[str, ...]]:
    """Per category, the diagnoses the experts' conclusions name (:func:`~dermeval.synth.realtext.name_pool`)."""
    from dermeval.synth.realtext import name_pool

    return {k: tuple(v) for k, v in name_pool(list(dermbench_records)).items()}


# A 400-case world with its encoder features cached, shared by the model and judge tests.
@pytest.fixture(scope="session")
def train_world(tmp_path_factory):
    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("trainworld")
    generate_world(root, WorldConfig(cases=400, seed=5, weeks=1, batch_cases=1), progress=False)
    rows = [json.loads(line) for line in (root / "ratings.jsonl").open()]
    featurizer = Featurizer(FeatureStore(root / "cache.sqlite"))
    fs, errors = featurize(rows, root, featurizer, progress=False)
    assert not errors
    splits = assign_splits(rows, val=0.1, calib=0.1, test=0.15, seed=0)
    return {"root": root, "rows": rows, "fs": fs, "splits": splits, "featurizer": featurizer}


# A DermEval trained once per session on that world (a few minutes on 2 cores): an ensemble on a
# fixed schedule like the pipeline's, with fewer members and more epochs for the smaller world.
@pytest.fixture(scope="session")
def trained(train_world):
    w = train_world
    evaluator, history, idx = fit_evaluator(w["fs"], {r["id"]: r for r in w["rows"]}, w["splits"],
                                            train_config(epochs=40, members=3, review_threshold=0.6), progress=False)
    evaluator.featurizer = w["featurizer"]
    model_dir = evaluator.save(w["root"] / "model")
    return {**w, "evaluator": evaluator, "history": history, "idx": idx, "model_dir": Path(model_dir)}


def skip_unless_ci(reason: str, module: bool = False) -> None:
    """Skip with ``reason`` on a user's machine; under ``CI=true`` the missing piece is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"must run under CI=true: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=module)


@contextlib.contextmanager
def one_torch_thread():
    """Run the block on one torch thread, as a served model given ``DERMEVAL_TORCH_THREADS=1`` (and each
    Spark task) runs: torch's encoder kernels sum in a thread-count-dependent order (features move by
    ~3e-6 between 1 and 2 threads), so engines compared to 1e-5 must use the same count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (also: a server that is down)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, proc=None, seconds: float = 60) -> bool:
    """Poll ``url`` until it answers 200 (False if ``proc`` exits first or time runs out)."""
    import time
    import urllib.request

    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return True
        except OSError:
            time.sleep(0.5)
        if proc is not None and proc.poll() is not None:
            return False
    return False


def stop_process(proc, seconds: float = 20) -> None:
    """Stop a server a test started: terminate, and kill it if it has not gone within ``seconds``."""
    import subprocess

    proc.terminate()
    try:
        proc.wait(seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


PG_HOST, PG_PORT = "127.0.0.1", 5432


@pytest.fixture
def postgres_db():
    """A fresh PostgreSQL database on 127.0.0.1:5432 (dropped afterwards); its SQLAlchemy URL.

    Skips with a reason when no server answers, except under CI=true, where it must run.
    """
    import uuid

    psycopg2 = pytest.importorskip("psycopg2")
    try:
        admin = psycopg2.connect(host=PG_HOST, port=PG_PORT, dbname="postgres", connect_timeout=3)
    except psycopg2.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL must run under CI=true but {PG_HOST}:{PG_PORT} is unreachable: {exc}")
        pytest.skip(f"no PostgreSQL on {PG_HOST}:{PG_PORT} ({str(exc).strip().splitlines()[0]})")
    admin.autocommit = True
    user = admin.get_dsn_parameters().get("user", "postgres")
    name = f"dermeval_test_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg2://{user}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
