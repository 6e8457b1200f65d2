"""Where the dashboard reads from: the store, the registry, the pipeline's reports.

Every reader returns data or a :class:`Missing` that says what to run, never raises, so
a page shows a clear message instead of a traceback when something is absent.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dermeval.params import ParamsError, load_params


@dataclass(frozen=True)
class Missing:
    message: str


def project() -> Path:
    """The project folder (params.yaml, reports/, data/): ``$DERMEVAL_PROJECT`` or the current folder."""
    return Path(os.environ.get("DERMEVAL_PROJECT", ".")).resolve()


def _params():
    try:
        return load_params(project() / "params.yaml")
    except (OSError, ParamsError):
        return None


def _in_project(url: str) -> str:
    """A relative SQLite URL taken relative to the project folder (other URLs unchanged)."""
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_absolute():
        return "sqlite:///" + str(project() / url.removeprefix("sqlite:///"))
    return url


def store_url() -> str:
    from dermeval.store.db import store_url as resolve

    p = _params()
    configured = p.monitor.store_url if p else None
    return _in_project(resolve(configured))


def open_engine(url: str):
    from dermeval.store.db import StoreError, open_store

    try:
        return open_store(url, create=False)
    except StoreError as exc:
        return Missing(str(exc))
    except Exception as exc:  # a driver error (server down, wrong credentials)
        return Missing(f"cannot read the store at {url}: {type(exc).__name__}: {str(exc).splitlines()[0]}")


def report(name: str) -> dict[str, Any] | Missing:
    path = project() / "reports" / name
    if not path.is_file():
        return Missing(f"no {path.relative_to(project())} yet: run `dvc repro` to produce it")
    return json.loads(path.read_text("utf-8"))


def table(name: str) -> pd.DataFrame | Missing:
    path = project() / "reports" / "eval" / f"{name}.csv"
    if not path.is_file():
        return Missing(f"no reports/eval/{name}.csv yet: run `dvc repro evaluate`")
    return pd.read_csv(path)


def registry_status() -> dict[str, Any] | Missing:
    from dermeval.params import RegisterParams
    from registry.mlflow_registry import Registry, TrackingUnavailable, check_reachable, resolve_tracking_uri

    p = _params()
    rp = p.register if p else RegisterParams()
    configured = resolve_tracking_uri(rp.tracking_uri)
    uri = _in_project(configured)
    if uri != configured and not Path(uri.removeprefix("sqlite:///")).is_file():
        return Missing(f"no MLflow store at {uri}: run `dvc repro` to register a first evaluator")
    try:
        check_reachable(uri, timeout=2)
        reg = Registry(uri, rp.model_name, project() / rp.audit_log)
        status = reg.status()
        status["history"] = reg.history()
        return status
    except TrackingUnavailable as exc:
        return Missing(str(exc))
    except Exception as exc:  # MLflow raises many types for a broken store
        return Missing(f"cannot read the MLflow registry at {uri}: {type(exc).__name__}: {str(exc).splitlines()[0]}")


def truth_scores(batch_source: str, narrative_id: str) -> dict[str, float] | None:
    """Expert (panel) ratings of a narrative, when its batch has a truth file beside it."""
    path = Path(batch_source.removesuffix(".jsonl") + ".truth.jsonl")
    if not path.is_file():
        return None
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if f'"{narrative_id}"' in line:
                row = json.loads(line)
                if row.get("id") == narrative_id:
                    return row.get("scores")
    return None
