from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.chain import BreakReason, require_chain, verify_chain
from shared.envelope import GENESIS, open_record, sign_next
from shared.errors import ChainError
from shared.keys import InMemoryKeyDirectory
from shared.signing import Signer
from shared.wire.v1 import envelope_pb2
from tests.chains import BASE_MS, build_chain, envelopes, request_record

SIGNER = Signer.generate()
OTHER = Signer.generate()
CHAIN = build_chain(SIGNER, 12)
ENVS = envelopes(CHAIN)


def directory(*signers: Signer) -> InMemoryKeyDirectory:
    d = InMemoryKeyDirectory()
    for s in signers or (SIGNER,):
        d.add_public_key(s.public_key)
    return d


def copy(env: envelope_pb2.Envelope) -> envelope_pb2.Envelope:
    c = envelope_pb2.Envelope()
    c.CopyFrom(env)
    return c


def test_an_untouched_chain_verifies_and_reports_its_tip() -> None:
    report = verify_chain(ENVS, directory())
    assert report.ok and report.verified == 12
    assert report.tips[SIGNER.key_id] == CHAIN[-1].tip


def test_the_header_links_each_record_to_the_hash_of_the_previous_payload() -> None:
    first, second = open_record(ENVS[0]), open_record(ENVS[1])
    assert first.header.seq == 1 and first.header.prev_hash == bytes(32)
    assert second.header.prev_hash == CHAIN[0].hash
    assert first.header.author_key_id == SIGNER.key_id


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_single_flipped_bit_in_any_stored_record_is_detected(data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(ENVS) - 1))
    target = copy(ENVS[index])
    field = data.draw(st.sampled_from(["payload", "signature", "key_id"]))
    raw = bytearray(getattr(target, field) if field != "key_id" else target.key_id.encode())
    bit = data.draw(st.integers(0, len(raw) * 8 - 1))
    raw[bit // 8] ^= 1 << (bit % 8)
    if field == "key_id":
        try:
            target.key_id = raw.decode()
        except UnicodeDecodeError:
            return  # not representable as a string field: cannot be stored at all
    else:
        setattr(target, field, bytes(raw))
    tampered = ENVS[:index] + [target] + ENVS[index + 1 :]
    report = verify_chain(tampered, directory())
    assert not report.ok
    assert report.first_break is not None and report.first_break.index == index


def test_a_dropped_record_is_classified_as_a_sequence_gap_at_the_record_after_it() -> None:
    report = verify_chain(ENVS[:4] + ENVS[5:], directory())
    brk = report.first_break
    assert brk is not None and brk.reason is BreakReason.SEQ_GAP and brk.seq == 6 and brk.index == 4


def test_a_duplicated_record_is_classified_as_a_duplicate() -> None:
    report = verify_chain(ENVS[:5] + [ENVS[2]] + ENVS[5:], directory())
    brk = report.first_break
    assert brk is not None and brk.reason is BreakReason.DUPLICATE and brk.seq == 3 and brk.index == 5


def test_two_swapped_records_are_classified_as_reordered() -> None:
    swapped = ENVS[:3] + [ENVS[4], ENVS[3]] + ENVS[5:]
    brk = verify_chain(swapped, directory()).first_break
    assert brk is not None and brk.reason is BreakReason.REORDERED and brk.seq == 5


def test_a_different_record_signed_for_a_seen_seq_is_a_fork() -> None:
    forked = sign_next(SIGNER, request_record(999), CHAIN[5].tip, BASE_MS)  # a second seq 7
    brk = verify_chain(ENVS[:8] + [forked.envelope], directory()).first_break
    assert brk is not None and brk.reason is BreakReason.FORK and brk.seq == 7


def test_a_restored_backup_that_reuses_seqs_is_a_fork_not_a_duplicate() -> None:
    # The laptop restored from a backup taken after seq 6 and recorded new, different things.
    restored = build_chain(SIGNER, 3, CHAIN[5].tip)
    brk = verify_chain(ENVS + envelopes(restored), directory()).first_break
    assert brk is not None and brk.reason is BreakReason.FORK and brk.seq == 7


# The same classifications, at any position a damaged log could show them.
_ANY_INDEX = st.integers(1, len(ENVS) - 2)


@settings(max_examples=60, deadline=None)
@given(index=_ANY_INDEX)
def test_a_record_dropped_anywhere_is_a_sequence_gap_at_the_record_after_it(index: int) -> None:
    brk = verify_chain(ENVS[:index] + ENVS[index + 1:], directory()).first_break
    assert brk is not None and brk.reason is BreakReason.SEQ_GAP and brk.index == index and brk.seq == index + 2


@settings(max_examples=60, deadline=None)
@given(index=_ANY_INDEX, data=st.data())
def test_a_record_repeated_anywhere_later_is_a_duplicate(index: int, data: st.DataObject) -> None:
    earlier = data.draw(st.integers(0, index - 1))
    brk = verify_chain(ENVS[:index] + [ENVS[earlier]] + ENVS[index:], directory()).first_break
    assert brk is not None and brk.reason is BreakReason.DUPLICATE and brk.index == index and brk.seq == earlier + 1


@settings(max_examples=60, deadline=None)
@given(index=st.integers(0, len(ENVS) - 2))
def test_two_neighbours_swapped_anywhere_are_reordered(index: int) -> None:
    swapped = ENVS[:index] + [ENVS[index + 1], ENVS[index]] + ENVS[index + 2:]
    brk = verify_chain(swapped, directory()).first_break
    assert brk is not None and brk.reason is BreakReason.REORDERED and brk.index == index


@settings(max_examples=40, deadline=None)
@given(after=st.integers(0, len(ENVS) - 2), salt=st.integers(1000, 10**6))
def test_a_different_record_for_any_seen_seq_is_a_fork(after: int, salt: int) -> None:
    tip = CHAIN[after - 1].tip if after else GENESIS
    forked = sign_next(SIGNER, request_record(salt), tip, BASE_MS)
    brk = verify_chain(ENVS + [forked.envelope], directory()).first_break
    assert brk is not None and brk.reason is BreakReason.FORK and brk.seq == after + 1


def test_a_record_with_the_right_seq_but_wrong_prev_hash_is_named() -> None:
    wrong = sign_next(SIGNER, request_record(50), CHAIN[2].tip, BASE_MS)  # claims seq 4 after seq 3…
    # …then re-sign it as seq 6 with the old prev_hash by hand
    record = open_record(wrong.envelope)
    record.header.seq = 6
    payload = record.SerializeToString()
    env = envelope_pb2.Envelope(payload=payload, signature=SIGNER.sign(payload), key_id=SIGNER.key_id)
    brk = verify_chain(ENVS[:5] + [env], directory()).first_break
    assert brk is not None and brk.reason is BreakReason.WRONG_PREV_HASH and brk.seq == 6


def test_a_record_from_an_unknown_key_is_refused() -> None:
    brk = verify_chain(envelopes(build_chain(OTHER, 2)), directory()).first_break
    assert brk is not None and brk.reason is BreakReason.UNKNOWN_KEY and brk.index == 0


def test_a_revoked_key_keeps_earlier_records_valid_and_refuses_later_ones() -> None:
    keys = directory()
    keys.revoke(SIGNER.key_id, last_valid_seq=7)
    brk = verify_chain(ENVS, keys).first_break
    assert brk is not None and brk.reason is BreakReason.REVOKED_KEY and brk.seq == 8


def test_a_record_signed_by_one_key_under_another_authors_header_is_refused() -> None:
    record = open_record(ENVS[0])
    payload = record.SerializeToString()
    moved = envelope_pb2.Envelope(payload=payload, signature=OTHER.sign(payload), key_id=OTHER.key_id)
    brk = verify_chain([moved], directory(SIGNER, OTHER)).first_break
    assert brk is not None and brk.reason is BreakReason.AUTHOR_MISMATCH


def test_a_signature_moved_onto_another_record_is_refused() -> None:
    moved = copy(ENVS[3])
    moved.signature = ENVS[2].signature
    brk = verify_chain(ENVS[:3] + [moved], directory()).first_break
    assert brk is not None and brk.reason is BreakReason.BAD_SIGNATURE and brk.seq == 4


def test_interleaved_chains_of_two_authors_verify_independently() -> None:
    other = envelopes(build_chain(OTHER, 5))
    mixed = [e for pair in zip(ENVS[:5], other, strict=True) for e in pair] + ENVS[5:]
    report = verify_chain(mixed, directory(SIGNER, OTHER))
    assert report.ok and report.tips[OTHER.key_id].seq == 5


def test_parallel_signature_checking_finds_the_same_first_break() -> None:
    bad = copy(ENVS[9])
    bad.signature = bytes(64)
    tampered = ENVS[:9] + [bad] + ENVS[10:]
    serial = verify_chain(tampered, directory()).first_break
    parallel = verify_chain(tampered, directory(), workers=2).first_break
    assert serial == parallel and serial is not None and serial.reason is BreakReason.BAD_SIGNATURE


def test_strict_verification_raises_a_chain_error_with_a_chinese_message() -> None:
    with pytest.raises(ChainError) as caught:
        require_chain(ENVS[:2] + ENVS[3:], directory())
    assert caught.value.reason is BreakReason.SEQ_GAP and caught.value.seq == 4
    assert "序号缺失" in str(caught.value)
