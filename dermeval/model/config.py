"""Training configuration: a frozen dataclass, importable without torch (params.yaml extends it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 80
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 20
    hidden: int = 128
    dropout: float = 0.1
    nll_weight: float = 0.3
    defect_weight: float = 0.3
    overall_weight: float = 0.0
    category_weight: float = 0.3
    seed: int = 0
    # Word and sentence-unit counts as model inputs. Off: a narrative's length then cannot buy a
    # score (padding raised Accuracy by 0.10 with them on); the content has to.
    length_inputs: bool = False
    # Read the case's category from the image and the narrative's findings together (see the network).
    context_category: bool = True
    # The defect head reads the diagnosis-vs-image verdict, so the critique can name a wrong diagnosis.
    defects_read_match: bool = True
    # The conclusion's category also comes from the diagnosis vocabulary (ICD-10-CM, catalogue, learned names).
    vocab_category: bool = True
