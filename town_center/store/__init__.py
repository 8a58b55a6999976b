"""The township's store: SQLAlchemy Core tables and the relay ports over them (SQLite or PostgreSQL)."""
from town_center.store.tables import metadata
from town_center.store.town_store import TownStore, open_town_store

__all__ = ["metadata", "TownStore", "open_town_store"]
