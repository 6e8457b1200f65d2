"""Shared fixtures: a tiny DermSynth world (seconds to make) and the DermBench release."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dermeval.synth.world import WorldConfig, generate_world

REPO = Path(__file__).resolve().parents[1]
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
