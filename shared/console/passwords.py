"""Staff password hashing with scrypt (memory-hard) and the password policy.

A stored hash is one self-describing string::

    scrypt$n=32768,r=8,p=1$<salt, base64>$<key, base64>

The parameters travel with the hash so they can be raised later without invalidating old
passwords: `needs_rehash` tells the caller to re-hash at the next successful sign-in.
"""
from __future__ import annotations

import base64
import hmac
import os
import unicodedata
from dataclasses import dataclass

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from shared.console.errors import PasswordPolicyError

__all__ = [
    "ScryptParams", "DEFAULT_SCRYPT", "MIN_PASSWORD_CHARS", "MAX_PASSWORD_CHARS",
    "check_password_policy", "hash_password", "verify_password", "needs_rehash",
]

MIN_PASSWORD_CHARS = 10
# A ceiling keeps one request from feeding megabytes into the KDF.
MAX_PASSWORD_CHARS = 256
_SALT_BYTES = 16
_KEY_BYTES = 32
_SCHEME = "scrypt"
# Refuse absurd parameters read back from the database: a tampered row must not make one
# sign-in allocate gigabytes.
_MAX_N = 2**20
_MAX_R = 32
_MAX_P = 16


@dataclass(frozen=True, order=True)
class ScryptParams:
    """scrypt cost: memory is about 128·n·r bytes (32 MiB for the default n=2^15, r=8)."""

    n: int = 2**15
    r: int = 8
    p: int = 1

    def __post_init__(self) -> None:
        if self.n < 2 or self.n & (self.n - 1) or self.n > _MAX_N:
            raise ValueError(f"scrypt n must be a power of two ≤ 2^20, got {self.n}")
        if not (1 <= self.r <= _MAX_R and 1 <= self.p <= _MAX_P):
            raise ValueError(f"scrypt r/p out of range: r={self.r}, p={self.p}")

    def encode(self) -> str:
        return f"n={self.n},r={self.r},p={self.p}"

    @classmethod
    def decode(cls, text: str) -> "ScryptParams":
        fields = dict(part.split("=", 1) for part in text.split(","))
        return cls(n=int(fields["n"]), r=int(fields["r"]), p=int(fields["p"]))


# About 0.1 s and 32 MiB on a township office PC: slow for a guesser, bearable at sign-in.
DEFAULT_SCRYPT = ScryptParams()


def check_password_policy(password: str, *, staff_id: str | None = None) -> None:
    """Raise `PasswordPolicyError` (Chinese message) unless `password` may be set."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise PasswordPolicyError(f"密码至少需要 {MIN_PASSWORD_CHARS} 个字符。")
    if len(password) > MAX_PASSWORD_CHARS:
        raise PasswordPolicyError(f"密码不能超过 {MAX_PASSWORD_CHARS} 个字符。")
    if password.strip() == "":
        raise PasswordPolicyError("密码不能全是空格。")
    if staff_id is not None and password.strip().lower() == staff_id.lower():
        raise PasswordPolicyError("密码不能与登录名相同。")


def _password_bytes(password: str) -> bytes:
    # NFC: the same characters typed through different input methods must hash the same.
    return unicodedata.normalize("NFC", password).encode("utf-8")


def _derive(password: str, salt: bytes, params: ScryptParams) -> bytes:
    kdf = Scrypt(salt=salt, length=_KEY_BYTES, n=params.n, r=params.r, p=params.p)
    return kdf.derive(_password_bytes(password))


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def hash_password(password: str, params: ScryptParams = DEFAULT_SCRYPT) -> str:
    """A fresh salted hash of `password` (policy is checked by the caller, not here)."""
    salt = os.urandom(_SALT_BYTES)
    return f"{_SCHEME}${params.encode()}${_b64(salt)}${_b64(_derive(password, salt, params))}"


def _parse(stored: str) -> tuple[ScryptParams, bytes, bytes]:
    scheme, params, salt, key = stored.split("$")
    if scheme != _SCHEME:
        raise ValueError(f"unknown password scheme {scheme!r}")
    return ScryptParams.decode(params), base64.b64decode(salt, validate=True), base64.b64decode(key, validate=True)


def verify_password(password: str, stored: str) -> bool:
    """True if `password` matches `stored`; a malformed stored hash never matches."""
    if len(password) > MAX_PASSWORD_CHARS:
        return False
    try:
        params, salt, expected = _parse(stored)
    except (ValueError, KeyError):
        return False
    # Constant-time: the comparison must not leak how many leading bytes matched.
    return hmac.compare_digest(_derive(password, salt, params), expected)


def needs_rehash(stored: str, params: ScryptParams = DEFAULT_SCRYPT) -> bool:
    """True if `stored` was made with other (e.g. weaker, older) parameters than `params`."""
    try:
        return _parse(stored)[0] != params
    except (ValueError, KeyError):
        return True
