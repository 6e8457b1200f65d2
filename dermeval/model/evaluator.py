"""The one loader and the scoring API: ``load_evaluator(path_or_uri)`` -> :class:`Evaluator`.

On disk an evaluator is a folder with ``model.safetensors`` (the network weights) and
``config.json`` (network shape, calibration, defect names, thresholds, provenance).
Nothing is pickled. The same loader serves the CLI, the pipeline, MLflow and Python.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
from PIL import Image
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from dermeval.diagnosis import VOCABULARY_FILE, DiagnosisVocabulary
from dermeval.encoders import identities
from dermeval.features import FeatureStore, Featurizer, narrative_units
from dermeval.formats.records import parse_record
from dermeval.images import load_rgb
from dermeval.model.critique import build_critique, critique_text, empty_critique, row_thresholds
from dermeval.model.data import FeatureSet, featurize
from dermeval.model.network import DermEvalEnsemble, DermEvalNet, NetConfig, build_network
from dermeval.model.ood import MODALITIES, Novelty
from dermeval.model.style import StyleModel
from dermeval.model.train import apply_calibration, predict_raw
from dermeval.portable import parse_model_uri, registry_client
from dermeval.schema import DIMENSIONS

FORMAT_VERSION = 1
SCORE_CHUNK = 64  # narratives encoded together; the Spark engine lays its batches out the same way
URI_SCHEMES = ("models:/", "runs:/", "mlflow-artifacts:/", "s3://", "gs://", "file://")


class EvaluatorNotFound(FileNotFoundError):
    """The model path or URI does not lead to a saved evaluator."""


class Evaluator:
    """A trained DermEval: scores (image, narrative) pairs with a structured critique."""

    def __init__(self, net: DermEvalNet | DermEvalEnsemble, meta: dict[str, Any], featurizer: Featurizer | None = None,
                 vocabulary: DiagnosisVocabulary | None = None, novelty: Novelty | None = None) -> None:
        self.net = net.eval()
        self.meta = meta
        self.calibration = meta["calibration"]
        self.style = StyleModel.from_json(self.calibration["style"]) if "by_style" in self.calibration else None
        self.defect_names: list[str] = meta["defect_names"]
        self.review_threshold = float(meta.get("review_threshold", 0.6))
        self.claim_thresholds: dict[str, Any] = dict(meta.get("claim_thresholds") or {})
        self.featurizer = featurizer or Featurizer(FeatureStore(None))
        self.vocabulary = vocabulary
        self.novelty = novelty
        self.categories: list[str] = list(meta.get("categories") or [])

    @property
    def identity(self) -> dict[str, str]:
        return {"name": self.meta.get("name", "dermeval"), "version": str(self.meta.get("version", "local"))}

    # --- persistence -------------------------------------------------------------------
    def save(self, path: Path | str) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.net.state_dict().items()}, str(path / "model.safetensors"))
        meta = {**self.meta, "format_version": FORMAT_VERSION, "net": self.net.cfg.to_dict()}
        if self.novelty is not None:
            meta["ood"] = self.novelty.save(path)
        (path / "config.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        if self.vocabulary is not None:
            self.vocabulary.save(path)
        return path

    @classmethod
    def load(cls, path: Path | str, featurizer: Featurizer | None = None) -> Evaluator:
        path = Path(path)
        if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
            raise EvaluatorNotFound(f"no evaluator at {path} (expected config.json and model.safetensors)")
        meta = json.loads((path / "config.json").read_text("utf-8"))
        if meta.get("format_version") != FORMAT_VERSION:
            raise EvaluatorNotFound(f"{path}: evaluator format {meta.get('format_version')} is not supported")
        net = build_network(NetConfig.from_saved(meta["net"]))
        net.load_state_dict(load_file(str(path / "model.safetensors")))
        vocabulary = DiagnosisVocabulary.load(path)
        if net.cfg.vocab_category and vocabulary is None:
            raise EvaluatorNotFound(f"{path}: the evaluator reads a diagnosis vocabulary; {VOCABULARY_FILE} is missing")
        trained_on, here = meta.get("encoders"), identities()
        if trained_on and trained_on != here:
            changed = "; ".join(f"{k}: trained on {trained_on.get(k)}, here {v}" for k, v in here.items()
                                if trained_on.get(k) != v)
            warnings.warn(f"{path}: the encoders differ from the ones this evaluator was trained on ({changed}); "
                          "its scores may shift: retrain it (`dvc repro`)", stacklevel=2)
        return cls(net, meta, featurizer, vocabulary, Novelty.load(path, meta.get("ood")))

    # --- prediction --------------------------------------------------------------------
    def predict(self, fs: FeatureSet, idx: np.ndarray | None = None, with_attention: bool = False
                ) -> dict[str, Any]:
        """Calibrated scores, uncertainties, defect probabilities (and attention) for a FeatureSet."""
        idx = np.arange(len(fs)) if idx is None else np.asarray(idx)
        if self.net.cfg.vocab_category and (fs.vocab is None or fs.vocab_source is None
                                            or fs.vocab_source[0] is not self.vocabulary
                                            or fs.vocab_source[1] != tuple(self.categories)):
            fs.attach_vocabulary(self.vocabulary, self.categories)
        raw = predict_raw(self.net, fs, idx, with_attention=with_attention)
        expert_style = self.style.prob(fs, idx) if self.style is not None else None
        mean, sigma = apply_calibration(self.calibration, raw, expert_style)
        empty = fs.stats[idx, 2] > 0.5
        mean[empty], sigma[empty] = 0.0, 0.0  # an empty narrative sits at the floor, by rule
        out = {"scores": mean, "sigma": sigma, "defect_probs": 1 / (1 + np.exp(-raw["defect_logits"])),
               "match": raw["match"], "match_image": raw["match_image"], "image_category": raw["image_category"],
               "seen_category": raw["seen_category"], "named_category": raw["named_category"]}
        if expert_style is not None:  # how much the narrative reads like an expert reference (0-1)
            out["expert_style"] = expert_style
        if self.novelty is not None:
            out["novelty"] = self.novelty.score(fs, idx)
        # Whether the diagnosis vocabulary recognised the conclusion's diagnosis.
        out["named"] = fs.vocab[idx, -1] > 0 if fs.vocab is not None else np.zeros(len(idx), bool)
        if with_attention:
            out["attention"] = raw["attention"]
        return out

    def review_flags(self, pred: dict[str, np.ndarray]) -> np.ndarray:
        """needs_review per row: an uncertainty over the review threshold, or out of distribution."""
        flags = pred["sigma"].max(1) > self.review_threshold
        if "novelty" in pred:
            flags = flags | (pred["novelty"].max(1) > 1.0)
        return flags

    def _row(self, fs: FeatureSet, i: int, pred: dict[str, np.ndarray], k: int, units: list[str],
             decimals: int | None = 3) -> dict[str, Any]:
        scores, sigma = pred["scores"][k], pred["sigma"][k]

        def rnd(x: float) -> float:
            return round(float(x), decimals) if decimals is not None else float(x)

        if fs.stats[i, 2] > 0.5:
            crit = empty_critique()
        else:
            probs = {n: float(p) for n, p in zip(self.defect_names, pred["defect_probs"][k], strict=False)}
            crit = build_critique(scores, sigma, units, pred["attention"][k], probs, self._diagnosis(fs, i, pred, k),
                                  row_thresholds(self.claim_thresholds, pred, k))
        overall = float(np.mean(scores))
        novelty = pred["novelty"][k] if "novelty" in pred else None
        ood = bool(novelty is not None and novelty.max() > 1.0)
        row = {"id": fs.ids[i], "scores": {d: rnd(scores[j]) for j, d in enumerate(DIMENSIONS)},
               "overall": rnd(overall),
               "uncertainty": {d: rnd(sigma[j]) for j, d in enumerate(DIMENSIONS)},
               "needs_review": bool(np.max(sigma) > self.review_threshold) or ood,
               "out_of_distribution": ood,
               "critique": critique_text(crit, overall), "critique_json": crit, "evaluator": self.identity}
        if novelty is not None:
            row["novelty"] = {m: rnd(v) for m, v in zip(MODALITIES, novelty, strict=True)}
        if fs.ids[i] in fs.warnings:
            row["warning"] = fs.warnings[fs.ids[i]]
        return row

    def _diagnosis(self, fs: FeatureSet, i: int, pred: dict[str, np.ndarray], k: int) -> dict[str, Any] | None:
        """The diagnosis check of one row: what the conclusion names, what image and findings show."""
        if not self.categories or fs.conclusion[i] < 0:
            return None
        text = str(fs.conclusions()[i])
        name = self.vocabulary.conclusion(text).name if self.vocabulary is not None and text else None
        named = self.categories[int(np.argmax(pred["named_category"][k]))]
        seen = self.categories[int(np.argmax(pred["seen_category"][k]))]
        out = {"conclusion": name, "conclusion_category": named, "seen_category": seen,
               "agreement": round(float(pred["match"][k]), 3)}
        if self.net.cfg.image_verdict:  # the conclusion against the image alone
            out.update(image_category=self.categories[int(np.argmax(pred["image_category"][k]))],
                       image_agreement=round(float(pred["match_image"][k]), 3))
        return out

    def score(self, image: Image.Image | Path | str, narrative: str) -> dict[str, Any]:
        """Score one image and narrative; returns the same row shape as :meth:`score_batch`."""
        img = load_rgb(Path(image)) if isinstance(image, (str, Path)) else image.convert("RGB")
        units = narrative_units(narrative)
        fs = FeatureSet(ids=["-"], image=self.featurizer.image_vectors([img]), image_index=np.array([0]),
                        units=self.featurizer.sentence_vectors(units.units), offsets=np.array([0, len(units.units)]),
                        unit_index=np.arange(len(units.units)), stats=units.stats[None],
                        conclusion=np.array([units.conclusion]),
                        conclusion_text=np.array([units.conclusion_sentence]),
                        warnings={"-": f"narrative has {units.truncated_from} sentence units; the first "
                                       f"{len(units.units)} were used"} if units.truncated_from else {})
        row = self._row(fs, 0, self.predict(fs, with_attention=True), 0, units.units)
        row.pop("id")
        return row

    def score_batch(self, records: Iterable[dict[str, Any]], image_root: Path | str | None = None, *,
                    chunk: int = SCORE_CHUNK, progress: bool = True, source: str = "<input>",
                    lines: list[int] | None = None, decimals: int | None = 3) -> list[dict[str, Any]]:
        """One output row per input row, in input order; ``{"id", "error"}`` for a rejected row.

        With ``image_root`` image paths must stay inside it; without, paths are taken as given.
        ``lines`` (the input line of each record) makes error messages point at the file line.
        ``decimals`` rounds scores and uncertainties (None: full precision, as the pyfunc returns).
        """
        records = list(records)
        line_of = lines or list(range(1, len(records) + 1))
        root = Path(image_root) if image_root is not None else Path("/")
        out: list[dict[str, Any] | None] = [None] * len(records)
        good: list[tuple[int, dict[str, Any]]] = []
        for k, obj in enumerate(records):
            rec, err = prepare_input(obj, source, line_of[k], image_root)
            if err is not None:
                out[k] = err
            else:
                good.append((k, rec))
        bar = tqdm(total=len(records), desc="score", unit="narrative", disable=not progress)
        bar.update(len(records) - len(good))
        for start in range(0, len(good), chunk):
            part = good[start:start + chunk]
            # Featurised under their position, not their id: two rows sharing an id keep their own scores.
            fs, errors = featurize([{**r, "id": str(j)} for j, (_, r) in enumerate(part)], root, self.featurizer,
                                   progress=False, source=source)
            for e in errors:
                k, r = part[e.line - 1]
                out[k] = {"id": r["id"], "error": f"{source}:{line_of[k]}: image: {e.message}"}
            pred = self.predict(fs, with_attention=True)
            at = {fid: n for n, fid in enumerate(fs.ids)}
            for j, (k, r) in enumerate(part):
                if out[k] is None:
                    n = at[str(j)]
                    units = narrative_units(r["diagnostic_text"]).units
                    out[k] = {**self._row(fs, n, pred, n, units, decimals), "id": r["id"]}
            bar.update(len(part))
        bar.close()
        return [r for r in out if r is not None]


def prepare_input(obj: Any, source: str, line: int, image_root: Path | str | None
                  ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Check one input row: ``(record, None)`` ready to featurize, or ``(None, error_row)``.

    Shared by every engine (local, MLflow pyfunc, Spark) so a bad row gets the same message
    wherever it is scored. ``file://`` URIs are paths. Without ``image_root`` a path is taken
    as given (made absolute); with it, a relative path stays relative to the root and an absolute
    one is accepted only inside the root (the featurizer refuses anything that escapes it).
    """
    if not isinstance(obj, dict):
        return None, {"id": None, "error": f"{source}:{line}: <row>: expected a JSON object"}
    if "error" in obj and "id" in obj and len(obj) == 2:  # a row already rejected upstream
        return None, obj
    parsed = parse_record(obj, source, line, require_scores=False)
    if isinstance(parsed, list):
        return None, {"id": obj.get("id"), "error": "; ".join(str(e) for e in parsed)}
    image = parsed.image or ""
    if image.startswith("file://"):
        image = unquote(urlparse(image).path)
    if image_root is None:  # resolve, then check under "/"
        image = str(Path(image).resolve()).lstrip("/") if image else ""
    elif image and Path(image).is_absolute():
        root = Path(image_root).resolve()
        if Path(image).resolve().is_relative_to(root):
            image = str(Path(image).resolve().relative_to(root))
    return {"id": parsed.id, "image": image, "diagnostic_text": parsed.diagnostic_text}, None


def load_evaluator(path_or_uri: Path | str, cache: Path | str | None = None, precision: str = "fp32") -> Evaluator:
    """Load an evaluator from a folder or an MLflow model URI (``models:/dermeval@champion``).

    ``cache`` is a feature-cache file to share between runs (default: in memory). ``precision``
    is the encoders' arithmetic: ``fp32`` (what the evaluator was trained on) or ``bf16``
    (about twice as fast on CPUs with native bf16; see :mod:`dermeval.encoders.runtime`).
    """
    target = str(path_or_uri)
    featurizer = Featurizer(FeatureStore(cache), precision=precision)  # no cache: in memory
    if target.startswith(URI_SCHEMES):
        import mlflow

        try:
            tracking = mlflow.get_tracking_uri()
            source, registered = target, parse_model_uri(target)
            if registered is not None:
                # Resolved in the project's registry (the tracking server) by a scoped client: MLflow's own
                # models:/ resolution reads the process-wide registry URI, which an earlier caller may have set.
                name, version, alias = registered
                client = registry_client(tracking)
                if alias:
                    version = client.get_model_version_by_alias(name, alias).version
                source = client.get_model_version_download_uri(name, version)
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, tracking_uri=tracking))
        except Exception as exc:  # MLflow raises several types for a missing model
            raise EvaluatorNotFound(f"cannot fetch {target}: {exc}") from None
        # A pyfunc keeps the evaluator folder among its artifacts; a plain artifact URI is the folder.
        for config in sorted(local.rglob("config.json"), key=lambda p: len(p.parts)):
            if (config.parent / "model.safetensors").is_file():
                return Evaluator.load(config.parent, featurizer)
        raise EvaluatorNotFound(f"{target} holds no DermEval evaluator")
    if not Path(target).exists():
        raise EvaluatorNotFound(f"model path does not exist: {target}")
    return Evaluator.load(target, featurizer)
