"""The laptop's one SQLite file: the signed ledger (source of truth), its outbox, receipts,
verified township records, and the derived matter and appointment tables.

Every write is one transaction (`BEGIN IMMEDIATE`, WAL, `synchronous=FULL`): a record, its outbox
row, its projection and any encrypted personal data commit together or not at all, so a killed
process or a full disk never leaves half a record. The derived tables can be rebuilt from the
ledger and the township records, replayed in the order they were applied here.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    select,
)
from sqlalchemy.exc import OperationalError

from shared.chain import check_link
from shared.db import make_engine
from shared.domain.catalog import Catalog, parse_catalog
from shared.envelope import GENESIS, ChainTip, SignedRecord, sign_next
from shared.errors import CatalogError
from shared.keys import InMemoryKeyDirectory, KnownKey
from shared.migrations import upgrade_to_head
from shared.signing import Signer, key_id_for, payload_hash
from shared.wire.v1 import envelope_pb2, records_pb2
from village_agent import domain
from village_agent.domain import AppointmentStatus, MatterState, MatterStatus
from village_agent.errors import RecoveringError, RecoveryError, StoreError, TransitionError, UnknownMatterError
from village_agent.migrations import VILLAGE_MIGRATIONS

log = logging.getLogger("village_agent.store")
CATALOG_TEXT_META = "catalog_toml"
CATALOG_VERSION_META = "catalog_version"
# Set by `village-agent restore`: until the township's copies of later records are back, nothing is signed.
RECOVERING_META = "recovering_since_ms"
RECOVERING_ZH = ("本机数据是从备份恢复的：备份之后登记的记录可能已经上报乡镇，须先连接乡镇同步一次"
                 "（village-agent sync 或网页中的同步），取回这些记录后才能继续登记，以免序号重复造成分叉。本条记录未保存。")

metadata = MetaData()

meta = Table("meta", metadata, Column("key", String(64), primary_key=True), Column("value", Text, nullable=False))

ledger = Table(
    "ledger", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("record_id", String(36), nullable=False, unique=True),
    Column("body_kind", String(40), nullable=False),
    Column("matter_id", String(36), index=True),
    Column("payload", LargeBinary, nullable=False),
    Column("signature", LargeBinary, nullable=False),
    Column("hash", LargeBinary, nullable=False),
    Column("claimed_time_ms", BigInteger, nullable=False),
    Column("applied_order", BigInteger, nullable=False, unique=True),
)

outbox = Table(
    "outbox", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("queued_at_ms", BigInteger, nullable=False),
)

receipt = Table(
    "receipt", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("envelope", LargeBinary, nullable=False),
    Column("receipt_time_ms", BigInteger, nullable=False),
)

down_record = Table(
    "down_record", metadata,
    Column("local_id", Integer, primary_key=True, autoincrement=True),
    Column("record_id", String(36), nullable=False, unique=True),
    Column("body_kind", String(40), nullable=False),
    Column("matter_id", String(36), index=True),
    Column("envelope", LargeBinary, nullable=False),
    Column("applied_order", BigInteger, nullable=False, unique=True),
)

matter = Table(
    "matter", metadata,
    Column("matter_id", String(36), primary_key=True),
    Column("state_json", Text, nullable=False),
    Column("status", String(24), nullable=False, index=True),
    Column("catalog_code", String(32), nullable=False),
    Column("id_lookup_hash", LargeBinary, index=True),
    Column("lookup_code", String(16), unique=True),
    Column("filed_seq", Integer, nullable=False, index=True),
    Column("due_at_ms", BigInteger, nullable=False, default=0),
)

# Names, phones and addresses, encrypted under the vault key (never derived from the ledger,
# whose copies are sealed to the township and unreadable here).
applicant_private = Table(
    "applicant_private", metadata,
    Column("matter_id", String(36), primary_key=True),
    Column("blob", LargeBinary, nullable=False),
)

appointment = Table(
    "appointment", metadata,
    Column("appointment_id", String(36), primary_key=True),
    Column("matter_id", String(36)),
    Column("scheduled_at_ms", BigInteger, nullable=False, index=True),
    Column("place", Integer, nullable=False),
    Column("purpose", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("private_blob", LargeBinary),
)


@dataclass(frozen=True)
class LedgerRow:
    seq: int
    envelope: envelope_pb2.Envelope
    claimed_time_ms: int


def _state_to_json(state: MatterState) -> str:
    doc = dict(state.__dict__)
    doc["status"] = state.status.value
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def _state_from_json(text: str) -> MatterState:
    doc = json.loads(text)
    doc["status"] = MatterStatus(doc["status"])
    for key in ("materials", "tolerated_missing", "notes", "not_applicable"):
        doc[key] = tuple(doc.get(key, ()))
    return MatterState(**doc)


class AgentStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.engine: Engine = make_engine(f"sqlite:///{path}", synchronous="FULL", busy_timeout_ms=10_000, foreign_keys=True)
        try:
            upgrade_to_head(self.engine, VILLAGE_MIGRATIONS)
        except BaseException:
            self.engine.dispose()
            raise

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One write transaction; disk-full and read-only errors become a Chinese `StoreError`."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except OperationalError as exc:
            raise StoreError(_explain(exc)) from exc

    # ------------------------------------------------------------ meta

    @staticmethod
    def _get_meta(conn: Connection, key: str, default: str = "") -> str:
        value = conn.execute(select(meta.c.value).where(meta.c.key == key)).scalar()
        return default if value is None else str(value)

    @staticmethod
    def _set_meta(conn: Connection, key: str, value: str) -> None:
        from sqlalchemy.dialects.sqlite import insert

        stmt = insert(meta).values(key=key, value=value)
        conn.execute(stmt.on_conflict_do_update(index_elements=[meta.c.key], set_={"value": value}))

    def get_meta(self, key: str, default: str = "") -> str:
        with self.engine.connect() as conn:
            return self._get_meta(conn, key, default)

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as conn:
            self._set_meta(conn, key, value)

    def _next_order(self, conn: Connection) -> int:
        order = int(self._get_meta(conn, "applied_order", "0")) + 1
        self._set_meta(conn, "applied_order", str(order))
        return order

    def tip(self) -> ChainTip:
        with self.engine.connect() as conn:
            return self._tip(conn)

    def _tip(self, conn: Connection) -> ChainTip:
        row = conn.execute(select(ledger.c.seq, ledger.c.hash).order_by(ledger.c.seq.desc()).limit(1)).first()
        return GENESIS if row is None else ChainTip(int(row.seq), bytes(row.hash))

    # ------------------------------------------------------------ the one write path

    def append(
        self,
        signer: Signer,
        record: records_pb2.Record,
        claimed_time_ms: int,
        *,
        queued_at_ms: int,
        private_blob: bytes | None = None,
        lookup_code: str | None = None,
        id_lookup_hash: bytes | None = None,
        appointment_blob: bytes | None = None,
        then: Callable[[Connection], Sequence[records_pb2.Record]] | None = None,
    ) -> SignedRecord:
        """Sign `record` as the next link and commit it with its outbox row and projections.

        `then` runs in the same transaction once the record is projected, and returns records to sign
        as the following links: the documents the record issues (numbered here, so a rolled-back
        filing leaves no number behind; `village_agent.receipt.VillageDocuments`).

        An appointment's outcome (kept or forfeited) is checked inside the write transaction
        (`BEGIN IMMEDIATE`): of a visit and a forfeiture racing for one appointment, from two threads
        or two processes, exactly one is recorded; the other raises `TransitionError` and writes nothing.
        """
        with self.transaction() as conn:
            # Checked inside the write transaction: a restore marks the file, so no process signs past it.
            if self._get_meta(conn, RECOVERING_META, ""):
                raise RecoveringError(RECOVERING_ZH)
            self._check_appointment_open(conn, record)
            signed = self._write(conn, signer, record, claimed_time_ms, queued_at_ms)
            matter_id = _matter_id_of(record)
            self._project(conn, record, lookup_code=lookup_code, id_lookup_hash=id_lookup_hash)
            if private_blob is not None and matter_id:
                conn.execute(applicant_private.insert().values(matter_id=matter_id, blob=private_blob))
            self._project_appointment(conn, record, appointment_blob)
            for follower in then(conn) if then is not None else ():
                self._write(conn, signer, follower, claimed_time_ms, queued_at_ms)
        return signed

    def sign_in(self, signer: Signer, build: Callable[[Connection], Sequence[records_pb2.Record]], claimed_time_ms: int,
                *, queued_at_ms: int) -> int:
        """Sign the records `build` makes inside one write transaction (a document first printed for a
        matter filed before documents were numbered at filing); returns how many were signed."""
        with self.transaction() as conn:
            if self._get_meta(conn, RECOVERING_META, ""):
                raise RecoveringError(RECOVERING_ZH)
            records = list(build(conn))
            for record in records:
                self._write(conn, signer, record, claimed_time_ms, queued_at_ms)
        return len(records)

    def _write(self, conn: Connection, signer: Signer, record: records_pb2.Record, claimed_time_ms: int,
               queued_at_ms: int) -> SignedRecord:
        signed = sign_next(signer, record, self._tip(conn), claimed_time_ms)
        matter_id = _matter_id_of(record)
        conn.execute(ledger.insert().values(
            seq=signed.seq, record_id=signed.record_id, body_kind=record.WhichOneof("body") or "",
            matter_id=matter_id or None, payload=signed.envelope.payload, signature=signed.envelope.signature,
            hash=signed.hash, claimed_time_ms=claimed_time_ms, applied_order=self._next_order(conn),
        ))
        conn.execute(outbox.insert().values(seq=signed.seq, queued_at_ms=queued_at_ms))
        return signed

    def _project(self, conn: Connection, record: records_pb2.Record, *, lookup_code: str | None = None,
                 id_lookup_hash: bytes | None = None) -> None:
        matter_id = _matter_id_of(record)
        if not matter_id:
            return
        row = conn.execute(select(matter.c.state_json).where(matter.c.matter_id == matter_id)).first()
        before = None if row is None else _state_from_json(row.state_json)
        after = domain.apply(before, record)
        if after is None or after == before:
            return
        values: dict[str, Any] = dict(state_json=_state_to_json(after), status=after.status.value,
                                      catalog_code=after.catalog_code, filed_seq=after.filed_seq, due_at_ms=after.due_at_ms)
        if before is None:
            conn.execute(matter.insert().values(matter_id=matter_id, lookup_code=lookup_code,
                                                id_lookup_hash=id_lookup_hash, **values))
        else:
            conn.execute(matter.update().where(matter.c.matter_id == matter_id).values(**values))

    @staticmethod
    def _check_appointment_open(conn: Connection, record: records_pb2.Record) -> None:
        kind = record.WhichOneof("body")
        if kind == "appointment_forfeited":
            appointment_id = record.appointment_forfeited.appointment_id
        elif kind == "visit_recorded" and record.visit_recorded.appointment_id:
            appointment_id = record.visit_recorded.appointment_id
        else:
            return
        status = conn.execute(select(appointment.c.status).where(appointment.c.appointment_id == appointment_id)).scalar()
        if status is None:
            raise UnknownMatterError("本机没有这个预约，请核对预约号")
        # A visit after a forfeit is still recorded (with its reason, checked by the service); a kept
        # appointment takes nothing more, and a forfeit needs one still open.
        if status == AppointmentStatus.KEPT.value or (kind == "appointment_forfeited" and status != AppointmentStatus.SCHEDULED.value):
            raise TransitionError(f"该预约{AppointmentStatus(status).label_zh}，不能再登记")

    def _project_appointment(self, conn: Connection, record: records_pb2.Record, blob: bytes | None) -> None:
        kind = record.WhichOneof("body")
        if kind == "appointment_made":
            body = record.appointment_made
            conn.execute(appointment.insert().values(
                appointment_id=body.appointment_id, matter_id=body.matter_id or None,
                scheduled_at_ms=body.scheduled_at_ms, place=body.place, purpose=body.purpose,
                status=AppointmentStatus.SCHEDULED.value, private_blob=blob))
        elif kind == "appointment_forfeited":
            conn.execute(appointment.update().where(appointment.c.appointment_id == record.appointment_forfeited.appointment_id)
                         .values(status=AppointmentStatus.FORFEITED.value))
        elif kind == "visit_recorded" and record.visit_recorded.appointment_id:
            conn.execute(appointment.update().where(appointment.c.appointment_id == record.visit_recorded.appointment_id)
                         .values(status=AppointmentStatus.KEPT.value))

    # ------------------------------------------------------------ township records flowing down

    def apply_down(self, envelopes: Sequence[envelope_pb2.Envelope], records: Sequence[records_pb2.Record], next_cursor: int) -> int:
        """Store verified township records, fold them into matters and move the pull cursor, in one
        transaction. Idempotent by record id, so a batch re-sent after a lost reply changes nothing."""
        applied = 0
        with self.transaction() as conn:
            for env, record in zip(envelopes, records, strict=True):
                exists = conn.execute(select(down_record.c.local_id).where(down_record.c.record_id == record.header.record_id)).first()
                if exists is not None:
                    continue
                conn.execute(down_record.insert().values(
                    record_id=record.header.record_id, body_kind=record.WhichOneof("body") or "",
                    matter_id=_matter_id_of(record) or None, envelope=env.SerializeToString(),
                    applied_order=self._next_order(conn)))
                self._project(conn, record)
                if record.WhichOneof("body") == "catalog_update":
                    self._take_catalog(conn, record.catalog_update)
                applied += 1
            start = int(self._get_meta(conn, "pull_cursor", "0"))
            self._set_meta(conn, "pull_cursor", str(max(start, next_cursor)))
        return applied

    def _take_catalog(self, conn: Connection, update: records_pb2.CatalogUpdate) -> None:
        """A catalogue the township signed replaces the one in use, if it validates here too."""
        text = bytes(update.catalog_toml).decode("utf-8", errors="replace")
        try:
            catalog = parse_catalog(text)
        except CatalogError as exc:
            log.warning("catalogue update %s refused: %s", update.version, exc)
            return
        if catalog.version != self._get_meta(conn, CATALOG_VERSION_META, ""):
            self._set_meta(conn, CATALOG_TEXT_META, text)
            self._set_meta(conn, CATALOG_VERSION_META, catalog.version)
            log.info("catalogue %s taken up (%d items)", catalog.version, len(catalog))

    def published_catalog(self) -> Catalog | None:
        """The last catalogue the township sent, or None (the shipped catalogue is then in use)."""
        text = self.get_meta(CATALOG_TEXT_META, "")
        return parse_catalog(text) if text else None

    # ------------------------------------------------------------ reads

    @contextmanager
    def _reading(self, conn: Connection | None) -> Iterator[Connection]:
        """The caller's connection (reads inside a write transaction see its own writes), or a new one."""
        if conn is not None:
            yield conn
        else:
            with self.engine.connect() as fresh:
                yield fresh

    def matter_state(self, matter_id: str, *, conn: Connection | None = None) -> MatterState:
        with self._reading(conn) as conn:
            row = conn.execute(select(matter.c.state_json).where(matter.c.matter_id == matter_id)).first()
        if row is None:
            # The id is internal: the agent knows the matter by its lookup code or its title.
            raise UnknownMatterError("本机没有这个事项，请核对查询码")
        return _state_from_json(row.state_json)

    def has_matter(self, matter_id: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(matter.c.matter_id).where(matter.c.matter_id == matter_id)).first() is not None

    def matter_by_lookup_code(self, code: str) -> MatterState:
        with self.engine.connect() as conn:
            row = conn.execute(select(matter.c.state_json).where(matter.c.lookup_code == code.strip().upper())).first()
        if row is None:
            raise UnknownMatterError(f"本机没有查询码为 {code.strip().upper()} 的事项，请核对回执上的查询码")
        return _state_from_json(row.state_json)

    def lookup_code_of(self, matter_id: str, *, conn: Connection | None = None) -> str:
        with self._reading(conn) as conn:
            return str(conn.execute(select(matter.c.lookup_code).where(matter.c.matter_id == matter_id)).scalar() or "")

    def list_matters(self, *, limit: int = 200, offset: int = 0, status: str | None = None) -> list[MatterState]:
        query = select(matter.c.state_json).order_by(matter.c.filed_seq.desc()).limit(limit).offset(offset)
        if status:
            query = query.where(matter.c.status == status)
        with self.engine.connect() as conn:
            return [_state_from_json(r.state_json) for r in conn.execute(query)]

    def count_matters(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(matter)).scalar() or 0)

    def matters_for_id_hash(self, id_lookup_hash: bytes) -> list[MatterState]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(matter.c.state_json).where(matter.c.id_lookup_hash == id_lookup_hash)
                                .order_by(matter.c.filed_seq.desc()))
            return [_state_from_json(r.state_json) for r in rows]

    def private_blob(self, matter_id: str, *, conn: Connection | None = None) -> bytes | None:
        with self._reading(conn) as conn:
            value = conn.execute(select(applicant_private.c.blob).where(applicant_private.c.matter_id == matter_id)).scalar()
        return None if value is None else bytes(value)

    def appointments(self, *, status: AppointmentStatus | None = None, scheduled_through_ms: int | None = None) -> list[Any]:
        query = select(appointment).order_by(appointment.c.scheduled_at_ms)
        if status is not None:
            query = query.where(appointment.c.status == status.value)
        if scheduled_through_ms is not None:
            query = query.where(appointment.c.scheduled_at_ms <= scheduled_through_ms)
        with self.engine.connect() as conn:
            return list(conn.execute(query))

    def appointment_row(self, appointment_id: str) -> Any:
        with self.engine.connect() as conn:
            row = conn.execute(select(appointment).where(appointment.c.appointment_id == appointment_id)).first()
        if row is None:
            raise UnknownMatterError("本机没有这个预约，请核对预约号")
        return row

    def appointment_ids_starting(self, prefix: str, limit: int = 2) -> list[str]:
        """Appointment ids beginning with `prefix` (the short 预约号 the CLI prints), at most `limit`."""
        like = prefix.strip().lower().replace("%", "").replace("_", "") + "%"
        with self.engine.connect() as conn:
            return [str(r.appointment_id) for r in conn.execute(
                select(appointment.c.appointment_id).where(appointment.c.appointment_id.like(like)).limit(limit))]

    def filing_record(self, matter_id: str, *, conn: Connection | None = None) -> records_pb2.Record:
        """The signed `request_filed` record of a matter, as stored: what the villager was told comes from here."""
        with self._reading(conn) as conn:
            payload = conn.execute(select(ledger.c.payload).where(ledger.c.matter_id == matter_id)
                                   .where(ledger.c.body_kind == "request_filed").order_by(ledger.c.seq).limit(1)).scalar()
        if payload is None:
            raise UnknownMatterError("本机没有这个事项的登记记录")
        return records_pb2.Record.FromString(bytes(payload))

    def receipt_times(self, seqs: Sequence[int]) -> dict[int, int]:
        """The township's receipt time (its own clock, from its signed receipt) for each of `seqs` it has confirmed."""
        wanted = sorted({int(s) for s in seqs if s})
        found: dict[int, int] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), 500):   # SQLite's bound on query parameters
                chunk = wanted[start:start + 500]
                for r in conn.execute(select(receipt.c.seq, receipt.c.receipt_time_ms).where(receipt.c.seq.in_(chunk))):
                    found[int(r.seq)] = int(r.receipt_time_ms)
        return found

    def ledger_rows(self, after_seq: int = 0, limit: int | None = None) -> list[LedgerRow]:
        query = select(ledger.c.seq, ledger.c.payload, ledger.c.signature, ledger.c.claimed_time_ms).where(
            ledger.c.seq > after_seq).order_by(ledger.c.seq)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            rows = list(conn.execute(query))
        key_id = self.get_meta("key_id")
        return [LedgerRow(int(r.seq), envelope_pb2.Envelope(payload=bytes(r.payload), signature=bytes(r.signature), key_id=key_id),
                          int(r.claimed_time_ms)) for r in rows]

    def ledger_records_for(self, matter_id: str) -> list[records_pb2.Record]:
        with self.engine.connect() as conn:
            own = [(r.applied_order, bytes(r.payload)) for r in conn.execute(
                select(ledger.c.applied_order, ledger.c.payload).where(ledger.c.matter_id == matter_id))]
            down = [(r.applied_order, envelope_pb2.Envelope.FromString(bytes(r.envelope)).payload) for r in conn.execute(
                select(down_record.c.applied_order, down_record.c.envelope).where(down_record.c.matter_id == matter_id))]
        return [records_pb2.Record.FromString(p) for _, p in sorted(own + down)]

    def outbox_size(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(outbox)).scalar() or 0)

    # ------------------------------------------------------------ recovery after a restore

    def recovering(self) -> bool:
        return bool(self.get_meta(RECOVERING_META, ""))

    def mark_recovering(self, now_ms: int) -> None:
        self.set_meta(RECOVERING_META, str(now_ms))

    def own_public_key(self) -> bytes:
        """This device's public key, from seq 1 of its own ledger (its self-signed enrollment)."""
        with self.engine.connect() as conn:
            payload = conn.execute(select(ledger.c.payload).where(ledger.c.seq == 1)).scalar()
            key_id = self._get_meta(conn, "key_id")
        if payload is None:
            raise RecoveryError("本机台账缺少序号 1 的登记记录，无法核验取回的记录")
        public_key = bytes(records_pb2.Record.FromString(bytes(payload)).key_enrollment_requested.public_key)
        if len(public_key) != 32 or key_id_for(public_key) != key_id:
            raise RecoveryError("本机台账的登记记录与本设备密钥不符，无法核验取回的记录")
        return public_key

    def append_recovered(self, envelopes: Sequence[envelope_pb2.Envelope],
                         receipts: Sequence[tuple[int, bytes, int]]) -> ChainTip:
        """Append this device's own records fetched back from the township, each verified (own
        signature, the next seq, the previous record's hash) against the ledger's tip, and keep their
        receipts ((seq, receipt envelope bytes, receipt time), already verified by the caller), in one
        transaction: one record that does not verify and nothing is written. No outbox rows: the
        township holds these records already."""
        public_key = self.own_public_key()
        key_id = key_id_for(public_key)
        directory = InMemoryKeyDirectory([KnownKey(key_id, public_key)])
        with self.transaction() as conn:
            if not self._get_meta(conn, RECOVERING_META, ""):
                raise RecoveryError("本机不在恢复状态，不接收取回的记录")
            tip = self._tip(conn)
            for env in envelopes:
                record, reason, detail = check_link(env, directory, tip, {})
                if reason is not None or record is None:
                    seq = record.header.seq if record is not None else 0
                    why = (reason.label_zh if reason is not None else "无法解码") + (f"（{detail}）" if detail else "")
                    raise RecoveryError(f"乡镇返回的本机记录未通过核验（序号 {seq}：{why}），未写入任何记录")
                payload = bytes(env.payload)
                conn.execute(ledger.insert().values(
                    seq=record.header.seq, record_id=record.header.record_id, body_kind=record.WhichOneof("body") or "",
                    matter_id=_matter_id_of(record) or None, payload=payload, signature=bytes(env.signature),
                    hash=payload_hash(payload), claimed_time_ms=record.header.claimed_time_ms,
                    applied_order=self._next_order(conn)))
                # Personal data of these matters was sealed to the township: none of it comes back.
                self._project(conn, record)
                self._project_appointment(conn, record, None)
                tip = ChainTip(record.header.seq, payload_hash(payload))
            latest = int(self._get_meta(conn, "last_receipt_time_ms", "0"))
            for seq, envelope, receipt_time_ms in receipts:
                if conn.execute(select(receipt.c.seq).where(receipt.c.seq == seq)).first() is None:
                    conn.execute(receipt.insert().values(seq=seq, envelope=envelope, receipt_time_ms=receipt_time_ms))
                latest = max(latest, receipt_time_ms)
            self._set_meta(conn, "last_receipt_time_ms", str(latest))
        return tip

    def finish_recovery(self, receiver_tip: ChainTip, *, now_ms: int) -> int:
        """The township (whose signature the caller verified) holds this device's chain up to
        `receiver_tip`: check the ledger reaches it with the same record there, rebuild the derived
        tables from the ledger, and allow signing again. Returns the number of records replayed."""
        with self.engine.connect() as conn:
            local = self._tip(conn)
            held = conn.execute(select(ledger.c.hash).where(ledger.c.seq == receiver_tip.seq)).scalar()
        if receiver_tip.seq > local.seq:
            raise RecoveryError(f"乡镇已收到本机序号 {receiver_tip.seq} 及以前的记录，本机只取回到序号 {local.seq}，请再同步一次")
        if receiver_tip.seq > 0 and (held is None or bytes(held) != receiver_tip.hash):
            raise RecoveryError(f"本机台账与乡镇收到的记录在序号 {receiver_tip.seq} 处不一致（可能已出现分叉），"
                                "请不要继续登记，并联系乡镇便民服务中心")
        replayed = self.rebuild_projections()
        with self.transaction() as conn:
            conn.execute(delete(meta).where(meta.c.key == RECOVERING_META))
            self._set_meta(conn, "recovered_at_ms", str(now_ms))
            self._set_meta(conn, "recovered_through_seq", str(receiver_tip.seq))
        log.info("recovery finished: township tip %d, ledger tip %d, %d records replayed", receiver_tip.seq, local.seq, replayed)
        return replayed

    # ------------------------------------------------------------ rebuild

    def rebuild_projections(self) -> int:
        """Drop the derived matter and appointment rows and replay every record in applied order."""
        with self.transaction() as conn:
            kept = {r.matter_id: (r.lookup_code, r.id_lookup_hash) for r in conn.execute(
                select(matter.c.matter_id, matter.c.lookup_code, matter.c.id_lookup_hash))}
            blobs = {r.appointment_id: r.private_blob
                     for r in conn.execute(select(appointment.c.appointment_id, appointment.c.private_blob))}
            conn.execute(delete(matter))
            conn.execute(delete(appointment))
            own = [(r.applied_order, bytes(r.payload)) for r in conn.execute(select(ledger.c.applied_order, ledger.c.payload))]
            down = [(r.applied_order, envelope_pb2.Envelope.FromString(bytes(r.envelope)).payload)
                    for r in conn.execute(select(down_record.c.applied_order, down_record.c.envelope))]
            count = 0
            for _, payload in sorted(own + down):
                record = records_pb2.Record.FromString(payload)
                matter_id = _matter_id_of(record)
                code, id_hash = kept.get(matter_id, (None, None))
                self._project(conn, record, lookup_code=code, id_lookup_hash=id_hash)
                kind = record.WhichOneof("body")
                blob = blobs.get(record.appointment_made.appointment_id) if kind == "appointment_made" else None
                self._project_appointment(conn, record, blob)
                count += 1
        return count


def _matter_id_of(record: records_pb2.Record) -> str:
    kind = record.WhichOneof("body")
    if kind is None:
        return ""
    body = getattr(record, kind)
    return str(getattr(body, "matter_id", "") or "")


def _explain(exc: OperationalError) -> str:
    text = str(exc.orig) if exc.orig is not None else str(exc)
    if "full" in text:
        return "磁盘空间不足，本条记录未保存。请清理磁盘后重试，已保存的记录不受影响。"
    if "readonly" in text or "read-only" in text:
        return "数据库文件只读，本条记录未保存。"
    if "locked" in text or "busy" in text:
        return "数据库正忙，本条记录未保存，请稍后重试。"
    # SQLite's own words are English and mean nothing to the agent: they go to the log only.
    log.error("local database write failed: %s", text)
    return "本地数据库写入失败，本条记录未保存，已保存的记录不受影响。请重试；仍不行请把 agent.log 交给县级信息化人员。"
