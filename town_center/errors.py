"""Errors raised by `town_center`.

Hierarchy::

    TownCenterError             base (a `shared.errors.SharedError`, so the CLI prints it in Chinese)
    ├── StoreError              the township database refused an operation or holds an impossible state
    │   └── UnknownAgent        no device key (or no unique one) matches what the operator typed
    └── SetupError              the township is not initialised (no key file, no database) or misconfigured
"""
from __future__ import annotations

from shared.errors import SharedError

__all__ = ["TownCenterError", "StoreError", "UnknownAgent", "SetupError"]


class TownCenterError(SharedError):
    """Base of every error raised by `town_center`."""


class StoreError(TownCenterError):
    """The township database refused an operation, or an operation does not fit a key's state."""


class UnknownAgent(StoreError):
    """No device key, or more than one, matches the id (prefix) given."""


class SetupError(TownCenterError):
    """The township is not initialised or is misconfigured."""
