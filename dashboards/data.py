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

from dermeval.evaluation import paired_rows
from dermeval.params import ParamsError, load_params
from dermeval.redact import masked


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
        return Missing(f"cannot read the store at {masked(url)}: {type(exc).__name__}: "
                       f"{masked(str(exc).splitlines()[0])}")


def report(name: str) -> dict[str, Any] | Missing:
    path = project() / "reports" / name
    if not path.is_file():
        return Missing(f"no {path.relative_to(project())} yet: run `dvc repro` to produce it")
    try:
        return json.loads(path.read_text("utf-8"))
    except (ValueError, OSError) as exc:  # cut short or edited by hand: a message, not a traceback
        return Missing(f"{path.relative_to(project())} cannot be read ({type(exc).__name__}: "
                       f"{str(exc).splitlines()[0] if str(exc) else ''}): rerun `dvc repro` to write it again")


def table(name: str) -> pd.DataFrame | Missing:
    path = project() / "reports" / "eval" / f"{name}.csv"
    if not path.is_file():
        return Missing(f"no reports/eval/{name}.csv yet: run `dvc repro evaluate`")
    try:
        return pd.read_csv(path)
    except (ValueError, OSError) as exc:  # pandas raises ValueError subclasses for a broken CSV
        return Missing(f"reports/eval/{name}.csv cannot be read ({type(exc).__name__}): rerun `dvc repro evaluate`")


def registry_status() -> dict[str, Any] | Missing:
    from dermeval.params import RegisterParams
    from registry.mlflow_registry import Registry, TrackingUnavailable, check_reachable, resolve_tracking_uri

    p = _params()
    rp = p.register if p else RegisterParams()
    configured = resolve_tracking_uri(rp.tracking_uri)
    uri = _in_project(configured)
    if uri != configured and not Path(uri.removeprefix("sqlite:///")).is_file():
        return Missing(f"no MLflow store at {masked(uri)}: run `dvc repro` to register a first evaluator")
    try:
        check_reachable(uri, timeout=2)
        reg = Registry(uri, rp.model_name, project() / rp.audit_log)
        status = reg.status()
        status["history"] = reg.history()
        return status
    except TrackingUnavailable as exc:
        return Missing(str(exc))
    except Exception as exc:  # MLflow raises many types for a broken store
        return Missing(f"cannot read the MLflow registry at {masked(uri)}: {type(exc).__name__}: "
                       f"{masked(str(exc).splitlines()[0])}")


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


def _headroom(check: dict[str, Any]) -> float:
    """How far inside its bound a check is (negative: by how much it missed)."""
    v, b = check["value"], check["bound"]
    return (b - v) if check["op"] == "<=" else (v - b)


def promotion_review(gate: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """The tables of a promotion review from a gate report (``reports/gate/gate.json``).

    ``paired``: challenger and champion on the same test rows, per dimension and for unsafe
    recall, with the paired difference, its 95% CI and the margin; ``slices``: the same per
    slice; ``checks``: every other gate check with its bound and headroom. Empty frames where
    there was no champion to compare with.
    """
    decision = gate["decision"]
    checks = decision["checks"]
    paired = decision.get("paired") or {}
    by_name = {c["name"].split(" vs champion")[0]: c for c in checks if " vs champion v" in c["name"]}
    rows = []
    if paired and not paired.get("error"):
        for r in paired_rows(paired):
            c = by_name.get(r.pop("check"), {})
            r.pop("share")
            rows.append({**r, "margin": c.get("bound"), "result": "pass" if c.get("passed") else "FAIL"})
    slices = []
    for kind, table in (paired.get("slices") or {}).items():
        for value, fig in table.items():
            c = by_name.get(f"slice {kind}={value}")
            slices.append({"slice": kind, "value": value, "n": fig["n"], "difference": fig["value"],
                           "ci_low": fig["ci_low"], "ci_high": fig["ci_high"],
                           "margin": c["bound"] if c else None,
                           "result": ("pass" if c["passed"] else "FAIL") if c else "reported only"})
    others = [{"check": c["name"], "value": c["value"], "bound": f"{c['op']} {c['bound']:.4f}",
               "headroom": _headroom(c), "result": "pass" if c["passed"] else "FAIL"}
              for c in checks if " vs champion v" not in c["name"]]
    return {"paired": pd.DataFrame(rows), "slices": pd.DataFrame(slices), "checks": pd.DataFrame(others)}
