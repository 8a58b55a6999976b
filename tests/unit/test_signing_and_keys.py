from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import keys, signing
from shared.errors import KeyFileError, SignatureError

FAST_N = 2**14  # the smallest scrypt cost the loader accepts, to keep tests quick


def test_a_signature_verifies_over_exactly_the_signed_bytes() -> None:
    signer = signing.Signer.generate()
    sig = signer.sign(b"payload")
    signing.verify(signer.public_key, b"payload", sig)
    with pytest.raises(SignatureError):
        signing.verify(signer.public_key, b"payload ", sig)


def test_signatures_are_standard_ed25519_that_openssl_also_accepts() -> None:
    signer = signing.Signer.generate()
    sig = signer.sign(b"cross-check")
    Ed25519PublicKey.from_public_bytes(signer.public_key).verify(sig, b"cross-check")


@settings(max_examples=60, deadline=None)
@given(payload=st.binary(min_size=1, max_size=200), data=st.data())
def test_any_single_flipped_bit_in_payload_or_signature_fails_verification(payload: bytes, data: st.DataObject) -> None:
    signer = signing.Signer.generate()
    sig = signer.sign(payload)
    blob = bytearray(payload + sig)
    bit = data.draw(st.integers(0, len(blob) * 8 - 1))
    blob[bit // 8] ^= 1 << (bit % 8)
    assert not signing.is_valid(signer.public_key, bytes(blob[: len(payload)]), bytes(blob[len(payload):]))


def test_a_key_file_loads_with_the_right_passphrase_and_gives_the_same_key(tmp_path: Path) -> None:
    signer = signing.Signer.generate()
    path = tmp_path / "device.key"
    keys.save_key_file(path, signer, "正确的口令 correct", scrypt_n=FAST_N)
    loaded = keys.load_key_file(path, "正确的口令 correct")
    assert loaded.key_id == signer.key_id and loaded.public_key == signer.public_key
    assert loaded.sign(b"x") == signer.sign(b"x")


def test_a_key_file_does_not_load_with_a_wrong_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "device.key"
    keys.save_key_file(path, signing.Signer.generate(), "correct horse", scrypt_n=FAST_N)
    with pytest.raises(KeyFileError, match="口令错误"):
        keys.load_key_file(path, "correct horsf")


def test_the_key_file_holds_no_private_seed_in_plain_text(tmp_path: Path) -> None:
    signer = signing.Signer.generate()
    path = tmp_path / "device.key"
    keys.save_key_file(path, signer, "passphrase-1", scrypt_n=FAST_N)
    raw = path.read_bytes()
    assert signer.seed() not in raw
    import base64
    assert base64.b64encode(signer.seed()) not in raw
    assert (path.stat().st_mode & 0o077) == 0


def test_swapping_the_public_key_in_a_key_file_makes_it_refuse_to_load(tmp_path: Path) -> None:
    path = tmp_path / "device.key"
    keys.save_key_file(path, signing.Signer.generate(), "passphrase-1", scrypt_n=FAST_N)
    doc = json.loads(path.read_text())
    other = signing.Signer.generate()
    import base64
    doc["public_key"] = base64.b64encode(other.public_key).decode()
    path.write_text(json.dumps(doc))
    with pytest.raises(KeyFileError):
        keys.load_key_file(path, "passphrase-1")


def test_an_existing_key_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "device.key"
    keys.save_key_file(path, signing.Signer.generate(), "passphrase-1", scrypt_n=FAST_N)
    before = path.read_bytes()
    with pytest.raises(KeyFileError, match="已存在"):
        keys.save_key_file(path, signing.Signer.generate(), "passphrase-1", scrypt_n=FAST_N)
    assert path.read_bytes() == before


@pytest.mark.parametrize("content", [b"", b"not json", b'{"format": "other"}', b'{"format": "quancheng-device-key/1"}'])
def test_a_corrupt_key_file_gives_a_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "device.key"
    path.write_bytes(content)
    path.chmod(0o600)   # owner-only, so the load reaches the contents (a wider mode is refused first)
    with pytest.raises(KeyFileError, match="损坏|不是可识别"):
        keys.load_key_file(path, "whatever-pass")


def test_a_short_passphrase_is_refused_in_chinese() -> None:
    with pytest.raises(KeyFileError, match="口令至少需要"):
        keys.encrypt_key(signing.Signer.generate(), "short")


def test_the_fingerprint_is_twenty_digits_in_four_groups_and_differs_per_key() -> None:
    a, b = signing.Signer.generate(), signing.Signer.generate()
    fa = keys.fingerprint(a.public_key)
    assert len(fa) == 23 and all(g.isdigit() and len(g) == 5 for g in fa.split(" "))
    assert fa == keys.fingerprint(a.public_key) != keys.fingerprint(b.public_key)


def test_the_enrollment_uri_round_trips_and_rejects_a_mismatched_key_id() -> None:
    signer = signing.Signer.generate()
    uri = keys.enrollment_uri(signer.public_key)
    assert keys.parse_enrollment_uri(uri) == signer.public_key
    tampered = uri.replace(signer.key_id, "0" * 32)
    with pytest.raises(KeyFileError):
        keys.parse_enrollment_uri(tampered)
    assert "█" in keys.qr_text(uri) or "▀" in keys.qr_text(uri) or "▄" in keys.qr_text(uri)
