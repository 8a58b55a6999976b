"""The wire contract's test vectors (`tests/vectors/wire-v1.json`, docs/wire-v1.md) hold for this code:
key ids, fingerprints, 登记码, record hashes and the prev_hash chain, receipt bytes, the Pull, Recover
and RecoverTip signing strings, a sealed box with a fixed ephemeral key, the lookup-code hash input
and the witness evidence bytes. Another implementation checks itself against the same file."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from shared.domain.lookup_code import lookup_code_hash
from shared.envelope import GENESIS_HASH, open_receipt, open_record
from shared.keys import enrollment_uri, fingerprint, parse_enrollment_uri
from shared.relay.server import is_record_id, pull_signing_bytes, recover_signing_bytes, recover_tip_signing_bytes
from shared.sealing import open_sealed
from shared.signing import Signer, is_valid, key_id_for, payload_hash
from shared.wire.v1 import envelope_pb2, records_pb2
from tests.vectors.make_wire_v1 import seal_with_ephemeral, vectors

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "wire-v1.json"


@pytest.fixture(scope="module")
def v() -> dict[str, Any]:
    return json.loads(VECTORS.read_text(encoding="utf-8"))


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def test_the_committed_vectors_are_what_the_generator_writes(v: dict[str, Any]) -> None:
    assert v == json.loads(json.dumps(vectors(), ensure_ascii=False))


@pytest.mark.parametrize("who", ["village", "township"])
def test_key_id_fingerprint_and_enrollment_code_follow_from_the_public_key(v: dict[str, Any], who: str) -> None:
    key = v["keys"][who]
    public = h(key["public_key_hex"])
    assert Signer(h(key["seed_hex"])).public_key == public
    assert key["key_id"] == hashlib.sha256(public).hexdigest()[:32] == key_id_for(public)
    digest = hashlib.sha256(b"quancheng-fingerprint|" + public).digest()
    assert key["fingerprint"] == " ".join(f"{int.from_bytes(digest[i * 5:i * 5 + 5], 'big') % 100_000:05d}" for i in range(4))
    assert key["fingerprint"] == fingerprint(public)
    assert key["enrollment_code"] == enrollment_uri(public) and parse_enrollment_uri(key["enrollment_code"]) == public


def test_each_record_hashes_its_payload_chains_to_the_previous_and_is_signed_by_the_village(v: dict[str, Any]) -> None:
    village = v["keys"]["village"]
    previous = GENESIS_HASH
    for i, item in enumerate(v["chain"], start=1):
        payload = h(item["payload_hex"])
        record = open_record(envelope_pb2.Envelope(payload=payload, signature=h(item["signature_hex"]), key_id=village["key_id"]))
        header = record.header
        assert (header.seq, header.record_id, header.author_key_id, header.claimed_time_ms) == (
            i, item["record_id"], village["key_id"], item["claimed_time_ms"])
        assert is_record_id(header.record_id) and record.WhichOneof("body") == item["body"]
        assert header.prev_hash == previous == h(item["prev_hash_hex"])
        assert payload_hash(payload) == h(item["hash_hex"])
        assert is_valid(h(village["public_key_hex"]), payload, h(item["signature_hex"]))
        assert Signer(h(village["seed_hex"])).sign(payload) == h(item["signature_hex"])   # Ed25519 is deterministic
        previous = h(item["hash_hex"])
    first = records_pb2.Record.FromString(h(v["chain"][0]["payload_hex"])).key_enrollment_requested
    assert first.public_key == h(village["public_key_hex"]) and first.fingerprint == village["fingerprint"]


def test_the_receipt_bytes_are_the_serialized_receipt_signed_by_the_township(v: dict[str, Any]) -> None:
    item, township = v["receipt"], v["keys"]["township"]
    envelope = envelope_pb2.Envelope(payload=h(item["payload_hex"]), signature=h(item["signature_hex"]), key_id=township["key_id"])
    receipt = open_receipt(envelope)
    assert (receipt.author_key_id, receipt.seq, receipt.record_hash.hex(), receipt.receipt_time_ms, receipt.receiver_key_id,
            receipt.contiguous_through_seq) == (item["author_key_id"], item["seq"], item["record_hash_hex"],
                                                item["receipt_time_ms"], township["key_id"], item["contiguous_through_seq"])
    assert is_valid(h(township["public_key_hex"]), envelope.payload, envelope.signature)


def test_pull_recover_and_recover_tip_sign_exactly_the_documented_strings(v: dict[str, Any]) -> None:
    village, township = v["keys"]["village"], v["keys"]["township"]
    pull, recover, tip = v["pull"], v["recover"], v["recover_tip"]
    nonce = h(pull["nonce_hex"])
    assert pull["signing_string"] == (f"quancheng.v1.Pull|{pull['key_id']}|{pull['after_cursor']}|{pull['max_records']}|"
                                      f"{pull['requested_at_ms']}|{pull['nonce_hex']}")
    assert pull_signing_bytes(pull["key_id"], pull["after_cursor"], pull["max_records"], nonce,
                              pull["requested_at_ms"]) == pull["signing_string"].encode("ascii")
    assert recover_signing_bytes(recover["key_id"], recover["after_seq"], recover["max_records"], nonce,
                                 recover["requested_at_ms"]) == recover["signing_string"].encode("ascii")
    assert recover_tip_signing_bytes(tip["key_id"], tip["tip_seq"], h(tip["tip_hash_hex"]), nonce) == tip["signing_string"].encode("ascii")
    for item, key in ((pull, village), (recover, village), (tip, township)):
        assert is_valid(h(key["public_key_hex"]), item["signing_string"].encode("ascii"), h(item["signature_hex"]))


def test_the_sealed_box_with_a_fixed_ephemeral_key_is_libsodiums_and_opens_with_the_township_key(v: dict[str, Any]) -> None:
    box, township = v["sealed_box"], v["keys"]["township"]
    rpk, sealed = seal_with_ephemeral(h(township["public_key_hex"]), h(box["plaintext_hex"]), h(box["ephemeral_x25519_secret_hex"]))
    assert (rpk.hex(), sealed.hex()) == (box["recipient_x25519_public_key_hex"], box["sealed_hex"])
    assert sealed[:32] == h(box["ephemeral_x25519_public_key_hex"]) and len(sealed) == 32 + 16 + len(h(box["plaintext_hex"]))
    assert open_sealed(h(township["seed_hex"]), sealed) == h(box["plaintext_hex"])
    details = records_pb2.ApplicantDetails.FromString(h(box["plaintext_hex"]))
    assert details.name == "张三" and details.phone == "13812345678"


def test_the_lookup_code_hash_input_and_the_witness_evidence_bytes(v: dict[str, Any]) -> None:
    code = v["lookup_code"]
    assert lookup_code_hash(code["as_typed"]).hex() == code["sha256_hex"] == hashlib.sha256(code["hash_input"].encode("ascii")).hexdigest()
    witness = v["witness_evidence"]
    text = json.dumps({"witness_name": witness["witness_name"], "statement": witness["statement"]}, ensure_ascii=False)
    assert text == witness["bytes_utf8"] and hashlib.sha256(text.encode("utf-8")).hexdigest() == witness["sha256_hex"]
