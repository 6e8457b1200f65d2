"""``params.yaml``: the single source of values, checked before anything runs.

Each section is a frozen dataclass. An unknown key, a missing section or a value of
the wrong type is rejected with a message that names the key.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dermeval.model.config import TrainConfig


class ParamsError(ValueError):
    """params.yaml is not valid; the message names the offending key."""


@dataclass(frozen=True)
class DataParams:
    prepared: str = "data/prepared"
    splits: str = "data/splits.json"
    features: str = "data/features"
    feature_cache: str = "data/cache/features.sqlite"
    model: str = "models/dermeval"
    reports: str = "reports"


@dataclass(frozen=True)
class PrepareParams:
    source: str = "dermsynth"  # dermsynth | dermbench | both | user
    seed: int = 7
    cases: int = 600
    weeks: int = 8
    batch_cases: int = 40
    dermbench_root: str = "../shared/dermbench"
    dermnet_root: str | None = None
    dermbench_limit: int | None = None
    user_records: str | None = None
    user_image_root: str | None = None

    def __post_init__(self) -> None:
        if self.source not in ("dermsynth", "dermbench", "both", "user"):
            raise ParamsError(f"prepare.source: must be dermsynth, dermbench, both or user, got {self.source!r}")
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
class TrainParams(TrainConfig):
    """The ``train`` section: every TrainConfig field plus the review threshold of the saved model."""

    review_threshold: float = 0.6  # needs_review when any dimension's uncertainty exceeds this


@dataclass(frozen=True)
class EvaluateParams:
    n_boot: int = 1000
    slice_min_size: int = 5


@dataclass(frozen=True)
class Params:
    data: DataParams
    prepare: PrepareParams
    split: SplitParams
    train: TrainParams
    evaluate: EvaluateParams


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
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{name}: expected a mapping")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - fields)
    if unknown:
        raise ParamsError(f"{name}.{unknown[0]}: unknown key (known: {', '.join(sorted(fields))})")
    return cls(**{k: _check_type(f"{name}.{k}", v, hints[k]) for k, v in raw.items()})


def load_params(path: Path | str = "params.yaml") -> Params:
    """Read and check ``path``; raises ParamsError naming the key on any problem."""
    raw = yaml.safe_load(Path(path).read_text("utf-8")) or {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections")
    sections = {f.name: typing.get_type_hints(Params)[f.name] for f in dataclasses.fields(Params)}
    unknown = sorted(set(raw) - set(sections))
    if unknown:
        raise ParamsError(f"{unknown[0]}: unknown section (known: {', '.join(sections)})")
    return Params(**{name: _section(name, cls, raw.get(name)) for name, cls in sections.items()})
