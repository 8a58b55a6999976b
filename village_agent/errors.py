"""Errors raised by `village_agent`. Every message is Chinese: the agent reads it.

Hierarchy::

    AgentError
    ├── NotInitializedError     the data folder has no device yet (`village-agent init` not run)
    ├── AlreadyInitializedError `init` on a folder that already has a device
    ├── VaultError              the personal-data vault cannot be opened or a blob cannot be decrypted
    ├── FormError               submitted input is invalid; carries one `FieldProblem` per bad field
    ├── UnknownMatterError      an action names a matter this laptop does not hold
    ├── TransitionError         an action is not allowed in the matter's current status
    ├── StoreError              the local database cannot take the write (e.g. disk full); nothing was saved
    │   └── RecoveringError     restored from a backup and not yet caught up with the township: nothing is signed
    └── RecoveryError           what the township sent back after a restore does not verify or does not fit
                                this laptop's ledger; nothing was written and the laptop stays recovering
"""
from __future__ import annotations

from dataclasses import dataclass


class AgentError(Exception):
    """Base of every error raised by `village_agent`."""


class NotInitializedError(AgentError):
    """Raised when the data folder holds no device key or config yet."""


class AlreadyInitializedError(AgentError):
    """Raised by `init` when the data folder already holds a device."""


class VaultError(AgentError):
    """Raised when the vault key cannot be unwrapped or an encrypted blob does not decrypt."""


@dataclass(frozen=True)
class FieldProblem:
    field: str          # form field name, e.g. "id_number"
    label: str          # Chinese field label, e.g. "身份证号码"
    message: str        # Chinese, e.g. "身份证号码校验位不正确，请核对"

    def __str__(self) -> str:
        return f"{self.label}：{self.message}"


class FormError(AgentError):
    """Raised when input is invalid; nothing is written. `problems` names each bad field."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        super().__init__("；".join(str(p) for p in problems))
        self.problems = problems


class UnknownMatterError(AgentError):
    """Raised when an action names a matter id or lookup code this laptop does not hold."""


class TransitionError(AgentError):
    """Raised when an action does not fit the matter's status (e.g. sign-off before hand-over)."""


class StoreError(AgentError):
    """Raised when the local database refuses a write (disk full, read-only); the transaction is rolled back."""


class RecoveringError(StoreError):
    """Raised by every write while the laptop, restored from a backup, has not yet fetched back from the
    township the records it signed after the backup: signing now would reuse their seqs (a fork)."""


class RecoveryError(AgentError):
    """Raised when the township's copies of this laptop's records, their receipts or the township's
    signed tip do not verify or disagree with the ledger; nothing is written, the laptop stays recovering."""
