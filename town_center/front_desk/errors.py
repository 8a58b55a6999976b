"""Errors raised by the township's front desk.

Hierarchy::

    HandlingError (shared.errors)
    └── FrontDeskError      a front-desk action is refused: bad or missing input, a rule of the
        │                   register (appointment, absence, answer) not met; the message is Chinese
        ├── UnknownEntry    the case, appointment, absence or ticket named does not exist here
        └── StaleEntry      someone else changed the entry since the page was loaded (reload and redo)
"""
from __future__ import annotations

from shared.errors import HandlingError

__all__ = ["FrontDeskError", "UnknownEntry", "StaleEntry"]


class FrontDeskError(HandlingError):
    """Raised when a front-desk action is refused; the message says why, in Chinese."""


class UnknownEntry(FrontDeskError):
    """Raised when the case, appointment, absence or ticket named does not exist at this township."""


class StaleEntry(FrontDeskError):
    """Raised when another colleague changed the entry since the page was loaded; nothing was saved."""
