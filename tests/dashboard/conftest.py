"""A project folder the dashboard can read: store, MLflow registry, pipeline reports."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def populated_project(tiny_world, tmp_path_factory):
    from dermeval.monitor.run import monitor_batch
    from dermeval.params import GateParams, MonitorParams
    from dermeval.store.db import open_store
    from registry.mlflow_registry import Registry
    from tests.monitor.helpers import FakeEvaluator
    from tests.registry.helpers import make_report, new_version

    proj = tmp_path_factory.mktemp("project")
    shutil.copyfile(REPO / "params.yaml", proj / "params.yaml")
    (proj / "reports").mkdir()
    # the pipeline reports tracked in the repository
    for name in ("metrics.json", "eval", "gate", "generalisation.json", "generalisation"):
        src = REPO / "reports" / name
        if src.is_dir():
            shutil.copytree(src, proj / "reports" / name)
        elif src.is_file():
            shutil.copyfile(src, proj / "reports" / name)
    engine = open_store(f"sqlite:///{proj}/data/store/dermeval.db")
    p = MonitorParams(reference_weeks=1, chunk=16, n_boot=30)
    for week in (1, 2, 3):
        monitor_batch(tiny_world / f"batches/week_{week:02d}.jsonl", FakeEvaluator(), "fake/v1", engine, p,
                      image_root=tiny_world, reports=proj / "reports" / "monitor", progress=False)
    engine.dispose()
    reg = Registry(f"sqlite:///{proj}/mlflow.db", "dermeval", proj / "data/registry/audit.jsonl")
    report = make_report()
    reg.gate_and_promote(new_version(reg, proj, report), report, GateParams(), by="pipeline")
    return proj


def page_run(monkeypatch, project: Path, page: str):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("DERMEVAL_PROJECT", str(project))
    monkeypatch.delenv("DERMEVAL_STORE_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    at = AppTest.from_file(str(REPO / "dashboards" / "app.py"), default_timeout=60)
    at.run()
    if page != "Overview":
        at.sidebar.radio(key="page").set_value(page).run()
    return at


def texts(at) -> str:
    parts = [m.value for m in at.markdown] + [i.value for i in at.info] + [w.value for w in at.warning]
    parts += [str(h.value) for h in at.header] + [str(s.value) for s in at.subheader]
    return "\n".join(parts)


def frames(at) -> list:
    return [d.value for d in at.dataframe]

