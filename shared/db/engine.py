"""The one place engines are made: SQLite files and PostgreSQL, with every store's settings.

SQLite gets the transaction recipe of `shared.sqlite.configure_sqlite` (WAL, writers' BEGIN
IMMEDIATE in a first-come line, the busy timeout, optionally foreign keys or read-only);
PostgreSQL gets pre-ping, so a connection the server dropped overnight is replaced rather than
failing the first request of the morning. The stores differ only in the keyword arguments they
pass (see `docs/performance.md`, "SQLite transactions", for why writers begin IMMEDIATE).

Raises `shared.errors.SettingError` for any other database.
"""
from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import URL, Engine, create_engine
from sqlalchemy.engine import make_url

from shared.errors import SettingError
from shared.sqlite import configure_sqlite

__all__ = ["database_url", "is_sqlite", "make_engine", "reader_engine"]


def database_url(url: str | URL) -> URL:
    """An SQLAlchemy URL, or a bare file path taken as an SQLite file."""
    if isinstance(url, str) and "://" not in url:
        url = f"sqlite:///{url}"
    return make_url(url)


def is_sqlite(url: str | URL) -> bool:
    return database_url(url).get_backend_name() == "sqlite"


def make_engine(
    url: str | URL,
    *,
    synchronous: Literal["FULL", "NORMAL"] = "FULL",
    busy_timeout_ms: int = 15_000,
    foreign_keys: bool = False,
    read_only: bool = False,
    pool_size: int | None = None,
    max_overflow: int | None = None,
    pool_timeout_s: float | None = None,
    hide_parameters: bool = False,
) -> Engine:
    """An engine for `url` (a bare path is an SQLite file).

    SQLite only: `synchronous` (FULL where a row is a promise that must survive power loss),
    `busy_timeout_ms`, `foreign_keys`, `read_only` (every transaction deferred, writes refused).
    Both: the pool's size, overflow and wait (None keeps SQLAlchemy's default), and
    `hide_parameters` (errors then carry no bound values, i.e. no personal data, into logs)."""
    parsed = database_url(url)
    backend = parsed.get_backend_name()
    options: dict[str, Any] = {"hide_parameters": hide_parameters}
    if pool_size is not None:
        options["pool_size"] = pool_size
    if max_overflow is not None:
        options["max_overflow"] = max_overflow
    if pool_timeout_s is not None:
        options["pool_timeout"] = pool_timeout_s
    if backend == "sqlite":
        # The driver's own timeout matches the PRAGMA set on connect, so a lock met while
        # connecting waits as long as one met later.
        options["connect_args"] = {"timeout": busy_timeout_ms / 1000, "check_same_thread": False}
        engine = create_engine(parsed, **options)
        return configure_sqlite(engine, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms,
                                foreign_keys=foreign_keys, read_only=read_only)
    if backend == "postgresql":
        return create_engine(parsed, pool_pre_ping=True, **options)
    raise SettingError(f"不支持的数据库类型“{backend}”：只支持 SQLite 和 PostgreSQL")


def reader_engine(engine: Engine) -> Engine:
    """An engine for reads beside a store's own (e.g. `/metrics`): on SQLite a small read-only one
    on the same file, so a slow read never holds a writer's place in line; elsewhere (PostgreSQL
    reads never block writers) the same engine."""
    if engine.dialect.name != "sqlite":
        return engine
    return make_engine(engine.url, read_only=True, pool_size=2, max_overflow=2, pool_timeout_s=30)
