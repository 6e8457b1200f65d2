"""The scored-narrative store (SQLModel + Alembic): SQLite by default, PostgreSQL for teams."""

from dermeval.store.db import StoreError, StoreOutdated, open_store, store_url

__all__ = ["StoreError", "StoreOutdated", "open_store", "store_url"]
