"""The laptop's vault: personal data encrypted at rest under a key unlocked with the passphrase.

The vault key is random, stored in `vault.key` encrypted (AES-GCM) under a key derived from the
device signing key's seed, which is itself only ever on disk encrypted under the passphrase. So
one passphrase unlocks both, and a stolen laptop without it reveals nothing. From the vault key
two sub-keys are derived: one encrypts names, phones and addresses; one keys the hash used to
find a villager's earlier matters by ID number without storing the number.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared.domain import id_number
from shared.keys import write_private_file
from shared.signing import Signer
from village_agent.errors import VaultError

_NONCE = 12


def _hkdf(key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key)


class Vault:
    def __init__(self, vault_key: bytes) -> None:
        self._data_key = AESGCM(_hkdf(vault_key, b"quancheng village vault: data v1"))
        self._lookup_key = _hkdf(vault_key, b"quancheng village vault: id lookup v1")

    @classmethod
    def create(cls, path: Path, signer: Signer) -> Vault:
        vault_key = os.urandom(32)
        nonce = os.urandom(_NONCE)
        wrapped = AESGCM(_wrapping_key(signer)).encrypt(nonce, vault_key, signer.key_id.encode())
        doc = {"format": "quancheng-vault/1", "key_id": signer.key_id, "nonce": nonce.hex(), "wrapped": wrapped.hex()}
        write_private_file(path, json.dumps(doc).encode())
        return cls(vault_key)

    @classmethod
    def open(cls, path: Path, signer: Signer) -> Vault:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            vault_key = AESGCM(_wrapping_key(signer)).decrypt(
                bytes.fromhex(doc["nonce"]), bytes.fromhex(doc["wrapped"]), str(doc["key_id"]).encode()
            )
        except FileNotFoundError as exc:
            raise VaultError(f"找不到个人信息保险箱文件：{path.name}") from exc
        except (InvalidTag, KeyError, ValueError) as exc:
            raise VaultError("个人信息保险箱无法打开：文件已损坏或不属于本设备密钥") from exc
        return cls(vault_key)

    def encrypt(self, plaintext: bytes, context: str) -> bytes:
        """AES-GCM with `context` (e.g. the matter id) bound as associated data."""
        nonce = os.urandom(_NONCE)
        return nonce + self._data_key.encrypt(nonce, plaintext, context.encode())

    def decrypt(self, blob: bytes, context: str) -> bytes:
        try:
            return self._data_key.decrypt(blob[:_NONCE], blob[_NONCE:], context.encode())
        except InvalidTag as exc:
            raise VaultError("个人信息无法解密：数据已损坏") from exc

    def id_lookup_hash(self, raw_id_number: str) -> bytes:
        return hmac.new(self._lookup_key, id_number.normalize(raw_id_number).encode(), hashlib.sha256).digest()


def _wrapping_key(signer: Signer) -> bytes:
    return _hkdf(signer.seed(), b"quancheng village vault: wrapping v1")
