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


STORE_OPT = typer.Option(None, "--store", help="Store URL (default: monitor.store_url in params.yaml, "
                         "$DERMEVAL_STORE_URL, else sqlite:///data/store/dermeval.db).")


def open_engine(store: str | None, params: Path, *, create: bool = False):
    """The store named by ``--store``, else by params.yaml; a clear error (exit 2) when it cannot be opened."""
    from dermeval.params import ParamsError, load_params
    from dermeval.store.db import StoreError, masked, open_store, store_url

    try:
        configured = store or (load_params(params).monitor.store_url if params.is_file() else None)
    except ParamsError as exc:
        err(f"error: {exc}")
        raise typer.Exit(2) from None
    url = store_url(configured)
    try:
        return open_store(url, create=create)
    except StoreError as exc:
        err(f"error: {exc}")
        raise typer.Exit(2) from None
    except Exception as exc:  # a driver error: the server is down, wrong credentials
        err(f"error: cannot open the store at {masked(url)}: {type(exc).__name__}: "
            f"{str(exc).strip().splitlines()[0]}")
        raise typer.Exit(2) from None
