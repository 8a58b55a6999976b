"""What the wire contract (docs/wire-v1.md) asks of a receiving tier's relay store, on the township's
and the county's store, each against SQLite and a real PostgreSQL: a batch classified in order as if
each row came alone (a repeat is a duplicate, a different row at a seq taken earlier in the same batch
a fork kept as evidence, new seqs after it quarantined and not written), the claimed-time floor moving
with the tip, record ids found per author, nonces remembered until they expire, and pending
enrollments bounded per address and in total with stale ones forgotten."""
from __future__ import annotations

import pytest

from shared.envelope import GENESIS, sign_next
from shared.relay.errors import EnrollmentLimit
from shared.relay.ports import EnrollmentBounds, KeyState, Outcome
from shared.relay.sql_store import RelayStore
from shared.signing import Signer
from tests.contract.test_town_store import approved, backend_url, enrollment_info, rows_for, store  # noqa: F401 - fixtures
from tests.relay_fakes import enrollment_record


def test_a_repeat_in_one_batch_is_a_duplicate_and_a_different_row_at_a_seq_of_the_batch_is_a_fork(store: RelayStore) -> None:
    signer = approved(store)
    rows = rows_for(signer, 4)
    other = rows_for(signer, 2, GENESIS, salt="restored")          # seq 1 and 2, other bytes
    results = store.store_batch(signer.key_id, GENESIS, [rows[0], rows[1], rows[1], other[1], rows[2]],
                                receipt_time_ms=5_000, claim_floor_ms=4_000)
    assert [r.outcome for r in results] == [Outcome.STORED, Outcome.STORED, Outcome.DUPLICATE, Outcome.FORK,
                                            Outcome.QUARANTINED]
    assert results[2].receipt_time_ms == 5_000
    assert [seq for seq, _, _ in store.ingested(signer.key_id)] == [1, 2]
    assert [(f.seq, f.held_hash, f.hash) for f in store.forks()] == [(2, rows[1].hash, other[1].hash)]
    author = store.author(signer.key_id)
    assert author is not None and author.state is KeyState.QUARANTINED and author.tip.seq == 2
    assert (author.claim_floor_ms, author.last_claimed_ms, author.last_receipt_ms) == (4_000, 1_000, 5_000)
    # A quarantined author's held seqs are still classified; nothing new is written.
    again = store.store_batch(signer.key_id, author.tip, [rows[0]], receipt_time_ms=6_000)
    assert [(r.outcome, r.receipt_time_ms) for r in again] == [(Outcome.DUPLICATE, 5_000)]


def test_a_revoked_key_that_forks_stays_revoked(store: RelayStore) -> None:
    signer = approved(store)
    rows = rows_for(signer, 3)
    store.store_batch(signer.key_id, GENESIS, rows, receipt_time_ms=5_000)
    store.revoke(signer.key_id, by="张三", reason="丢失", now_ms=6_000)
    tip = store.author(signer.key_id).tip
    [result] = store.store_batch(signer.key_id, tip, rows_for(signer, 1, GENESIS, salt="x"), receipt_time_ms=7_000)
    assert result.outcome is Outcome.FORK and store.author(signer.key_id).state is KeyState.REVOKED


def test_record_ids_are_found_per_author(store: RelayStore) -> None:
    a, b = approved(store), approved(store)
    rows = rows_for(a, 2)
    store.store_batch(a.key_id, GENESIS, rows, receipt_time_ms=1)
    assert store.record_ids_taken(a.key_id, [rows[0].record_id, "0a9b8c7d-6e5f-4a3b-9c2d-1e0f2a3b4c5d"]) == {rows[0].record_id}
    assert store.record_ids_taken(b.key_id, [rows[0].record_id]) == set()


def test_a_nonce_is_remembered_until_it_expires(store: RelayStore) -> None:
    key = Signer.generate().key_id
    assert store.remember_nonce(key, b"n" * 16, now_ms=1_000, expires_at_ms=2_000)
    assert not store.remember_nonce(key, b"n" * 16, now_ms=1_500, expires_at_ms=2_500)
    assert store.remember_nonce(Signer.generate().key_id, b"n" * 16, now_ms=1_500, expires_at_ms=2_500)
    assert store.remember_nonce(key, b"n" * 16, now_ms=2_001, expires_at_ms=3_000)   # expired, forgotten


def test_pending_enrollments_are_bounded_per_address_and_in_total_and_stale_ones_go(store: RelayStore) -> None:
    bounds = EnrollmentBounds(per_address=2, total=3, expire_after_ms=10_000)

    def enrol(address: str, now_ms: int) -> None:
        signer = Signer.generate()
        env = sign_next(signer, enrollment_record(signer, "V1"), GENESIS, 0).envelope
        store.enroll(signer.public_key, env, enrollment_info(store), now_ms=now_ms, from_address=address, bounds=bounds)

    enrol("10.0.0.1", 1_000)
    enrol("10.0.0.1", 1_000)
    with pytest.raises(EnrollmentLimit, match="同一地址"):
        enrol("10.0.0.1", 1_000)
    enrol("10.0.0.2", 2_000)
    with pytest.raises(EnrollmentLimit, match="已达 3 个上限"):
        enrol("10.0.0.3", 2_000)
    enrol("10.0.0.3", 11_500)                  # the two from 10.0.0.1 are older than 10 s: forgotten first
    assert sorted(a.enrolled_from for a in store.keys(KeyState.PENDING)) == ["10.0.0.2", "10.0.0.3"]
    assert store.expire_pending(now_ms=30_000, expire_after_ms=10_000) == 2
