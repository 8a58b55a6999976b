"""Errors raised by `hub` (the county).

Hierarchy::

    HubError                    base (a `shared.errors.SharedError`, so the CLI prints it in Chinese)
    ├── StoreError              the county database refused an operation on a township key
    │   └── UnknownTownship     no township key (or no unique one) matches what the operator typed
    ├── SetupError              the county is not initialised (no key file, no database) or misconfigured
    ├── UnknownMatter           no escalated or tracked matter has the id a page, a command or a record names
    ├── ConcurrentEditError     a matter changed since the staff member loaded it (another one acted first)
    ├── NotPermitted            the staff member's role, or the county's authority, does not allow the act
    │                           (also a `shared.errors.HandlingError`, so every handler of refusals catches it)
    └── DelegationError         a delegation of county decisions names an unknown, disabled or wrong account
"""
from __future__ import annotations

from shared.errors import HandlingError, SharedError
from shared.relay.errors import KeyStoreError, UnknownKey

__all__ = ["HubError", "StoreError", "UnknownTownship", "SetupError", "UnknownMatter", "ConcurrentEditError",
           "NotPermitted", "DelegationError"]


class HubError(SharedError):
    """Base of every error raised by `hub`."""


class StoreError(HubError, KeyStoreError):
    """Raised when the county database refuses an operation, or it does not fit a township key's state."""


class UnknownTownship(StoreError, UnknownKey):
    """Raised when no township key, or more than one, matches the id (prefix) given."""


class SetupError(HubError):
    """Raised when the county is not initialised or is misconfigured."""


class UnknownMatter(HubError):
    """Raised when the county holds no matter with the given id."""


class ConcurrentEditError(HubError):
    """Raised when a matter's version moved since the page was loaded: nothing was changed."""


class NotPermitted(HubError, HandlingError):
    """Raised when a county act is not the signed-in staff member's to take: a county decision is a
    director's or a delegated approver's act, and only for matters the county decides."""


class DelegationError(HubError):
    """Raised when a delegation (or its withdrawal) names an account that cannot give or take it."""
