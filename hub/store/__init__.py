"""The county's store: the shared relay store over the county's tables (SQLite or PostgreSQL)."""
from hub.store.hub_store import HubStore, open_hub_store
from hub.store.tables import metadata

__all__ = ["metadata", "HubStore", "open_hub_store"]
