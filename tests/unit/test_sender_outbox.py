"""`SqlOutbox` is the one sender-side outbox: the township's toward its county (it signs, keeps an
inbox) and the village's toward its township (its store signs and applies records from above)."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    select,
)

from shared.db import make_engine
from shared.envelope import GENESIS, ChainTip, sign_next, sign_receipt
from shared.errors import EnvelopeError, SignatureError
from shared.relay.ports import Outbox, RecoveryLog
from shared.relay.server import recover_tip_signing_bytes
from shared.relay.sql_outbox import SenderTables, SqlOutbox, sender_tables
from shared.signing import Signer, payload_hash
from shared.wire.v1 import envelope_pb2, records_pb2
from tests.relay_fakes import note_record


def _receipt(receiver: Signer, author: Signer, seq: int, payload: bytes, at_ms: int) -> envelope_pb2.Envelope:
    return sign_receipt(receiver, envelope_pb2.Receipt(author_key_id=author.key_id, seq=seq,
                                                      record_hash=payload_hash(payload), receipt_time_ms=at_ms))


def _down(receiver: Signer, i: int) -> envelope_pb2.Envelope:
    payload = sign_next(receiver, note_record(i, "下发"), GENESIS, 1).envelope.payload
    return envelope_pb2.Envelope(payload=payload, signature=receiver.sign(payload), key_id=receiver.key_id)


# ---------------------------------------------------------------- the township's configuration


@pytest.fixture
def township(tmp_path: Path) -> Iterator[tuple[SqlOutbox, Signer, Signer]]:
    metadata = MetaData()
    tables = sender_tables(metadata, "county_")
    engine = make_engine(str(tmp_path / "town.db"))
    metadata.create_all(engine)
    own, county = Signer.generate(), Signer.generate()
    yield SqlOutbox(engine, tables, own_key_id=own.key_id, receiver_key_id=county.key_id,
                    receiver_public_key=county.public_key), own, county
    engine.dispose()


def test_a_signing_sender_queues_each_link_and_drops_it_only_for_the_receivers_matching_receipt(township) -> None:
    outbox, own, county = township
    first = outbox.append(own, note_record(1), now_ms=1_000)
    second = outbox.append(own, note_record(2), now_ms=2_000)
    port: Outbox = outbox   # the client's port, checked by mypy
    assert outbox.tip() == ChainTip(2, second.hash) and outbox.pending_count() == 2
    assert [e.payload for e in port.pending(10)] == [first.envelope.payload, second.envelope.payload]
    forged = _receipt(Signer.generate(), own, 1, first.envelope.payload, 5_000)
    wrong_hash = _receipt(county, own, 2, first.envelope.payload, 5_000)
    assert outbox.confirm([forged, wrong_hash], now_ms=5_000) == 0
    assert outbox.confirm([_receipt(county, own, 1, first.envelope.payload, 5_000)], now_ms=5_000) == 1
    assert outbox.pending_count() == 1 and outbox.oldest_pending_ms() == 2_000
    held = outbox.unapplied_receipts()
    assert [(h.seq, h.receipt_time_ms) for h in held] == [(1, 5_000)]
    assert outbox.resend_from(1, now_ms=6_000) == 1 and outbox.pending_count() == 2


def test_a_page_from_above_is_kept_in_the_inbox_and_a_forged_one_moves_nothing(township) -> None:
    outbox, _own, county = township
    assert outbox.apply_down([_down(county, 1), _down(county, 2)], 2) == 2
    assert outbox.pull_cursor() == 2 and len(outbox.unapplied_inbox()) == 2
    with pytest.raises(EnvelopeError, match="上级下发的记录签名无效"):
        outbox.apply_down([_down(county, 3), _down(Signer.generate(), 4)], 4)
    assert outbox.pull_cursor() == 2 and len(outbox.unapplied_inbox()) == 2


def test_a_sender_without_a_recovery_store_never_recovers(township) -> None:
    outbox, own, _county = township
    assert isinstance(outbox, RecoveryLog) and not outbox.recovering()
    with pytest.raises(EnvelopeError):
        outbox.finish_recovery(GENESIS, receiver_key_id=own.key_id, signature=b"", nonce=b"")


# ---------------------------------------------------------------- the village's configuration


class _Store:
    """A sender's store that signs and applies records from above itself (like the village's):
    real tables on a real SQLite file."""

    def __init__(self, engine: Engine, tables: SenderTables, down: Table) -> None:
        self.engine, self.t, self.down = engine, tables, down
        self.restored = True
        self.finished: list[tuple[ChainTip, int]] = []
        self.appended: list[tuple[int, bytes, int]] = []

    def sign(self, signer: Signer, record: records_pb2.Record, now_ms: int) -> bytes:
        with self.engine.begin() as conn:
            row = conn.execute(select(self.t.ledger.c.seq, self.t.ledger.c.hash).order_by(self.t.ledger.c.seq.desc())).first()
            tip = GENESIS if row is None else ChainTip(int(row.seq), bytes(row.hash))
            signed = sign_next(signer, record, tip, now_ms)
            conn.execute(insert(self.t.ledger).values(seq=signed.seq, hash=signed.hash, payload=signed.envelope.payload,
                                                      signature=signed.envelope.signature))
            conn.execute(insert(self.t.outbox).values(seq=signed.seq, queued_at_ms=now_ms))
        return signed.envelope.payload

    def apply_down(self, envelopes: Sequence[envelope_pb2.Envelope], records: Sequence[records_pb2.Record],
                   next_cursor: int) -> int:
        with self.engine.begin() as conn:
            conn.execute(insert(self.down), [{"payload": e.payload} for e in envelopes])
            conn.execute(insert(self.t.state).values(key="pull_cursor", value=str(next_cursor)))
        return len(envelopes)

    def recovering(self) -> bool:
        return self.restored

    def append_recovered(self, envelopes: Sequence[envelope_pb2.Envelope],
                         receipts: Sequence[tuple[int, bytes, int]]) -> ChainTip:
        self.appended.extend(receipts)
        return GENESIS

    def finish_recovery(self, receiver_tip: ChainTip, *, now_ms: int) -> None:
        self.finished.append((receiver_tip, now_ms))
        self.restored = False


@pytest.fixture
def village(tmp_path: Path) -> Iterator[tuple[SqlOutbox, _Store, Signer, Signer, list[Sequence[records_pb2.Record]]]]:
    metadata = MetaData()
    # The village's shapes: no `applied` on receipts, no inbox, the key/value table is its `meta`.
    tables = SenderTables(
        ledger=Table("ledger", metadata, Column("seq", BigInteger, primary_key=True, autoincrement=False),
                     Column("hash", LargeBinary, nullable=False), Column("payload", LargeBinary, nullable=False),
                     Column("signature", LargeBinary, nullable=False)),
        outbox=Table("outbox", metadata, Column("seq", BigInteger, primary_key=True, autoincrement=False),
                     Column("queued_at_ms", BigInteger, nullable=False)),
        receipt=Table("receipt", metadata, Column("seq", BigInteger, primary_key=True, autoincrement=False),
                      Column("envelope", LargeBinary, nullable=False), Column("receipt_time_ms", BigInteger, nullable=False)),
        inbox=None,
        state=Table("meta", metadata, Column("key", String(64), primary_key=True), Column("value", Text, nullable=False)))
    down = Table("down_record", metadata, Column("local_id", Integer, primary_key=True),
                 Column("payload", LargeBinary, nullable=False))
    engine = make_engine(str(tmp_path / "village.db"), foreign_keys=True)
    metadata.create_all(engine)
    store = _Store(engine, tables, down)
    own, township = Signer.generate(), Signer.generate()
    taken_up: list[Sequence[records_pb2.Record]] = []
    outbox = SqlOutbox(engine, tables, own_key_id=own.key_id, receiver_key_id=township.key_id,
                       receiver_public_key=township.public_key, signs=False, down=store, recovery=store,
                       on_down=taken_up.append, sync_marks=True, receiver_label_zh="乡镇")
    yield outbox, store, own, township, taken_up
    engine.dispose()


def test_a_sender_whose_store_signs_takes_its_tip_from_the_ledger_and_keeps_sync_marks(village) -> None:
    outbox, store, own, township, _taken_up = village
    payload = store.sign(own, note_record(1), 1_000)
    store.sign(own, note_record(2), 2_000)
    assert outbox.tip().seq == 2 and outbox.own_tip() == outbox.tip()
    with pytest.raises(EnvelopeError):
        outbox.append(own, note_record(3), now_ms=3_000)   # the store signs, not the outbox
    assert outbox.confirm([_receipt(township, own, 1, payload, 7_000)], now_ms=8_000) == 1
    with store.engine.connect() as conn:
        marks = {r.key: r.value for r in conn.execute(select(store.t.state.c.key, store.t.state.c.value))}
        receipts = conn.execute(select(func.count()).select_from(store.t.receipt)).scalar()
    assert marks == {"last_receipt_time_ms": "7000", "last_sync_at_ms": "8000"} and receipts == 1
    assert outbox.pending_count() == 1


def test_a_page_from_above_goes_to_the_store_at_once_and_then_to_the_hook(village) -> None:
    outbox, store, _own, township, taken_up = village
    assert outbox.apply_down([_down(township, 1)], 1) == 1
    assert outbox.pull_cursor() == 1 and len(taken_up) == 1
    with pytest.raises(EnvelopeError, match="乡镇下发的记录签名无效"):
        outbox.apply_down([_down(Signer.generate(), 2)], 2)
    assert outbox.pull_cursor() == 1 and len(taken_up) == 1


def test_recovery_hands_the_store_only_verified_receipts_and_a_tip_the_receiver_signed(village) -> None:
    outbox, store, own, township, _taken_up = village
    assert outbox.recovering()
    signed = sign_next(own, note_record(1), GENESIS, 1_000)
    good = _receipt(township, own, 1, signed.envelope.payload, 4_000)
    with pytest.raises(SignatureError, match="乡镇返回的回执未通过核验"):
        outbox.append_recovered([signed.envelope], [_receipt(Signer.generate(), own, 1, signed.envelope.payload, 4_000)])
    assert store.appended == []
    outbox.append_recovered([signed.envelope], [good])
    assert store.appended == [(1, good.SerializeToString(), 4_000)]
    tip, nonce = ChainTip(1, signed.hash), b"n" * 16
    with pytest.raises(SignatureError, match="链尾签名无效"):
        outbox.finish_recovery(tip, receiver_key_id=township.key_id, nonce=nonce,
                               signature=Signer.generate().sign(recover_tip_signing_bytes(own.key_id, 1, signed.hash, nonce)))
    assert outbox.recovering()
    outbox.finish_recovery(tip, receiver_key_id=township.key_id, nonce=nonce,
                           signature=township.sign(recover_tip_signing_bytes(own.key_id, 1, signed.hash, nonce)))
    assert not outbox.recovering() and store.finished[0][0] == tip


def test_an_outbox_with_neither_inbox_nor_down_sink_is_refused(tmp_path: Path) -> None:
    metadata = MetaData()
    tables = sender_tables(metadata, "x_")
    engine = make_engine(str(tmp_path / "x.db"))
    try:
        with pytest.raises(ValueError):
            SqlOutbox(engine, SenderTables(tables.ledger, tables.outbox, tables.receipt, None, tables.state),
                      own_key_id="a", receiver_key_id="b", receiver_public_key=b"")
    finally:
        engine.dispose()
