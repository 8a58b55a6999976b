"""The console's tables, on their own `MetaData` so they can share a database (and a test
process) with other stores without clashing.

Instants are stored as Unix milliseconds (`BigInteger`): identical on SQLite and PostgreSQL and
free of time-zone conversions in the driver.
"""
from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Engine,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
)

__all__ = ["metadata", "staff", "staff_session", "login_failure", "login_success", "create_console_tables"]

metadata = MetaData()

staff = Table(
    "staff", metadata,
    Column("staff_id", String(64), primary_key=True),   # the login name, lower case
    Column("display_name", String(100), nullable=False),
    Column("role", String(20), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("password_changed_at_ms", BigInteger, nullable=False),
)

staff_session = Table(
    "staff_session", metadata,
    # SHA-256 of the cookie value: a leaked database (or backup) does not hand out live sessions.
    Column("session_hash", LargeBinary(32), primary_key=True),
    Column("staff_id", String(64), ForeignKey("staff.staff_id", ondelete="CASCADE"), nullable=False, index=True),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("last_seen_ms", BigInteger, nullable=False),
    Column("expires_at_ms", BigInteger, nullable=False, index=True),  # absolute limit
)

login_failure = Table(
    "login_failure", metadata,
    Column("failure_id", Integer, primary_key=True, autoincrement=True),
    # Keyed by the name typed, not by staff row: unknown names are counted and locked the same way,
    # so the lock-out reveals nothing about which accounts exist.
    Column("login_name", String(64), nullable=False),
    Column("failed_at_ms", BigInteger, nullable=False, index=True),
    # Set on the failure that triggered a lock: the lock's end, for this login name from this address.
    Column("locked_until_ms", BigInteger, nullable=True),
    # The client's address ("" when unknown, e.g. a command-line check).
    Column("client_address", String(64), nullable=False, server_default=""),
    # Set on the failure that triggered the account-wide lock (every address but the usual ones).
    Column("account_locked_until_ms", BigInteger, nullable=True),
    Index("ix_login_failure_name_time", "login_name", "failed_at_ms"),
)

login_success = Table(
    "login_success", metadata,
    # Where an account signed in lately: the account-wide lock-out passes these addresses by.
    Column("staff_id", String(64), ForeignKey("staff.staff_id", ondelete="CASCADE"), primary_key=True),
    Column("client_address", String(64), primary_key=True),
    Column("last_success_ms", BigInteger, nullable=False, index=True),
)


def create_console_tables(engine: Engine) -> None:
    """Create the console's tables if they are missing (idempotent)."""
    metadata.create_all(engine)
