"""The village UI's local unlock: nobody reads villagers or files a matter under the agent's key
without first typing the agent's passphrase (or the agent's unlock PIN, see `UnlockPin`).

* The passphrase is checked against the device key file itself (it decrypts only under it), so the
  UI keeps no copy of it. The PIN's verifier on disk is keyed by a key derived from the device key's
  seed: without the passphrase a stolen laptop's `unlock.pin` cannot be guessed offline.
* Unlocking opens a session (a random cookie, SameSite=Strict, HttpOnly) that relocks after
  `idle_timeout` without a request, or at once with the 锁定 button.
* Failures: `max_failures` from one address within `failure_window` lock that address for
  `lockout`. Remote addresses together (anything but loopback, when the UI is bound beyond this
  machine) are locked after `remote_max_failures`, so many addresses buy no more guesses; the agent
  at the laptop itself (loopback) is never locked out by someone else on the LAN.

In memory, one process: the UI is one agent's, on one laptop; a restart asks for the passphrase again.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from shared.clock import Clock
from shared.console.guard import is_loopback_address
from shared.errors import KeyFileError
from shared.keys import decrypt_key, write_private_file
from shared.signing import Signer
from village_agent.ui.errors import PinError, UnlockRefused

__all__ = ["UnlockPolicy", "UnlockGate", "UnlockPin", "UnlockRefused", "PinError", "UNLOCK_COOKIE", "MIN_PIN_DIGITS"]

UNLOCK_COOKIE = "qc_village_unlock"
MIN_PIN_DIGITS = 6
_PIN_FORMAT = "quancheng-unlock-pin/1"
_PIN_SCRYPT_N = 2**15
_MAX_SECRET_CHARS = 256


@dataclass(frozen=True)
class UnlockPolicy:
    idle_timeout: dt.timedelta = dt.timedelta(minutes=10)
    max_failures: int = 5
    failure_window: dt.timedelta = dt.timedelta(minutes=15)
    lockout: dt.timedelta = dt.timedelta(minutes=5)
    remote_max_failures: int = 20

    def __post_init__(self) -> None:
        if self.max_failures < 1 or self.remote_max_failures < 1:
            raise ValueError("failure limits must be at least 1")
        for name in ("idle_timeout", "failure_window", "lockout"):
            if getattr(self, name) <= dt.timedelta(0):
                raise ValueError(f"{name} must be positive")


def _pin_key(signer: Signer) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"quancheng village unlock pin v1").derive(signer.seed())


class UnlockPin:
    """The agent's unlock PIN (6–12 digits) as a verifier file in the data folder."""

    def __init__(self, path: Path, signer: Signer) -> None:
        self.path = path
        self._key = _pin_key(signer)

    @staticmethod
    def check_new(pin: str) -> str:
        cleaned = pin.strip()
        if not cleaned.isdigit() or not cleaned.isascii() or not MIN_PIN_DIGITS <= len(cleaned) <= 12:
            raise PinError(f"解锁 PIN 应为 {MIN_PIN_DIGITS}–12 位数字")
        if len(set(cleaned)) <= 2 or cleaned in "01234567890123" or cleaned in "98765432109876":
            raise PinError("解锁 PIN 太简单（重复或连续的数字），请换一个")
        return cleaned

    def _mac(self, pin: str, salt: bytes, n: int) -> bytes:
        stretched = Scrypt(salt=salt, length=32, n=n, r=8, p=1).derive(pin.encode("ascii"))
        return hmac.new(self._key, stretched, hashlib.sha256).digest()

    def set(self, pin: str) -> None:
        cleaned = self.check_new(pin)
        salt = os.urandom(16)
        doc = {"format": _PIN_FORMAT, "n": _PIN_SCRYPT_N, "salt": base64.b64encode(salt).decode("ascii"),
               "mac": base64.b64encode(self._mac(cleaned, salt, _PIN_SCRYPT_N)).decode("ascii")}
        write_private_file(self.path, json.dumps(doc).encode("utf-8"))

    def clear(self) -> bool:
        existed = self.path.exists()
        self.path.unlink(missing_ok=True)
        return existed

    def is_set(self) -> bool:
        return self.path.exists()

    def matches(self, pin: str) -> bool:
        cleaned = pin.strip()
        if not cleaned.isdigit() or not cleaned.isascii() or len(cleaned) > 12:
            return False
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            if doc.get("format") != _PIN_FORMAT:
                return False
            n = int(doc["n"])
            if n < 2**14 or n > 2**20 or n & (n - 1):
                return False
            salt, expected = base64.b64decode(doc["salt"]), base64.b64decode(doc["mac"])
        except (OSError, ValueError, KeyError, TypeError):
            return False
        return hmac.compare_digest(self._mac(cleaned, salt, n), expected)


class UnlockGate:
    """Checks the passphrase or PIN, keeps unlock sessions, counts failures (see the module docstring)."""

    def __init__(self, key_file: Path, clock: Clock, *, pin: UnlockPin | None = None,
                 policy: UnlockPolicy | None = None) -> None:
        self.key_file = key_file
        self.clock = clock
        self.pin = pin
        self.policy = policy or UnlockPolicy()
        self._sessions: dict[str, dt.datetime] = {}
        self._failures: dict[str, deque[dt.datetime]] = {}
        self._locked_until: dict[str, dt.datetime] = {}
        self._remote_failures: deque[dt.datetime] = deque()
        self._remote_locked_until: dt.datetime | None = None
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- checking the secret

    def _secret_ok(self, secret: str) -> bool:
        if not secret or len(secret) > _MAX_SECRET_CHARS:
            return False
        if self.pin is not None and secret.strip().isdigit() and self.pin.is_set() and self.pin.matches(secret):
            return True
        try:
            decrypt_key(self.key_file.read_bytes(), secret)
        except (KeyFileError, OSError):
            return False
        return True

    def unlock(self, address: str, secret: str) -> str:
        """A new session token, or `UnlockRefused` with a Chinese message. Blocking (a KDF run)."""
        now = self.clock.now()
        remote = not is_loopback_address(address)
        with self._lock:
            self._refuse_if_locked(address, remote, now)
        if self._secret_ok(secret):
            token = secrets.token_urlsafe(32)
            with self._lock:
                self._failures.pop(address, None)
                self._sessions[token] = now
            return token
        with self._lock:
            self._record_failure(address, remote, now)
            self._refuse_if_locked(address, remote, now)
            left = self.policy.max_failures - len(self._failures.get(address, ()))
        raise UnlockRefused(f"口令或 PIN 不正确。再错 {left} 次，本机将暂时锁定。" if left <= 3 else "口令或 PIN 不正确，请重新输入。")

    def _refuse_if_locked(self, address: str, remote: bool, now: dt.datetime) -> None:
        until = self._locked_until.get(address)
        if remote and self._remote_locked_until is not None and (until is None or self._remote_locked_until > until):
            until = self._remote_locked_until
        if until is not None and until > now:
            minutes = max(1, int((until - now).total_seconds() + 59) // 60)
            raise UnlockRefused(f"输错次数过多，已暂时锁定，请 {minutes} 分钟后再试。", locked_until=until)

    def _record_failure(self, address: str, remote: bool, now: dt.datetime) -> None:
        since = now - self.policy.failure_window
        failures = self._failures.setdefault(address, deque())
        failures.append(now)
        while failures and failures[0] <= since:
            failures.popleft()
        if len(failures) >= self.policy.max_failures:
            self._locked_until[address] = now + self.policy.lockout
            failures.clear()
        if remote:
            self._remote_failures.append(now)
            while self._remote_failures and self._remote_failures[0] <= since:
                self._remote_failures.popleft()
            if len(self._remote_failures) >= self.policy.remote_max_failures:
                self._remote_locked_until = now + self.policy.lockout
                self._remote_failures.clear()
        # Bounded: an address that stopped failing long ago is forgotten.
        if len(self._failures) > 10_000:
            for key in [k for k, v in self._failures.items() if not v]:
                del self._failures[key]

    # ---------------------------------------------------------------- sessions

    def session_ok(self, token: str | None) -> bool:
        """True (and the idle timer restarts) for a live session; an idle one is ended."""
        if not token or len(token) > 128:
            return False
        now = self.clock.now()
        with self._lock:
            last = self._sessions.get(token)
            if last is None:
                return False
            if now - last >= self.policy.idle_timeout:
                del self._sessions[token]
                return False
            self._sessions[token] = now
            for stale in [t for t, seen in self._sessions.items() if now - seen >= self.policy.idle_timeout]:
                del self._sessions[stale]
            return True

    def lock(self, token: str | None) -> None:
        with self._lock:
            self._sessions.pop(token or "", None)
