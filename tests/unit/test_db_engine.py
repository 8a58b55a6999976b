"""`shared.db.make_engine`: every store's engine comes from one factory and keeps its own settings."""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from shared.db import make_engine, reader_engine
from shared.deadline_watch.errors import DeadlineStoreError
from shared.deadline_watch.tables import make_engine as deadline_engine
from shared.errors import SettingError
from shared.relay.sql_store import relay_engine
from village_agent.store import AgentStore


def _pragmas(engine: Engine) -> dict[str, object]:
    with engine.connect() as conn:
        return {name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys", "query_only")}


def test_a_sqlite_file_opens_in_wal_with_the_callers_durability_timeout_and_foreign_keys(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}", synchronous="NORMAL", busy_timeout_ms=7_000, foreign_keys=True)
    try:
        # synchronous: 1 is NORMAL, 2 is FULL
        assert _pragmas(engine) == {"journal_mode": "wal", "synchronous": 1, "busy_timeout": 7000, "foreign_keys": 1,
                                    "query_only": 0}
    finally:
        engine.dispose()


def test_a_bare_path_is_taken_as_a_sqlite_file(tmp_path: Path) -> None:
    engine = make_engine(str(tmp_path / "bare.db"))
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
        assert (tmp_path / "bare.db").exists()
        assert _pragmas(engine)["synchronous"] == 2
    finally:
        engine.dispose()


def test_the_pool_takes_the_callers_size_overflow_and_wait(tmp_path: Path) -> None:
    engine = make_engine(str(tmp_path / "p.db"), pool_size=3, max_overflow=7, pool_timeout_s=12)
    try:
        pool = engine.pool
        assert (pool.size(), pool._max_overflow, pool._timeout) == (3, 7, 12)
    finally:
        engine.dispose()


def test_postgresql_engines_pre_ping_and_keep_their_pool_settings() -> None:
    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none", pool_size=16, max_overflow=32,
                         hide_parameters=True)
    try:
        assert engine.pool._pre_ping
        assert (engine.pool.size(), engine.pool._max_overflow) == (16, 32)
        assert engine.hide_parameters
        assert reader_engine(engine) is engine   # PostgreSQL reads never block writers
    finally:
        engine.dispose()


def test_other_databases_are_refused_with_a_chinese_reason() -> None:
    with pytest.raises(SettingError, match="只支持 SQLite 和 PostgreSQL"):
        make_engine("mysql://user@127.0.0.1/db")
    with pytest.raises(DeadlineStoreError):
        deadline_engine("mysql://user@127.0.0.1/db")


def test_the_reader_beside_a_sqlite_store_refuses_writes_and_reads_what_was_committed(tmp_path: Path) -> None:
    writer = relay_engine(str(tmp_path / "town.db"))
    reader = reader_engine(writer)
    try:
        with writer.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
        assert _pragmas(reader)["query_only"] == 1
        with reader.connect() as conn:
            assert conn.execute(text("SELECT x FROM t")).scalar() == 1
        with pytest.raises(OperationalError):
            with reader.begin() as conn:
                conn.execute(text("INSERT INTO t VALUES (2)"))
    finally:
        reader.dispose()
        writer.dispose()


def test_each_store_keeps_the_settings_it_had_before_the_factory(tmp_path: Path) -> None:
    relay = relay_engine(str(tmp_path / "relay.db"))
    deadlines = deadline_engine(f"sqlite:///{tmp_path / 'deadlines.db'}")
    village = AgentStore(tmp_path / "village.db")
    try:
        assert _pragmas(relay) == {"journal_mode": "wal", "synchronous": 2, "busy_timeout": 15000, "foreign_keys": 0,
                                   "query_only": 0}
        assert (relay.pool.size(), relay.pool._max_overflow) == (16, 64)
        assert _pragmas(deadlines) == {"journal_mode": "wal", "synchronous": 1, "busy_timeout": 30000,
                                       "foreign_keys": 0, "query_only": 0}
        assert deadlines.hide_parameters
        assert _pragmas(village.engine) == {"journal_mode": "wal", "synchronous": 2, "busy_timeout": 10000,
                                            "foreign_keys": 1, "query_only": 0}
    finally:
        relay.dispose()
        deadlines.dispose()
        village.close()
