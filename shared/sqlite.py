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
                     foreign_keys: bool = False, read_only: bool = False) -> Engine:
    """`read_only`: an engine that only reads (e.g. `/metrics`): a deferred BEGIN, so under WAL its
    reads never take the write lock and never hold up a writer; writes are refused outright."""
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
        if read_only:
            cursor.execute("PRAGMA query_only=ON")
        cursor.close()

    def on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "begin", on_begin)
    return engine


def reader_engine(engine: Engine) -> Engine:
    """An engine for reads beside a store's own: on SQLite a small read-only one on the same file
    (see `read_only`); elsewhere (PostgreSQL reads never block writers) the same engine."""
    from sqlalchemy import create_engine

    if engine.dialect.name != "sqlite":
        return engine
    reader = create_engine(engine.url, pool_size=2, max_overflow=2, pool_timeout=30)
    return configure_sqlite(reader, read_only=True)
