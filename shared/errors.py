"""Errors raised by `shared`.

Hierarchy::

    SharedError
    ├── KeyFileError            a device key file is missing, corrupt, or the passphrase is wrong
    ├── SignatureError          an Ed25519 signature does not verify over the payload bytes
    ├── EnvelopeError           an envelope or its payload cannot be decoded, or its header is malformed
    ├── ChainError              a record breaks its author's hash chain (carries the record and the reason)
    ├── CatalogError            the service catalogue file is invalid (names the item and the field)
    ├── CalendarError           a date or instant cannot be placed on the working-day calendar
    │   └── CalendarOverrideError   a county's calendar override file is invalid
    ├── DeadlineError           a hop clock is asked for an impossible transition or limit
    ├── HandlingError           a matter is asked for an action its stage, kind or the actor's role does not allow
    ├── BackupError             a backup cannot be written, or a backup file cannot be read or restored
    │                           (wrong passphrase, tampered or truncated file, target not empty)
    ├── MigrationError          a store's schema cannot be brought to this program's version
    │                           (a newer or unknown schema version, foreign tables, a failed migration)
    └── SettingError            a command-line option or setting is malformed (e.g. a listen address)

Messages are in Chinese where an operator or agent may read them.
"""
from __future__ import annotations

from typing import Any


class SharedError(Exception):
    """Base of every error raised by `shared`."""


class KeyFileError(SharedError):
    """Raised when a device key file cannot be read, is corrupt, or the passphrase does not unlock it."""


class SignatureError(SharedError):
    """Raised when a signature does not verify over the exact payload bytes."""


class EnvelopeError(SharedError):
    """Raised when an envelope's payload is not a decodable record or its header is malformed."""


class ChainError(SharedError):
    """Raised by `Chain.append` / strict verification when a record breaks its author's chain.

    `reason` is a `shared.chain.BreakReason`; `seq` the sequence number of the first bad record.
    """

    def __init__(self, reason: Any, seq: int, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.seq = seq


class CatalogError(SharedError):
    """Raised when the service catalogue fails validation; `item` and `field` say where."""

    def __init__(self, item: str, field: str, message: str) -> None:
        super().__init__(f"服务事项目录错误：事项 {item} 的字段 {field}：{message}")
        self.item = item
        self.field = field


class CalendarError(SharedError):
    """Raised when a date cannot be placed on the working-day calendar (e.g. a naive datetime)."""


class CalendarOverrideError(CalendarError):
    """Raised when a county's calendar override file is invalid; names the line or entry."""


class DeadlineError(SharedError):
    """Raised when a hop clock is asked for an impossible transition (e.g. resuming a running clock)
    or an extension beyond the statutory limit."""


class HandlingError(SharedError):
    """Raised by `shared.domain.handling` when an action does not fit the matter's stage or kind
    (e.g. recording a result while still waiting for materials) or the actor's role; Chinese message."""


class BackupError(SharedError):
    """Raised by `shared.backup` when a backup cannot be taken or restored; nothing was written.
    The Chinese message says why (wrong passphrase, a tampered or truncated file, a non-empty target)."""


class MigrationError(SharedError):
    """Raised by `shared.migrations` when a store's schema cannot be brought to this program's head
    revision: stamped by a newer version, holding another tier's tables, or a migration failed (rolled back)."""


class SettingError(SharedError):
    """Raised when a command-line option or configuration value is malformed, before anything starts."""
