"""Opening the store: URL, engine (SQLite in WAL mode), and the schema revision check."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from dermeval.redact import masked

DEFAULT_URL = "sqlite:///data/store/dermeval.db"
MIGRATIONS = Path(__file__).with_name("migrations")


class StoreError(RuntimeError):
    """The store cannot be opened."""


class StoreOutdated(StoreError):
    """The store's schema is older than this code; the message names the command that upgrades it."""


def store_url(url: str | None = None) -> str:
    """``url``, else ``$DERMEVAL_STORE_URL``, else the SQLite file under ``data/store/``."""
    return url or os.environ.get("DERMEVAL_STORE_URL") or DEFAULT_URL


# PostgreSQL advisory-lock key for schema changes (any constant; "dermeval" as an int64).
SCHEMA_LOCK_KEY = int.from_bytes(b"dermeval", "big") & 0x7FFFFFFFFFFFFFFF


def _alembic(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    return ScriptDirectory.from_config(_alembic("sqlite://")).get_current_head() or ""


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    kwargs = {"connect_args": {"timeout": 30}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    engine = create_engine(url, **kwargs)
    if url.startswith("sqlite"):
        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:  # WAL: readers never block the writer
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
    return engine


def upgrade(url: str | None = None, revision: str = "head") -> str:
    """Bring the store to ``revision`` (default: the newest); returns the revision reached."""
    url = store_url(url)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Two first-time monitors on one empty database: the second waits here, then finds
                # the schema made (this transaction-scoped lock is released at commit).
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
            cfg = _alembic(url)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
        return current_revision(engine) or ""
    finally:
        engine.dispose()


def open_store(url: str | None = None, *, upgrade_schema: bool = False, create: bool = True) -> Engine:
    """An engine on a store at the current schema.

    A new, empty store is created at the newest revision (unless ``create`` is False). A store
    at an older revision is upgraded when ``upgrade_schema`` is set, else :class:`StoreOutdated`
    says which command upgrades it.
    """
    url = store_url(url)
    if url.startswith("sqlite:///") and not create and not Path(url.removeprefix("sqlite:///")).is_file():
        raise StoreError(f"no store at {url}: run `dermeval monitor` (or `dvc repro monitor`) to create it")
    engine = make_engine(url)
    try:
        current = current_revision(engine)
    except OperationalError as exc:
        engine.dispose()
        raise StoreError(f"cannot open the store at {masked(url)}: {str(exc.orig).strip().splitlines()[0]}") from None
    head = head_revision()
    if current != head:
        if current is None and not create:
            engine.dispose()
            raise StoreError(f"{masked(url)} holds no DermEval store yet: run `dermeval store upgrade`")
        if current is None or upgrade_schema:
            upgrade(url)
        else:
            engine.dispose()
            raise StoreOutdated(f"the store at {masked(url)} is at schema revision {current}, this version needs "
                                f"{head}: run `dermeval store upgrade` (add --url {masked(url)} if it is not "
                                "the default)")
    return engine
