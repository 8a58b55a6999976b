"""`RelayStore`: a receiving tier's ingest store, key registry, down-log and own signing chain over
SQLAlchemy Core. The township uses it for its villages and the county for its townships.

One transaction per batch, rows inserted with executemany: no per-row ORM work. Every batch's
chain check is an optimistic compare-and-set on `agent_key.tip_seq` (and the key still approved),
which also serializes a batch against an operator revoking the key at the same moment: whichever
commits first wins, and a revocation's `last_valid_seq` is exactly what was stored by then.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from shared.bulk import insert_rows
from shared.db import database_url, is_sqlite, make_engine
from shared.envelope import GENESIS, ChainTip, sign_next
from shared.keys import KnownKey, fingerprint
from shared.relay.errors import EnrollmentLimit, KeyStoreError, UnknownKey
from shared.relay.ports import (
    AgentKey,
    EnrollmentBounds,
    EnrollmentInfo,
    HeldRecord,
    IngestRow,
    KeyState,
    Outcome,
    StoreResult,
)
from shared.relay.sql_tables import RelayTables
from shared.signing import Signer, key_id_for
from shared.wire.v1 import envelope_pb2, records_pb2

__all__ = ["RelayStore", "relay_engine", "ForkEvidence", "TimeFlag", "PeerSync"]

log = logging.getLogger("shared.relay.store")

_INGEST_COLUMNS = ("author_key_id", "seq", "record_id", "hash", "payload", "signature", "body_kind", "claimed_time_ms",
                   "receipt_time_ms")


def relay_engine(url: str) -> Engine:
    """An engine for a tier's store at an SQLAlchemy URL or a SQLite file path."""
    parsed = database_url(url)
    # FULL (SQLite): a receipt is a promise; the row must survive power loss, not just a killed process.
    # SQLite connections are file handles, so its pool may overflow further than PostgreSQL's server sessions.
    return make_engine(parsed, synchronous="FULL", busy_timeout_ms=15_000, pool_size=16,
                       max_overflow=64 if is_sqlite(parsed) else 32, pool_timeout_s=30)


@dataclass(frozen=True)
class ForkEvidence:
    author_key_id: str
    seq: int
    held_hash: bytes
    hash: bytes
    detected_at_ms: int


@dataclass(frozen=True)
class PeerSync:
    """A sending device as `/metrics` reports it: no names, only its key, place code and times."""

    key_id: str
    state: KeyState
    place_code: str                 # the village's code (township relay) or the township's (county relay)
    tip_seq: int
    last_receipt_ms: int | None     # when the last record arrived (None: nothing yet)
    last_claimed_ms: int | None     # what the device said it was when it signed that record


@dataclass(frozen=True)
class TimeFlag:
    author_key_id: str
    seq: int
    claimed_time_ms: int
    receipt_time_ms: int
    reason: str




class _Rollback(Exception):
    """Raised inside a batch's transaction to undo it; the batch comes back as CONFLICT."""


def _agent(row: Any) -> AgentKey:
    return AgentKey(
        key_id=row.key_id, public_key=bytes(row.public_key), state=KeyState(row.state),
        info=EnrollmentInfo(row.role, row.holder_name, row.village_code, row.township_code, row.fingerprint),
        tip=ChainTip(int(row.tip_seq), bytes(row.tip_hash)), last_valid_seq=int(row.last_valid_seq),
        last_receipt_ms=int(row.last_receipt_ms), enrolled_at_ms=int(row.enrolled_at_ms),
        status_changed_at_ms=int(row.status_changed_at_ms), status_changed_by=row.status_changed_by,
        status_reason=row.status_reason, enrolled_from=row.enrolled_from or "",
        last_claimed_ms=int(row.last_claimed_ms or 0), claim_floor_ms=int(row.claim_floor_ms or 0),
    )


class RelayStore:
    """Implements `IngestStore`, `KeyRegistry` and `DownLog` (shared.relay.ports) over `tables`,
    plus the tier's own signing chain (`publish`) and a small key/value table."""

    store_error: type[Exception] = KeyStoreError
    unknown_key_error: type[Exception] = UnknownKey

    def __init__(self, engine: Engine, tables: RelayTables) -> None:
        self.engine = engine
        self.t = tables

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    # ------------------------------------------------------------ IngestStore

    def author(self, key_id: str) -> AgentKey | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(self.t.agent_key).where(self.t.agent_key.c.key_id == key_id)).first()
        return None if row is None else _agent(row)

    def store_batch(self, author_key_id: str, expected_tip: ChainTip, rows: Sequence[IngestRow], *,
                    receipt_time_ms: int, claim_floor_ms: int | None = None) -> list[StoreResult]:
        """Classify `rows` in order, exactly as if each had come in a batch of its own (docs/wire-v1.md
        "Ingest"): a seq held before or earlier in `rows` is a DUPLICATE (same hash) or a FORK (kept as
        evidence, author quarantined); a new seq must continue the chain; once a fork is seen, new seqs
        are QUARANTINED and not written. New rows are written only if the author is still approved at
        `expected_tip` (compare-and-set); otherwise every row is CONFLICT and nothing is written."""
        try:
            return self._store_batch(author_key_id, expected_tip, rows, receipt_time_ms, claim_floor_ms)
        except _Rollback:
            return [StoreResult(x.seq, Outcome.CONFLICT, x.hash) for x in rows]

    def _store_batch(self, author_key_id: str, expected_tip: ChainTip, rows: Sequence[IngestRow],
                     receipt_time_ms: int, claim_floor_ms: int | None) -> list[StoreResult]:
        held_seqs = [r.seq for r in rows if r.seq <= expected_tip.seq]
        results: list[StoreResult] = []
        with self._tx() as conn:
            held: dict[int, tuple[bytes, int]] = {}
            if held_seqs:
                held = {int(q): (bytes(h), int(t)) for q, h, t in conn.execute(
                    select(self.t.ingest_log.c.seq, self.t.ingest_log.c.hash, self.t.ingest_log.c.receipt_time_ms)
                    .where(self.t.ingest_log.c.author_key_id == author_key_id,
                           self.t.ingest_log.c.seq.in_(sorted(set(held_seqs)))))}
            new: list[IngestRow] = []
            forks: list[tuple[IngestRow, bytes]] = []
            quarantined = False
            for r in rows:
                if r.seq <= expected_tip.seq and r.seq not in held:
                    # The tip says it is held but it is not: the store moved under us; retry the batch.
                    return [StoreResult(x.seq, Outcome.CONFLICT, x.hash) for x in rows]
                if r.seq in held:
                    held_hash, held_time = held[r.seq]
                    if held_hash == r.hash:
                        results.append(StoreResult(r.seq, Outcome.DUPLICATE, r.hash, held_time))
                    else:
                        forks.append((r, held_hash))
                        quarantined = True
                        results.append(StoreResult(r.seq, Outcome.FORK, r.hash))
                    continue
                if quarantined:
                    results.append(StoreResult(r.seq, Outcome.QUARANTINED, r.hash))
                    continue
                if r.seq != expected_tip.seq + 1 + len(new):
                    raise self.store_error("新记录必须紧接链尾且连续")
                new.append(r)
                held[r.seq] = (r.hash, receipt_time_ms)
                results.append(StoreResult(r.seq, Outcome.STORED, r.hash, receipt_time_ms))
            if new:
                last = new[-1]
                values: dict[str, Any] = {"tip_seq": last.seq, "tip_hash": last.hash, "last_receipt_ms": receipt_time_ms,
                                          "last_claimed_ms": last.claimed_time_ms}
                if claim_floor_ms is not None:
                    values["claim_floor_ms"] = claim_floor_ms
                moved = conn.execute(
                    update(self.t.agent_key)
                    .where(self.t.agent_key.c.key_id == author_key_id, self.t.agent_key.c.state == KeyState.APPROVED.value,
                           self.t.agent_key.c.tip_seq == expected_tip.seq)
                    .values(**values)).rowcount
                if moved != 1:
                    return [StoreResult(x.seq, Outcome.CONFLICT, x.hash) for x in rows]
                try:
                    # The hot insert: the driver's executemany (SQLite) or psycopg's pipelined
                    # executemany (PostgreSQL), no per-row work in SQLAlchemy (docs/performance.md).
                    insert_rows(conn, self.t.ingest_log, _INGEST_COLUMNS, [
                        (author_key_id, r.seq, r.record_id[:64], r.hash, r.payload, r.signature, r.body_kind[:40],
                         r.claimed_time_ms, receipt_time_ms) for r in new])
                except IntegrityError as exc:
                    # Another process wrote these seqs between our compare-and-set and insert (PostgreSQL
                    # without a lock on the key row): nothing of ours stays; the caller retries.
                    raise _Rollback() from exc
                flags = [{"author_key_id": author_key_id, "seq": r.seq, "claimed_time_ms": r.claimed_time_ms,
                          "receipt_time_ms": receipt_time_ms, "reason": r.claimed_time_flag}
                         for r in new if r.claimed_time_flag]
                if flags:
                    conn.execute(insert(self.t.claimed_time_flag), flags)
                for r in new:
                    if r.rotation is not None:
                        self._rotate(conn, author_key_id, r, receipt_time_ms)
            # After the new rows: their compare-and-set needs the author still approved.
            for r, held_hash in forks:
                self._record_fork(conn, r, held_hash, receipt_time_ms)
        return results

    def record_ids_taken(self, author_key_id: str, record_ids: Sequence[str]) -> set[str]:
        if not record_ids:
            return set()
        il = self.t.ingest_log
        with self.engine.connect() as conn:
            return {str(r) for r in conn.execute(select(il.c.record_id).where(
                il.c.author_key_id == author_key_id, il.c.record_id.in_(sorted(set(record_ids))))).scalars()}

    def remember_nonce(self, key_id: str, nonce: bytes, *, now_ms: int, expires_at_ms: int) -> bool:
        rn = self.t.request_nonce
        try:
            with self._tx() as conn:
                # Forget what can no longer be replayed; the expiry index keeps this a range delete.
                conn.execute(delete(rn).where(rn.c.expires_at_ms < now_ms))
                conn.execute(insert(rn).values(key_id=key_id, nonce=bytes(nonce), expires_at_ms=expires_at_ms))
        except IntegrityError:
            return False
        return True

    def authored(self, author_key_id: str, after_seq: int, limit: int) -> list[HeldRecord]:
        il = self.t.ingest_log
        query = (select(il.c.seq, il.c.hash, il.c.payload, il.c.signature, il.c.receipt_time_ms)
                 .where(il.c.author_key_id == author_key_id, il.c.seq > after_seq)
                 .order_by(il.c.seq).limit(max(0, limit)))
        with self.engine.connect() as conn:
            return [HeldRecord(int(r.seq), bytes(r.hash), bytes(r.payload), bytes(r.signature), int(r.receipt_time_ms))
                    for r in conn.execute(query)]

    def _record_fork(self, conn: Connection, r: IngestRow, held_hash: bytes, now_ms: int) -> None:
        exists = conn.execute(select(self.t.fork_evidence.c.fork_id).where(
            self.t.fork_evidence.c.author_key_id == r.author_key_id, self.t.fork_evidence.c.seq == r.seq,
            self.t.fork_evidence.c.hash == r.hash)).first()
        if exists is None:
            conn.execute(insert(self.t.fork_evidence).values(
                author_key_id=r.author_key_id, seq=r.seq, held_hash=held_hash, hash=r.hash, payload=r.payload,
                signature=r.signature, detected_at_ms=now_ms))
        # Only an approved key becomes quarantined: a revoked one stays revoked (nothing more is taken anyway).
        conn.execute(update(self.t.agent_key).where(self.t.agent_key.c.key_id == r.author_key_id,
                                             self.t.agent_key.c.state == KeyState.APPROVED.value)
                     .values(state=KeyState.QUARANTINED.value, status_changed_at_ms=now_ms,
                             status_changed_by="system", status_reason=f"序号 {r.seq} 出现分叉"))
        log.warning("fork: key %s seq %d held %s got %s; key quarantined", r.author_key_id, r.seq,
                    held_hash.hex()[:16], r.hash.hex()[:16])

    def _rotate(self, conn: Connection, old_key_id: str, r: IngestRow, now_ms: int) -> None:
        assert r.rotation is not None
        new_key_id, new_pub = r.rotation
        old = conn.execute(select(self.t.agent_key).where(self.t.agent_key.c.key_id == old_key_id)).first()
        assert old is not None
        if conn.execute(select(self.t.agent_key.c.key_id).where(self.t.agent_key.c.key_id == new_key_id)).first() is None:
            conn.execute(insert(self.t.agent_key).values(
                key_id=new_key_id, public_key=new_pub, state=KeyState.APPROVED.value, role=old.role,
                holder_name=old.holder_name, village_code=old.village_code, township_code=old.township_code,
                fingerprint=fingerprint(new_pub), enrolled_at_ms=now_ms, tip_seq=0, tip_hash=GENESIS.hash,
                status_changed_at_ms=now_ms, status_changed_by=old_key_id, status_reason="由旧密钥轮换",
                rotated_from=old_key_id))
        conn.execute(update(self.t.agent_key).where(self.t.agent_key.c.key_id == old_key_id).values(
            state=KeyState.REVOKED.value, last_valid_seq=r.seq, status_changed_at_ms=now_ms,
            status_changed_by="system", status_reason=f"已轮换为新密钥 {new_key_id[:8]}"))

    # ------------------------------------------------------------ KeyRegistry

    def lookup(self, key_id: str) -> KnownKey | None:
        agent = self.author(key_id)
        return None if agent is None else agent.known()

    def enroll(self, public_key: bytes, enrollment: envelope_pb2.Envelope, info: EnrollmentInfo, *,
               now_ms: int, from_address: str = "", bounds: EnrollmentBounds | None = None) -> AgentKey:
        key_id = key_id_for(public_key)
        ak = self.t.agent_key
        try:
            with self._tx() as conn:
                if conn.execute(select(ak.c.key_id).where(ak.c.key_id == key_id)).first() is None:
                    if bounds is not None:
                        self._bound_pending(conn, bounds, from_address, now_ms)
                    conn.execute(insert(ak).values(
                        key_id=key_id, public_key=public_key, state=KeyState.PENDING.value, role=info.role,
                        holder_name=info.holder_name, village_code=info.village_code, township_code=info.township_code,
                        fingerprint=info.fingerprint or fingerprint(public_key),
                        enrollment_envelope=enrollment.SerializeToString(), enrolled_at_ms=now_ms,
                        tip_seq=0, tip_hash=GENESIS.hash, status_changed_at_ms=now_ms, enrolled_from=from_address[:64]))
        except IntegrityError:
            pass  # a concurrent enrollment of the same key won; it is the same key
        agent = self.author(key_id)
        assert agent is not None
        return agent

    def _bound_pending(self, conn: Connection, bounds: EnrollmentBounds, from_address: str, now_ms: int) -> None:
        ak = self.t.agent_key
        pending = ak.c.state == KeyState.PENDING.value
        stale = conn.execute(delete(ak).where(pending, ak.c.enrolled_at_ms < now_ms - bounds.expire_after_ms)).rowcount
        if stale:
            log.info("expired %d pending enrollment(s) older than %d days", stale, bounds.expire_after_ms // 86_400_000)
        total = int(conn.execute(select(func.count()).select_from(ak).where(pending)).scalar() or 0)
        if total >= bounds.total:
            raise EnrollmentLimit(f"待审批的设备登记已达 {bounds.total} 个上限，请等工作人员处理后再登记")
        if from_address:
            here = int(conn.execute(select(func.count()).select_from(ak)
                                    .where(pending, ak.c.enrolled_from == from_address[:64])).scalar() or 0)
            if here >= bounds.per_address:
                raise EnrollmentLimit(f"同一地址待审批的设备登记已达 {bounds.per_address} 个上限，请等工作人员处理后再登记")

    def expire_pending(self, *, now_ms: int, expire_after_ms: int) -> int:
        """Delete pending enrollments older than `expire_after_ms`; returns how many went. A device
        still waiting simply enrols again (its Enroll poll re-registers it)."""
        ak = self.t.agent_key
        with self._tx() as conn:
            return int(conn.execute(delete(ak).where(ak.c.state == KeyState.PENDING.value,
                                                     ak.c.enrolled_at_ms < now_ms - expire_after_ms)).rowcount)

    def register_approved(self, public_key: bytes, info: EnrollmentInfo, *, by: str, now_ms: int) -> AgentKey:
        key_id = key_id_for(public_key)
        with self._tx() as conn:
            if conn.execute(select(self.t.agent_key.c.key_id).where(self.t.agent_key.c.key_id == key_id)).first() is None:
                conn.execute(insert(self.t.agent_key).values(
                    key_id=key_id, public_key=public_key, state=KeyState.APPROVED.value, role=info.role,
                    holder_name=info.holder_name, village_code=info.village_code, township_code=info.township_code,
                    fingerprint=fingerprint(public_key), enrolled_at_ms=now_ms, tip_seq=0, tip_hash=GENESIS.hash,
                    status_changed_at_ms=now_ms, status_changed_by=by, status_reason="直接登记"))
        agent = self.author(key_id)
        assert agent is not None
        return agent

    def _set_state(self, key_id: str, allowed_from: Sequence[KeyState], values: dict[str, Any]) -> AgentKey:
        with self._tx() as conn:
            # FOR UPDATE: on PostgreSQL a concurrent ingest batch waits for this decision (SQLite's
            # BEGIN IMMEDIATE already serializes writers).
            row = conn.execute(select(self.t.agent_key).where(self.t.agent_key.c.key_id.startswith(key_id)).with_for_update()).all()
            if len(row) != 1:
                raise self.unknown_key_error(f"找不到设备密钥 {key_id}" if not row else f"密钥标识前缀 {key_id} 不唯一，请输入更长的前缀")
            current = KeyState(row[0].state)
            if current not in allowed_from:
                raise self.store_error(f"该设备密钥当前状态为「{current.label_zh}」，不能执行此操作")
            full_id = row[0].key_id
            # last_valid_seq is taken from the row inside the UPDATE itself, so it is exactly the tip
            # stored at this moment even if a batch committed between our read and our write; after
            # it, the ingest compare-and-set (which needs 'approved') can no longer add rows.
            if values.get("state") == KeyState.REVOKED.value:
                values = {**values, "last_valid_seq": self.t.agent_key.c.tip_seq}
            conn.execute(update(self.t.agent_key).where(self.t.agent_key.c.key_id == full_id,
                                                 self.t.agent_key.c.state.in_([s.value for s in allowed_from])).values(**values))
        agent = self.author(full_id)
        assert agent is not None
        return agent

    def approve(self, key_id: str, *, by: str, now_ms: int) -> AgentKey:
        return self._set_state(key_id, [KeyState.PENDING], {
            "state": KeyState.APPROVED.value, "status_changed_at_ms": now_ms, "status_changed_by": by,
            "status_reason": "审批通过"})

    def revoke(self, key_id: str, *, by: str, reason: str, now_ms: int) -> AgentKey:
        return self._set_state(key_id, [KeyState.PENDING, KeyState.APPROVED, KeyState.QUARANTINED], {
            "state": KeyState.REVOKED.value, "status_changed_at_ms": now_ms, "status_changed_by": by,
            "status_reason": reason or "吊销"})

    def release_quarantine(self, key_id: str, *, by: str, now_ms: int) -> AgentKey:
        return self._set_state(key_id, [KeyState.QUARANTINED], {
            "state": KeyState.APPROVED.value, "status_changed_at_ms": now_ms, "status_changed_by": by,
            "status_reason": "人工解除隔离"})

    def keys(self, state: KeyState | None = None) -> list[AgentKey]:
        query = select(self.t.agent_key).order_by(self.t.agent_key.c.enrolled_at_ms, self.t.agent_key.c.key_id)
        if state is not None:
            query = query.where(self.t.agent_key.c.state == state.value)
        with self.engine.connect() as conn:
            return [_agent(r) for r in conn.execute(query)]

    # ------------------------------------------------------------ DownLog

    def append(self, envelope: envelope_pb2.Envelope, audience_key_ids: Sequence[str], *, now_ms: int) -> int:
        with self._tx() as conn:
            return self._append(conn, envelope, audience_key_ids, now_ms)

    def _append(self, conn: Connection, envelope: envelope_pb2.Envelope, audience: Sequence[str], now_ms: int) -> int:
        cursor = 0
        for key in audience or ["*"]:
            cursor = int(conn.execute(insert(self.t.down_log).values(
                audience_key_id=key, key_id=envelope.key_id, payload=envelope.payload, signature=envelope.signature,
                created_at_ms=now_ms).returning(self.t.down_log.c.cursor)).scalar_one())
        return cursor

    def read(self, key_id: str, after_cursor: int, limit: int) -> tuple[list[envelope_pb2.Envelope], int]:
        query = (select(self.t.down_log.c.cursor, self.t.down_log.c.key_id, self.t.down_log.c.payload, self.t.down_log.c.signature)
                 .where(self.t.down_log.c.cursor > after_cursor, or_(self.t.down_log.c.audience_key_id == key_id,
                                                               self.t.down_log.c.audience_key_id == "*"))
                 .order_by(self.t.down_log.c.cursor).limit(limit))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        envelopes = [envelope_pb2.Envelope(payload=bytes(r.payload), signature=bytes(r.signature), key_id=r.key_id)
                     for r in rows]
        return envelopes, (int(rows[-1].cursor) if rows else after_cursor)

    def lock_own_tip(self, conn: Connection, key_id: str) -> None:
        """Take the township chain's tip row first. Every writer that signs takes it before any matter
        row, so two of them can never wait on each other in a cycle (PostgreSQL; SQLite serializes anyway)."""
        self._own_tip(conn, key_id)

    def publish(self, signer: Signer, record: records_pb2.Record, audience_key_ids: Sequence[str], *, now_ms: int,
                dedup_key: str = "", meta: dict[str, str] | None = None) -> int:
        """Sign `record` as the next link of the township's own chain and queue it for the audience,
        in one transaction (the chain tip and the down-log move together). With `dedup_key`, a second
        call with the same key publishes nothing and returns 0 (callers retried after a crash)."""
        with self._tx() as conn:
            cursor = self.publish_in(conn, signer, record, audience_key_ids, now_ms=now_ms, dedup_key=dedup_key)
            for key, value in (meta or {}).items():  # what the record announces, stored with it or not at all
                self._set_meta(conn, key, value)
            return cursor

    def publish_in(self, conn: Connection, signer: Signer, record: records_pb2.Record, audience_key_ids: Sequence[str],
                   *, now_ms: int, dedup_key: str = "") -> int:
        """`publish` inside the caller's transaction, so a matter change and its signed record commit together.
        On PostgreSQL the own-tip row is locked first: two township processes never sign the same seq."""
        if dedup_key:
            marker = f"published:{dedup_key}"
            if conn.execute(select(self.t.meta.c.value).where(self.t.meta.c.key == marker)).scalar() is not None:
                return 0
            self._set_meta(conn, marker, str(now_ms))
        tip = self._own_tip(conn, signer.key_id)
        signed = sign_next(signer, record, tip, now_ms)
        self._set_meta(conn, f"own_tip:{signer.key_id}", f"{signed.seq}:{signed.hash.hex()}")
        return self._append(conn, signed.envelope, audience_key_ids, now_ms)

    def _own_tip(self, conn: Connection, key_id: str) -> ChainTip:
        value = conn.execute(select(self.t.meta.c.value).where(self.t.meta.c.key == f"own_tip:{key_id}")
                             .with_for_update()).scalar()
        if not value:
            return GENESIS
        seq, digest = str(value).split(":")
        return ChainTip(int(seq), bytes.fromhex(digest))

    def _set_meta(self, conn: Connection, key: str, value: str) -> None:
        if conn.execute(update(self.t.meta).where(self.t.meta.c.key == key).values(value=value)).rowcount == 0:
            conn.execute(insert(self.t.meta).values(key=key, value=value))

    # ------------------------------------------------------------ operator views and checks

    def forks(self) -> list[ForkEvidence]:
        with self.engine.connect() as conn:
            return [ForkEvidence(r.author_key_id, int(r.seq), bytes(r.held_hash), bytes(r.hash), int(r.detected_at_ms))
                    for r in conn.execute(select(self.t.fork_evidence).order_by(self.t.fork_evidence.c.fork_id))]

    def time_flags(self, author_key_id: str | None = None) -> list[TimeFlag]:
        query = select(self.t.claimed_time_flag).order_by(self.t.claimed_time_flag.c.author_key_id, self.t.claimed_time_flag.c.seq)
        if author_key_id:
            query = query.where(self.t.claimed_time_flag.c.author_key_id == author_key_id)
        with self.engine.connect() as conn:
            return [TimeFlag(r.author_key_id, int(r.seq), int(r.claimed_time_ms), int(r.receipt_time_ms), r.reason)
                    for r in conn.execute(query)]

    def ingested(self, author_key_id: str) -> list[tuple[int, bytes, int]]:
        """(seq, hash, receipt time) of every stored record of an author, in seq order."""
        with self.engine.connect() as conn:
            return [(int(s), bytes(h), int(t)) for s, h, t in conn.execute(
                select(self.t.ingest_log.c.seq, self.t.ingest_log.c.hash, self.t.ingest_log.c.receipt_time_ms)
                .where(self.t.ingest_log.c.author_key_id == author_key_id).order_by(self.t.ingest_log.c.seq))]

    def peer_sync(self, conn: Connection | None = None) -> list[PeerSync]:
        """Each sending device's last arrival: the receipt and claimed times of its chain tip.

        One primary-key lookup per device (the tip row), so a scrape stays cheap with millions of records."""
        k, i = self.t.agent_key, self.t.ingest_log
        query = (select(k.c.key_id, k.c.state, k.c.village_code, k.c.township_code, k.c.tip_seq,
                        i.c.receipt_time_ms, i.c.claimed_time_ms)
                 .select_from(k.outerjoin(i, (i.c.author_key_id == k.c.key_id) & (i.c.seq == k.c.tip_seq)))
                 .order_by(k.c.key_id))
        if conn is None:
            with self.engine.connect() as own:
                return self.peer_sync(own)
        return [PeerSync(r.key_id, KeyState(r.state), r.village_code or r.township_code or "", int(r.tip_seq),
                         None if r.receipt_time_ms is None else int(r.receipt_time_ms),
                         None if r.claimed_time_ms is None else int(r.claimed_time_ms))
                for r in conn.execute(query)]

    def ingest_count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(self.t.ingest_log)).scalar() or 0)

    def get_meta(self, key: str, default: str = "") -> str:
        with self.engine.connect() as conn:
            value = conn.execute(select(self.t.meta.c.value).where(self.t.meta.c.key == key)).scalar()
        return default if value is None else str(value)

    def get_meta_in(self, conn: Connection, key: str, default: str = "") -> str:
        value = conn.execute(select(self.t.meta.c.value).where(self.t.meta.c.key == key)).scalar()
        return default if value is None else str(value)

    def set_meta_in(self, conn: Connection, key: str, value: str) -> None:
        self._set_meta(conn, key, value)

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as conn:
            self._set_meta(conn, key, value)
