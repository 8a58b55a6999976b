"""Sealing personal data to a tier's key, so only that tier can open it.

A township publishes one Ed25519 key; libsodium converts it to the X25519 key a sealed box needs,
so there is no second key to enrol or rotate. A stolen laptop holds only ciphertext it cannot open.
"""
from __future__ import annotations

import nacl.bindings
import nacl.exceptions
import nacl.public

from shared.errors import SignatureError


def seal_to(ed25519_public_key: bytes, plaintext: bytes) -> bytes:
    curve = nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(ed25519_public_key)
    return nacl.public.SealedBox(nacl.public.PublicKey(curve)).encrypt(plaintext)


def open_sealed(ed25519_seed: bytes, ciphertext: bytes) -> bytes:
    """Open a box sealed to the key whose 32-byte seed is given; raises `SignatureError` if it fails."""
    public, secret = nacl.bindings.crypto_sign_seed_keypair(ed25519_seed)
    curve_secret = nacl.bindings.crypto_sign_ed25519_sk_to_curve25519(secret)
    try:
        return nacl.public.SealedBox(nacl.public.PrivateKey(curve_secret)).decrypt(ciphertext)
    except nacl.exceptions.CryptoError as exc:
        raise SignatureError("无法解开密封数据：不是发给本机密钥的") from exc
