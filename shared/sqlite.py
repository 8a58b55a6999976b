"""How every SQLite store here opens its file: one recipe, so none of them drifts. Engines are
made by `shared.db.make_engine`, which applies it.

Reads and writes begin differently (see docs/performance.md, "SQLite transactions"):

* A transaction opened explicitly (`engine.begin()`, `conn.begin()`) is a writer's: it starts with
  BEGIN IMMEDIATE, so it holds the write lock from its first statement and can never fail on a
  snapshot another writer has moved past (the SQLAlchemy-documented recipe for pysqlite).
* A transaction SQLAlchemy opens by itself on a plain `engine.connect()` (autobegin) is a reader's:
  a deferred BEGIN, which under WAL reads a snapshot beside the writer and never takes or waits for
  the write lock. The code base writes only inside explicit transactions (a write on an autobegun
  connection would be rolled back at close anyway), so this is exactly the split between the two.

Writers of one database file in one process queue in a first-come, first-served line before their
BEGIN IMMEDIATE. SQLite's own busy handler polls with growing sleeps (up to 100 ms), so a thread
that commits and begins again at once (the intake folding batch after batch) would otherwise win
the lock over writers that were already waiting, and they would time out. The line hands the lock
to the longest waiter instead; the busy timeout still covers other processes on the same file.
"""
from __future__ import annotations

import collections
import os
import threading
from typing import Any, Literal

from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import OperationalError

__all__ = ["configure_sqlite", "WriterLine", "writer_line"]


class WriterLine:
    """A first-come, first-served lock: `release` hands it straight to the longest waiter, so a
    thread that releases and asks again goes to the back of the line."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held = False
        self._waiters: collections.deque[threading.Lock] = collections.deque()

    def acquire(self, timeout_s: float) -> bool:
        with self._mutex:
            if not self._held and not self._waiters:
                self._held = True
                return True
            turn = threading.Lock()
            turn.acquire()
            self._waiters.append(turn)
        if turn.acquire(timeout=max(0.0, timeout_s)):
            return True
        with self._mutex:
            try:
                self._waiters.remove(turn)
            except ValueError:
                return True   # handed over in the instant the wait timed out: it is ours now
            return False

    def release(self) -> None:
        with self._mutex:
            if self._waiters:
                self._waiters.popleft().release()   # ownership passes on; `_held` stays True
            else:
                self._held = False

    def waiting(self) -> int:
        """How many writers wait in line (for background work that wants to give way)."""
        with self._mutex:
            return len(self._waiters)


_LINES: dict[str, WriterLine] = {}
_LINES_LOCK = threading.Lock()


def writer_line(database_path: str) -> WriterLine:
    """The one line of writers for a database file in this process (all engines on it share it)."""
    key = os.path.realpath(database_path)
    with _LINES_LOCK:
        line = _LINES.get(key)
        if line is None:
            line = _LINES[key] = WriterLine()
        return line


_HOLDS = "quancheng_sqlite_writer_line"


class _AutobeginMarking(Connection):
    """Marks the transactions SQLAlchemy begins by itself (see the module docstring)."""

    _quancheng_autobegin = False

    def _autobegin(self) -> None:
        self._quancheng_autobegin = True
        try:
            super()._autobegin()
        finally:
            self._quancheng_autobegin = False


def configure_sqlite(engine: Engine, *, synchronous: Literal["FULL", "NORMAL"] = "FULL", busy_timeout_ms: int = 15_000,
                     foreign_keys: bool = False, read_only: bool = False) -> Engine:
    """`read_only`: an engine that only reads (e.g. `/metrics`): every transaction deferred, writes
    refused outright."""
    url = engine.url
    database = url.database or ""
    in_memory = database in ("", ":memory:") or "mode=memory" in str(url)
    line = None if in_memory or read_only else writer_line(database)
    # The in-process line is waited on first, then SQLite's busy timeout; together they stay
    # within the one timeout the caller chose.
    line_timeout_s = busy_timeout_ms / 1000
    engine._connection_cls = _AutobeginMarking  # marks reads; see module docstring

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
        if read_only or getattr(conn, "_quancheng_autobegin", False):
            conn.exec_driver_sql("BEGIN")
            return
        if line is not None:
            if not line.acquire(line_timeout_s):
                raise OperationalError("BEGIN IMMEDIATE", None, Exception("database is locked (writers in line)"))
            conn.info[_HOLDS] = line
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            _leave_line(conn.info)
            raise

    def on_end(conn: Connection) -> None:
        # Fired just before COMMIT/ROLLBACK: the next writer in line may find the file still
        # locked for that moment, which SQLite's busy handler covers with its first short sleeps.
        _leave_line(conn.info)

    def on_reset(_dbapi_connection: Any, record: Any, _reset_state: Any) -> None:
        _leave_line(record.info)   # a connection returned to the pool mid-transaction

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "begin", on_begin)
    event.listen(engine, "commit", on_end)
    event.listen(engine, "rollback", on_end)
    event.listen(engine.pool, "reset", on_reset)
    event.listen(engine.pool, "invalidate", lambda _c, record, _e: _leave_line(record.info))
    return engine


def _leave_line(info: dict[Any, Any]) -> None:
    line = info.pop(_HOLDS, None)
    if line is not None:
        line.release()
