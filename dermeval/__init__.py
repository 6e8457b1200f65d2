"""DermEval Ops: keep dermatology narrative evaluators trustworthy.

Importing the package has no side effects: no folders are created, no tracking
URI is set and no model is loaded. ``dermeval.load_evaluator`` is imported on first use.
"""

from typing import Any

from dermeval.schema import DIMENSIONS, TITLES

__all__ = ["DIMENSIONS", "TITLES", "__version__", "load_evaluator"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "load_evaluator":
        from dermeval.model.evaluator import load_evaluator

        return load_evaluator
    raise AttributeError(f"module 'dermeval' has no attribute {name!r}")
