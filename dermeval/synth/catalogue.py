"""The DermSynth condition catalogue: clinician-readable YAML, validated on load."""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dermeval.schema import DERMBENCH_CATEGORIES

Urgency = Literal["routine", "treat", "urgent"]


class Render(BaseModel):
    """How the image generator draws a condition."""

    model_config = ConfigDict(extra="allow", frozen=True)
    pattern: str
    color: tuple[int, int, int]


class Condition(BaseModel):
    """One condition, as a clinician would review it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9_]+$")
    name: str
    aliases: tuple[str, ...] = ()
    category: str
    morphology: str
    colour: str
    surface: str
    border: str
    sites: tuple[str, ...] = Field(min_length=1)
    distribution: str
    differentials: tuple[str, ...] = Field(min_length=2, max_length=3)
    urgency: Urgency
    malignant: bool = False
    management: str
    render: Render

    @field_validator("category")
    @classmethod
    def _known_category(cls, v: str) -> str:
        if v not in DERMBENCH_CATEGORIES:
            raise ValueError(f"unknown DermBench category {v!r}")
        return v

    @property
    def names(self) -> tuple[str, ...]:
        """The name and every alias, for matching a diagnosis in free text."""
        return (self.name, *self.aliases)


class CatalogueError(ValueError):
    """The catalogue file is not valid; the message names the entry and field."""


class Catalogue:
    """All conditions, indexed by id and by category."""

    def __init__(self, conditions: list[Condition]) -> None:
        self.conditions = conditions
        self.by_id = {c.id: c for c in conditions}
        self.by_category: dict[str, list[Condition]] = defaultdict(list)
        for c in conditions:
            self.by_category[c.category].append(c)

    def __len__(self) -> int:
        return len(self.conditions)

    @property
    def categories(self) -> list[str]:
        return [c for c in DERMBENCH_CATEGORIES if c in self.by_category]


def load_catalogue(path: Path | str | None = None) -> Catalogue:
    """Load and validate the catalogue (the packaged one by default)."""
    if path is None:
        text = resources.files("dermeval.synth").joinpath("data/catalogue.yaml").read_text("utf-8")
        where = "dermeval/synth/data/catalogue.yaml"
    else:
        text, where = Path(path).read_text("utf-8"), str(path)
    raw = yaml.safe_load(text) or {}
    entries = raw.get("conditions")
    if not isinstance(entries, list) or not entries:
        raise CatalogueError(f"{where}: expected a non-empty 'conditions' list")
    conditions, problems = [], []
    for i, entry in enumerate(entries):
        label = entry.get("id", f"#{i}") if isinstance(entry, dict) else f"#{i}"
        try:
            conditions.append(Condition.model_validate(entry))
        except ValidationError as exc:
            for e in exc.errors():
                loc = ".".join(str(p) for p in e["loc"]) or "<entry>"
                problems.append(f"{where}: condition {label}: {loc}: {e['msg']}")
    ids = [c.id for c in conditions]
    problems += [f"{where}: duplicate condition id {i!r}" for i in sorted({i for i in ids if ids.count(i) > 1})]
    missing = [c for c in DERMBENCH_CATEGORIES if c not in {x.category for x in conditions}]
    problems += [f"{where}: no condition for category {c!r}" for c in missing]
    if problems:
        raise CatalogueError("\n".join(problems))
    return Catalogue(conditions)


@lru_cache(maxsize=1)
def default_catalogue() -> Catalogue:
    return load_catalogue()
