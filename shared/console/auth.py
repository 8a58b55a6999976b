"""`ConsoleAuth`: staff accounts, sign-in with lock-out, and server-side sessions.

Everything lives in the database (tables in `shared.console.store`), so several processes behind
one database share sessions and failure counts, and sessions survive a restart. The cookie holds a
random 256-bit token; only its SHA-256 is stored. Time comes from the injected `Clock`.

Lock-out: failures are counted per login name *as typed* (lower-cased), whether or not such an
account exists, so neither the message nor the lock-out behaviour reveals which accounts exist.
Two locks, so that nobody can lock a colleague out at will:

* per (login name, client address): `max_failures` in the window lock that pair only; the same
  account from another computer is untouched;
* per login name from every address together: `account_max_failures` lock the name, except from
  the addresses the account signed in from lately (`login_success`), so the holder at their usual
  desk still gets in while someone elsewhere hammers the account from many addresses.

While locked, attempts are refused without checking the password and are not counted.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import threading
import zoneinfo
from dataclasses import dataclass
from typing import Any, NoReturn

from sqlalchemy import Connection, Engine, delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from shared.clock import Clock, from_unix_ms, to_unix_ms
from shared.console.errors import (
    AccountDisabledError,
    AccountLockedError,
    LoginRefusedError,
    StaffExistsError,
    StaffInputError,
    UnknownStaffError,
)
from shared.console.passwords import (
    DEFAULT_SCRYPT,
    ScryptParams,
    check_password_policy,
    hash_password,
    needs_rehash,
    verify_password,
)
from shared.console.store import login_failure, login_success, staff, staff_session
from shared.domain.handling import Actor, Role

__all__ = ["AuthPolicy", "StaffAccount", "ConsoleSession", "IssuedSession", "ConsoleAuth", "normalize_staff_id"]

_SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
_STAFF_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")
_MAX_TOKEN_CHARS = 128
_NAME_COLUMN_CHARS = 64
_ADDRESS_COLUMN_CHARS = 64


@dataclass(frozen=True)
class AuthPolicy:
    """Session lifetimes and the lock-out rule; the defaults are the township's rules."""

    idle_timeout: dt.timedelta = dt.timedelta(minutes=30)
    absolute_timeout: dt.timedelta = dt.timedelta(hours=12)
    max_failures: int = 5               # per (login name, client address)
    failure_window: dt.timedelta = dt.timedelta(minutes=15)
    lockout: dt.timedelta = dt.timedelta(minutes=15)
    # Per login name from all addresses together; this lock passes by the addresses the account
    # signed in from within `known_address_for`, so an attacker cannot lock a colleague out.
    account_max_failures: int = 20
    known_address_for: dt.timedelta = dt.timedelta(days=90)

    def __post_init__(self) -> None:
        if self.max_failures < 1 or self.account_max_failures < 1:
            raise ValueError("max_failures and account_max_failures must be at least 1")
        for name in ("idle_timeout", "absolute_timeout", "failure_window", "lockout", "known_address_for"):
            if getattr(self, name) <= dt.timedelta(0):
                raise ValueError(f"{name} must be positive")


@dataclass(frozen=True)
class StaffAccount:
    staff_id: str
    display_name: str
    role: Role
    disabled: bool
    created_at: dt.datetime
    password_changed_at: dt.datetime

    @property
    def actor(self) -> Actor:
        return Actor(self.staff_id, self.role)


@dataclass(frozen=True)
class ConsoleSession:
    """A signed-in staff member as seen by one request. `role` is read fresh from the staff row on
    every request, so a role change or a disabled account takes effect at once."""

    staff_id: str
    display_name: str
    role: Role
    csrf_token: str
    created_at: dt.datetime
    last_seen_at: dt.datetime
    expires_at: dt.datetime   # the earlier of the idle and the absolute limit, as of `last_seen_at`

    @property
    def actor(self) -> Actor:
        return Actor(self.staff_id, self.role)


@dataclass(frozen=True)
class IssuedSession:
    """A new session: `token` goes into the cookie and exists nowhere else (the database keeps its hash)."""

    token: str
    session: ConsoleSession


def normalize_staff_id(staff_id: str) -> str:
    return staff_id.strip().lower()


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("ascii", "replace")).digest()


def _parse_role(role: Role | str) -> Role:
    try:
        return role if isinstance(role, Role) else Role(str(role).strip().lower())
    except ValueError:
        for candidate in Role:
            if candidate.label_zh == str(role).strip():
                return candidate
        choices = "、".join(f"{r.value}（{r.label_zh}）" for r in Role)
        raise StaffInputError(f"未知的角色“{role}”，可选：{choices}") from None


def _check_staff_id(staff_id: str) -> str:
    normalized = normalize_staff_id(staff_id)
    if not _STAFF_ID_RE.match(normalized):
        raise StaffInputError("登录名须为 2–32 个小写英文字母、数字、点、下划线或连字符，并以字母或数字开头。")
    return normalized


def _check_display_name(display_name: str) -> str:
    cleaned = display_name.strip()
    if not cleaned or len(cleaned) > 50:
        raise StaffInputError("姓名不能为空，且不能超过 50 个字符。")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in cleaned):
        raise StaffInputError("姓名中不能含有控制字符。")
    return cleaned


def _ms(delta: dt.timedelta) -> int:
    return int(delta.total_seconds() * 1000)


def format_unlock_time(unlock_at: dt.datetime, now: dt.datetime) -> str:
    """Beijing time, rounded up to the minute so "after HH:MM" is never early."""
    local = unlock_at.astimezone(_SHANGHAI)
    if local.second or local.microsecond:
        local = local.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    if local.date() == now.astimezone(_SHANGHAI).date():
        return local.strftime("%H:%M")
    return f"{local.month}月{local.day}日 {local.strftime('%H:%M')}"


class ConsoleAuth:
    """Staff accounts, sign-in and sessions on one SQLAlchemy engine (SQLite or PostgreSQL).

    Call `shared.console.store.create_console_tables(engine)` once before use.
    """

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        *,
        policy: AuthPolicy | None = None,
        kdf: ScryptParams = DEFAULT_SCRYPT,
        max_concurrent_kdf: int = 2,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.policy = policy or AuthPolicy()
        self.kdf = kdf
        # Each scrypt run holds ~128 MiB: a burst of sign-ins must not exhaust a small server's memory.
        self._kdf_slots = threading.BoundedSemaphore(max_concurrent_kdf)
        self._dummy_hash: str | None = None

    # ------------------------------------------------------------------ accounts

    def create_staff(self, staff_id: str, display_name: str, role: Role | str, password: str) -> StaffAccount:
        sid = _check_staff_id(staff_id)
        name = _check_display_name(display_name)
        parsed_role = _parse_role(role)
        check_password_policy(password, staff_id=sid, known=(name,))
        hashed = self._hash(password)
        now_ms = to_unix_ms(self.clock.now())
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(staff).values(
                    staff_id=sid, display_name=name, role=parsed_role.value, password_hash=hashed,
                    disabled=False, created_at_ms=now_ms, password_changed_at_ms=now_ms,
                ))
        except IntegrityError:
            raise StaffExistsError(sid) from None
        return self.get_staff(sid)

    def get_staff(self, staff_id: str) -> StaffAccount:
        sid = normalize_staff_id(staff_id)
        with self.engine.connect() as conn:
            row = conn.execute(select(staff).where(staff.c.staff_id == sid)).mappings().first()
        if row is None:
            raise UnknownStaffError(sid)
        return self._account(row)

    def list_staff(self, *, include_disabled: bool = True) -> list[StaffAccount]:
        query = select(staff).order_by(staff.c.staff_id)
        if not include_disabled:
            query = query.where(staff.c.disabled.is_(False))
        with self.engine.connect() as conn:
            return [self._account(row) for row in conn.execute(query).mappings()]

    def set_password(self, staff_id: str, password: str) -> None:
        """Set a new password and end all the account's sessions (a reset often answers a suspected leak)."""
        sid = normalize_staff_id(staff_id)
        with self.engine.connect() as conn:
            display_name = conn.execute(select(staff.c.display_name).where(staff.c.staff_id == sid)).scalar()
        check_password_policy(password, staff_id=sid, known=(display_name,) if display_name else ())
        hashed = self._hash(password)
        now_ms = to_unix_ms(self.clock.now())
        with self.engine.begin() as conn:
            done = conn.execute(update(staff).where(staff.c.staff_id == sid).values(
                password_hash=hashed, password_changed_at_ms=now_ms))
            if done.rowcount == 0:
                raise UnknownStaffError(sid)
            conn.execute(delete(staff_session).where(staff_session.c.staff_id == sid))

    def set_role(self, staff_id: str, role: Role | str) -> None:
        sid = normalize_staff_id(staff_id)
        parsed = _parse_role(role)
        with self.engine.begin() as conn:
            if conn.execute(update(staff).where(staff.c.staff_id == sid).values(role=parsed.value)).rowcount == 0:
                raise UnknownStaffError(sid)

    def disable_staff(self, staff_id: str) -> None:
        """Disable the account and end its sessions at once; its history stays (accounts are never deleted)."""
        self._set_disabled(staff_id, True)

    def enable_staff(self, staff_id: str) -> None:
        self._set_disabled(staff_id, False)

    def _set_disabled(self, staff_id: str, disabled: bool) -> None:
        sid = normalize_staff_id(staff_id)
        with self.engine.begin() as conn:
            if conn.execute(update(staff).where(staff.c.staff_id == sid).values(disabled=disabled)).rowcount == 0:
                raise UnknownStaffError(sid)
            if disabled:
                conn.execute(delete(staff_session).where(staff_session.c.staff_id == sid))

    # ------------------------------------------------------------------ sign-in

    def authenticate(self, staff_id: str, password: str, *, address: str = "") -> IssuedSession:
        """Check the password and open a session, or raise `LoginRefusedError` (or a subclass).

        `address` is the client's (see `shared.console.web.client_address`); failures are throttled
        per (login name, address) and, with a higher bar, per login name from addresses the account
        has not signed in from lately (see the module docstring)."""
        now = self.clock.now()
        now_ms = to_unix_ms(now)
        name = normalize_staff_id(staff_id)[:_NAME_COLUMN_CHARS]
        addr = address[:_ADDRESS_COLUMN_CHARS]
        with self.engine.connect() as conn:
            known = self._known_address(conn, name, addr, now_ms)
            pair_lock, account_lock = self._active_locks(conn, name, addr, now_ms)
            row = conn.execute(select(staff).where(staff.c.staff_id == name)).mappings().first()
        if pair_lock is not None:
            raise self._locked_error(pair_lock, now)
        if account_lock is not None and not known:
            raise self._locked_error(account_lock, now, account=True)
        # Unknown names still pay for one KDF run, so timing does not tell them apart from real ones.
        ok = self._verify(password, row["password_hash"] if row is not None else self._dummy())
        if not ok or row is None:
            self._record_failure(name, addr, now, known=known)  # raises
        assert row is not None
        if row["disabled"]:
            raise AccountDisabledError()
        return self._open_session(row, password, now, addr)

    def _known_address(self, conn: Connection, name: str, addr: str, now_ms: int) -> bool:
        """Did this account sign in from this address lately? Only then does an account-wide lock pass it by."""
        if not addr:
            return False
        return conn.execute(select(login_success.c.last_success_ms).where(
            login_success.c.staff_id == name, login_success.c.client_address == addr,
            login_success.c.last_success_ms > now_ms - _ms(self.policy.known_address_for),
        )).first() is not None

    def _active_locks(self, conn: Connection, name: str, addr: str, now_ms: int) -> tuple[int | None, int | None]:
        pair = conn.execute(
            select(func.max(login_failure.c.locked_until_ms))
            .where(login_failure.c.login_name == name, login_failure.c.client_address == addr,
                   login_failure.c.locked_until_ms > now_ms)
        ).scalar()
        account = conn.execute(
            select(func.max(login_failure.c.account_locked_until_ms))
            .where(login_failure.c.login_name == name, login_failure.c.account_locked_until_ms > now_ms)
        ).scalar()
        return pair, account

    def _record_failure(self, name: str, addr: str, now: dt.datetime, *, known: bool) -> NoReturn:
        now_ms = to_unix_ms(now)
        window_ms = _ms(self.policy.failure_window)
        lockout_ms = _ms(self.policy.lockout)
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Serialize the count-then-lock step per login name across processes; on SQLite the
                # INSERT below already takes the database's write lock before anything is counted.
                key = int.from_bytes(hashlib.sha256(b"console-login:" + name.encode()).digest()[:8], "big", signed=True)
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
            failure_id = conn.execute(insert(login_failure).values(
                login_name=name, client_address=addr, failed_at_ms=now_ms, locked_until_ms=None,
                account_locked_until_ms=None).returning(login_failure.c.failure_id)).scalar_one()
            # Rows older than window + lockout can no longer matter to any count or lock.
            conn.execute(delete(login_failure).where(login_failure.c.failed_at_ms < now_ms - window_ms - lockout_ms))
            this_name = login_failure.c.login_name == name
            pair_until = self._lock_after_failure(
                conn, failure_id, this_name & (login_failure.c.client_address == addr),
                login_failure.c.locked_until_ms, self.policy.max_failures, now_ms)
            account_until = self._lock_after_failure(
                conn, failure_id, this_name, login_failure.c.account_locked_until_ms,
                self.policy.account_max_failures, now_ms)
        if pair_until is not None:
            raise self._locked_error(pair_until, now)
        if account_until is not None and not known:
            raise self._locked_error(account_until, now, account=True)
        raise LoginRefusedError()

    def _lock_after_failure(self, conn: Connection, failure_id: int, scope: Any, lock_column: Any,
                            max_failures: int, now_ms: int) -> int | None:
        """The lock end in force for `scope` after the failure just recorded (setting one if this
        failure reached `max_failures` in the window), or None."""
        last_lock = conn.execute(select(func.max(lock_column)).where(scope)).scalar()
        if last_lock is not None and last_lock > now_ms:
            # Another process locked this scope while we were checking the password.
            return int(last_lock)
        # Failures before the end of the previous lock were already punished; don't count them twice.
        window_ms = _ms(self.policy.failure_window)
        since = now_ms - window_ms if last_lock is None else max(now_ms - window_ms, last_lock - 1)
        count = conn.execute(select(func.count()).select_from(login_failure)
                             .where(scope, login_failure.c.failed_at_ms > since)).scalar_one()
        if count < max_failures:
            return None
        until = now_ms + _ms(self.policy.lockout)
        conn.execute(update(login_failure).where(login_failure.c.failure_id == failure_id).values({lock_column.key: until}))
        return until

    def _locked_error(self, locked_until_ms: int, now: dt.datetime, *, account: bool = False) -> AccountLockedError:
        unlock_at = from_unix_ms(locked_until_ms)
        when = format_unlock_time(unlock_at, now)
        if account:
            return AccountLockedError(unlock_at, f"该账号近期在多处登录失败次数过多，已暂时锁定，请于北京时间 {when} 后再试；"
                                                 "在平时登录用的电脑上仍可正常登录。")
        return AccountLockedError(unlock_at, f"登录失败次数过多，该账号在这台电脑上已暂时锁定，请于北京时间 {when} 后再试。")

    def _open_session(self, row: Any, password: str, now: dt.datetime, addr: str = "") -> IssuedSession:
        now_ms = to_unix_ms(now)
        token = secrets.token_urlsafe(32)          # 256 bits
        csrf = secrets.token_urlsafe(32)
        expires_ms = now_ms + _ms(self.policy.absolute_timeout)
        upgraded = self._hash(password) if needs_rehash(row["password_hash"], self.kdf) else None
        with self.engine.begin() as conn:
            # Only this address's failures are forgiven: a sign-in elsewhere must not reset the
            # account-wide count an attacker is building up.
            conn.execute(delete(login_failure).where(
                login_failure.c.login_name == row["staff_id"], login_failure.c.client_address == addr,
                login_failure.c.locked_until_ms.is_(None), login_failure.c.account_locked_until_ms.is_(None)))
            if addr:
                self._remember_address(conn, row["staff_id"], addr, now_ms)
            if upgraded is not None:
                conn.execute(update(staff).where(staff.c.staff_id == row["staff_id"]).values(password_hash=upgraded))
            self._purge_expired(conn, now_ms)
            conn.execute(insert(staff_session).values(
                session_hash=_token_hash(token), staff_id=row["staff_id"], csrf_token=csrf,
                created_at_ms=now_ms, last_seen_ms=now_ms, expires_at_ms=expires_ms,
            ))
        session = ConsoleSession(
            staff_id=row["staff_id"], display_name=row["display_name"], role=Role(row["role"]), csrf_token=csrf,
            created_at=now, last_seen_at=now,
            expires_at=from_unix_ms(min(expires_ms, now_ms + _ms(self.policy.idle_timeout))),
        )
        return IssuedSession(token=token, session=session)

    def _remember_address(self, conn: Connection, staff_id: str, addr: str, now_ms: int) -> None:
        """Where this account signed in: the account-wide lock passes the address by from now on."""
        conn.execute(delete(login_success).where(
            login_success.c.last_success_ms <= now_ms - _ms(self.policy.known_address_for)))
        seen = login_success.c.staff_id == staff_id, login_success.c.client_address == addr
        if conn.execute(update(login_success).where(*seen).values(last_success_ms=now_ms)).rowcount:
            return
        try:
            with conn.begin_nested():
                conn.execute(insert(login_success).values(staff_id=staff_id, client_address=addr, last_success_ms=now_ms))
        except IntegrityError:
            pass   # a sign-in from the same address at the same moment (a double click) recorded it already

    # ------------------------------------------------------------------ sessions

    def resolve_session(self, token: str | None) -> ConsoleSession | None:
        """The live session for a cookie value, refreshing its idle timer; None if unknown, expired or disabled."""
        if not token or len(token) > _MAX_TOKEN_CHARS:
            return None
        now = self.clock.now()
        now_ms = to_unix_ms(now)
        idle_ms = _ms(self.policy.idle_timeout)
        key = _token_hash(token)
        with self.engine.begin() as conn:
            row = conn.execute(
                select(staff_session, staff.c.display_name, staff.c.role, staff.c.disabled)
                .join(staff, staff.c.staff_id == staff_session.c.staff_id)
                .where(staff_session.c.session_hash == key)
            ).mappings().first()
            if row is None:
                return None
            if now_ms >= row["expires_at_ms"] or now_ms >= row["last_seen_ms"] + idle_ms or row["disabled"]:
                conn.execute(delete(staff_session).where(staff_session.c.session_hash == key))
                return None
            conn.execute(update(staff_session).where(staff_session.c.session_hash == key).values(last_seen_ms=now_ms))
        return ConsoleSession(
            staff_id=row["staff_id"], display_name=row["display_name"], role=Role(row["role"]),
            csrf_token=row["csrf_token"], created_at=from_unix_ms(row["created_at_ms"]), last_seen_at=now,
            expires_at=from_unix_ms(min(row["expires_at_ms"], now_ms + idle_ms)),
        )

    def logout(self, token: str | None) -> bool:
        """Delete the session; True if there was one."""
        if not token or len(token) > _MAX_TOKEN_CHARS:
            return False
        with self.engine.begin() as conn:
            return conn.execute(delete(staff_session).where(staff_session.c.session_hash == _token_hash(token))).rowcount > 0

    def end_sessions(self, staff_id: str) -> int:
        """Sign a staff member out everywhere; returns how many sessions ended."""
        with self.engine.begin() as conn:
            return conn.execute(delete(staff_session).where(
                staff_session.c.staff_id == normalize_staff_id(staff_id))).rowcount

    def purge_expired(self) -> int:
        """Delete expired sessions (also done at every sign-in); returns how many."""
        with self.engine.begin() as conn:
            return self._purge_expired(conn, to_unix_ms(self.clock.now()))

    def _purge_expired(self, conn: Connection, now_ms: int) -> int:
        return conn.execute(delete(staff_session).where(
            (staff_session.c.expires_at_ms <= now_ms)
            | (staff_session.c.last_seen_ms <= now_ms - _ms(self.policy.idle_timeout))
        )).rowcount

    # ------------------------------------------------------------------ helpers

    def _hash(self, password: str) -> str:
        with self._kdf_slots:
            return hash_password(password, self.kdf)

    def _verify(self, password: str, stored: str) -> bool:
        with self._kdf_slots:
            return verify_password(password, stored)

    def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = self._hash(secrets.token_urlsafe(16))
        return self._dummy_hash

    @staticmethod
    def _account(row: Any) -> StaffAccount:
        return StaffAccount(
            staff_id=row["staff_id"], display_name=row["display_name"], role=Role(row["role"]),
            disabled=bool(row["disabled"]), created_at=from_unix_ms(row["created_at_ms"]),
            password_changed_at=from_unix_ms(row["password_changed_at_ms"]),
        )
