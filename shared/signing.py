"""Ed25519 signing and verification over exact payload bytes, as pure functions.

libsodium (through PyNaCl) does the arithmetic: it verifies ~2-3x faster than OpenSSL through
`cryptography` on this hardware, and verification is what bounds relay ingest. The signatures
are standard Ed25519 either way; `tests/unit/test_signing.py` cross-checks with `cryptography`.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache

import nacl.bindings
import nacl.exceptions
import nacl.signing

from shared.errors import SignatureError

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
KEY_ID_HEX_CHARS = 32


def key_id_for(public_key: bytes) -> str:
    """The key id used on the wire: hex of the first 16 bytes of SHA-256(public key)."""
    if len(public_key) != PUBLIC_KEY_BYTES:
        raise SignatureError(f"Ed25519 公钥应为 32 字节，实际为 {len(public_key)} 字节")
    return hashlib.sha256(public_key).hexdigest()[:KEY_ID_HEX_CHARS]


def payload_hash(payload: bytes) -> bytes:
    """SHA-256 of a record's signed bytes: what `prev_hash` and receipts refer to."""
    return hashlib.sha256(payload).digest()


@lru_cache(maxsize=4096)
def _verify_key(public_key: bytes) -> nacl.signing.VerifyKey:
    # Building a VerifyKey decodes the curve point; caching it saves that per record.
    return nacl.signing.VerifyKey(public_key)


def verify(public_key: bytes, payload: bytes, signature: bytes) -> None:
    """Raise `SignatureError` unless `signature` is a valid Ed25519 signature of exactly `payload`."""
    if len(signature) != SIGNATURE_BYTES:
        raise SignatureError(f"签名长度应为 64 字节，实际为 {len(signature)} 字节")
    try:
        _verify_key(bytes(public_key)).verify(payload, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, nacl.exceptions.TypeError) as exc:
        raise SignatureError("签名验证失败") from exc


def is_valid(public_key: bytes, payload: bytes, signature: bytes) -> bool:
    try:
        verify(public_key, payload, signature)
    except SignatureError:
        return False
    return True


class Signer:
    """Holds an Ed25519 private key in memory and signs payload bytes with it."""

    __slots__ = ("_signing_key", "_secret", "public_key", "key_id")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise SignatureError("Ed25519 私钥种子应为 32 字节")
        self._signing_key = nacl.signing.SigningKey(seed)
        # libsodium's 64-byte secret key; signing through the binding skips a wrapper object.
        self._secret: bytes = self._signing_key._signing_key
        self.public_key: bytes = bytes(self._signing_key.verify_key)
        self.key_id: str = key_id_for(self.public_key)

    @classmethod
    def generate(cls) -> Signer:
        return cls(bytes(nacl.signing.SigningKey.generate()))

    def seed(self) -> bytes:
        """The private seed; only `shared.keys` calls this, to encrypt it into a key file."""
        return bytes(self._signing_key)

    def sign(self, payload: bytes) -> bytes:
        return nacl.bindings.crypto_sign(payload, self._secret)[: nacl.bindings.crypto_sign_BYTES]

    def __repr__(self) -> str:  # never print the seed
        return f"Signer(key_id={self.key_id!r})"
