"""Schema migrations for every store (township, county, the village laptop), run with Alembic from code.

Each store ships its own Alembic environment inside its package (`env.py` plus `versions/`, written as
explicit `op.create_table` code) and describes it with a `StoreMigrations`. Opening a store calls
`upgrade_to_head(engine, store)`; no `alembic.ini` is read at run time.

What `upgrade_to_head` does, on one connection:

1. Fast path: `alembic_version` already says head → nothing else (no lock, no Alembic environment),
   so opening an up-to-date store costs a query or two. Otherwise, in one transaction:
2. PostgreSQL: `pg_advisory_xact_lock` on a key derived from the store's name, so two processes starting
   at once against one database migrate one after the other; the second re-reads the version under the
   lock and finds head. SQLite: the transaction starts with `BEGIN IMMEDIATE` (`shared.sqlite`), which
   serializes the same way.
3. A database made before Alembic was used here (the tier's tables exist, `alembic_version` does not) is
   stamped with the revision its tables match (`StoreMigrations.detect`), then upgraded.
4. `alembic upgrade head`; the whole run commits or rolls back as one (PostgreSQL has transactional DDL;
   on SQLite the DDL runs inside the same `BEGIN IMMEDIATE` transaction).

A database stamped with a revision this program does not know (written by a newer version) is refused
with `MigrationError` rather than guessed at.

Adding a table or column: change the model, add a revision under the store's `versions/` with the
matching `op.*` calls, and run `tests/contract/test_migrations.py`, which fails while models and head differ.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, MetaData, inspect, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from shared.errors import MigrationError

__all__ = ["StoreMigrations", "MigrationResult", "upgrade_to_head", "alembic_config", "head_revision", "run_env"]

log = logging.getLogger(__name__)

VERSION_TABLE = "alembic_version"
_PROCESS_LOCK = threading.Lock()


@dataclass(frozen=True)
class StoreMigrations:
    """One store's migration environment."""

    # "town", "hub", "village": the advisory-lock key derives from it, and every revision id starts with
    # "<name>_" (town_0001, …), so one tier's database stamped by another tier's migrations is recognized.
    name: str
    label_zh: str             # how messages name the database, e.g. "乡镇数据库"
    script_location: Path     # the directory holding env.py and versions/
    # The revision a pre-Alembic database's table names match; None when it has none of the store's
    # tables (a fresh database). Raises `MigrationError` for tables that belong to something else.
    detect: Callable[[set[str]], str | None]
    # The models the head revision must equal (tests compare them); a callable so that importing the
    # migration package does not import every table module.
    models: Callable[[], Sequence[MetaData]]

    @property
    def lock_key(self) -> int:
        # A fixed signed 64-bit key per store: PostgreSQL advisory locks take a bigint.
        digest = hashlib.sha256(f"quancheng-daiban:migrate:{self.name}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)


@dataclass(frozen=True)
class MigrationResult:
    before: str | None        # the revision found (after stamping a pre-Alembic database), None when fresh
    after: str                # always the head
    stamped: str | None       # the revision a pre-Alembic database was stamped with, if it was one


def alembic_config(store: StoreMigrations, connection: Connection | None = None) -> Config:
    """An in-memory Alembic config for `store`; `connection` is what its env.py migrates."""
    config = Config()
    # ConfigParser interpolation: a literal % in a path must be doubled.
    config.set_main_option("script_location", str(store.script_location).replace("%", "%%"))
    config.attributes["store"] = store
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache
def _script(store: StoreMigrations) -> ScriptDirectory:
    # Parsing the revision files once per process keeps opening a store cheap.
    return ScriptDirectory.from_config(alembic_config(store))


def head_revision(store: StoreMigrations) -> str:
    heads = _script(store).get_heads()
    if len(heads) != 1:
        raise MigrationError(f"{store.label_zh}的迁移脚本有 {len(heads)} 个末端版本（应为 1 个）：{', '.join(heads)}")
    return heads[0]


def _current(conn: Connection, store: StoreMigrations) -> str | None:
    # Read directly rather than through a MigrationContext, which logs two lines at every store opening.
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    found = [str(v) for v in conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars()]
    if len(found) > 1:
        raise MigrationError(f"{store.label_zh}记录了多个结构版本（{', '.join(found)}），无法判断应如何升级")
    return found[0] if found else None


def upgrade_to_head(engine: Engine, store: StoreMigrations) -> MigrationResult:
    """Bring the database behind `engine` to the head revision of `store` (see the module docstring)."""
    # Another process (or thread) migrating a SQLite file holds its write lock for as long as the whole
    # upgrade takes, which on a loaded laptop can outlast the busy timeout: wait for it, within reason.
    for attempt in range(8):
        try:
            return _upgrade_once(engine, store)
        except MigrationError as exc:
            locked = isinstance(exc.__cause__, OperationalError) and "locked" in str(exc.__cause__)
            if not locked or engine.dialect.name != "sqlite" or attempt == 7:
                raise
            log.info("%s store is locked by another migration; waiting", store.name)
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def _upgrade_once(engine: Engine, store: StoreMigrations) -> MigrationResult:
    head = head_revision(store)
    try:
        with engine.connect() as conn:
            with conn.begin():
                found = _current(conn, store)
            if found == head:
                return MigrationResult(found, head, None)
            # Alembic's `context` and `op` are module-level proxies: two threads of one process must not
            # migrate at once. Taken before any database lock, so the two locks are always taken in one order.
            with _PROCESS_LOCK, conn.begin():
                return _upgrade_locked(conn, store, head)
    except MigrationError:
        raise
    except (SQLAlchemyError, CommandError, RevisionError) as exc:
        raise MigrationError(f"{store.label_zh}升级失败（{exc.__class__.__name__}）：{exc}"[:600]) from exc


def _upgrade_locked(conn: Connection, store: StoreMigrations, head: str) -> MigrationResult:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": store.lock_key})
    config = alembic_config(store, conn)
    found = _current(conn, store)     # again: another process may have migrated while we waited
    stamped = None
    if found is None:
        stamped = store.detect(set(inspect(conn).get_table_names()))
        if stamped is not None:
            log.info("%s store made before schema migrations: stamping %s", store.name, stamped)
            command.stamp(config, stamped)
            found = stamped
    elif not found.startswith(f"{store.name}_"):
        raise MigrationError(f"该数据库的结构版本为 {found}，不是{store.label_zh}；请检查数据库地址")
    elif found != head:
        try:
            _script(store).get_revision(found)
        except (CommandError, RevisionError) as exc:
            raise MigrationError(
                f"{store.label_zh}的结构版本为 {found}，本程序不认识（本程序最新为 {head}）："
                "可能是用更新的版本写过；请安装相应版本的程序，不要用旧程序打开") from exc
    if found != head:
        log.info("%s store: upgrading schema %s -> %s", store.name, found or "(empty)", head)
        command.upgrade(config, "head")
    return MigrationResult(found, head, stamped)


def run_env() -> None:
    """The body of every store's env.py: migrate the connection `upgrade_to_head` handed over."""
    from alembic import context

    config = context.config
    connection = config.attributes.get("connection")
    if context.is_offline_mode() or connection is None:
        raise MigrationError("数据库迁移只能由程序在打开数据库时执行（shared.migrations.upgrade_to_head），不支持离线生成 SQL")
    store: StoreMigrations | None = config.attributes.get("store")
    context.configure(
        connection=connection,
        target_metadata=list(store.models()) if store is not None else None,
        # SQLite cannot ALTER most things in place: future autogenerated revisions use batch mode there.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
