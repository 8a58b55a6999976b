"""Device keys: generation, an encrypted key file under a passphrase, fingerprints and QR codes.

Key file format (JSON, UTF-8), version `quancheng-device-key/1`::

    {"format": "quancheng-device-key/1", "key_id": "...", "public_key": "<base64>",
     "kdf": {"name": "scrypt", "n": 32768, "r": 8, "p": 1, "salt": "<base64>"},
     "cipher": {"name": "aes-256-gcm", "nonce": "<base64>"}, "ciphertext": "<base64>"}

The ciphertext is the 32-byte Ed25519 seed; the AEAD's associated data binds format, key id and
public key, so editing any of them makes the file refuse to load rather than load a wrong key.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from shared.errors import KeyFileError
from shared.os_errors import os_error_zh
from shared.signing import Signer, key_id_for

KEY_FILE_FORMAT = "quancheng-device-key/1"
# scrypt n=2**15 takes ~0.1 s and 32 MiB: slow enough to hurt guessing, fast on a cheap laptop.
DEFAULT_SCRYPT_N = 2**15
MIN_PASSPHRASE_CHARS = 8


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, field: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeError) as exc:
        raise KeyFileError(f"密钥文件已损坏：字段 {field} 不是有效的 base64") from exc


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))


def _aad(key_id: str, public_key: bytes) -> bytes:
    return f"{KEY_FILE_FORMAT}|{key_id}|".encode("ascii") + public_key


def check_passphrase(passphrase: str) -> None:
    """Raise `KeyFileError` with a Chinese message if the passphrase is too weak to protect a key."""
    if len(passphrase) < MIN_PASSPHRASE_CHARS:
        raise KeyFileError(f"口令至少需要 {MIN_PASSPHRASE_CHARS} 个字符")


def encrypt_key(signer: Signer, passphrase: str, *, scrypt_n: int = DEFAULT_SCRYPT_N) -> bytes:
    """The key file's bytes for `signer`, its seed encrypted under `passphrase`."""
    check_passphrase(passphrase)
    salt, nonce = os.urandom(16), os.urandom(12)
    secret = _derive(passphrase, salt, scrypt_n, 8, 1)
    ciphertext = AESGCM(secret).encrypt(nonce, signer.seed(), _aad(signer.key_id, signer.public_key))
    doc = {
        "format": KEY_FILE_FORMAT,
        "key_id": signer.key_id,
        "public_key": _b64(signer.public_key),
        "kdf": {"name": "scrypt", "n": scrypt_n, "r": 8, "p": 1, "salt": _b64(salt)},
        "cipher": {"name": "aes-256-gcm", "nonce": _b64(nonce)},
        "ciphertext": _b64(ciphertext),
    }
    return (json.dumps(doc, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def decrypt_key(data: bytes, passphrase: str) -> Signer:
    """Load a `Signer` from key file bytes. Raises `KeyFileError` for a wrong passphrase or a bad file."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KeyFileError("密钥文件已损坏：不是有效的 JSON") from exc
    if not isinstance(doc, dict) or doc.get("format") != KEY_FILE_FORMAT:
        raise KeyFileError(f"不是可识别的密钥文件（应为 {KEY_FILE_FORMAT}）")
    try:
        kdf, cipher = doc["kdf"], doc["cipher"]
        key_id = str(doc["key_id"])
        public_key = _unb64(doc["public_key"], "public_key")
        salt = _unb64(kdf["salt"], "kdf.salt")
        nonce = _unb64(cipher["nonce"], "cipher.nonce")
        ciphertext = _unb64(doc["ciphertext"], "ciphertext")
        n, r, p = int(kdf["n"]), int(kdf["r"]), int(kdf["p"])
    except (KeyError, TypeError, ValueError) as exc:
        raise KeyFileError(f"密钥文件已损坏：缺少或无效的字段 {exc}") from exc
    if kdf.get("name") != "scrypt" or cipher.get("name") != "aes-256-gcm":
        raise KeyFileError("密钥文件使用了不支持的加密算法")
    if n < 2**14 or n > 2**22 or n & (n - 1):
        raise KeyFileError("密钥文件已损坏：scrypt 参数无效")
    try:
        secret = _derive(passphrase, salt, n, r, p)
        seed = AESGCM(secret).decrypt(nonce, ciphertext, _aad(key_id, public_key))
    except InvalidTag as exc:
        raise KeyFileError("口令错误，或密钥文件已被改动") from exc
    signer = Signer(seed)
    if signer.public_key != public_key or signer.key_id != key_id:
        raise KeyFileError("密钥文件已损坏：公钥与私钥不匹配")
    return signer


def write_private_file(path: Path, data: bytes) -> None:
    """Write atomically (temp file, fsync, rename) with owner-only permissions where the OS has them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_key_file(path: Path, signer: Signer, passphrase: str, *, scrypt_n: int = DEFAULT_SCRYPT_N) -> None:
    if path.exists():
        raise KeyFileError(f"密钥文件已存在，不会覆盖：{path}")
    write_private_file(path, encrypt_key(signer, passphrase, scrypt_n=scrypt_n))


def check_private_file_mode(path: Path, what: str = "密钥文件") -> None:
    """Refuse (`KeyFileError`) a private file that group or other users may access.

    The passphrase protects the key, but a file others can read invites offline guessing; and a
    mode that was loosened by a copy or an unpacked archive is worth stopping on. POSIX only:
    Windows has no such mode bits (its ACLs are left to the profile folder)."""
    if os.name == "nt":
        return
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as exc:
        raise KeyFileError(f"找不到{what}：{path}") from exc
    except OSError as exc:
        raise KeyFileError(f"无法读取{what}：{path}（{os_error_zh(exc)}）") from exc
    if mode & 0o077:
        raise KeyFileError(f"{what} {path} 的权限过宽（{mode & 0o777:o}，同组或其他用户可以访问），拒绝使用。"
                           f"请只让本用户可读写：chmod 600 {path}")


def load_key_file(path: Path, passphrase: str) -> Signer:
    check_private_file_mode(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise KeyFileError(f"找不到密钥文件：{path}") from exc
    except OSError as exc:
        raise KeyFileError(f"无法读取密钥文件：{path}（{os_error_zh(exc)}）") from exc
    return decrypt_key(data, passphrase)


# ---------------------------------------------------------------- fingerprints


def fingerprint(public_key: bytes) -> str:
    """20 digits in four groups of five, e.g. '08127 55310 94406 21873'.

    Digits, because they are read aloud over the phone between a village and the township;
    four 5-byte chunks of SHA-256 reduced mod 10^5 (as Signal's safety numbers do) give ~66 bits.
    """
    digest = hashlib.sha256(b"quancheng-fingerprint|" + public_key).digest()
    groups = [int.from_bytes(digest[i * 5 : i * 5 + 5], "big") % 100_000 for i in range(4)]
    return " ".join(f"{g:05d}" for g in groups)


def enrollment_uri(public_key: bytes) -> str:
    """What the enrollment QR code holds: the whole public key, so scanning it is enough to enrol."""
    return f"quancheng:key:v1:{key_id_for(public_key)}:{base64.urlsafe_b64encode(public_key).decode('ascii').rstrip('=')}"


def parse_enrollment_uri(text: str) -> bytes:
    """The public key from an enrollment URI; raises `KeyFileError` if it is malformed or inconsistent."""
    parts = text.strip().split(":")
    if len(parts) != 5 or parts[:3] != ["quancheng", "key", "v1"]:
        raise KeyFileError("不是有效的登记码")
    try:
        public_key = base64.urlsafe_b64decode(parts[4] + "=" * (-len(parts[4]) % 4))
    except ValueError as exc:
        raise KeyFileError("登记码中的公钥无效") from exc
    if len(public_key) != 32 or key_id_for(public_key) != parts[3]:
        raise KeyFileError("登记码中的公钥与密钥标识不符")
    return public_key


def qr_text(data: str) -> str:
    """A QR code drawn with block characters, printable in a terminal."""
    import qrcode

    qr = qrcode.QRCode(border=1, error_correction=qrcode.constants.ERROR_CORRECT_M)
    qr.add_data(data)
    qr.make(fit=True)
    out = io.StringIO()
    qr.print_ascii(out=out, invert=True)
    return out.getvalue()


# ---------------------------------------------------------------- key directory port


@dataclass(frozen=True)
class KnownKey:
    """What a verifier knows about an author key."""

    key_id: str
    public_key: bytes
    approved: bool = True
    revoked: bool = False
    # When revoked: records up to this seq stay valid, later ones are refused.
    last_valid_seq: int = 0


class KeyDirectory(Protocol):
    def lookup(self, key_id: str) -> KnownKey | None:
        """The key's public key and status, or None when the key was never seen."""
        ...


class InMemoryKeyDirectory:
    """A `KeyDirectory` held in a dict; tests and small tools use it."""

    def __init__(self, keys: list[KnownKey] | None = None) -> None:
        self._keys: dict[str, KnownKey] = {k.key_id: k for k in keys or []}

    def add(self, key: KnownKey) -> None:
        self._keys[key.key_id] = key

    def add_public_key(self, public_key: bytes) -> KnownKey:
        known = KnownKey(key_id_for(public_key), public_key)
        self.add(known)
        return known

    def revoke(self, key_id: str, last_valid_seq: int) -> None:
        old = self._keys[key_id]
        self._keys[key_id] = KnownKey(old.key_id, old.public_key, old.approved, True, last_valid_seq)

    def lookup(self, key_id: str) -> KnownKey | None:
        return self._keys.get(key_id)
