"""Staff password hashing with scrypt (memory-hard) and the password policy.

A stored hash is one self-describing string::

    scrypt$n=131072,r=8,p=1$<salt, base64>$<key, base64>

The parameters travel with the hash so they can be raised later without invalidating old
passwords: `needs_rehash` tells the caller to re-hash at the next successful sign-in (hashes made
with the earlier n=2^15 are upgraded that way).

The policy (`check_password_policy`): at least 12 characters, not one of the leaked passwords on
zxcvbn's list, and not guessable by zxcvbn's estimate (score 3 of 4 at least: about 10^8 guesses
or more), with the login name and display name counted as known to the guesser. zxcvbn is a
maintained library whose lists come from real leaks; a hand-typed list would age and miss most.
"""
from __future__ import annotations

import base64
import hmac
import os
import unicodedata
from dataclasses import dataclass

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from zxcvbn import zxcvbn
from zxcvbn.frequency_lists import FREQUENCY_LISTS

from shared.console.errors import PasswordPolicyError

__all__ = [
    "ScryptParams", "DEFAULT_SCRYPT", "MIN_PASSWORD_CHARS", "MAX_PASSWORD_CHARS",
    "check_password_policy", "hash_password", "verify_password", "needs_rehash",
]

MIN_PASSWORD_CHARS = 12
# zxcvbn scores 0–4; 3 means "safely unguessable" by its estimate (≥ 10^8 guesses).
MIN_PASSWORD_SCORE = 3
# zxcvbn only looks this far into a password: beyond it, length alone already makes it strong.
_ZXCVBN_MAX_CHARS = 72
_COMMON_PASSWORDS = frozenset(FREQUENCY_LISTS["passwords"])
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
    """scrypt cost: memory is about 128·n·r bytes (128 MiB for the default n=2^17, r=8)."""

    n: int = 2**17
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
    def decode(cls, text: str) -> ScryptParams:
        fields = dict(part.split("=", 1) for part in text.split(","))
        return cls(n=int(fields["n"]), r=int(fields["r"]), p=int(fields["p"]))


# About 0.3 s and 128 MiB on a township office PC (OWASP's scrypt floor): slow for a guesser,
# bearable at sign-in.
DEFAULT_SCRYPT = ScryptParams()

# What zxcvbn found, in words staff understand.
_PATTERN_ZH = {
    "repeat": "含有重复的字符或片段（如 aaa、abcabc）",
    "sequence": "含有连续的字母或数字（如 abcd、1234）",
    "spatial": "含有键盘上相邻的按键（如 qwerty、asdf）",
    "date": "含有日期或年份",
    "dictionary": "含有常见单词、人名或常用密码",
    "regex": "含有年份等容易猜到的数字",
    "bruteforce": "太短或太简单",
}


def check_password_policy(password: str, *, staff_id: str | None = None, known: tuple[str, ...] = ()) -> None:
    """Raise `PasswordPolicyError` (Chinese message) unless `password` may be set. `known` are other
    words a guesser would try first (the display name, the centre's name)."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise PasswordPolicyError(f"密码至少需要 {MIN_PASSWORD_CHARS} 个字符。")
    if len(password) > MAX_PASSWORD_CHARS:
        raise PasswordPolicyError(f"密码不能超过 {MAX_PASSWORD_CHARS} 个字符。")
    if password.strip() == "":
        raise PasswordPolicyError("密码不能全是空格。")
    folded = unicodedata.normalize("NFC", password).strip().lower()
    if staff_id is not None and staff_id.lower() in folded and len(folded) - len(staff_id) < MIN_PASSWORD_CHARS:
        raise PasswordPolicyError("密码不能与登录名相同，也不能只在登录名前后加几个字符。")
    if folded in _COMMON_PASSWORDS:
        raise PasswordPolicyError("这是泄露过的常用密码，很容易被猜中，请换一个。")
    hints = [w for w in (staff_id, *known) if w]
    result = zxcvbn(password[:_ZXCVBN_MAX_CHARS], user_inputs=hints, max_length=_ZXCVBN_MAX_CHARS)
    if result["score"] < MIN_PASSWORD_SCORE:
        found = {m.get("pattern") for m in result.get("sequence", [])}
        reasons = [zh for pattern, zh in _PATTERN_ZH.items() if pattern in found and pattern != "bruteforce"]
        if any(m.get("pattern") == "dictionary" and m.get("dictionary_name") == "user_inputs"
               for m in result.get("sequence", [])):
            reasons.insert(0, "含有登录名或姓名")
        why = "；".join(reasons) or _PATTERN_ZH["bruteforce"]
        raise PasswordPolicyError(f"密码太容易被猜中（{why}）。请用更长、更不规则的密码，"
                                  "例如几个不相关的词语加上数字和符号。")


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
