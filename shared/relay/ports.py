"""The small store ports the relay needs, on both sides of a hop.

Receiving side (township for villages, county for townships):
* `IngestStore` — the append-only ingest log, idempotent by (author, seq); `store_batch` classifies
  every row as stored, duplicate or fork inside one transaction and never overwrites.
* `KeyRegistry` — device keys and their status (pending, approved, revoked, quarantined).
* `DownLog` — signed records waiting for a device, read by cursor.
* `NonceLog` — nonces of signed Pull/Recover requests, remembered while they could be replayed.

Sending side (village, later township): `Outbox` — the outbox table is the queue; `RecoveryLog` —
a sender restored from a backup that must fetch its own later records back before it signs again.

Instants are Unix milliseconds of the *receiving* tier's clock unless a name says "claimed".
"""
from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from shared.envelope import GENESIS, ChainTip
from shared.keys import KnownKey
from shared.wire.v1 import envelope_pb2, relay_pb2

__all__ = [
    "KeyState", "AgentKey", "EnrollmentInfo", "EnrollmentBounds", "IngestRow", "Outcome", "StoreResult", "HeldRecord",
    "IngestStore", "KeyRegistry", "DownLog", "NonceLog", "Outbox", "RecoveryLog",
]


class KeyState(str, enum.Enum):
    PENDING = "pending"
    APPROVED = "approved"
    REVOKED = "revoked"
    QUARANTINED = "quarantined"

    def to_wire(self) -> relay_pb2.KeyStatus:
        return _WIRE[self]

    @property
    def label_zh(self) -> str:
        return _LABELS_ZH[self]


_WIRE = {
    KeyState.PENDING: relay_pb2.KEY_STATUS_PENDING,
    KeyState.APPROVED: relay_pb2.KEY_STATUS_APPROVED,
    KeyState.REVOKED: relay_pb2.KEY_STATUS_REVOKED,
    KeyState.QUARANTINED: relay_pb2.KEY_STATUS_QUARANTINED,
}
_LABELS_ZH = {
    KeyState.PENDING: "待审批",
    KeyState.APPROVED: "已批准",
    KeyState.REVOKED: "已吊销",
    KeyState.QUARANTINED: "已隔离（发现分叉）",
}


@dataclass(frozen=True)
class EnrollmentInfo:
    """What the enrollment record says about the device; shown to the approving operator."""

    role: int = 0
    holder_name: str = ""
    village_code: str = ""
    township_code: str = ""
    fingerprint: str = ""


@dataclass(frozen=True)
class EnrollmentBounds:
    """How many enrollments may wait for approval (issue 15: an unauthenticated door must be bounded)."""

    per_address: int = 5
    total: int = 200
    # A pending enrollment older than this is forgotten; a device still waiting enrols again.
    expire_after_ms: int = 14 * 24 * 60 * 60 * 1000


@dataclass(frozen=True)
class AgentKey:
    """A device key as the receiver holds it, with the tip of its ingest chain."""

    key_id: str
    public_key: bytes
    state: KeyState
    info: EnrollmentInfo = field(default_factory=EnrollmentInfo)
    tip: ChainTip = GENESIS
    # Records up to this seq stay valid after revocation (meaningful only when revoked).
    last_valid_seq: int = 0
    # Receipt time of the author's most recent stored record; 0 before the first.
    last_receipt_ms: int = 0
    enrolled_at_ms: int = 0
    status_changed_at_ms: int = 0
    status_changed_by: str = ""
    status_reason: str = ""
    # The peer address the enrollment came from ("" for keys registered out of band).
    enrolled_from: str = ""
    # The tip's claimed time, and the receipt time later claims are judged against (docs/wire-v1.md).
    last_claimed_ms: int = 0
    claim_floor_ms: int = 0

    def known(self) -> KnownKey:
        return KnownKey(self.key_id, self.public_key, approved=self.state is KeyState.APPROVED,
                        revoked=self.state is KeyState.REVOKED, last_valid_seq=self.last_valid_seq)


@dataclass(frozen=True)
class IngestRow:
    """One verified envelope, ready to be stored exactly as received."""

    author_key_id: str
    seq: int
    record_id: str
    hash: bytes
    payload: bytes
    signature: bytes
    claimed_time_ms: int
    body_kind: str
    # Chinese reason when the claimed time is implausible; stored as a flag for operators.
    claimed_time_flag: str | None = None
    # A KeyRotated record: (new key id, new public key); the store approves the successor and
    # closes the old key at this seq, in the same transaction as the row.
    rotation: tuple[str, bytes] | None = None


class Outcome(str, enum.Enum):
    STORED = "stored"          # new, committed now
    DUPLICATE = "duplicate"    # same bytes already held: answer with the original receipt time
    FORK = "fork"              # different bytes for a held (author, seq): kept as evidence, author quarantined
    CONFLICT = "conflict"      # the chain tip or key status moved concurrently; nothing written for this row
    QUARANTINED = "quarantined"  # a new seq after a fork earlier in the same batch: not written, author quarantined


@dataclass(frozen=True)
class StoreResult:
    seq: int
    outcome: Outcome
    hash: bytes
    receipt_time_ms: int = 0


@dataclass(frozen=True)
class HeldRecord:
    """One stored record of an author, as received, with the receipt time its receipt names."""

    seq: int
    hash: bytes
    payload: bytes
    signature: bytes
    receipt_time_ms: int


class IngestStore(Protocol):
    def author(self, key_id: str) -> AgentKey | None:
        """The key with its status and chain tip, or None when never enrolled."""
        ...

    def store_batch(self, author_key_id: str, expected_tip: ChainTip, rows: Sequence[IngestRow], *,
                    receipt_time_ms: int, claim_floor_ms: int | None = None) -> list[StoreResult]:
        """In one transaction, rows classified in order exactly as if each came alone: a seq held
        before, or earlier in `rows`, is DUPLICATE (same hash) or FORK (kept as evidence, author
        quarantined); new seqs must continue the chain from `expected_tip` and are inserted with
        `receipt_time_ms` (the tip's claimed time and `claim_floor_ms` move with them); after a FORK,
        new seqs are QUARANTINED and not written. If the author is no longer approved at
        `expected_tip`, every row comes back CONFLICT and nothing is written. Results are in the
        order of `rows`."""
        ...

    def record_ids_taken(self, author_key_id: str, record_ids: Sequence[str]) -> set[str]:
        """Which of `record_ids` the author has already used in a stored record."""
        ...

    def authored(self, author_key_id: str, after_seq: int, limit: int) -> list[HeldRecord]:
        """Up to `limit` stored records of the author with seq above `after_seq`, ascending (for a
        device restored from a backup fetching back what it signed after the backup)."""
        ...


class KeyRegistry(Protocol):
    def lookup(self, key_id: str) -> KnownKey | None: ...

    def enroll(self, public_key: bytes, enrollment: envelope_pb2.Envelope, info: EnrollmentInfo, *,
               now_ms: int, from_address: str = "", bounds: EnrollmentBounds | None = None) -> AgentKey:
        """Register a self-signed enrollment as pending; a known key is returned unchanged. With
        `bounds`, stale pending enrollments are forgotten first and `EnrollmentLimit` is raised when
        too many wait (in total or from `from_address`)."""
        ...

    def register_approved(self, public_key: bytes, info: EnrollmentInfo, *, by: str, now_ms: int) -> AgentKey:
        """Register a key approved out of band (e.g. a township key set up at the county)."""
        ...

    def approve(self, key_id: str, *, by: str, now_ms: int) -> AgentKey: ...

    def revoke(self, key_id: str, *, by: str, reason: str, now_ms: int) -> AgentKey:
        """Revoke at the receiver's time: `last_valid_seq` becomes the tip stored at this moment."""
        ...

    def keys(self, state: KeyState | None = None) -> list[AgentKey]: ...


class DownLog(Protocol):
    def append(self, envelope: envelope_pb2.Envelope, audience_key_ids: Sequence[str], *, now_ms: int) -> int:
        """Queue one signed record for each audience key ("*" for every device); returns its cursor."""
        ...

    def read(self, key_id: str, after_cursor: int, limit: int) -> tuple[list[envelope_pb2.Envelope], int]:
        """Up to `limit` records for `key_id` after `after_cursor`, and the cursor of the last one
        (`after_cursor` when there are none)."""
        ...


class NonceLog(Protocol):
    def remember_nonce(self, key_id: str, nonce: bytes, *, now_ms: int, expires_at_ms: int) -> bool:
        """Keep (key, nonce) until `expires_at_ms`; False when it is already held (a replay)."""
        ...


class Outbox(Protocol):
    """The sender's queue: its outbox table. Implemented once, by `shared.relay.sql_outbox.SqlOutbox`, for
    the village laptop and for the township's link to the county; `tests/relay_fakes.py` has a raw
    SQLite-file implementation for tests and benches."""

    def pending(self, limit: int) -> list[envelope_pb2.Envelope]:
        """Queued envelopes of this device, lowest seq first."""
        ...

    def confirm(self, receipts: Sequence[envelope_pb2.Envelope], *, now_ms: int) -> int:
        """Verify each receipt (receiver's key, this device, the stored record's hash) and only for
        those that verify delete the outbox row and keep the receipt; returns how many rows went."""
        ...

    def resend_from(self, from_seq: int, *, now_ms: int) -> int:
        """The receiver lacks records from `from_seq` on: queue them again; returns how many."""
        ...

    def pull_cursor(self) -> int: ...

    def apply_down(self, envelopes: Sequence[envelope_pb2.Envelope], next_cursor: int) -> int:
        """Verify the receiver's signature on every envelope, then apply them and move the cursor
        in one transaction; raise without applying anything if one does not verify."""
        ...


@runtime_checkable
class RecoveryLog(Protocol):
    """A sender's ledger after a restore from a backup (docs/ARCHITECTURE.md, invariant 7: reusing a seq is a fork).

    While `recovering()`, the sender signs nothing; the sync loop fetches the receiver's copies of
    its own records after `own_tip()`, appends them (`append_recovered` verifies each signature and
    the hash chain, and each receipt, before writing any), and once the receiver's signed tip is
    reached and matches the ledger, `finish_recovery` lifts the block."""

    def recovering(self) -> bool: ...

    def own_tip(self) -> ChainTip: ...

    def append_recovered(self, envelopes: Sequence[envelope_pb2.Envelope],
                         receipts: Sequence[envelope_pb2.Envelope]) -> ChainTip:
        """Verify and append the sender's own records (and keep their receipts) in one transaction;
        returns the new ledger tip. Raises without writing anything if one does not verify."""
        ...

    def finish_recovery(self, receiver_tip: ChainTip, *, receiver_key_id: str, signature: bytes, nonce: bytes) -> None:
        """The receiver holds nothing after `receiver_tip`: verify its signature over the tip
        (`shared.relay.server.recover_tip_signing_bytes`, bound to the last request's `nonce`),
        check the ledger agrees with it at that seq, rebuild the derived state, and allow signing
        again. Raises, and stays recovering, if the signature or the ledger disagrees."""
        ...
