"""How every SQLite store here opens its file: one recipe, so none of them drifts.

SQLAlchemy's pysqlite driver issues a deferred BEGIN, which upgrades to a write lock only at the
first write and can then fail or deadlock between two writers; the documented recipe turns the
driver's BEGIN off and issues BEGIN IMMEDIATE on every transaction instead. WAL lets readers run
beside the writer; `synchronous` says what survives a power loss (FULL: every commit).
"""
from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import Connection, Engine, event


def configure_sqlite(engine: Engine, *, synchronous: Literal["FULL", "NORMAL"] = "FULL", busy_timeout_ms: int = 15_000,
                     foreign_keys: bool = False) -> Engine:
    url = str(engine.url)
    in_memory = ":memory:" in url or "mode=memory" in url

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
        if foreign_keys:
            cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    def on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "begin", on_begin)
    return engine
