"""Per-staff API tokens: created on the command line, shown once, kept as SHA-256, expiring, revocable.

A token is `qc_` followed by 32 random bytes (URL-safe base64). The database keeps only its SHA-256,
so a copied database or backup hands out no live token. Each call resolves the token to its staff
row and reads the role fresh from it, exactly as a console session does: a role change or a disabled
account takes effect at the next call. The table lives on its own `MetaData`, in the tier's database
beside the console's `staff` table (each tier's migrations create it).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, Engine, Integer, LargeBinary, MetaData, String, Table, insert, select, update

from shared.api.errors import NotAuthenticated, TokenError
from shared.clock import Clock, from_unix_ms, to_unix_ms
from shared.console.store import staff
from shared.domain.handling import Actor, Role

__all__ = ["metadata", "api_token", "create_api_tables", "ApiTokens", "ApiCaller", "IssuedToken", "TokenInfo",
           "TOKEN_PREFIX", "DEFAULT_EXPIRES_AFTER", "MAX_EXPIRES_AFTER"]

metadata = MetaData()

api_token = Table(
    "api_token", metadata,
    # The number the CLI shows and revokes by: a token is never named by its secret or its hash.
    Column("token_no", Integer, primary_key=True, autoincrement=True),
    Column("token_hash", LargeBinary(32), nullable=False, unique=True),
    Column("staff_id", String(64), nullable=False, index=True),
    Column("note", String(100), nullable=False, default=""),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("expires_at_ms", BigInteger, nullable=False),
    Column("revoked_at_ms", BigInteger, nullable=True),
    Column("last_used_at_ms", BigInteger, nullable=True),
)

TOKEN_PREFIX = "qc_"
DEFAULT_EXPIRES_AFTER = dt.timedelta(days=90)
MAX_EXPIRES_AFTER = dt.timedelta(days=730)
_TOKEN_RE = re.compile(r"^qc_[A-Za-z0-9_-]{43}$")
# `last_used_at_ms` is for the list command, not an audit trail: writing it on every call would put a
# write (and SQLite's write lock) on every read request.
_LAST_USED_GRANULARITY_MS = 60_000


def create_api_tables(engine: Engine) -> None:
    """Create the token table if it is missing (idempotent; migrated databases already have it)."""
    metadata.create_all(engine)


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("ascii", "replace")).digest()


@dataclass(frozen=True)
class ApiCaller:
    """The staff member an API call runs as; `role` is read from the staff row at each call."""

    staff_id: str
    display_name: str
    role: Role
    token_no: int

    @property
    def actor(self) -> Actor:
        return Actor(self.staff_id, self.role)


@dataclass(frozen=True)
class TokenInfo:
    token_no: int
    staff_id: str
    display_name: str
    note: str
    created_at: dt.datetime
    expires_at: dt.datetime
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None

    def state_zh(self, now: dt.datetime) -> str:
        if self.revoked_at is not None:
            return "已吊销"
        return "已过期" if now >= self.expires_at else "有效"


@dataclass(frozen=True)
class IssuedToken:
    """A new token: `token` exists only here (the database keeps its hash); show it once."""

    token: str
    info: TokenInfo


class ApiTokens:
    """The token store on a tier's engine (SQLite or PostgreSQL); time from the injected clock."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock

    def create(self, staff_id: str, *, expires_after: dt.timedelta = DEFAULT_EXPIRES_AFTER,
               note: str = "") -> IssuedToken:
        """A token for an existing, active staff member; raises `TokenError` otherwise."""
        if expires_after <= dt.timedelta(0) or expires_after > MAX_EXPIRES_AFTER:
            raise TokenError(f"有效期须在 1 至 {MAX_EXPIRES_AFTER.days} 天之间")
        sid = staff_id.strip().lower()
        cleaned = note.strip()
        if len(cleaned) > 100 or any(ord(ch) < 32 for ch in cleaned):
            raise TokenError("用途说明不能超过 100 个字符，也不能含有控制字符")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now_ms = to_unix_ms(self.clock.now())
        expires_ms = now_ms + int(expires_after.total_seconds() * 1000)
        with self.engine.begin() as conn:
            account = conn.execute(select(staff.c.display_name, staff.c.disabled)
                                   .where(staff.c.staff_id == sid)).first()
            if account is None:
                raise TokenError(f"没有登录名为“{sid}”的工作人员账号，请先用 staff add 添加")
            if account.disabled:
                raise TokenError(f"账号“{sid}”已停用，不能为其创建接口令牌")
            number = conn.execute(insert(api_token).values(
                token_hash=_hash(token), staff_id=sid, note=cleaned, created_at_ms=now_ms, expires_at_ms=expires_ms,
                revoked_at_ms=None, last_used_at_ms=None).returning(api_token.c.token_no)).scalar_one()
        info = TokenInfo(int(number), sid, account.display_name, cleaned, from_unix_ms(now_ms), from_unix_ms(expires_ms),
                         None, None)
        return IssuedToken(token, info)

    def list_tokens(self, staff_id: str | None = None) -> list[TokenInfo]:
        query = (select(api_token, staff.c.display_name).join(staff, staff.c.staff_id == api_token.c.staff_id, isouter=True)
                 .order_by(api_token.c.token_no))
        if staff_id:
            query = query.where(api_token.c.staff_id == staff_id.strip().lower())
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [TokenInfo(int(r.token_no), r.staff_id, r.display_name or r.staff_id, r.note,
                          from_unix_ms(int(r.created_at_ms)), from_unix_ms(int(r.expires_at_ms)),
                          from_unix_ms(int(r.revoked_at_ms)) if r.revoked_at_ms else None,
                          from_unix_ms(int(r.last_used_at_ms)) if r.last_used_at_ms else None) for r in rows]

    def revoke(self, token_no: int) -> TokenInfo:
        """Revoke at once (the next call with it is refused); revoking twice keeps the first time."""
        now_ms = to_unix_ms(self.clock.now())
        with self.engine.begin() as conn:
            found = conn.execute(select(api_token.c.token_no).where(api_token.c.token_no == token_no)).first()
            if found is None:
                raise TokenError(f"没有编号为 {token_no} 的接口令牌，可用 staff token list 查看")
            conn.execute(update(api_token).where(api_token.c.token_no == token_no, api_token.c.revoked_at_ms.is_(None))
                         .values(revoked_at_ms=now_ms))
        return next(t for t in self.list_tokens() if t.token_no == token_no)

    def resolve(self, token: str) -> ApiCaller:
        """The staff member behind a live token, or `NotAuthenticated` saying (in Chinese) why not."""
        if not _TOKEN_RE.match(token):
            raise NotAuthenticated("token_invalid", "接口令牌无效，请核对后重试，或请系统管理员重新创建")
        now_ms = to_unix_ms(self.clock.now())
        key = _hash(token)
        with self.engine.connect() as conn:
            row = conn.execute(select(api_token, staff.c.display_name, staff.c.role, staff.c.disabled)
                               .join(staff, staff.c.staff_id == api_token.c.staff_id, isouter=True)
                               .where(api_token.c.token_hash == key)).first()
        if row is None or row.role is None:
            raise NotAuthenticated("token_invalid", "接口令牌无效，请核对后重试，或请系统管理员重新创建")
        if row.revoked_at_ms is not None:
            raise NotAuthenticated("token_revoked", "该接口令牌已被吊销，请向系统管理员申请新的令牌")
        if now_ms >= int(row.expires_at_ms):
            raise NotAuthenticated("token_expired", "该接口令牌已过期，请向系统管理员申请新的令牌")
        if row.disabled:
            raise NotAuthenticated("account_disabled", "令牌所属的工作人员账号已停用")
        if row.last_used_at_ms is None or now_ms - int(row.last_used_at_ms) >= _LAST_USED_GRANULARITY_MS:
            with self.engine.begin() as conn:
                conn.execute(update(api_token).where(api_token.c.token_no == row.token_no)
                             .values(last_used_at_ms=now_ms))
        return ApiCaller(row.staff_id, row.display_name, Role(row.role), int(row.token_no))
