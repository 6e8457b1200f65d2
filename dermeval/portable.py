"""A project folder that still works after ``cp -r`` or a move.

Two things hold paths: the local MLflow database (``sqlite:///mlflow.db``) stores absolute
``file://`` URIs of its artifact folder, and the store keeps where each case's image lies.
The store keeps paths inside the project relative to it (:func:`portable_path`, read back
with :func:`resolve_path`). The MLflow database is re-pointed once when it is found in a new
place (:func:`relocate_tracking`): without that, a copied project would write into, and load
its champion from, the folder it was copied from.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

# (table, column) of a local MLflow database that hold artifact locations.
LOCATION_COLUMNS = (("experiments", "artifact_location"), ("runs", "artifact_uri"),
                    ("model_versions", "source"), ("model_versions", "storage_location"),
                    ("logged_models", "artifact_location"))


def portable_path(path: Path | str, root: Path | str | None = None) -> str:
    """``path`` relative to ``root`` (default: the working folder) when it lies inside, else absolute."""
    p = Path(path).resolve()
    base = Path(root or Path.cwd()).resolve()
    return str(p.relative_to(base)) if p.is_relative_to(base) else str(p)


def resolve_path(stored: str | None, root: Path | str | None = None) -> Path | None:
    """A path read back from the store: a relative one is taken under ``root`` (default: the working folder)."""
    if not stored:
        return None
    p = Path(stored)
    return p if p.is_absolute() else Path(root or Path.cwd()) / p


def relocate_tracking(uri: str, artifact_root: str, project: Path | str | None = None) -> str | None:
    """Re-point a moved or copied project's local MLflow database at its own artifact folder.

    Acts only on a ``sqlite:///`` tracking database inside the project whose artifact folder
    is the relative ``artifact_root`` (the default setup): when the database names that
    folder under another project path, every artifact location under the old path is
    rewritten to the new one. Returns the old project path when something was rewritten.
    """
    if not uri.startswith("sqlite:///") or Path(artifact_root).is_absolute():
        return None
    project = Path(project or Path.cwd()).resolve()
    db = Path(uri.removeprefix("sqlite:///"))
    db = db if db.is_absolute() else project / db
    here = (project / artifact_root).resolve()
    if not db.is_file() or not here.is_dir():
        return None
    suffix = "/" + Path(artifact_root).as_posix().strip("/")
    with sqlite3.connect(db) as conn:
        try:
            found = [loc for (loc,) in conn.execute("SELECT artifact_location FROM experiments")]
        except sqlite3.DatabaseError:
            return None  # not an MLflow database (yet): nothing to re-point
        old = next((loc.removeprefix("file://").removesuffix(suffix) for loc in found
                    if loc.startswith("file:///") and loc.endswith(suffix)
                    and loc != here.as_uri()), None)
        if old is None or Path(old) == project:
            return None
        for table, column in LOCATION_COLUMNS:
            try:
                for prefix_old, prefix_new in ((f"file://{old}/", f"{project.as_uri()}/"), (f"{old}/", f"{project}/")):
                    conn.execute(f"UPDATE {table} SET {column} = ? || substr({column}, ?) "  # noqa: S608 - fixed names
                                 f"WHERE {column} LIKE ? ESCAPE '\\'",
                                 (prefix_new, len(prefix_old) + 1, _like_prefix(prefix_old)))
            except sqlite3.OperationalError:
                continue  # an older MLflow schema without this table or column
    print(f"MLflow database {db} was made in {old}: its artifact locations now point into {project}",
          file=sys.stderr)
    return old


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def registry_client(tracking_uri: str | None = None):
    """An MLflow client whose model registry is the tracking server (the project keeps both in one
    place; see ``register.tracking_uri``), whatever registry URI the process was given before."""
    import mlflow
    from mlflow import MlflowClient

    uri = tracking_uri or mlflow.get_tracking_uri()
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def parse_model_uri(uri: str) -> tuple[str, str | None, str | None] | None:
    """``models:/NAME@ALIAS`` -> ``(NAME, None, ALIAS)``; ``models:/NAME/VERSION`` -> ``(NAME, VERSION, None)``;
    None for a URI that names no registered model (a logged model's ``models:/m-...``, another scheme)."""
    if not uri.startswith("models:/"):
        return None
    ref = uri.removeprefix("models:/").strip("/")
    if "@" in ref:
        name, _, alias = ref.partition("@")
        return (name, None, alias) if name and alias else None
    name, _, version = ref.partition("/")
    return (name, version, None) if name and version else None
