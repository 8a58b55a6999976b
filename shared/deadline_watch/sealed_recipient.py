"""An applicant's mobile number in the SMS queue, sealed to the tier's own key.

The number is needed only at the moment the gateway is called. In the `notification_outbox` row it is
a sealed box (`sealed_recipient`, `shared.sealing`, the scheme the applicant details already use) and
the row's JSON carries only the masked number; the relay opens the box when it claims the row, and once
the gateway has taken (or finally refused) the message the box is dropped. So no version of the row,
on any page, WAL segment or backup, ever holds the number in clear: PostgreSQL keeping an updated
row's old version until VACUUM keeps only ciphertext."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from shared.sealing import open_sealed, seal_to
from shared.signing import Signer

__all__ = ["RecipientSeal", "KeySeal"]


class RecipientSeal(Protocol):
    """Seals a recipient for keeping and opens it for sending. `open` raises `SignatureError` for a box
    sealed to another key (one the tier held before a key change)."""

    def seal(self, recipient: str) -> bytes: ...

    def open(self, sealed: bytes) -> str: ...


@dataclass(frozen=True)
class KeySeal:
    """Seals to the tier's signing key (its Ed25519 public key, converted for a sealed box); only the
    process holding the key's seed can open it."""

    public_key: bytes
    seed: Callable[[], bytes]

    @classmethod
    def of(cls, signer: Signer) -> KeySeal:
        return cls(signer.public_key, signer.seed)

    def seal(self, recipient: str) -> bytes:
        return seal_to(self.public_key, recipient.encode("utf-8"))

    def open(self, sealed: bytes) -> str:
        return open_sealed(self.seed(), sealed).decode("utf-8")
