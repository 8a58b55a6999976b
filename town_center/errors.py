"""Errors raised by `town_center`.

Hierarchy::

    TownCenterError             base (a `shared.errors.SharedError`, so the CLI prints it in Chinese)
    ├── StoreError              the township database refused an operation or holds an impossible state
    │   └── UnknownAgent        no device key (or no unique one) matches what the operator typed
    ├── SetupError              the township is not initialised (no key file, no database) or misconfigured
    ├── UnknownMatter           no matter has the id an operator or a record names
    └── ConcurrentEditError     a matter changed since the operator loaded it (another operator acted first)
"""
from __future__ import annotations

from shared.errors import SharedError
from shared.relay.errors import KeyStoreError, UnknownKey

__all__ = ["TownCenterError", "StoreError", "UnknownAgent", "SetupError", "UnknownMatter", "ConcurrentEditError"]


class TownCenterError(SharedError):
    """Base of every error raised by `town_center`."""


class StoreError(TownCenterError, KeyStoreError):
    """The township database refused an operation, or an operation does not fit a key's state."""


class UnknownAgent(StoreError, UnknownKey):
    """No device key, or more than one, matches the id (prefix) given."""


class SetupError(TownCenterError):
    """The township is not initialised or is misconfigured."""


class UnknownMatter(TownCenterError):
    """Raised when no matter at this township has the given id."""


class ConcurrentEditError(TownCenterError):
    """Raised when a matter's version moved since the operator's page was loaded: nothing was changed,
    so the other operator's edit is kept and this one must be redone on the fresh page."""
