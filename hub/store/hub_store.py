"""`HubStore`: the county's `shared.relay.sql_store.RelayStore` (townships' link keys, their ingest
logs, the down-log to townships), raising the county's errors, and noting how far each township has
pulled so a 督办 notice shows when it was received."""
from __future__ import annotations

from sqlalchemy import Engine, update

from hub.errors import StoreError, UnknownTownship
from hub.store.migrations import HUB_MIGRATIONS
from hub.store.tables import supervision_notice, tables
from shared.domain.personal_data import personal_data_problem
from shared.migrations import upgrade_to_head
from shared.relay.ports import AgentKey
from shared.relay.sql_store import RelayStore, relay_engine
from shared.wire.v1 import envelope_pb2

__all__ = ["HubStore", "open_hub_store"]


class HubStore(RelayStore):
    store_error = StoreError
    unknown_key_error = UnknownTownship

    def __init__(self, engine: Engine, *, now_ms=None) -> None:
        super().__init__(engine, tables)
        self._now_ms = now_ms

    def read(self, key_id: str, after_cursor: int, limit: int) -> tuple[list[envelope_pb2.Envelope], int]:
        # A township asking after cursor N has applied everything up to N: notices up to N are received.
        if after_cursor and self._now_ms is not None:
            with self.engine.begin() as conn:
                conn.execute(update(supervision_notice).where(
                    supervision_notice.c.township_key_id == key_id, supervision_notice.c.down_cursor <= after_cursor,
                    supervision_notice.c.received_at_ms.is_(None)).values(received_at_ms=self._now_ms()))
        return super().read(key_id, after_cursor, limit)

    def revoke(self, key_id: str, *, by: str, reason: str, now_ms: int) -> AgentKey:
        """Raises `StoreError` (Chinese) when the reason carries an ID or mobile number, like every other
        free text the county keeps in clear (console, API and CLI all revoke through here)."""
        problem = personal_data_problem(reason, "吊销原因")
        if problem:
            raise StoreError(problem)
        return super().revoke(key_id, by=by, reason=reason, now_ms=now_ms)


def open_hub_store(url: str, *, now_ms=None) -> HubStore:
    """Open the county store at an SQLAlchemy URL or a SQLite file path, first bringing its schema
    (relay, county, deadline and console tables) to this version's (`hub.store.migrations`)."""
    engine = relay_engine(url)
    try:
        upgrade_to_head(engine, HUB_MIGRATIONS)
    except BaseException:
        engine.dispose()
        raise
    return HubStore(engine, now_ms=now_ms)
