"""The sending side of a hop over SQLAlchemy Core, for both senders: a village toward its township
and a township toward its county. One `SqlOutbox` over the sender's tables: its up-chain (ledger),
its outbox, the receipts it verified and what it pulled from the tier above.

`SqlOutbox` implements `shared.relay.ports.Outbox` and `RecoveryLog` for `RelayClient`. The two
senders differ only in what they pass in:

* Who signs. The township signs here: `append_in` adds the next link of its chain *and* its outbox
  row inside the caller's transaction, so a handled change and the record announcing it upward
  commit together (DESIGN invariant 5). The chain tip lives in a state row that is locked first
  (`SELECT … FOR UPDATE` on PostgreSQL), so two processes sharing one database never sign the same
  seq. The village signs in its store (`signs=False`), where a record commits with its projections;
  its tip is the ledger's last row.
* Where records from above go. The township keeps them in its inbox table for its projection to
  fold (`inbox.applied`), as it keeps receipts (`receipt.applied`): durable before anything acts on
  them, so a crash between "stored" and "applied" repeats the fold, never the network exchange. The
  village has no inbox: a `DownSink` (its store) applies a verified page and its cursor at once.
* Recovery after a restore from a backup: only a sender with a `RecoveryStore` (the village) ever
  recovers; this class verifies what comes back (signatures, receipts, the receiver's signed tip)
  before the store writes any of it.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

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

from shared.clock import Clock, SystemClock, to_unix_ms
from shared.envelope import (
    GENESIS,
    ChainTip,
    SignedRecord,
    open_down_records,
    open_receipt,
    open_record,
    receipt_problem,
    sign_next,
)
from shared.errors import EnvelopeError, SignatureError
from shared.relay.server import recover_tip_signing_bytes
from shared.signing import Signer, is_valid, payload_hash
from shared.wire.v1 import envelope_pb2, records_pb2

__all__ = ["SenderTables", "sender_tables", "SqlOutbox", "DownSink", "RecoveryStore", "HeldReceipt", "PulledRecord"]

log = logging.getLogger("shared.relay.sql_outbox")


@dataclass(frozen=True)
class SenderTables:
    """The columns `SqlOutbox` uses: ledger (seq, hash, payload, signature; and record_id, body_kind,
    matter_id, created_at_ms where it signs), outbox (seq, queued_at_ms), receipt (seq, envelope,
    receipt_time_ms; `applied` where receipts are folded later), state (key, value) and inbox (None
    where a `DownSink` applies records from above at once)."""

    ledger: Table
    outbox: Table
    receipt: Table
    inbox: Table | None
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
LAST_RECEIPT_META = "last_receipt_time_ms"
LAST_SYNC_META = "last_sync_at_ms"


class DownSink(Protocol):
    """Applies a verified page of records from above, and moves the pull cursor (state key
    `pull_cursor`), in one transaction of its own; returns how many were new."""

    def apply_down(self, envelopes: Sequence[envelope_pb2.Envelope], records: Sequence[records_pb2.Record],
                   next_cursor: int) -> int: ...


class RecoveryStore(Protocol):
    """The sender's store while it recovers from a backup (see `shared.relay.ports.RecoveryLog`);
    it is handed only what `SqlOutbox` has verified."""

    def recovering(self) -> bool: ...

    def append_recovered(self, envelopes: Sequence[envelope_pb2.Envelope],
                         receipts: Sequence[tuple[int, bytes, int]]) -> ChainTip:
        """Check the chain and append the records and their (seq, receipt envelope, receipt time) in one transaction."""
        ...

    def finish_recovery(self, receiver_tip: ChainTip, *, now_ms: int) -> object: ...


def _matter_id_of(record: records_pb2.Record) -> str:
    kind = record.WhichOneof("body")
    if kind is None:
        return ""
    return str(getattr(getattr(record, kind), "matter_id", ""))[:64]


class SqlOutbox:
    """Implements `shared.relay.ports.Outbox` and `RecoveryLog` for a sender whose receiver key is
    known in advance.

    `signs`: the chain tip is kept in the state table and `append_in` signs here (False: the
    sender's store signs, and the tip is the ledger's last row). `down`: applies records from above
    at once (None: they are kept in `tables.inbox`). `recovery`: the store that can be restored from
    a backup (None: this sender never recovers). `transaction`: how a write transaction is opened
    (the store's own, e.g. one that words a full disk in Chinese; default `engine.begin`).
    `sync_marks`: keep the last receipt's time and the last successful sync in the state table.
    `receiver_label_zh` names the tier above in refusals."""

    def __init__(self, engine: Engine, tables: SenderTables, *, own_key_id: str, receiver_key_id: str,
                 receiver_public_key: bytes, signs: bool = True, down: DownSink | None = None,
                 recovery: RecoveryStore | None = None,
                 transaction: Callable[[], AbstractContextManager[Connection]] | None = None,
                 on_down: Callable[[Sequence[records_pb2.Record]], None] | None = None,
                 sync_marks: bool = False, receiver_label_zh: str = "上级", clock: Clock | None = None) -> None:
        if down is None and tables.inbox is None:
            raise ValueError("records from above need an inbox table or a DownSink")
        self.engine = engine
        self.t = tables
        self.own_key_id = own_key_id
        self.receiver_key_id = receiver_key_id
        self.receiver_public_key = receiver_public_key
        self.signs = signs
        self._down = down
        self._recovery = recovery
        self._transaction = transaction or engine.begin
        self._on_down = on_down   # runs after a page from above committed (a village takes up a new catalogue)
        self._sync_marks = sync_marks
        self._receiver_label_zh = receiver_label_zh
        self._clock = clock or SystemClock()
        self._receipt_folded = "applied" in tables.receipt.c
        if signs:
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
        if conn is None:
            with self.engine.connect() as own:
                return self.tip(own)
        if not self.signs:
            row = conn.execute(select(self.t.ledger.c.seq, self.t.ledger.c.hash)
                               .order_by(self.t.ledger.c.seq.desc()).limit(1)).first()
            return GENESIS if row is None else ChainTip(int(row.seq), bytes(row.hash))
        value = conn.execute(select(self.t.state.c.value).where(self.t.state.c.key == _TIP)).scalar()
        if not value:
            return GENESIS
        seq, digest = str(value).split(":")
        return ChainTip(int(seq), bytes.fromhex(digest))

    def append_in(self, conn: Connection, signer: Signer, record: records_pb2.Record, *, now_ms: int) -> SignedRecord:
        """Sign `record` as the next link and queue it, inside the caller's transaction."""
        if not self.signs:
            raise EnvelopeError("本链由发送方的存储签名，不在发件箱中签名")
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
        """Verify each receipt and, only for those that verify, drop the outbox row and keep the receipt."""
        confirmed = 0
        with self._transaction() as conn:
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
                    row: dict[str, Any] = {"seq": r.seq, "envelope": env.SerializeToString(),
                                           "receipt_time_ms": r.receipt_time_ms}
                    if self._receipt_folded:
                        row["applied"] = False
                    conn.execute(insert(self.t.receipt).values(**row))
                confirmed += conn.execute(delete(self.t.outbox).where(self.t.outbox.c.seq == r.seq)).rowcount
                if self._sync_marks:
                    self._set_state(conn, LAST_RECEIPT_META, str(r.receipt_time_ms))
            if confirmed and self._sync_marks:
                self._set_state(conn, LAST_SYNC_META, str(now_ms))
        return confirmed

    def _set_state(self, conn: Connection, key: str, value: str) -> None:
        # Only senders with one process per database keep sync marks (the village), so an update
        # then an insert cannot race another writer of the same key.
        if conn.execute(update(self.t.state).where(self.t.state.c.key == key).values(value=value)).rowcount == 0:
            conn.execute(insert(self.t.state).values(key=key, value=value))

    def resend_from(self, from_seq: int, *, now_ms: int) -> int:
        """The receiver is missing records from `from_seq` on (e.g. it was restored from a backup):
        queue them again. Receipts already held stay; the receiver answers duplicates idempotently."""
        with self._transaction() as conn:
            queued = {int(s) for s in conn.execute(select(self.t.outbox.c.seq)).scalars()}
            seqs = [int(s) for s in conn.execute(select(self.t.ledger.c.seq).where(self.t.ledger.c.seq >= from_seq)).scalars()]
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
                                    receiver_public_key=self.receiver_public_key,
                                    refusal_zh=f"{self._receiver_label_zh}下发的记录签名无效，已拒收")
        if self._down is not None:
            applied = self._down.apply_down(envelopes, records, next_cursor)
        else:
            applied = self._keep_down(envelopes, records, next_cursor)
        if self._on_down is not None and records:
            self._on_down(records)
        return applied

    def _keep_down(self, envelopes: Sequence[envelope_pb2.Envelope], records: Sequence[records_pb2.Record],
                   next_cursor: int) -> int:
        inbox = self._inbox()
        with self.engine.begin() as conn:
            current = conn.execute(select(self.t.state.c.value).where(self.t.state.c.key == _PULL_CURSOR)
                                   .with_for_update()).scalar()
            if current is not None and int(current) >= next_cursor and envelopes:
                return 0   # another process applied this page already
            if envelopes:
                conn.execute(insert(inbox), [{
                    "key_id": env.key_id, "payload": env.payload, "signature": env.signature,
                    "body_kind": (rec.WhichOneof("body") or "")[:40], "pulled_at_ms": 0, "applied": False}
                    for env, rec in zip(envelopes, records, strict=True)])
            if current is None:
                conn.execute(insert(self.t.state).values(key=_PULL_CURSOR, value=str(next_cursor)))
            else:
                conn.execute(update(self.t.state).where(self.t.state.c.key == _PULL_CURSOR).values(value=str(next_cursor)))
        return len(envelopes)

    # ------------------------------------------------------------ recovery after a restore (RecoveryLog)

    def recovering(self) -> bool:
        return self._recovery is not None and self._recovery.recovering()

    def own_tip(self) -> ChainTip:
        return self.tip()

    def append_recovered(self, envelopes: Sequence[envelope_pb2.Envelope],
                         receipts: Sequence[envelope_pb2.Envelope]) -> ChainTip:
        """Verify every receipt (under the receiver's key, for the record sent with it) before the
        store checks the records' own signatures and chain and appends them all, or nothing."""
        recovery = self._recovery_store()
        hashes = {}
        for env in envelopes:
            try:
                hashes[open_record(env).header.seq] = payload_hash(env.payload)
            except EnvelopeError as exc:
                raise EnvelopeError(f"{self._receiver_label_zh}返回的本机记录无法解码：{exc}") from exc
        rows: list[tuple[int, bytes, int]] = []
        for env in receipts:
            problem = self._receipt_problem(env)
            if problem is None:
                r = open_receipt(env)
                problem = None if hashes.get(r.seq) == r.record_hash else "does not match the record sent with it"
            if problem is not None:
                log.warning("recovered receipt refused: %s", problem)
                raise SignatureError(f"{self._receiver_label_zh}返回的回执未通过核验，未写入任何记录")
            rows.append((r.seq, env.SerializeToString(), r.receipt_time_ms))
        return recovery.append_recovered(envelopes, rows)

    def finish_recovery(self, receiver_tip: ChainTip, *, receiver_key_id: str, signature: bytes, nonce: bytes) -> None:
        recovery = self._recovery_store()
        signed = recover_tip_signing_bytes(self.own_key_id, receiver_tip.seq, receiver_tip.hash, nonce)
        if receiver_key_id != self.receiver_key_id or not is_valid(self.receiver_public_key, signed, signature):
            label = self._receiver_label_zh
            raise SignatureError(f"{label}返回的链尾签名无效（不是本机登记的{label}？），仍不能继续登记")
        recovery.finish_recovery(receiver_tip, now_ms=to_unix_ms(self._clock.now()))

    def _recovery_store(self) -> RecoveryStore:
        if self._recovery is None:
            raise EnvelopeError("本机不在恢复状态，不接收取回的记录")
        return self._recovery

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
        inbox = self._inbox()
        query = select(inbox).where(inbox.c.applied.is_(False)).order_by(inbox.c.id).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        out = []
        for r in rows:
            env = envelope_pb2.Envelope(payload=bytes(r.payload), signature=bytes(r.signature), key_id=r.key_id)
            out.append(PulledRecord(int(r.id), env, records_pb2.Record.FromString(bytes(r.payload))))
        return out

    def mark_inbox_applied(self, conn: Connection, record_id: int) -> bool:
        inbox = self._inbox()
        return conn.execute(update(inbox).where(inbox.c.id == record_id, inbox.c.applied.is_(False))
                            .values(applied=True)).rowcount == 1

    def _inbox(self) -> Table:
        if self.t.inbox is None:
            raise EnvelopeError("本发件箱没有收件表：上级下发的记录已直接应用")
        return self.t.inbox

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
