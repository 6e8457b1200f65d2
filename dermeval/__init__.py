"""DermEval Ops: keep dermatology narrative evaluators trustworthy.

Importing the package has no side effects: no folders are created, no tracking
URI is set and no model is loaded.
"""

from dermeval.schema import DIMENSIONS, TITLES

__all__ = ["DIMENSIONS", "TITLES", "__version__"]
__version__ = "0.1.0"
