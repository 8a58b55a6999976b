"""The API token store behaves the same on SQLite and on PostgreSQL: a token resolves to its staff member
with the role read fresh, only its SHA-256 is kept, and expiry, revocation and a disabled account each
refuse it with their own code and a Chinese message."""
from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, select

from shared.api import ApiTokens, NotAuthenticated, TokenError, api_token, create_api_tables
from shared.clock import UTC, FakeClock
from shared.console import ConsoleAuth, ScryptParams, create_console_tables
from shared.domain.handling import Role

START = dt.datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
PASSWORD = "青石镇窗口2026春季值班"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'tokens.sqlite'}"
    else:
        request.getfixturevalue("postgres_url")   # skips, with the reason, where PostgreSQL cannot run
        url = request.getfixturevalue("postgres_cluster").create_database()
    engine = create_engine(url)
    create_console_tables(engine)
    create_api_tables(engine)
    yield engine
    engine.dispose()



@pytest.fixture
def auth(engine: Engine, clock: FakeClock) -> ConsoleAuth:
    auth = ConsoleAuth(engine, clock, kdf=ScryptParams(n=2**10, r=8, p=1))
    auth.create_staff("wangfang", "王芳", Role.OPERATOR, PASSWORD)
    auth.create_staff("zhao", "赵主任", Role.DIRECTOR, PASSWORD)
    return auth


def _refused(tokens: ApiTokens, token: str) -> NotAuthenticated:
    with pytest.raises(NotAuthenticated) as caught:
        tokens.resolve(token)
    assert any("\u4e00" <= ch <= "\u9fff" for ch in caught.value.message)
    return caught.value


def test_a_token_resolves_to_its_staff_member_and_only_its_hash_is_stored(
        engine: Engine, auth: ConsoleAuth, clock: FakeClock) -> None:
    tokens = ApiTokens(engine, clock)
    issued = tokens.create("WangFang ", note="县数据平台对接")
    caller = tokens.resolve(issued.token)
    assert (caller.staff_id, caller.display_name, caller.role) == ("wangfang", "王芳", Role.OPERATOR)
    assert caller.actor.staff_id == "wangfang" and caller.token_no == issued.info.token_no
    with engine.connect() as conn:
        row = conn.execute(select(api_token)).one()
    assert bytes(row.token_hash) == hashlib.sha256(issued.token.encode()).digest()
    assert issued.token not in repr(tuple(row))
    assert issued.info.expires_at - issued.info.created_at == dt.timedelta(days=90)


def test_the_role_is_read_at_each_call_and_a_disabled_account_is_refused(
        engine: Engine, auth: ConsoleAuth, clock: FakeClock) -> None:
    tokens = ApiTokens(engine, clock)
    token = tokens.create("wangfang").token
    auth.set_role("wangfang", Role.DIRECTOR)
    assert tokens.resolve(token).role is Role.DIRECTOR
    auth.disable_staff("wangfang")
    assert _refused(tokens, token).code == "account_disabled"
    auth.enable_staff("wangfang")
    assert tokens.resolve(token).role is Role.DIRECTOR


def test_a_token_expires_at_its_instant_and_a_revoked_one_is_refused_at_once(
        engine: Engine, auth: ConsoleAuth, clock: FakeClock) -> None:
    tokens = ApiTokens(engine, clock)
    short = tokens.create("wangfang", expires_after=dt.timedelta(days=1))
    other = tokens.create("zhao")
    clock.advance(dt.timedelta(days=1) - dt.timedelta(seconds=1))
    assert tokens.resolve(short.token).staff_id == "wangfang"
    clock.advance(dt.timedelta(seconds=1))
    assert _refused(tokens, short.token).code == "token_expired"
    revoked = tokens.revoke(other.info.token_no)
    assert revoked.revoked_at == clock.now() and revoked.state_zh(clock.now()) == "已吊销"
    assert _refused(tokens, other.token).code == "token_revoked"
    assert tokens.revoke(other.info.token_no).revoked_at == revoked.revoked_at   # the first revocation stands
    listed = {t.token_no: t.state_zh(clock.now()) for t in tokens.list_tokens()}
    assert listed == {short.info.token_no: "已过期", other.info.token_no: "已吊销"}


def test_unknown_and_malformed_tokens_are_refused_alike(engine: Engine, auth: ConsoleAuth, clock: FakeClock) -> None:
    tokens = ApiTokens(engine, clock)
    tokens.create("wangfang")
    for token in ("qc_" + "A" * 43, "qc_short", "", "x" * 5000, "qc_" + "é" * 43):
        assert _refused(tokens, token).code == "token_invalid"


def test_a_token_is_only_made_for_an_active_account_and_within_the_allowed_lifetime(
        engine: Engine, auth: ConsoleAuth, clock: FakeClock) -> None:
    tokens = ApiTokens(engine, clock)
    with pytest.raises(TokenError, match="没有登录名"):
        tokens.create("nobody")
    auth.disable_staff("zhao")
    with pytest.raises(TokenError, match="已停用"):
        tokens.create("zhao")
    for bad in (dt.timedelta(0), dt.timedelta(days=731)):
        with pytest.raises(TokenError, match="有效期"):
            tokens.create("wangfang", expires_after=bad)
    with pytest.raises(TokenError, match="编号"):
        tokens.revoke(999)
    assert tokens.list_tokens() == []
