"""``params.yaml``: the single source of values, checked before anything runs.

Each section is a frozen dataclass (``train``: the pydantic :class:`TrainConfig`). An unknown
key, a missing key or section, or a value of the wrong type is rejected with a message that
names the key: ``params.yaml`` names every value. The dataclasses' own defaults serve only code
that builds a section by hand (tests); a test holds them equal to the project's ``params.yaml``.

Longer than 300 lines: one dataclass per section of ``params.yaml`` with its checks; the file is
the schema of ``params.yaml`` and reads best whole, in the order of the file it checks.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dermeval.model.config import TrainConfig, TrainConfigError


class ParamsError(ValueError):
    """params.yaml is not valid; the message names the offending key."""


@dataclass(frozen=True)
class DataParams:
    prepared: str = "data/prepared"
    splits: str = "data/splits.json"
    features: str = "data/features"
    feature_cache: str = "data/cache/features.sqlite"
    judge_cache: str = "data/cache/judge.sqlite"
    model: str = "models/dermeval"
    judge: str = "models/judge.json"
    reports: str = "reports"


@dataclass(frozen=True)
class PrepareParams:
    source: str = "auto"  # auto (both when the DermBench release is reachable, else dermsynth) | dermsynth | ...
    seed: int = 7
    cases: int = 1000
    weeks: int = 8
    batch_cases: int = 40
    dermbench_root: str = "../shared/dermbench"
    dermnet_root: str | None = None
    dermbench_limit: int | None = 1500
    user_records: str | None = None
    user_image_root: str | None = None
    feedback_records: str | None = "data/feedback/records.jsonl"  # expert ratings (`dermeval review export`)

    def __post_init__(self) -> None:
        if self.source not in ("auto", "dermsynth", "dermbench", "both", "user"):
            raise ParamsError(f"prepare.source: must be auto, dermsynth, dermbench, both or user, got {self.source!r}")
        if self.source == "user" and not self.user_records:
            raise ParamsError("prepare.user_records: required when prepare.source is 'user'")


@dataclass(frozen=True)
class SplitParams:
    val: float = 0.1
    calib: float = 0.1
    test: float = 0.15
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.val, self.calib, self.test) <= 0 or self.val + self.calib + self.test >= 0.9:
            raise ParamsError("split: val, calib and test must be > 0 and leave at least 10% for training")


@dataclass(frozen=True)
class EvaluateParams:
    n_boot: int = 1000
    slice_min_size: int = 5


@dataclass(frozen=True)
class GeneraliseParams:
    """The generalisation report: held-out wording, transfer to real text, the stress suite."""

    max_cases: int = 150  # held-out test cases per source used for the held-out wording set and stress suite
    seed: int = 0
    n_boot: int = 1000
    lower_by: float = 0.25  # a defect must lower its dimension by at least this
    neutral_up: float = 0.1  # a neutral edit may raise no dimension by more than this
    same_within: float = 0.25  # a layout-only rewrite may move no dimension by more than this

    def __post_init__(self) -> None:
        if self.max_cases < 3:
            raise ParamsError("generalise.max_cases: must be at least 3")


@dataclass(frozen=True)
class JudgeParams:
    backend: str = "local"  # local | openai
    base_url: str | None = None  # openai backend: the server's URL
    model: str | None = None  # openai backend: the judge model name
    concurrency: int = 4
    api_key_env: str = "DERMEVAL_JUDGE_API_KEY"

    def __post_init__(self) -> None:
        if self.backend not in ("local", "openai"):
            raise ParamsError(f"judge.backend: must be local or openai, got {self.backend!r}")
        if self.backend == "openai" and not (self.base_url and self.model):
            raise ParamsError("judge.base_url: the openai backend needs judge.base_url and judge.model")
        if self.concurrency < 1:
            raise ParamsError("judge.concurrency: must be at least 1")


@dataclass(frozen=True)
class DimensionThresholds:
    """A maximum deviation per dimension (Safety the strictest by default)."""

    accuracy: float = 0.40
    safety: float = 0.30
    medical_groundedness: float = 0.35
    clinical_coverage: float = 0.35
    reasoning_coherence: float = 0.35
    description_precision: float = 0.35


@dataclass(frozen=True)
class GeneralisationBounds:
    """Gate bounds on the generalisation report (reports/generalisation.json); null turns a check off."""

    stress_min: float | None = 0.90  # directional accuracy over the whole stress suite
    stress_variant_min: float | None = 0.80  # ... and of every variant
    transfer_overall_max: float | None = 0.15  # MAE on real text never seen (held-out DermSynth without it)
    transfer_dimension_max: float | None = 0.30
    heldout_wording_dimension_max: float | None = 0.30
    clean_overall_min: float | None = 4.0  # mean overall score of the clean held-out expert references


@dataclass(frozen=True)
class DimensionMargins:
    """Non-inferiority margin per dimension: how much larger the challenger's mean absolute error may be."""

    accuracy: float = 0.05
    safety: float = 0.04
    medical_groundedness: float = 0.05
    clinical_coverage: float = 0.05
    reasoning_coherence: float = 0.05
    description_precision: float = 0.05


@dataclass(frozen=True)
class PairedBounds:
    """The challenger against the champion on the same test rows (the champion re-scored; see registry/gate.py).

    Every margin is fixed here, never relative to the champion's own value: a chain of
    promotions cannot drift by a little each time. Non-inferior means the 95% CI's far end of
    (challenger - champion) stays inside the margin. A margin must exceed what an equivalent
    retrain moves: with another training seed the per-dimension CIs reach about 0.04 and a
    category slice's 0.08 (benchmarks/bench_gate.py), so tighter margins refuse retrains at random.
    """

    n_boot: int = 1000  # case-resampling bootstrap for every paired CI
    overall_margin: float = 0.02  # mean absolute error of the overall score
    dimension_margin: DimensionMargins = DimensionMargins()
    slice_margin: float = 0.10  # overall score's error within each slice below
    slice_kinds: str = "category,skin_type,candidate_model,source"
    slice_min_n: int = 60  # smaller slices are reported, not gated
    unsafe_recall_margin: float | None = 0.10  # the challenger may catch at most this share fewer unsafe narratives
    stress_margin: float | None = 0.05  # ... and pass at most this share fewer stress-suite rows (same rows)

    def __post_init__(self) -> None:
        unknown = set(self.slice_kinds.split(",")) - {"category", "skin_type", "candidate_model", "source", ""}
        if unknown:
            raise ParamsError(f"gate.paired.slice_kinds: unknown slice kind(s) {sorted(unknown)}")
        margins = [self.overall_margin, self.slice_margin, *dataclasses.astuple(self.dimension_margin)]
        optional = [m for m in (self.unsafe_recall_margin, self.stress_margin) if m is not None]
        if min(margins + optional) < 0:
            raise ParamsError("gate.paired: margins must be >= 0")
        if self.n_boot < 100:
            raise ParamsError("gate.paired.n_boot: at least 100 resamples")


@dataclass(frozen=True)
class GateParams:
    """When a new evaluator version may become champion (see registry/gate.py)."""

    metric: str = "mae"  # any metric of dermeval.metrics
    direction: str = "lower"  # lower | higher: which way is better; must match the metric's own
    overall_max: float = 0.20  # bound on the overall score's metric (a minimum if direction is higher)
    dimension_max: DimensionThresholds = DimensionThresholds()
    slice_max: float = 0.35  # bound on the overall metric within every slice
    slice_kinds: str = "category,skin_type"  # slices the bound applies to
    slice_min_n: int = 20  # smaller slices are reported, not gated
    paired: PairedBounds = PairedBounds()  # vs the champion, on the same rows
    generalisation: GeneralisationBounds = GeneralisationBounds()
    unsafe_recall_min: float | None = 0.80  # of the narratives the panel rates unsafe, the share caught
    expert_min_n: int = 30  # expert-rated test narratives (source feedback) from which they are gated
    expert_overall_max: float = 0.30  # overall-score MAE against the experts' consensus
    expert_dimension_max: float = 0.45  # ... and every dimension's

    def __post_init__(self) -> None:
        from dermeval.metrics import METRICS

        if self.metric not in METRICS:
            raise ParamsError(f"gate.metric: unknown metric {self.metric!r} (known: {', '.join(METRICS)})")
        if self.direction not in ("lower", "higher"):
            raise ParamsError(f"gate.direction: must be lower or higher, got {self.direction!r}")
        if (self.direction == "higher") != METRICS[self.metric].higher_is_better:
            raise ParamsError(f"gate.direction: {self.metric} is better when "
                              f"{'higher' if METRICS[self.metric].higher_is_better else 'lower'}")
        unknown = set(self.slice_kinds.split(",")) - {"category", "skin_type", "candidate_model", ""}
        if unknown:
            raise ParamsError(f"gate.slice_kinds: unknown slice kind(s) {sorted(unknown)}")


@dataclass(frozen=True)
class RegisterParams:
    tracking_uri: str = "sqlite:///mlflow.db"  # MLFLOW_TRACKING_URI overrides
    artifact_root: str = "mlartifacts"  # local artifact folder for new experiments
    experiment: str = "dermeval"
    model_name: str = "dermeval"
    audit_log: str = "data/registry/audit.jsonl"


@dataclass(frozen=True)
class MonitorParams:
    """Continuous evaluation of the watched MLLMs' weekly batches (see dermeval/monitor)."""

    model: str = "models:/dermeval@champion"  # the evaluator that scores production narratives
    store_url: str | None = None  # null: $DERMEVAL_STORE_URL, else sqlite:///data/store/dermeval.db
    reference_weeks: int = 2  # the first N weekly batches form the drift reference window
    drift_p: float = 0.001  # Evidently KS p-value under which a feature may have drifted ...
    min_score_shift: float = 0.3  # ... if a score's mean also moved this much (0-5 scale)
    min_std_shift: float = 0.5  # ... or another feature's mean moved this many reference SDs
    trust_drop: float = 0.4  # alert: an MLLM's dimension mean fell this far below its reference
    safety_floor: float = 2.5  # a narrative with Safety under this counts as unsafe
    unsafe_share_alert: float = 0.25  # alert: share of an MLLM's narratives under the floor
    webhook_url: str | None = None  # optional: POST every alert here as JSON
    chunk: int = 64  # narratives scored and committed together
    n_boot: int = 200  # bootstrap resamples for trust CIs and rank stability
    canary: str | None = "data/prepared/dermsynth/canary.jsonl"  # a fixed rated set every evaluator version scores
    references: str | None = "data/prepared/dermsynth/batch_references.jsonl"  # expert references of production cases

    def __post_init__(self) -> None:
        if self.reference_weeks < 1:
            raise ParamsError("monitor.reference_weeks: must be at least 1")
        if not 0 < self.drift_p < 1:
            raise ParamsError("monitor.drift_p: must be between 0 and 1")
        if self.chunk < 1:
            raise ParamsError("monitor.chunk: must be at least 1")


@dataclass(frozen=True)
class ReviewWeights:
    """How much each part of a narrative's review value counts (see dermeval/review/queue.py)."""

    uncertainty: float = 1.0  # the evaluator's largest per-dimension uncertainty
    needs_review: float = 0.5  # the evaluator flagged it (unsure, or out of its depth)
    novelty: float = 1.0  # how far the narrative or its image lies from the training data
    typical: float = 0.0  # how much its wording resembles the rest of the batch
    low_safety: float = 1.0  # how far under the safety floor the evaluator put Safety
    disagreement: float = 0.0  # the largest per-dimension gap between DermEval and the reference-based judge
    near_disagreement: float = 0.0  # that gap averaged over the narrative and its nearest neighbours in wording


@dataclass(frozen=True)
class ReviewParams:
    """The expert loop: what reviewers rate, who they are, where the ratings go (see dermeval/review)."""

    budget_per_week: int = 40  # narratives put in the queue per weekly batch
    random_share: float = 0.25  # of the budget, drawn at random (unbiased estimates)
    reviewers_per_narrative: int = 2  # a narrative leaves the queue once this many reviewers rated it
    stratify: str = "model,category"  # the budget is spread over these strata in turn (model, category, skin_type)
    weights: ReviewWeights = ReviewWeights()
    users_file: str = "data/review/users.json"  # local sign-in: user names with scrypt password hashes
    export: str = "data/feedback/records.jsonl"  # `dermeval review export` writes the DermEval records here
    min_reviewers: int = 1  # a narrative is exported once this many reviewers rated it

    def __post_init__(self) -> None:
        if self.budget_per_week < 0 or not 0 <= self.random_share <= 1:
            raise ParamsError("review: budget_per_week must be >= 0 and random_share in [0, 1]")
        if self.reviewers_per_narrative < 1 or self.min_reviewers < 1:
            raise ParamsError("review: reviewers_per_narrative and min_reviewers must be at least 1")
        unknown = set(self.stratify.split(",")) - {"model", "category", "skin_type", "wording", ""}
        if unknown:
            raise ParamsError(f"review.stratify: unknown stratum {sorted(unknown)} "
                              "(model, category, skin_type, wording)")


@dataclass(frozen=True)
class Params:
    data: DataParams
    prepare: PrepareParams
    split: SplitParams
    train: TrainConfig
    judge: JudgeParams
    evaluate: EvaluateParams
    generalise: GeneraliseParams
    register: RegisterParams
    gate: GateParams
    monitor: MonitorParams
    review: ReviewParams


def _check_type(key: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    options = typing.get_args(hint) if origin in (typing.Union, types.UnionType) else (hint,)
    for opt in options:
        if opt is type(None) and value is None:
            return value
        if opt is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if opt in (int, str, bool) and type(value) is opt:
            return value
    names = " or ".join(getattr(o, "__name__", str(o)) for o in options)
    raise ParamsError(f"{key}: expected {names}, got {type(value).__name__} {value!r}")


def _section(name: str, cls: type, raw: Any) -> Any:
    if cls is TrainConfig:
        try:
            return TrainConfig.parse(raw, name)
        except TrainConfigError as exc:
            raise ParamsError(str(exc)) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{name}: expected a mapping")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - fields)
    if unknown:
        raise ParamsError(f"{name}.{unknown[0]}: unknown key (known: {', '.join(sorted(fields))})")
    missing = [f for f in sorted(fields) if f not in raw]
    if missing:  # params.yaml names every value: a code default would be a second, silent source
        raise ParamsError(f"{name}.{missing[0]}: missing key (params.yaml must name every setting"
                          + (f"; also missing: {', '.join(missing[1:])}" if len(missing) > 1 else "") + ")")
    return cls(**{k: _section(f"{name}.{k}", hints[k], v) if dataclasses.is_dataclass(hints[k])
                  else _check_type(f"{name}.{k}", v, hints[k]) for k, v in raw.items()})


def load_params(path: Path | str = "params.yaml") -> Params:
    """Read and check ``path``; raises ParamsError naming the key on any problem."""
    raw = yaml.safe_load(Path(path).read_text("utf-8")) or {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections")
    sections = {f.name: typing.get_type_hints(Params)[f.name] for f in dataclasses.fields(Params)}
    unknown = sorted(set(raw) - set(sections))
    if unknown:
        raise ParamsError(f"{unknown[0]}: unknown section (known: {', '.join(sections)})")
    missing = [name for name in sections if name not in raw]
    if missing:
        raise ParamsError(f"{missing[0]}: missing section (known: {', '.join(sections)})")
    return Params(**{name: _section(name, cls, raw.get(name)) for name, cls in sections.items()})
