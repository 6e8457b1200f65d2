"""The training configuration: the ``train`` section of ``params.yaml``, checked once.

One model, no code defaults: ``params.yaml`` is the single source of every value, so a key
that is missing or unknown, or a value of the wrong type, is an error that names the key
(never a silent default). Importable without torch. Code that needs a variant (a test, a
benchmark) reads the project's values and changes what it needs with :meth:`TrainConfig.with_`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class TrainConfigError(ValueError):
    """The ``train`` section is not valid; the message names the key."""


class TrainConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    lr: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    patience: int = Field(ge=1)  # epochs without validation improvement before stopping
    # On: stop after ``patience`` epochs without validation improvement and keep the best epoch.
    # Off: train all ``epochs`` (the learning rate anneals to zero) and keep the last; validation
    # MAE is still logged. A fixed schedule makes two trainings on nearly the same data comparable:
    # the epoch early stopping picks moves with a few rows and moved the test MAE by 0.01-0.03.
    early_stopping: bool
    # Networks trained (seeds seed, seed + 1000, ...) and averaged into one evaluator; their
    # disagreement adds to each rating's uncertainty. 1: a single network.
    members: int = Field(ge=1)
    hidden: int = Field(ge=8)
    dropout: float = Field(ge=0, lt=1)
    nll_weight: float = Field(ge=0)  # Gaussian NLL on individual raters (learns the uncertainty)
    defect_weight: float = Field(ge=0)  # the clinical-problem head (feeds the critique)
    overall_weight: float = Field(ge=0)  # extra L1 on the overall score
    category_weight: float = Field(ge=0)  # image and conclusion category heads (the diagnosis check)
    seed: int
    # Word and sentence-unit counts as model inputs. Off: a narrative's length then cannot buy a
    # score (padding raised Accuracy by 0.10 with them on); the content has to.
    length_inputs: bool
    # Read the case's category from the image and the narrative's findings together (see the network).
    context_category: bool
    # The problem head reads the diagnosis-vs-image verdict, so the critique can name a wrong diagnosis.
    defects_read_match: bool
    # The conclusion's category also comes from the diagnosis vocabulary (ICD-10-CM, catalogue, learned names).
    vocab_category: bool
    # A second diagnosis verdict, against the image alone: a narrative shown with another case's image
    # loses Accuracy even when its own findings agree with its conclusion.
    image_verdict: bool
    # One score calibration for narratives written like the expert references and one for the rest,
    # blended by a style model's probability (off: one calibration for all; see dermeval/model/style.py).
    calibrate_by_style: bool
    # The saved model's review rules: needs_review when any dimension's uncertainty exceeds
    # review_threshold, or (null) the level only review_share of the calibration split passes;
    # out_of_distribution beyond the ood_quantile of the calibration split's distances.
    review_threshold: float | None = Field(gt=0)
    review_share: float = Field(gt=0, lt=1)
    # The critique says "Detected: <problem>" only from the probability at which such claims were
    # right this often on the calibration split (per problem; never, where none is), by claim_margin
    # standard errors (the Wilson lower bound of their precision must reach it; 0: the point estimate).
    claim_precision: float = Field(gt=0, le=1)
    claim_margin: float = Field(ge=0)
    ood_quantile: float = Field(ge=0.5, lt=1)
    # Every expert-rated training row (source ``feedback``: `dermeval review export`) is seen this many
    # times an epoch (1: like any other row). A few dozen ratings among thousands of rows otherwise
    # move the model by less than a retrain's own noise (benchmarks/bench_review_loop.py).
    feedback_repeat: int = Field(ge=1)

    @model_validator(mode="before")
    @classmethod
    def _ints_are_floats(cls, data: Any) -> Any:
        """YAML writes 1 for 1.0: a whole number is accepted where a float is expected (strict otherwise)."""
        if isinstance(data, dict):
            floats = {k for k, f in cls.model_fields.items() if f.annotation in (float, float | None)}
            return {k: float(v) if k in floats and type(v) is int else v for k, v in data.items()}
        return data

    @classmethod
    def parse(cls, raw: Any, section: str = "train") -> TrainConfig:
        """Check a ``train`` mapping; every problem is reported by its key (``train.lr: ...``)."""
        if not isinstance(raw, dict):
            raise TrainConfigError(f"{section}: expected a mapping")
        try:
            return cls(**raw)
        except ValidationError as exc:
            problems = []
            for e in exc.errors():
                key = ".".join(str(x) for x in e["loc"]) or "?"
                what = {"missing": "missing key (params.yaml must name every training setting)",
                        "extra_forbidden": "unknown key"}.get(e["type"], e["msg"])
                problems.append(f"{section}.{key}: {what}")
            raise TrainConfigError("; ".join(problems)) from None

    def with_(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes``, checked like the original."""
        return TrainConfig.parse({**self.model_dump(), **changes})
