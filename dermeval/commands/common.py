"""What every command module shares: error output, the ``--params`` option, the project's paths.

Default paths (the evaluator folder, the judge's calibration, the feature cache, the reports
folder) come from the ``data`` section of the project's ``params.yaml``, never from here.
"""

from __future__ import annotations

from pathlib import Path

import typer

PARAMS_OPT = typer.Option(Path("params.yaml"), "--params", help="The project's params.yaml (its paths and settings).")
JSON_OPT = typer.Option(False, "--json", help="Print JSON instead of text.")


def err(msg: str) -> None:
    typer.echo(msg, err=True)


def load(params: Path):
    """The checked ``params.yaml`` (exit 2 with the offending key named when it is not valid)."""
    from dermeval.params import ParamsError, load_params

    try:
        return load_params(params)
    except FileNotFoundError:
        err(f"error: {params} not found: run from the project folder or pass --params")
        raise typer.Exit(2) from None
    except (ParamsError, OSError) as exc:
        err(f"error: {params}: {exc}")
        raise typer.Exit(2) from None


def data_path(params: Path, key: str, given: object | None = None) -> str:
    """``given`` when the user named it, else the ``data.<key>`` path of ``params``."""
    return str(given) if given is not None else str(getattr(load(params).data, key))
