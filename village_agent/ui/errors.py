"""Errors raised by `village_agent.ui` (the local web UI). Every message is Chinese: the agent reads it.

Hierarchy::

    AgentError (village_agent.errors)
    ├── UnlockRefused   the passphrase or PIN typed on the unlock page is wrong, or this address is
    │                   locked after repeated failures; carries `locked_until` then
    └── PinError        a new unlock PIN is not 6–12 digits or too simple (`village-agent serve --set-pin`)
"""
from __future__ import annotations

import datetime as dt

from village_agent.errors import AgentError

__all__ = ["UnlockRefused", "PinError"]


class UnlockRefused(AgentError):
    """Raised by `UnlockGate.unlock` when the passphrase or PIN is wrong, or while this address is locked."""

    def __init__(self, message: str, *, locked_until: dt.datetime | None = None) -> None:
        super().__init__(message)
        self.locked_until = locked_until


class PinError(AgentError):
    """Raised when a new unlock PIN is not 6–12 digits or is too simple (repeated or consecutive digits)."""
