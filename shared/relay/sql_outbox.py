"""The sending side of a hop over SQLAlchemy Core: a tier's own up-chain, its outbox, the receipts it
verified and the records pulled from the tier above (township → county now).

`SqlOutbox` implements `shared.relay.ports.Outbox` for `RelayClient`. It also signs: `append_in`
adds the next link of this sender's chain *and* its outbox row inside the caller's transaction, so a
handled change and the record announcing it upward commit together (DESIGN invariant 5). The chain
tip lives in a row that is locked first (`SELECT … FOR UPDATE` on PostgreSQL), so two processes
sharing one database never sign the same seq.

What came back is kept for the sender's projection to fold: receipts (`receipt.applied`) and pulled
records (`inbox.applied`) are durable before anything acts on them, so a crash between "stored" and
"applied" repeats the fold, never the network exchange.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from shared.envelope import GENESIS, ChainTip, SignedRecord, open_down_records, open_receipt, receipt_problem, sign_next
from shared.errors import EnvelopeError
from shared.signing import Signer
from shared.wire.v1 import envelope_pb2, records_pb2

__all__ = ["SenderTables", "sender_tables", "SqlOutbox", "HeldReceipt", "PulledRecord"]

log = logging.getLogger("shared.relay.sql_outbox")


@dataclass(frozen=True)
class SenderTables:
    ledger: Table
    outbox: Table
    receipt: Table
    inbox: Table
    state: Table


def sender_tables(metadata: MetaData, prefix: str) -> SenderTables:
    """The sender's tables on the caller's `MetaData`, named `<prefix>ledger` and so on."""
    ledger = Table(
        f"{prefix}ledger", metadata,
        Column("seq", BigInteger, primary_key=True),
        Column("record_id", String(64), nullable=False),
        Column("hash", LargeBinary(32), nullable=False),
        Column("payload", LargeBinary, nullable=False),     # exactly as signed
        Column("signature", LargeBinary(64), nullable=False),
        Column("body_kind", String(40), nullable=False),
        Column("matter_id", String(64), nullable=False, default=""),
        Column("created_at_ms", BigInteger, nullable=False),
        Index(f"ix_{prefix}ledger_matter", "matter_id"),
    )
    outbox = Table(
        f"{prefix}outbox", metadata,
        Column("seq", BigInteger, primary_key=True),
        Column("queued_at_ms", BigInteger, nullable=False),
    )
    receipt = Table(
        f"{prefix}receipt", metadata,
        Column("seq", BigInteger, primary_key=True),
        Column("envelope", LargeBinary, nullable=False),
        Column("receipt_time_ms", BigInteger, nullable=False),   # the receiver's clock: starts its hop clock
        Column("applied", Boolean, nullable=False, default=False),
        Index(f"ix_{prefix}receipt_applied", "applied"),
    )
    inbox = Table(
        f"{prefix}inbox", metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("key_id", String(32), nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("signature", LargeBinary(64), nullable=False),
        Column("body_kind", String(40), nullable=False),
        Column("pulled_at_ms", BigInteger, nullable=False),
        Column("applied", Boolean, nullable=False, default=False),
        Index(f"ix_{prefix}inbox_applied", "applied", "id"),
    )
    state = Table(
        f"{prefix}state", metadata,
        Column("key", String(64), primary_key=True),
        Column("value", Text, nullable=False),
    )
    return SenderTables(ledger, outbox, receipt, inbox, state)


@dataclass(frozen=True)
class HeldReceipt:
    seq: int
    receipt_time_ms: int
    body_kind: str
    matter_id: str
    record: records_pb2.Record


@dataclass(frozen=True)
class PulledRecord:
    id: int
    envelope: envelope_pb2.Envelope
    record: records_pb2.Record


_TIP = "tip"
_PULL_CURSOR = "pull_cursor"


def _matter_id_of(record: records_pb2.Record) -> str:
    kind = record.WhichOneof("body")
    if kind is None:
        return ""
    return str(getattr(getattr(record, kind), "matter_id", ""))[:64]


class SqlOutbox:
    """Implements `shared.relay.ports.Outbox` for a sender whose receiver key is known in advance."""

    def __init__(self, engine: Engine, tables: SenderTables, *, own_key_id: str, receiver_key_id: str,
                 receiver_public_key: bytes) -> None:
        self.engine = engine
        self.t = tables
        self.own_key_id = own_key_id
        self.receiver_key_id = receiver_key_id
        self.receiver_public_key = receiver_public_key
        self._ensure_tip_row()

    def _ensure_tip_row(self) -> None:
        # The tip row exists before the first signature, so it is always there to lock.
        with self.engine.connect() as conn:
            if conn.execute(select(self.t.state.c.value).where(self.t.state.c.key == _TIP)).first() is not None:
                return
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(self.t.state).values(key=_TIP, value=f"{GENESIS.seq}:{GENESIS.hash.hex()}"))
        except IntegrityError:
            pass  # another process made it at the same moment

    # ------------------------------------------------------------ signing into the chain

    def tip(self, conn: Connection | None = None) -> ChainTip:
        query = select(self.t.state.c.value).where(self.t.state.c.key == _TIP)
        if conn is None:
            with self.engine.connect() as c:
                value = c.execute(query).scalar()
        else:
            value = conn.execute(query).scalar()
        if not value:
            return GENESIS
        seq, digest = str(value).split(":")
        return ChainTip(int(seq), bytes.fromhex(digest))

    def append_in(self, conn: Connection, signer: Signer, record: records_pb2.Record, *, now_ms: int) -> SignedRecord:
        """Sign `record` as the next link and queue it, inside the caller's transaction."""
        if signer.key_id != self.own_key_id:
            raise EnvelopeError("签名密钥与本链的密钥不符")
        value = conn.execute(select(self.t.state.c.value).where(self.t.state.c.key == _TIP).with_for_update()).scalar()
        tip = GENESIS if not value else ChainTip(int(str(value).split(":")[0]), bytes.fromhex(str(value).split(":")[1]))
        signed = sign_next(signer, record, tip, now_ms)
        conn.execute(insert(self.t.ledger).values(
            seq=signed.seq, record_id=signed.record_id, hash=signed.hash, payload=signed.envelope.payload,
            signature=signed.envelope.signature, body_kind=(record.WhichOneof("body") or "")[:40],
            matter_id=_matter_id_of(record), created_at_ms=now_ms))
        conn.execute(insert(self.t.outbox).values(seq=signed.seq, queued_at_ms=now_ms))
        conn.execute(update(self.t.state).where(self.t.state.c.key == _TIP).values(value=f"{signed.seq}:{signed.hash.hex()}"))
        return signed

    def append(self, signer: Signer, record: records_pb2.Record, *, now_ms: int) -> SignedRecord:
        with self.engine.begin() as conn:
            return self.append_in(conn, signer, record, now_ms=now_ms)

    # ------------------------------------------------------------ Outbox port

    def pending(self, limit: int) -> list[envelope_pb2.Envelope]:
        query = (select(self.t.ledger.c.payload, self.t.ledger.c.signature)
                 .join(self.t.outbox, self.t.outbox.c.seq == self.t.ledger.c.seq)
                 .order_by(self.t.ledger.c.seq).limit(limit))
        with self.engine.connect() as conn:
            return [envelope_pb2.Envelope(payload=bytes(r.payload), signature=bytes(r.signature), key_id=self.own_key_id)
                    for r in conn.execute(query)]

    def pending_count(self, conn: Connection | None = None) -> int:
        return self._count(select(func.count()).select_from(self.t.outbox), conn)

    def oldest_pending_ms(self, conn: Connection | None = None) -> int:
        return self._count(select(func.min(self.t.outbox.c.queued_at_ms)), conn)

    def _count(self, query: Any, conn: Connection | None) -> int:
        """One number, read on the caller's connection (e.g. `/metrics`' reader) or a fresh one."""
        if conn is None:
            with self.engine.connect() as own:
                return self._count(query, own)
        return int(conn.execute(query).scalar() or 0)

    def _receipt_problem(self, env: envelope_pb2.Envelope) -> str | None:
        return receipt_problem(env, receiver_key_id=self.receiver_key_id, receiver_public_key=self.receiver_public_key,
                               own_key_id=self.own_key_id)

    def confirm(self, receipts: Sequence[envelope_pb2.Envelope], *, now_ms: int) -> int:
        confirmed = 0
        with self.engine.begin() as conn:
            for env in receipts:
                problem = self._receipt_problem(env)
                if problem is not None:
                    log.warning("receipt refused: %s", problem)
                    continue
                r = open_receipt(env)
                stored = conn.execute(select(self.t.ledger.c.hash).where(self.t.ledger.c.seq == r.seq)).scalar()
                if stored is None or bytes(stored) != r.record_hash:
                    log.warning("receipt refused: seq %d does not match the stored record", r.seq)
                    continue
                if conn.execute(select(self.t.receipt.c.seq).where(self.t.receipt.c.seq == r.seq)).first() is None:
                    conn.execute(insert(self.t.receipt).values(seq=r.seq, envelope=env.SerializeToString(),
                                                               receipt_time_ms=r.receipt_time_ms, applied=False))
                confirmed += conn.execute(delete(self.t.outbox).where(self.t.outbox.c.seq == r.seq)).rowcount
        return confirmed

    def resend_from(self, from_seq: int, *, now_ms: int) -> int:
        with self.engine.begin() as conn:
            queued = {int(s) for s in conn.execute(select(self.t.outbox.c.seq))}
            seqs = [int(s) for s in conn.execute(select(self.t.ledger.c.seq).where(self.t.ledger.c.seq >= from_seq))]
            missing = [s for s in seqs if s not in queued]
            if missing:
                conn.execute(insert(self.t.outbox), [{"seq": s, "queued_at_ms": now_ms} for s in missing])
        return len(missing)

    def pull_cursor(self) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(select(self.t.state.c.value).where(self.t.state.c.key == _PULL_CURSOR)).scalar()
        return int(value or 0)

    def apply_down(self, envelopes: Sequence[envelope_pb2.Envelope], next_cursor: int) -> int:
        """Verify every record from above, then keep them and move the cursor in one transaction.
        One that does not verify refuses the whole page: the cursor stays and the next pull asks again."""
        records = open_down_records(envelopes, receiver_key_id=self.receiver_key_id,
                                    receiver_public_key=self.receiver_public_key, refusal_zh="上级下发的记录签名无效，已拒收")
        with self.engine.begin() as conn:
            current = conn.execute(select(self.t.state.c.value).where(self.t.state.c.key == _PULL_CURSOR)
                                   .with_for_update()).scalar()
            if current is not None and int(current) >= next_cursor and envelopes:
                return 0   # another process applied this page already
            if envelopes:
                conn.execute(insert(self.t.inbox), [{
                    "key_id": env.key_id, "payload": env.payload, "signature": env.signature,
                    "body_kind": (rec.WhichOneof("body") or "")[:40], "pulled_at_ms": 0, "applied": False}
                    for env, rec in zip(envelopes, records)])
            if current is None:
                conn.execute(insert(self.t.state).values(key=_PULL_CURSOR, value=str(next_cursor)))
            else:
                conn.execute(update(self.t.state).where(self.t.state.c.key == _PULL_CURSOR).values(value=str(next_cursor)))
        return len(envelopes)

    # ------------------------------------------------------------ what the sender's projection folds

    def unapplied_receipts(self, limit: int = 500) -> list[HeldReceipt]:
        query = (select(self.t.receipt.c.seq, self.t.receipt.c.receipt_time_ms, self.t.ledger.c.body_kind,
                        self.t.ledger.c.matter_id, self.t.ledger.c.payload)
                 .join(self.t.ledger, self.t.ledger.c.seq == self.t.receipt.c.seq)
                 .where(self.t.receipt.c.applied.is_(False)).order_by(self.t.receipt.c.seq).limit(limit))
        with self.engine.connect() as conn:
            return [HeldReceipt(int(r.seq), int(r.receipt_time_ms), r.body_kind, r.matter_id,
                                records_pb2.Record.FromString(bytes(r.payload))) for r in conn.execute(query)]

    def mark_receipt_applied(self, conn: Connection, seq: int) -> bool:
        """True when this call marked it (False: another process folded it first)."""
        return conn.execute(update(self.t.receipt).where(self.t.receipt.c.seq == seq, self.t.receipt.c.applied.is_(False))
                            .values(applied=True)).rowcount == 1

    def unapplied_inbox(self, limit: int = 500) -> list[PulledRecord]:
        query = (select(self.t.inbox).where(self.t.inbox.c.applied.is_(False)).order_by(self.t.inbox.c.id).limit(limit))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        out = []
        for r in rows:
            env = envelope_pb2.Envelope(payload=bytes(r.payload), signature=bytes(r.signature), key_id=r.key_id)
            out.append(PulledRecord(int(r.id), env, records_pb2.Record.FromString(bytes(r.payload))))
        return out

    def mark_inbox_applied(self, conn: Connection, record_id: int) -> bool:
        return conn.execute(update(self.t.inbox).where(self.t.inbox.c.id == record_id, self.t.inbox.c.applied.is_(False))
                            .values(applied=True)).rowcount == 1

    def receipt_time_ms(self, seq: int) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(self.t.receipt.c.receipt_time_ms).where(self.t.receipt.c.seq == seq)).scalar() or 0)

    def ledger_for_matter(self, matter_id: str) -> list[tuple[int, str, int, bool]]:
        """(seq, body kind, created at, receipted) of every record this sender signed about a matter."""
        query = (select(self.t.ledger.c.seq, self.t.ledger.c.body_kind, self.t.ledger.c.created_at_ms,
                        self.t.receipt.c.seq.label("receipted"))
                 .outerjoin(self.t.receipt, self.t.receipt.c.seq == self.t.ledger.c.seq)
                 .where(self.t.ledger.c.matter_id == matter_id).order_by(self.t.ledger.c.seq))
        with self.engine.connect() as conn:
            return [(int(r.seq), r.body_kind, int(r.created_at_ms), r.receipted is not None) for r in conn.execute(query)]
