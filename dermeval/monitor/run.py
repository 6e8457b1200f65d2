"""Monitor one batch: score it with the champion, store everything, find drift, raise alerts.

Scoring is chunked and each chunk is committed with its narratives, so a batch killed
midway and re-run scores only what is missing and ends with exactly one score row per
narrative and evaluator version.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Engine
from tqdm import tqdm

from dermeval.features import narrative_units
from dermeval.formats.common import RowError, iter_jsonl, write_json
from dermeval.formats.records import parse_record
from dermeval.images import ImageError, resolve_under
from dermeval.model.ood import MODALITIES
from dermeval.monitor.analysis import SCORE_COLUMNS, alerts_for, drift, trust_summaries
from dermeval.monitor.descriptors import narrative_descriptors, skin_lightness
from dermeval.monitor.notify import notify
from dermeval.params import MonitorParams
from dermeval.portable import parse_model_uri, portable_path, registry_client
from dermeval.schema import DIMENSIONS
from dermeval.store import ingest
from dermeval.store.models import Batch, Case, Narrative, Score, now


class MonitorError(RuntimeError):
    """The batch cannot be monitored at all (nothing has been written)."""


class NoSuchEvaluator(MonitorError):
    """The registry answered, and holds no such version or alias (e.g. no champion yet)."""


@dataclass
class MonitorResult:
    batch_id: str
    rows_in: int
    stored: int
    scored_now: int
    already_scored: int
    rejected: list[dict[str, Any]] = field(default_factory=list)
    drift: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    reference: str | None = None

    def summary(self) -> dict[str, Any]:
        return {"batch": self.batch_id, "rows_in": self.rows_in, "stored": self.stored,
                "scored_now": self.scored_now, "already_scored": self.already_scored,
                "rejected": len(self.rejected), "reference": self.reference,
                "drifted": [f"{d['feature']}{'@' + d['model'] if d['model'] else ''}" for d in self.drift
                            if d["drifted"]],
                "alerts": [a["message"] for a in self.alerts]}


def evaluator_version(model: str) -> str:
    """A stable name for the evaluator: ``dermeval/v3`` for a registry URI, else a weights hash."""
    if model.startswith("models:/"):
        from mlflow.exceptions import MlflowException

        if (registered := parse_model_uri(model)) is None:
            raise MonitorError(f"{model}: expected models:/NAME@ALIAS or models:/NAME/VERSION (a registered evaluator)")
        (name, version, alias), client = registered, registry_client()
        try:
            mv = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, version)
        except MlflowException as exc:
            code = getattr(exc, "error_code", "")
            if code == "RESOURCE_DOES_NOT_EXIST" or (code == "INVALID_PARAMETER_VALUE" and "not found" in str(exc)):
                raise NoSuchEvaluator(f"evaluator {model} is not registered: {str(exc).splitlines()[0]}") from None
            raise MonitorError(f"cannot read evaluator {model} from the registry: {str(exc).splitlines()[0]}") from None
        return f"{name}/v{mv.version}"
    weights = Path(model) / "model.safetensors"
    if not weights.is_file():
        raise MonitorError(f"no evaluator at {model} (expected {weights})")
    return "local:" + hashlib.sha256(weights.read_bytes()).hexdigest()[:12]


def _read_batch(path: Path, image_root: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    good, bad = [], []
    seen: set[str] = set()
    for line, obj in iter_jsonl(path):
        if isinstance(obj, RowError):
            bad.append({"line": line, "error": str(obj)})
            continue
        parsed = parse_record(obj, str(path), line, require_scores=False)
        if isinstance(parsed, list):
            bad.append({"line": line, "id": obj.get("id"), "error": "; ".join(str(e) for e in parsed)})
            continue
        problems = ingest.store_problems({**parsed.to_json(), "id": parsed.id})
        if not parsed.model:
            problems.append("model: missing (which MLLM wrote the narrative?)")
        if parsed.id in seen:
            problems.append("id: repeated in this batch")
        if parsed.image:
            try:
                resolve_under(image_root, parsed.image)
            except (ImageError, ValueError) as exc:
                problems.append(f"image: {exc}")
        if problems:
            bad.append({"line": line, "id": parsed.id, "error": f"{path}:{line}: " + "; ".join(problems)})
            continue
        seen.add(parsed.id)
        good.append({**parsed.to_json(), "line": line})
    return good, bad


def _frames(engine: Engine, batch_ids: list[str], version: str) -> pd.DataFrame:
    s, n, c = Score.__table__, Narrative.__table__, Case.__table__
    cols = [s.c.narrative_id, s.c.model, s.c.needs_review, *[s.c[d] for d in SCORE_COLUMNS],
            n.c.text, n.c.words, n.c.hedges, n.c.referral_mentions, n.c.case_id, c.c.skin_lightness]
    q = (select(*cols).select_from(s.join(n, s.c.narrative_id == n.c.id).outerjoin(c, n.c.case_id == c.c.id))
         .where(s.c.batch_id.in_(batch_ids), s.c.evaluator_version == version).order_by(s.c.narrative_id))
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(q).mappings().all())


def monitor_batch(batch_path: Path | str, evaluator: Any, version: str, engine: Engine, p: MonitorParams, *,
                  image_root: Path | str | None = None, batch_id: str | None = None, reports: Path | None = None,
                  promotion_events: list[dict[str, Any]] | None = None, progress: bool = True,
                  analyse: bool = True, judge: Any = None) -> MonitorResult:
    """Read, store, score what is missing, analyse, record, notify, report.

    ``analyse=False`` stores and scores only (the canary set: no trust summaries, drift or alerts).

    ``judge`` (a :class:`~dermeval.monitor.judging.BatchJudge`) adds the reference-based judge's view
    to the narratives whose case has a reference.

    ``promotion_events`` are the registry's alias moves (its audit log entries), kept beside the
    scores so the dashboard can mark when the evaluator changed; the caller reads them.
    """
    batch_path = Path(batch_path)
    if not batch_path.is_file():
        raise MonitorError(f"batch not found: {batch_path}")
    root = Path(image_root) if image_root else batch_path.parent
    batch_id = batch_id or batch_path.name.removesuffix(".jsonl")
    rows, bad = _read_batch(batch_path, root)
    rows = _drop_conflicts(engine, rows, bad, batch_path)
    weeks = {r.get("week") for r in rows if isinstance(r.get("week"), int)}
    week = weeks.pop() if len(weeks) == 1 else None
    done = _store_inputs(engine, rows, len(bad), batch_id, batch_path, root, week, version)
    todo = [r for r in rows if r["id"] not in done]
    scored = _score_missing(engine, evaluator, version, todo, bad, p, root, batch_path, batch_id, progress, judge)
    if judge is not None:  # narratives this version scored before the judge was set up
        judge.backfill(engine, [r for r in rows if r["id"] in done], version)
    result = MonitorResult(batch_id, len(rows) + len(bad), 0, scored, len(done), bad)
    current = _frames(engine, [batch_id], version)
    result.stored = len(current)
    if not analyse:
        return result
    trust, result.drift, result.alerts, result.reference = _analyse(engine, evaluator, current, batch_id, version,
                                                                    week, p, reports)
    _record(engine, batch_id, version, week, result, trust, p, promotion_events)
    notify(result.alerts, batch_id, p)
    if reports is not None:
        reports.mkdir(parents=True, exist_ok=True)
        write_json(reports / f"{batch_id}.json", {**result.summary(), "evaluator_version": version,
                                                  "rejected_rows": bad, "drift": result.drift, "trust": trust})
    return result


def _drop_conflicts(engine: Engine, rows: list[dict[str, Any]], bad: list[dict[str, Any]],
                    batch_path: Path) -> list[dict[str, Any]]:
    """Rows whose id the store already holds with another text or MLLM become row errors."""
    with engine.connect() as conn:
        conflicts = ingest.narrative_conflicts(conn, [{"id": r["id"], "text": r["diagnostic_text"],
                                                       "model": r["model"]} for r in rows])
    bad += [{"line": r["line"], "id": r["id"], "error": f"{batch_path}:{r['line']}: {conflicts[r['id']]}"}
            for r in rows if r["id"] in conflicts]
    return [r for r in rows if r["id"] not in conflicts]


def _case_row(r: dict[str, Any], root: Path) -> dict[str, Any]:
    lightness = image = None
    if r.get("image"):
        try:
            lightness = skin_lightness(resolve_under(root, r["image"]))
        except (OSError, ImageError, ValueError):
            lightness = None  # scoring reports the image problem on the row
        try:  # relative to the project when inside it (a moved project still finds it)
            image = portable_path(resolve_under(root, r["image"]))
        except (ImageError, ValueError):
            image = r["image"]
    return {"id": r.get("case_id") or r["id"], "category": r.get("category"), "fitzpatrick": r.get("fitzpatrick"),
            "image": image, "image_source": r.get("image_source"), "skin_lightness": lightness}


def _store_inputs(engine: Engine, rows: list[dict[str, Any]], n_bad: int, batch_id: str, batch_path: Path,
                  root: Path, week: int | None, version: str) -> set[str]:
    """The batch, its MLLMs, cases and narratives in one transaction; returns the ids ``version`` already scored."""
    with engine.begin() as conn:
        ingest.upsert_batch(conn, {"id": batch_id, "source": str(batch_path), "week": week,
                                   "rows_in": len(rows) + n_bad, "rows_rejected": n_bad})
        ingest.add_models(conn, [r["model"] for r in rows])
        cases: dict[str, dict[str, Any]] = {}
        for r in rows:
            cid = r.get("case_id") or r["id"]
            if cid not in cases:
                cases[cid] = _case_row(r, root)
        ingest.add_cases(conn, list(cases.values()))
        ingest.add_narratives(conn, [{"id": r["id"], "case_id": r.get("case_id") or r["id"], "model": r["model"],
                                      "batch_id": batch_id, "text": r["diagnostic_text"],
                                      **narrative_descriptors(r["diagnostic_text"])} for r in rows])
        return ingest.scored_ids(conn, [r["id"] for r in rows], version)


def _score_row(r: dict[str, Any], res: dict[str, Any], version: str, batch_id: str,
               judged: dict[str, float] | None) -> dict[str, Any]:
    return {"narrative_id": r["id"], "evaluator_version": version, "batch_id": batch_id, "model": r["model"],
            **{d: res["scores"][d] for d in DIMENSIONS}, "overall": res["overall"],
            **{f"u_{d}": res["uncertainty"][d] for d in DIMENSIONS}, "needs_review": bool(res["needs_review"]),
            **{f"novelty_{m}": (res.get("novelty") or {}).get(m) for m in MODALITIES},
            **{k: (judged or {}).get(k) for k in ("judge_overall", "judge_gap")},
            "critique": res["critique"],
            "evidence": json.dumps({d: c.get("evidence", []) for d, c in
                                    (res.get("critique_json") or {}).get("dimensions", {}).items()})}


def _score_missing(engine: Engine, evaluator: Any, version: str, todo: list[dict[str, Any]],
                   bad: list[dict[str, Any]], p: MonitorParams, root: Path, batch_path: Path, batch_id: str,
                   progress: bool, judge: Any = None) -> int:
    """Score in chunks, one transaction per chunk (a crash loses at most that chunk); returns how many
    score rows this run stored (not a concurrent run's)."""
    scored = 0
    bar = tqdm(total=len(todo), desc=f"monitor {batch_id}", unit="narrative", disable=not progress)
    for start in range(0, len(todo), p.chunk):
        part = todo[start:start + p.chunk]
        results = evaluator.score_batch([{"id": r["id"], "image": r.get("image"), "diagnostic_text":
                                          r["diagnostic_text"]} for r in part], root, progress=False,
                                        source=str(batch_path), lines=[r["line"] for r in part])
        judged = judge.judge_rows(part, results) if judge is not None else {}
        score_rows = []
        for r, res in zip(part, results, strict=True):
            if "error" in res:
                bad.append({"line": r["line"], "id": r["id"], "error": res["error"]})
            else:
                score_rows.append(_score_row(r, res, version, batch_id, judged.get(r["id"])))
        with engine.begin() as conn:
            scored += ingest.add_scores(conn, score_rows)
        bar.update(len(part))
    bar.close()
    return scored


def _analyse(engine: Engine, evaluator: Any, current: pd.DataFrame, batch_id: str, version: str, week: int | None,
             p: MonitorParams, reports: Path | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                                            list[dict[str, Any]], str | None]:
    """Trust summaries of the batch, drift against the reference window (same evaluator version), alerts."""
    trust: list[dict[str, Any]] = []
    if len(current):
        trust = [{**t, "batch_id": batch_id, "week": week, "evaluator_version": version}
                 for t in trust_summaries(current, safety_floor=p.safety_floor, n_boot=p.n_boot)]
    reference_ids = _reference_batches(engine, p.reference_weeks, batch_id)
    if not (reference_ids and len(current)):
        return trust, [], [], None
    reference = _frames(engine, reference_ids, version)
    if not len(reference):
        return trust, [], [], None
    html = (reports / f"{batch_id}.html") if reports else None
    ref_emb, cur_emb = _embeddings(evaluator, reference["text"]), _embeddings(evaluator, current["text"])
    drift_rows = drift(reference, current, ref_emb, cur_emb, p_threshold=p.drift_p,
                       min_score_shift=p.min_score_shift, min_std_shift=p.min_std_shift, html=html)
    reference_name = ",".join(reference_ids)
    for d in drift_rows:
        d.update(batch_id=batch_id, reference=reference_name, report_path=str(html) if html else None)
    alerts = alerts_for(batch_id, drift_rows, trust, trust_summaries(reference, safety_floor=p.safety_floor,
                                                                 n_boot=p.n_boot), p)
    return trust, drift_rows, alerts, reference_name


def _record(engine: Engine, batch_id: str, version: str, week: int | None, result: MonitorResult,
            trust: list[dict[str, Any]], p: MonitorParams, promotion_events: list[dict[str, Any]] | None) -> None:
    """This version's trust, drift, rollups and alerts for the batch (earlier versions' rows stay)."""
    with engine.begin() as conn:
        ingest.replace_batch_results(conn, batch_id, version, trust, result.drift)
        ingest.rebuild_rollups(conn, batch_id, version, week, p.safety_floor)
        ingest.add_alerts(conn, batch_id, version, result.alerts)
        conn.execute(Batch.__table__.update().where(Batch.__table__.c.id == batch_id).values(
            finished_at=now(), rows_rejected=len(result.rejected)))
        if promotion_events:
            ingest.add_promotion_events(conn, promotion_events)


def _reference_batches(engine: Engine, reference_weeks: int, current: str) -> list[str]:
    """The first ``reference_weeks`` weekly batches (not the current one, nor any batch inside the window)."""
    t = Batch.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(t.c.id, t.c.week).where(t.c.week.is_not(None)).order_by(t.c.week)).all()
    window = [r.id for r in rows if r.week <= reference_weeks]
    return [] if current in window or not window else window


def _embeddings(evaluator: Any, texts: pd.Series) -> np.ndarray:
    """Mean sentence embedding per narrative (read from the evaluator's feature cache)."""
    out = []
    for text in texts:
        units = narrative_units(text).units
        vecs = evaluator.featurizer.sentence_vectors(units) if units else np.zeros((1, 384), np.float32)
        out.append(vecs.mean(0))
    return np.stack(out)
