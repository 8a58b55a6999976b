"""Database plumbing shared by every store: `make_engine` (SQLite and PostgreSQL) and `reader_engine`."""
from __future__ import annotations

from shared.db.engine import database_url, is_sqlite, make_engine, reader_engine

__all__ = ["database_url", "is_sqlite", "make_engine", "reader_engine"]
