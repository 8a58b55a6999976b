"""The console's store behaves the same on SQLite and on PostgreSQL: accounts, lock-out counted in
the database (shared by every process on it), and sessions with idle and absolute expiry."""
from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, func, select

from shared.clock import UTC, FakeClock
from shared.console import (
    AccountLockedError,
    ConsoleAuth,
    LoginRefusedError,
    ScryptParams,
    StaffExistsError,
    UnknownStaffError,
    create_console_tables,
)
from shared.console.errors import LOGIN_REFUSED_ZH
from shared.console.store import login_failure, staff_session
from shared.domain.handling import Actor, Role

FAST_KDF = ScryptParams(n=2**10, r=8, p=1)
START = dt.datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
PASSWORD = "青石镇窗口2026春季值班"
WRONG = "错误的密码错误的密码"

EngineFactory = Callable[[], Engine]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def new_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EngineFactory]:
    """Opens engines on one fresh database: each call is like another process on the same data."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'console.sqlite'}"
    else:
        request.getfixturevalue("postgres_url")   # skips, with the reason, where PostgreSQL cannot run
        url = request.getfixturevalue("postgres_cluster").create_database()
    engines: list[Engine] = []

    def factory() -> Engine:
        engine = create_engine(url)
        create_console_tables(engine)
        engines.append(engine)
        return engine

    yield factory
    for engine in engines:
        engine.dispose()



@pytest.fixture
def auth(new_engine: EngineFactory, clock: FakeClock) -> ConsoleAuth:
    auth = ConsoleAuth(new_engine(), clock, kdf=FAST_KDF)
    auth.create_staff("wangfang", "王芳", Role.OPERATOR, PASSWORD)
    return auth


def fail(auth: ConsoleAuth, staff_id: str = "wangfang") -> LoginRefusedError:
    with pytest.raises(LoginRefusedError) as refused:
        auth.authenticate(staff_id, WRONG)
    return refused.value


def test_accounts_are_created_listed_and_unique(auth: ConsoleAuth) -> None:
    auth.create_staff("lizhuren", "李主任", Role.DIRECTOR, PASSWORD)
    auth.create_staff("admin", "系统管理员甲", "administrator", PASSWORD)
    assert [(a.staff_id, a.display_name, a.role) for a in auth.list_staff()] == [
        ("admin", "系统管理员甲", Role.ADMINISTRATOR), ("lizhuren", "李主任", Role.DIRECTOR),
        ("wangfang", "王芳", Role.OPERATOR),
    ]
    with pytest.raises(StaffExistsError):
        auth.create_staff("LiZhuRen", "李主任", Role.DIRECTOR, PASSWORD)
    with pytest.raises(UnknownStaffError, match="没有登录名为"):
        auth.disable_staff("nobody")


def test_a_wrong_password_and_an_unknown_name_are_refused_with_the_same_words(auth: ConsoleAuth) -> None:
    assert str(fail(auth)) == str(fail(auth, "nobody")) == LOGIN_REFUSED_ZH


def test_five_failures_lock_the_account_for_fifteen_minutes(auth: ConsoleAuth, clock: FakeClock) -> None:
    for _ in range(4):
        assert not isinstance(fail(auth), AccountLockedError)
        clock.advance(dt.timedelta(minutes=2))
    locked = fail(auth)
    assert isinstance(locked, AccountLockedError) and locked.unlock_at == START + dt.timedelta(minutes=23)
    with pytest.raises(AccountLockedError):
        auth.authenticate("wangfang", PASSWORD)
    clock.set(locked.unlock_at)
    assert auth.authenticate("wangfang", PASSWORD).session.actor == Actor("wangfang", Role.OPERATOR)


def test_an_unknown_name_is_locked_out_just_like_a_real_one(auth: ConsoleAuth) -> None:
    real = [fail(auth) for _ in range(5)]
    ghost = [fail(auth, "nobody") for _ in range(5)]
    assert [str(e) for e in real] == [str(e) for e in ghost]
    assert isinstance(ghost[-1], AccountLockedError)


def test_two_console_auth_instances_on_one_database_share_lock_out_counts(
    auth: ConsoleAuth, new_engine: EngineFactory, clock: FakeClock,
) -> None:
    other = ConsoleAuth(new_engine(), clock, kdf=FAST_KDF)
    for instance in (auth, other, auth, other):
        fail(instance)
    assert isinstance(fail(other), AccountLockedError)
    with pytest.raises(AccountLockedError):
        auth.authenticate("wangfang", PASSWORD)


def test_concurrent_failures_from_two_processes_still_end_in_a_lock(
    auth: ConsoleAuth, new_engine: EngineFactory, clock: FakeClock,
) -> None:
    other = ConsoleAuth(new_engine(), clock, kdf=FAST_KDF)
    unexpected: list[BaseException] = []

    def attempt(instance: ConsoleAuth) -> None:
        try:
            instance.authenticate("wangfang", WRONG)
        except LoginRefusedError:
            pass
        except BaseException as exc:  # noqa: BLE001 - reported below
            unexpected.append(exc)

    threads = [threading.Thread(target=attempt, args=(auth if i % 2 else other,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert unexpected == []
    with pytest.raises(AccountLockedError):
        auth.authenticate("wangfang", PASSWORD)


def test_a_successful_sign_in_clears_the_failure_count(auth: ConsoleAuth) -> None:
    for _ in range(4):
        fail(auth)
    auth.authenticate("wangfang", PASSWORD)
    for _ in range(4):
        assert not isinstance(fail(auth), AccountLockedError)


def test_a_session_ends_after_thirty_idle_minutes(auth: ConsoleAuth, clock: FakeClock) -> None:
    token = auth.authenticate("wangfang", PASSWORD).token
    clock.advance(dt.timedelta(minutes=20))
    session = auth.resolve_session(token)
    assert session is not None and session.expires_at == clock.now() + dt.timedelta(minutes=30)
    clock.advance(dt.timedelta(minutes=30))
    assert auth.resolve_session(token) is None


def test_a_busy_session_ends_twelve_hours_after_sign_in(auth: ConsoleAuth, clock: FakeClock) -> None:
    token = auth.authenticate("wangfang", PASSWORD).token
    # A request every 25 minutes keeps the idle timer from firing for the whole day...
    while clock.now() + dt.timedelta(minutes=25) < START + dt.timedelta(hours=12):
        clock.advance(dt.timedelta(minutes=25))
        assert auth.resolve_session(token) is not None
    # ...but not past the absolute limit.
    clock.set(START + dt.timedelta(hours=12))
    assert auth.resolve_session(token) is None


def test_logout_deletes_the_session_row(auth: ConsoleAuth) -> None:
    token = auth.authenticate("wangfang", PASSWORD).token
    assert auth.logout(token) and not auth.logout(token)
    assert auth.resolve_session(token) is None
    with auth.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(staff_session)).scalar_one() == 0


def test_a_session_opened_by_one_process_is_recognised_by_another(
    auth: ConsoleAuth, new_engine: EngineFactory, clock: FakeClock,
) -> None:
    token = auth.authenticate("wangfang", PASSWORD).token
    restarted = ConsoleAuth(new_engine(), clock, kdf=FAST_KDF)
    session = restarted.resolve_session(token)
    assert session is not None and session.display_name == "王芳"
    restarted.logout(token)
    assert auth.resolve_session(token) is None


def test_a_role_change_or_a_disabled_account_takes_effect_on_open_sessions(auth: ConsoleAuth) -> None:
    token = auth.authenticate("wangfang", PASSWORD).token
    auth.set_role("wangfang", Role.DIRECTOR)
    session = auth.resolve_session(token)
    assert session is not None and session.role is Role.DIRECTOR
    auth.disable_staff("wangfang")
    assert auth.resolve_session(token) is None
    assert auth.list_staff(include_disabled=False) == []


def test_expired_sessions_and_old_failures_are_purged(auth: ConsoleAuth, clock: FakeClock) -> None:
    auth.authenticate("wangfang", PASSWORD)
    fail(auth, "nobody")
    clock.advance(dt.timedelta(hours=1))
    assert auth.purge_expired() == 1
    fail(auth, "someone-else")   # recording a failure drops failures too old to matter
    with auth.engine.connect() as conn:
        names = conn.execute(select(login_failure.c.login_name)).scalars().all()
    assert names == ["someone-else"]


def test_lock_out_is_by_address_and_account_and_spares_the_holders_usual_address(
        new_engine: EngineFactory, clock: FakeClock) -> None:
    desk, other = ConsoleAuth(new_engine(), clock, kdf=FAST_KDF), ConsoleAuth(new_engine(), clock, kdf=FAST_KDF)
    desk.create_staff("wangfang", "王芳", Role.OPERATOR, PASSWORD)
    desk.authenticate("wangfang", PASSWORD, address="10.1.1.1")          # the usual desk
    for _ in range(5):
        with pytest.raises(LoginRefusedError):
            other.authenticate("wangfang", WRONG, address="10.9.9.9")
    with pytest.raises(AccountLockedError, match="这台电脑"):
        other.authenticate("wangfang", PASSWORD, address="10.9.9.9")
    desk.authenticate("wangfang", PASSWORD, address="10.1.1.1")
    for n in range(20):   # spread over many addresses: the account-wide bar (20 in the window)
        with pytest.raises(LoginRefusedError):
            other.authenticate("wangfang", WRONG, address=f"10.8.{n}.1")
    with pytest.raises(AccountLockedError, match="多处登录失败"):
        other.authenticate("wangfang", PASSWORD, address="10.7.7.7")
    desk.authenticate("wangfang", PASSWORD, address="10.1.1.1")          # the holder still gets in
    desk.authenticate("wangfang", PASSWORD, address="10.1.1.1")          # and again (remembered once)
    clock.advance(dt.timedelta(minutes=16))
    other.authenticate("wangfang", PASSWORD, address="10.7.7.7")
