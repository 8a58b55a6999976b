"""Writes `tests/vectors/wire-v1.json`, the test vectors of the wire contract (docs/wire-v1.md).

    .venv/bin/python -m tests.vectors.make_wire_v1 > tests/vectors/wire-v1.json

Every input is fixed (seeds, record ids, times, nonces, the sealed box's ephemeral key), so the file is
the same on every run; `tests/unit/test_wire_vectors.py` recomputes each value with the project's own
code and fails if one changes. Another implementation checks itself against the same file.
"""
from __future__ import annotations

import hashlib
import json
import sys
from typing import Any

import nacl.bindings
import nacl.encoding
import nacl.hash

from shared.domain.lookup_code import lookup_code_hash
from shared.envelope import GENESIS, sign_next, sign_receipt
from shared.keys import enrollment_uri, fingerprint
from shared.relay.server import pull_signing_bytes, recover_signing_bytes, recover_tip_signing_bytes
from shared.signing import Signer
from shared.wire.v1 import envelope_pb2, records_pb2

VILLAGE_SEED = bytes(range(32))
TOWNSHIP_SEED = bytes(range(32, 64))
EPHEMERAL_X25519_SECRET = bytes(range(64, 96))
CLAIMED_MS = 1_764_921_600_000          # 2025-12-05 08:00:00 UTC
RECEIPT_MS = 1_764_921_660_000
NONCE = bytes(range(16))
RECORD_IDS = ["6f1c2b3a-0d4e-4f5a-8b6c-7d8e9f0a1b2c", "0a9b8c7d-6e5f-4a3b-9c2d-1e0f2a3b4c5d",
              "f0e1d2c3-b4a5-4968-8776-655443322110"]


def seal_with_ephemeral(ed25519_public_key: bytes, plaintext: bytes, ephemeral_secret: bytes) -> tuple[bytes, bytes]:
    """libsodium's `crypto_box_seal`, with the ephemeral X25519 key given instead of drawn:
    epk || crypto_box(plaintext, nonce = BLAKE2b-192(epk || rpk), rpk, esk), where rpk is the
    recipient's Ed25519 key converted to X25519. Returns (recipient X25519 key, sealed bytes)."""
    rpk = nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(ed25519_public_key)
    epk = nacl.bindings.crypto_scalarmult_base(ephemeral_secret)
    nonce = nacl.hash.blake2b(epk + rpk, digest_size=24, encoder=nacl.encoding.RawEncoder)
    return rpk, epk + nacl.bindings.crypto_box(plaintext, nonce, rpk, ephemeral_secret)


def _key(seed: bytes) -> dict[str, str]:
    signer = Signer(seed)
    return {"seed_hex": seed.hex(), "public_key_hex": signer.public_key.hex(), "key_id": signer.key_id,
            "fingerprint": fingerprint(signer.public_key), "enrollment_code": enrollment_uri(signer.public_key)}


def _records(village: Signer) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    tip = GENESIS
    bodies: list[records_pb2.Record] = []
    first = records_pb2.Record()
    enrol = first.key_enrollment_requested
    enrol.public_key, enrol.role = village.public_key, records_pb2.KEY_ROLE_VILLAGE_AGENT
    enrol.holder_name, enrol.village_code, enrol.fingerprint = "王小明", "V001", fingerprint(village.public_key)
    bodies.append(first)
    for i in (2, 3):
        record = records_pb2.Record()
        record.withdrawn.matter_id = f"00000000-0000-4000-8000-00000000000{i}"
        record.withdrawn.reason = "申请人撤回"
        bodies.append(record)
    for i, record in enumerate(bodies):
        record.header.record_id = RECORD_IDS[i]
        signed = sign_next(village, record, tip, CLAIMED_MS + i * 60_000)
        out.append({"seq": signed.seq, "record_id": signed.record_id, "claimed_time_ms": CLAIMED_MS + i * 60_000,
                    "body": record.WhichOneof("body"), "prev_hash_hex": tip.hash.hex(),
                    "payload_hex": signed.envelope.payload.hex(), "hash_hex": signed.hash.hex(),
                    "signature_hex": signed.envelope.signature.hex()})
        tip = signed.tip
    return out


def vectors() -> dict[str, Any]:
    village, township = Signer(VILLAGE_SEED), Signer(TOWNSHIP_SEED)
    records = _records(village)
    last = records[-1]
    receipt = envelope_pb2.Receipt(author_key_id=village.key_id, seq=last["seq"], record_hash=bytes.fromhex(last["hash_hex"]),
                                   receipt_time_ms=RECEIPT_MS, contiguous_through_seq=last["seq"])
    signed_receipt = sign_receipt(township, receipt)
    pull = pull_signing_bytes(village.key_id, 41, 200, NONCE, CLAIMED_MS)
    recover = recover_signing_bytes(village.key_id, 2, 200, NONCE, CLAIMED_MS)
    tip_bytes = recover_tip_signing_bytes(village.key_id, last["seq"], bytes.fromhex(last["hash_hex"]), NONCE)
    witness = json.dumps({"witness_name": "李大爷", "statement": "本人确认申请人口头委托"}, ensure_ascii=False).encode()
    details = records_pb2.ApplicantDetails(name="张三", id_number="11010519491231002X", phone="13812345678",
                                           address="青石镇一村3组").SerializeToString()
    rpk, sealed = seal_with_ephemeral(township.public_key, details, EPHEMERAL_X25519_SECRET)
    return {
        "format": "quancheng wire v1 test vectors",
        "spec": "docs/wire-v1.md",
        "keys": {"village": _key(VILLAGE_SEED), "township": _key(TOWNSHIP_SEED)},
        "chain": records,
        "receipt": {"signed_by": "township", "author_key_id": village.key_id, "seq": last["seq"],
                    "record_hash_hex": last["hash_hex"], "receipt_time_ms": RECEIPT_MS,
                    "receiver_key_id": township.key_id, "contiguous_through_seq": last["seq"],
                    "payload_hex": signed_receipt.payload.hex(), "signature_hex": signed_receipt.signature.hex()},
        "pull": {"key_id": village.key_id, "after_cursor": 41, "max_records": 200, "requested_at_ms": CLAIMED_MS,
                 "nonce_hex": NONCE.hex(), "signing_string": pull.decode("ascii"),
                 "signature_hex": village.sign(pull).hex()},
        "recover": {"key_id": village.key_id, "after_seq": 2, "max_records": 200, "requested_at_ms": CLAIMED_MS,
                    "nonce_hex": NONCE.hex(), "signing_string": recover.decode("ascii"),
                    "signature_hex": village.sign(recover).hex()},
        "recover_tip": {"key_id": village.key_id, "tip_seq": last["seq"], "tip_hash_hex": last["hash_hex"],
                        "nonce_hex": NONCE.hex(), "signing_string": tip_bytes.decode("ascii"),
                        "signature_hex": township.sign(tip_bytes).hex()},
        "sealed_box": {"recipient": "township", "recipient_x25519_public_key_hex": rpk.hex(),
                       "ephemeral_x25519_secret_hex": EPHEMERAL_X25519_SECRET.hex(),
                       "ephemeral_x25519_public_key_hex": sealed[:32].hex(),
                       "nonce_hex": nacl.hash.blake2b(sealed[:32] + rpk, digest_size=24, encoder=nacl.encoding.RawEncoder).hex(),
                       "plaintext_hex": details.hex(), "plaintext_is": "ApplicantDetails", "sealed_hex": sealed.hex()},
        "lookup_code": {"as_typed": " ab3cd-ef4gh", "hash_input": "AB3CD-EF4GH",
                        "sha256_hex": lookup_code_hash(" ab3cd-ef4gh").hex()},
        "witness_evidence": {"witness_name": "李大爷", "statement": "本人确认申请人口头委托",
                             "bytes_utf8": witness.decode("utf-8"), "sha256_hex": hashlib.sha256(witness).hexdigest()},
    }


if __name__ == "__main__":
    json.dump(vectors(), sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")
