"""One contract suite for a receiving tier's relay store (`shared.relay.sql_store.RelayStore`): the
township's `TownStore` over its villages' tables and the county's `HubStore` over its townships' tables,
each run against SQLite and a real PostgreSQL."""
from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import hub.errors
import town_center.errors
from hub.store import HubStore, open_hub_store
from shared.envelope import GENESIS, ChainTip, sign_next
from shared.relay.ports import EnrollmentInfo, IngestRow, KeyState, Outcome
from shared.relay.sql_store import RelayStore
from shared.signing import Signer, payload_hash
from shared.wire.v1 import envelope_pb2, records_pb2
from tests.relay_fakes import note_record
from town_center.store import TownStore, open_town_store


@pytest.fixture(params=["sqlite", "postgres"])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'relay.db'}"
    cluster = request.getfixturevalue("postgres_cluster")
    return str(cluster.create_database(f"relay_{uuid.uuid4().hex[:10]}"))


@pytest.fixture(params=["township", "county"])
def store(request: pytest.FixtureRequest, backend_url: str) -> Iterator[RelayStore]:
    # The county's store is opened as `hub.bootstrap` opens it: with a clock, so its `read` notes pulls.
    s: RelayStore = open_town_store(backend_url) if request.param == "township" else open_hub_store(backend_url, now_ms=lambda: 1)
    yield s
    s.close()


def store_error(store: RelayStore) -> type[Exception]:
    """The error the tier itself raises, so its CLI and console show it as their own."""
    return hub.errors.StoreError if isinstance(store, HubStore) else town_center.errors.StoreError


def unknown_key_error(store: RelayStore) -> type[Exception]:
    return hub.errors.UnknownTownship if isinstance(store, HubStore) else town_center.errors.UnknownAgent


def enrollment_info(store: RelayStore, **kw: str) -> EnrollmentInfo:
    """What a sender at this tier enrols as: a village agent's device at a township, a township's link key at the county."""
    if isinstance(store, HubStore):
        return EnrollmentInfo(role=records_pb2.KEY_ROLE_TOWNSHIP, township_code="T01", **kw)
    assert isinstance(store, TownStore)
    return EnrollmentInfo(role=records_pb2.KEY_ROLE_VILLAGE_AGENT, village_code="V1", **kw)


def rows_for(signer: Signer, n: int, tip: ChainTip = GENESIS, salt: str = "") -> list[IngestRow]:
    out = []
    for _ in range(n):
        signed = sign_next(signer, note_record(tip.seq + 1, salt), tip, 1_000)
        env = signed.envelope
        out.append(IngestRow(signer.key_id, signed.seq, signed.record_id, signed.hash, env.payload, env.signature,
                             1_000, "request_filed"))
        tip = signed.tip
    return out


def approved(store: RelayStore) -> Signer:
    signer = Signer.generate()
    store.register_approved(signer.public_key, enrollment_info(store), by="测试", now_ms=1)
    return signer


def test_a_batch_is_stored_once_and_the_tip_moves_to_its_last_record(store: RelayStore) -> None:
    signer = approved(store)
    rows = rows_for(signer, 20)
    results = store.store_batch(signer.key_id, GENESIS, rows, receipt_time_ms=5_000)
    assert [r.outcome for r in results] == [Outcome.STORED] * 20
    agent = store.author(signer.key_id)
    assert agent is not None and agent.tip == ChainTip(20, rows[-1].hash) and agent.last_receipt_ms == 5_000
    assert [(s, h) for s, h, _ in store.ingested(signer.key_id)] == [(r.seq, r.hash) for r in rows]


def test_the_same_records_again_are_duplicates_with_their_original_receipt_time(store: RelayStore) -> None:
    signer = approved(store)
    rows = rows_for(signer, 5)
    store.store_batch(signer.key_id, GENESIS, rows, receipt_time_ms=5_000)
    tip = store.author(signer.key_id).tip
    again = store.store_batch(signer.key_id, tip, rows, receipt_time_ms=9_999)
    assert [(r.outcome, r.receipt_time_ms) for r in again] == [(Outcome.DUPLICATE, 5_000)] * 5
    assert store.ingest_count() == 5


def test_different_bytes_for_a_held_seq_are_kept_as_fork_evidence_and_quarantine_the_author(store: RelayStore) -> None:
    signer = approved(store)
    rows = rows_for(signer, 5)
    store.store_batch(signer.key_id, GENESIS, rows, receipt_time_ms=5_000)
    tip = store.author(signer.key_id).tip
    other = rows_for(signer, 4, ChainTip(2, rows[1].hash), salt="restored")
    results = store.store_batch(signer.key_id, tip, other[:3], receipt_time_ms=6_000)
    assert [r.outcome for r in results] == [Outcome.FORK] * 3
    assert store.author(signer.key_id).state is KeyState.QUARANTINED
    assert [(f.seq, f.held_hash, f.hash) for f in store.forks()] == [(r.seq, rows[r.seq - 1].hash, r.hash) for r in other[:3]]
    assert [h for _, h, _ in store.ingested(signer.key_id)] == [r.hash for r in rows]   # nothing overwritten
    store.store_batch(signer.key_id, tip, other[:1], receipt_time_ms=7_000)
    assert len(store.forks()) == 3   # the same evidence again is not duplicated


def test_a_stale_tip_or_a_key_that_is_no_longer_approved_writes_nothing(store: RelayStore) -> None:
    signer = approved(store)
    rows = rows_for(signer, 6)
    store.store_batch(signer.key_id, GENESIS, rows[:3], receipt_time_ms=1)
    with pytest.raises(store_error(store)):
        store.store_batch(signer.key_id, GENESIS, rows[3:], receipt_time_ms=2)   # not contiguous with the claimed tip
    # A writer that read an older tip (another stream stored seq 3 meanwhile) gets CONFLICT, not a second row.
    stale = store.store_batch(signer.key_id, ChainTip(2, rows[1].hash), rows[2:4], receipt_time_ms=2)
    assert [r.outcome for r in stale] == [Outcome.CONFLICT] * 2
    store.revoke(signer.key_id, by="张三", reason="丢失", now_ms=3)
    tip = ChainTip(3, rows[2].hash)
    assert [r.outcome for r in store.store_batch(signer.key_id, tip, rows[3:], receipt_time_ms=4)] == [Outcome.CONFLICT] * 3
    assert store.ingest_count() == 3
    agent = store.author(signer.key_id)
    assert agent is not None and agent.state is KeyState.REVOKED and agent.last_valid_seq == 3


def test_revocation_racing_with_ingest_leaves_last_valid_seq_equal_to_what_was_stored(store: RelayStore) -> None:
    signer = approved(store)
    rows = rows_for(signer, 400)
    stored_through: list[int] = []

    def ingest() -> None:
        tip = GENESIS
        for i in range(0, 400, 10):
            results = store.store_batch(signer.key_id, tip, rows[i:i + 10], receipt_time_ms=i)
            if results[0].outcome is not Outcome.STORED:
                break
            tip = ChainTip(rows[i + 9].seq, rows[i + 9].hash)
            stored_through.append(tip.seq)

    t = threading.Thread(target=ingest)
    t.start()
    while not stored_through:
        pass
    agent = store.revoke(signer.key_id, by="张三", reason="丢失", now_ms=1)
    t.join(30)
    assert agent.last_valid_seq == stored_through[-1] == store.ingested(signer.key_id)[-1][0]


def test_enrollment_is_pending_until_approved_and_approval_needs_a_unique_prefix(store: RelayStore) -> None:
    signer = Signer.generate()
    env = envelope_pb2.Envelope(payload=b"e", signature=bytes(64), key_id=signer.key_id)
    agent = store.enroll(signer.public_key, env, enrollment_info(store, holder_name="赵六"), now_ms=10)
    assert agent.state is KeyState.PENDING and store.keys(KeyState.PENDING) == [agent]
    assert store.enroll(signer.public_key, env, enrollment_info(store), now_ms=11).enrolled_at_ms == 10
    with pytest.raises(unknown_key_error(store)):
        store.approve("ffffffffffffffff", by="李四", now_ms=12)
    assert store.approve(signer.key_id[:8], by="李四", now_ms=12).state is KeyState.APPROVED
    with pytest.raises(store_error(store), match="已批准"):
        store.approve(signer.key_id, by="李四", now_ms=13)


def test_a_rotation_row_approves_the_successor_and_closes_the_old_key_at_its_seq(store: RelayStore) -> None:
    old, new = approved(store), Signer.generate()
    rows = rows_for(old, 2)
    record = records_pb2.Record()
    record.key_rotated.new_key_id, record.key_rotated.new_public_key = new.key_id, new.public_key
    signed = sign_next(old, record, ChainTip(2, rows[-1].hash), 1)
    rot = IngestRow(old.key_id, 3, signed.record_id, signed.hash, signed.envelope.payload, signed.envelope.signature, 1,
                    "key_rotated", rotation=(new.key_id, new.public_key))
    store.store_batch(old.key_id, GENESIS, [*rows, rot], receipt_time_ms=9)
    assert (store.author(old.key_id).state, store.author(old.key_id).last_valid_seq) == (KeyState.REVOKED, 3)
    assert store.author(new.key_id).state is KeyState.APPROVED


def test_claimed_time_flags_are_kept_beside_the_rows(store: RelayStore) -> None:
    signer = approved(store)
    rows = rows_for(signer, 3)
    flagged = [rows[0], IngestRow(**{**rows[1].__dict__, "claimed_time_flag": "设备声称时间比乡镇时间快 3653 天"}), rows[2]]
    store.store_batch(signer.key_id, GENESIS, flagged, receipt_time_ms=77)
    assert [(f.seq, f.receipt_time_ms) for f in store.time_flags()] == [(2, 77)]


def test_the_down_log_is_read_by_cursor_per_device_with_broadcasts(store: RelayStore) -> None:
    own = Signer.generate()   # the tier's own signing key
    a, b = Signer.generate().key_id, Signer.generate().key_id
    record = records_pb2.Record()
    record.status_update.matter_id = "m"
    c1 = store.publish(own, record, [a], now_ms=1)
    store.publish(own, records_pb2.Record(), [b], now_ms=2)
    c3 = store.publish(own, records_pb2.Record(), ["*"], now_ms=3)
    envs, cursor = store.read(a, 0, 10)
    assert len(envs) == 2 and cursor == c3
    assert store.read(a, 0, 1)[1] == c1
    assert store.read(a, c3, 10) == ([], c3)
    assert [payload_hash(e.payload) for e in envs][0] != [payload_hash(e.payload) for e in envs][1]
