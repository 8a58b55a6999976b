"""`TownStore`: the township's `shared.relay.sql_store.RelayStore` over its own tables (villages'
keys and records, the township's signed chain), raising the township's errors."""
from __future__ import annotations

from sqlalchemy import Engine

from shared.migrations import upgrade_to_head
from shared.relay.sql_store import ForkEvidence, RelayStore, TimeFlag, relay_engine
from town_center.errors import StoreError, UnknownAgent
from town_center.store import matter_tables as _matter_tables  # noqa: F401 - registers the handling tables on `metadata`
from town_center.store.migrations import TOWN_MIGRATIONS
from town_center.store.tables import tables

__all__ = ["TownStore", "open_town_store", "ForkEvidence", "TimeFlag"]


class TownStore(RelayStore):
    store_error = StoreError
    unknown_key_error = UnknownAgent

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, tables)


def open_town_store(url: str) -> TownStore:
    """Open the township store at an SQLAlchemy URL or a SQLite file path, first bringing its schema
    (relay, handling, deadline and console tables) to this version's (`town_center.store.migrations`)."""
    engine = relay_engine(url)
    try:
        upgrade_to_head(engine, TOWN_MIGRATIONS)
    except BaseException:
        engine.dispose()
        raise
    return TownStore(engine)
