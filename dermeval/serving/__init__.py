"""Serving DermEval through MLflow: the pyfunc (models-from-code) and its logging."""
