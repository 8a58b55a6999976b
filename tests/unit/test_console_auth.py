"""The staff console foundation: sign-in, lock-out, sessions, CSRF, Origin, roles and rate limits,
exercised through a tiny FastAPI app and SQLite files (the same store runs on PostgreSQL in
tests/contract/test_console_store.py)."""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import Depends, FastAPI, Form, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, select

from shared.cli_common import add_subparsers, new_parser
from shared.clock import UTC, FakeClock
from shared.console import (
    AccountDisabledError,
    AccountLockedError,
    AuthPolicy,
    Console,
    ConsoleAuth,
    ConsoleSession,
    LoginRefusedError,
    PasswordPolicyError,
    RateLimiter,
    ScryptParams,
    StaffExistsError,
    create_console_tables,
    current_staff,
    install_console,
    make_jinja_env,
    rate_limit,
    require_role,
)
from shared.console.cli import STAFF_PASSWORD_ENV, register_staff_commands
from shared.console.errors import LOGIN_REFUSED_ZH
from shared.console.passwords import hash_password, needs_rehash, verify_password
from shared.console.store import staff, staff_session
from shared.console.web import LOGIN_CSRF_COOKIE, SESSION_COOKIE
from shared.domain.handling import Actor, Role

# Cheap scrypt for tests: the cost parameters are what production raises, the logic is the same.
FAST_KDF = ScryptParams(n=2**10, r=8, p=1)
START = dt.datetime(2026, 11, 23, 1, 0, tzinfo=UTC)   # 09:00 in Beijing
PASSWORD = "青石镇窗口2026春季值班"
DIRECTOR_PASSWORD = "主任的口令很长很长很长1"



@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "console.sqlite"


def open_engine(path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{path}")
    create_console_tables(engine)
    return engine


@pytest.fixture
def engine(db_path: Path) -> Iterator[Engine]:
    engine = open_engine(db_path)
    yield engine
    engine.dispose()


@pytest.fixture
def auth(engine: Engine, clock: FakeClock) -> ConsoleAuth:
    auth = ConsoleAuth(engine, clock, kdf=FAST_KDF)
    auth.create_staff("wangfang", "王芳", Role.OPERATOR, PASSWORD)
    auth.create_staff("lizhuren", "李主任", Role.DIRECTOR, DIRECTOR_PASSWORD)
    return auth


# ------------------------------------------------------------------ a tiny console app


@pytest.fixture
def page_dir(tmp_path: Path) -> Path:
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "home.html").write_text(
        '{% extends "base.html" %}{% block title %}今日待办{% endblock %}'
        '{% block nav %}<a href="/" aria-current="page">今日待办</a>{% endblock %}'
        "{% block content %}<p>今日待办：{{ count }} 件</p>{% endblock %}",
        encoding="utf-8",
    )
    return pages


@pytest.fixture
def public_limiter(clock: FakeClock) -> RateLimiter:
    return RateLimiter(capacity=3, refill_per_second=1.0, clock=clock, max_clients=100)


def build_app(auth: ConsoleAuth, page_dir: Path, limiter: RateLimiter, **options: object) -> tuple[FastAPI, Console]:
    app = FastAPI()
    console = install_console(app, auth, templates_dir=page_dir, console_name="青石镇便民服务中心",
                              public_paths=("/public",), **options)

    @app.get("/")
    def home(request: Request, who: ConsoleSession = Depends(require_role(Role.OPERATOR, Role.DIRECTOR))):
        return console.render(request, "home.html", {"count": 3})

    @app.post("/matters/note")
    def note(text: str = Form(...), who: ConsoleSession = Depends(current_staff)) -> dict[str, str]:
        return {"by": who.staff_id, "text": text}

    @app.post("/extensions/approve")
    def approve(who: ConsoleSession = Depends(require_role(Role.DIRECTOR))) -> dict[str, str]:
        return {"approved_by": who.actor.staff_id}

    @app.get("/director/report")
    def report(who: ConsoleSession = Depends(require_role(Role.DIRECTOR))) -> PlainTextResponse:
        return PlainTextResponse("督办报表")

    @app.get("/api/whoami")
    def whoami(who: ConsoleSession = Depends(current_staff)) -> JSONResponse:
        return JSONResponse({"staff_id": who.staff_id, "role": who.role.value, "name": who.display_name})

    @app.get("/public/status", dependencies=[Depends(rate_limit(limiter))])
    def status() -> PlainTextResponse:
        return PlainTextResponse("办理中")

    return app, console


@pytest.fixture
def client(auth: ConsoleAuth, page_dir: Path, public_limiter: RateLimiter) -> Iterator[TestClient]:
    app, _ = build_app(auth, page_dir, public_limiter)
    with TestClient(app, follow_redirects=False) as c:
        yield c


def login_csrf(client: TestClient) -> str:
    page = client.get("/login")
    assert page.status_code == 200
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match
    return match.group(1)


def sign_in(client: TestClient, staff_id: str, password: str, next_url: str = "/") -> object:
    return client.post("/login", data={"staff_id": staff_id, "password": password, "next": next_url,
                                       "csrf_token": login_csrf(client)})


def session_csrf(client: TestClient) -> str:
    page = client.get("/")
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text
    return match.group(1)


# ------------------------------------------------------------------ passwords and accounts


def test_a_wrong_password_is_refused_with_a_chinese_message(auth: ConsoleAuth) -> None:
    with pytest.raises(LoginRefusedError) as refused:
        auth.authenticate("wangfang", "不是这个密码不是这个")
    assert str(refused.value) == LOGIN_REFUSED_ZH == "登录名或密码错误。"


def test_the_right_password_opens_a_session_for_the_staff_members_actor(auth: ConsoleAuth) -> None:
    issued = auth.authenticate("  WangFang ", PASSWORD)
    assert issued.session.actor == Actor("wangfang", Role.OPERATOR)
    assert issued.session.display_name == "王芳"
    assert len(issued.token) >= 43   # 32 random bytes, URL-safe base64


def test_an_unknown_login_name_gets_exactly_the_same_message_as_a_wrong_password(auth: ConsoleAuth) -> None:
    with pytest.raises(LoginRefusedError) as unknown:
        auth.authenticate("nobody", PASSWORD)
    with pytest.raises(LoginRefusedError) as wrong:
        auth.authenticate("wangfang", "不是这个密码不是这个")
    assert type(unknown.value) is type(wrong.value) and str(unknown.value) == str(wrong.value)


def test_passwords_shorter_than_twelve_characters_are_refused_in_chinese(auth: ConsoleAuth) -> None:
    with pytest.raises(PasswordPolicyError, match="至少需要 12 个字符"):
        auth.create_staff("zhaoliu", "赵六", Role.OPERATOR, "k7#Vq2!mZp9")
    with pytest.raises(PasswordPolicyError, match="至少需要 12 个字符"):
        auth.set_password("wangfang", "短密码")
    auth.create_staff("zhaoliu", "赵六", Role.OPERATOR, "东山村西岭渡口老槐树下石桥")  # twelve unrelated Chinese characters are enough


def test_a_login_name_can_be_taken_only_once(auth: ConsoleAuth) -> None:
    with pytest.raises(StaffExistsError, match="已被使用"):
        auth.create_staff("WANGFANG", "另一个王芳", Role.OPERATOR, PASSWORD)


def test_passwords_are_stored_as_salted_scrypt_hashes_that_carry_their_parameters(auth: ConsoleAuth, engine: Engine) -> None:
    auth.create_staff("zhaoliu", "赵六", Role.OPERATOR, PASSWORD)
    with engine.connect() as conn:
        hashes = dict(conn.execute(select(staff.c.staff_id, staff.c.password_hash)).all())
    assert hashes["wangfang"].startswith("scrypt$n=1024,r=8,p=1$")
    assert hashes["wangfang"] != hashes["zhaoliu"]          # same password, different salt
    assert PASSWORD not in hashes["wangfang"]
    assert verify_password(PASSWORD, hashes["wangfang"]) and not verify_password(PASSWORD + "x", hashes["wangfang"])


def test_raising_the_kdf_cost_rehashes_a_password_at_its_next_sign_in(auth: ConsoleAuth, engine: Engine, clock: FakeClock) -> None:
    stronger = ScryptParams(n=2**11, r=8, p=1)
    upgraded = ConsoleAuth(engine, clock, kdf=stronger)
    upgraded.authenticate("wangfang", PASSWORD)
    with engine.connect() as conn:
        stored = conn.execute(select(staff.c.password_hash).where(staff.c.staff_id == "wangfang")).scalar_one()
    assert stored.startswith("scrypt$n=2048,") and not needs_rehash(stored, stronger)
    upgraded.authenticate("wangfang", PASSWORD)   # and the new hash still accepts the password


def test_a_malformed_stored_hash_never_matches() -> None:
    assert not verify_password(PASSWORD, "md5$abc")
    assert not verify_password(PASSWORD, "scrypt$n=3,r=8,p=1$AAAA$AAAA")
    assert verify_password(PASSWORD, hash_password(PASSWORD, FAST_KDF))


def test_a_disabled_account_cannot_sign_in_and_loses_its_sessions(auth: ConsoleAuth) -> None:
    issued = auth.authenticate("wangfang", PASSWORD)
    auth.disable_staff("wangfang")
    assert auth.resolve_session(issued.token) is None
    with pytest.raises(AccountDisabledError, match="已停用"):
        auth.authenticate("wangfang", PASSWORD)
    with pytest.raises(LoginRefusedError) as wrong:
        auth.authenticate("wangfang", "不是这个密码不是这个")
    assert str(wrong.value) == LOGIN_REFUSED_ZH   # without the password nobody learns it is disabled


def test_a_new_password_ends_the_old_sessions_and_replaces_the_old_password(auth: ConsoleAuth) -> None:
    issued = auth.authenticate("wangfang", PASSWORD)
    auth.set_password("wangfang", "换过的窗口密码秋季值班用")
    assert auth.resolve_session(issued.token) is None
    with pytest.raises(LoginRefusedError):
        auth.authenticate("wangfang", PASSWORD)
    auth.authenticate("wangfang", "换过的窗口密码秋季值班用")


# ------------------------------------------------------------------ lock-out


def fail(auth: ConsoleAuth, staff_id: str, times: int) -> list[LoginRefusedError]:
    errors = []
    for _ in range(times):
        with pytest.raises(LoginRefusedError) as refused:
            auth.authenticate(staff_id, "错误的密码错误的密码")
        errors.append(refused.value)
    return errors


def test_five_failures_within_fifteen_minutes_lock_the_account_even_against_the_right_password(
    auth: ConsoleAuth, clock: FakeClock,
) -> None:
    for _ in range(4):
        fail(auth, "wangfang", 1)
        clock.advance(dt.timedelta(minutes=3))
    fifth = fail(auth, "wangfang", 1)[0]
    assert isinstance(fifth, AccountLockedError)
    assert fifth.unlock_at == clock.now() + dt.timedelta(minutes=15)
    assert "北京时间 09:27 后再试" in str(fifth)        # 01:12 UTC + 15 min, shown in Beijing time
    with pytest.raises(AccountLockedError):
        auth.authenticate("wangfang", PASSWORD)


def test_a_locked_account_opens_again_after_fifteen_minutes(auth: ConsoleAuth, clock: FakeClock) -> None:
    fail(auth, "wangfang", 5)
    clock.advance(dt.timedelta(minutes=14, seconds=59))
    with pytest.raises(AccountLockedError):
        auth.authenticate("wangfang", PASSWORD)
    clock.advance(dt.timedelta(seconds=1))
    assert auth.authenticate("wangfang", PASSWORD).session.staff_id == "wangfang"


def test_one_failure_after_a_lock_ends_does_not_lock_again_at_once(auth: ConsoleAuth, clock: FakeClock) -> None:
    fail(auth, "wangfang", 5)
    clock.advance(dt.timedelta(minutes=15))
    errors = fail(auth, "wangfang", 4)
    assert not any(isinstance(e, AccountLockedError) for e in errors)
    assert isinstance(fail(auth, "wangfang", 1)[0], AccountLockedError)


def test_failures_spread_over_more_than_fifteen_minutes_do_not_lock(auth: ConsoleAuth, clock: FakeClock) -> None:
    for _ in range(8):
        errors = fail(auth, "wangfang", 1)
        assert not isinstance(errors[0], AccountLockedError)
        clock.advance(dt.timedelta(minutes=4))
    auth.authenticate("wangfang", PASSWORD)


def test_an_unknown_login_name_is_locked_with_the_same_message_as_a_real_account(auth: ConsoleAuth) -> None:
    real = fail(auth, "wangfang", 5)
    ghost = fail(auth, "nobody", 5)
    assert [type(e) for e in real] == [type(e) for e in ghost]
    assert [str(e) for e in real] == [str(e) for e in ghost]
    assert "锁定" in str(ghost[-1])


def test_the_lock_of_one_name_does_not_touch_another(auth: ConsoleAuth) -> None:
    fail(auth, "wangfang", 5)
    issued = auth.authenticate("lizhuren", DIRECTOR_PASSWORD)
    assert issued.session.staff_id == "lizhuren" and issued.token


def test_two_console_auth_instances_on_one_database_share_the_failure_count(
    auth: ConsoleAuth, db_path: Path, clock: FakeClock,
) -> None:
    other_engine = open_engine(db_path)
    try:
        other = ConsoleAuth(other_engine, clock, kdf=FAST_KDF)
        fail(auth, "wangfang", 2)
        fail(other, "wangfang", 2)
        assert isinstance(fail(auth, "wangfang", 1)[0], AccountLockedError)
        with pytest.raises(AccountLockedError):
            other.authenticate("wangfang", PASSWORD)
    finally:
        other_engine.dispose()


# ------------------------------------------------------------------ sessions


def test_a_session_expires_after_thirty_idle_minutes(auth: ConsoleAuth, clock: FakeClock) -> None:
    token = auth.authenticate("wangfang", PASSWORD).token
    clock.advance(dt.timedelta(minutes=29, seconds=59))
    assert auth.resolve_session(token) is not None
    clock.advance(dt.timedelta(minutes=29, seconds=59))
    assert auth.resolve_session(token) is not None      # the last request restarted the idle timer
    clock.advance(dt.timedelta(minutes=30))
    assert auth.resolve_session(token) is None
    assert auth.resolve_session(token) is None          # and it is gone for good


def test_an_active_session_still_ends_twelve_hours_after_sign_in(auth: ConsoleAuth, clock: FakeClock) -> None:
    token = auth.authenticate("wangfang", PASSWORD).token
    for _ in range(12 * 3 - 1):
        clock.advance(dt.timedelta(minutes=20))
        assert auth.resolve_session(token) is not None
    clock.advance(dt.timedelta(minutes=20))
    assert auth.resolve_session(token) is None


def test_timeouts_are_configurable(engine: Engine, clock: FakeClock) -> None:
    auth = ConsoleAuth(engine, clock, kdf=FAST_KDF, policy=AuthPolicy(idle_timeout=dt.timedelta(minutes=5)))
    auth.create_staff("wangfang", "王芳", Role.OPERATOR, PASSWORD)
    token = auth.authenticate("wangfang", PASSWORD).token
    clock.advance(dt.timedelta(minutes=5))
    assert auth.resolve_session(token) is None


def test_logout_deletes_the_session_row(auth: ConsoleAuth, engine: Engine) -> None:
    token = auth.authenticate("wangfang", PASSWORD).token
    assert auth.logout(token)
    assert auth.resolve_session(token) is None
    with engine.connect() as conn:
        assert conn.execute(select(staff_session)).all() == []


def test_sessions_survive_a_restart_because_they_live_in_the_database(auth: ConsoleAuth, db_path: Path, clock: FakeClock) -> None:
    token = auth.authenticate("wangfang", PASSWORD).token
    auth.engine.dispose()
    restarted_engine = open_engine(db_path)
    try:
        restarted = ConsoleAuth(restarted_engine, clock, kdf=FAST_KDF)
        session = restarted.resolve_session(token)
        assert session is not None and session.actor == Actor("wangfang", Role.OPERATOR)
    finally:
        restarted_engine.dispose()


def test_the_database_holds_only_a_hash_of_the_session_token(auth: ConsoleAuth, engine: Engine) -> None:
    token = auth.authenticate("wangfang", PASSWORD).token
    with engine.connect() as conn:
        row = conn.execute(select(staff_session)).mappings().one()
    assert token.encode() not in bytes(row["session_hash"]) and len(row["session_hash"]) == 32


# ------------------------------------------------------------------ through the web


def test_pages_redirect_to_the_login_form_without_a_session(client: TestClient) -> None:
    response = client.get("/director/report?week=47")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fdirector%2Freport%3Fweek%3D47"


def test_the_api_answers_401_in_chinese_without_a_session(client: TestClient) -> None:
    response = client.get("/api/whoami")
    # The JSON API's error body (`shared.api.web`), not FastAPI's `{"detail": …}`.
    assert response.status_code == 401 and response.json() == {"code": "not_signed_in", "message": "请先登录。"}


def test_the_login_page_is_chinese_and_uses_the_shared_stylesheet(client: TestClient) -> None:
    page = client.get("/login")
    assert "工作人员登录" in page.text and "青石镇便民服务中心" in page.text and 'lang="zh-CN"' in page.text
    assert page.headers["cache-control"] == "no-store"
    css = client.get("/console-static/console.css")
    assert css.status_code == 200 and ".topbar" in css.text


def test_signing_in_sets_an_httponly_strict_session_cookie_and_the_page_shows_who_and_which_role(client: TestClient) -> None:
    response = sign_in(client, "wangfang", PASSWORD, next_url="/")
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE + "="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
    home = client.get("/")
    assert home.status_code == 200
    for text in ("今日待办：3 件", "王芳", "窗口工作人员", "退出登录", "青石镇便民服务中心"):
        assert text in home.text
    assert home.headers["cache-control"] == "no-store" and home.headers["x-frame-options"] == "DENY"
    assert client.get("/api/whoami").json() == {"staff_id": "wangfang", "role": "operator", "name": "王芳"}


def session_set_cookie(response: object) -> str:
    return next(h for h in response.headers.get_list("set-cookie") if "session=" in h.split(";")[0])


def test_the_session_cookie_is_marked_secure_when_configured_or_served_over_https(
    auth: ConsoleAuth, page_dir: Path, public_limiter: RateLimiter,
) -> None:
    configured, _ = build_app(auth, page_dir, public_limiter, secure_cookies=True)
    with TestClient(configured, follow_redirects=False) as c:   # plain HTTP behind a TLS proxy
        token = login_csrf(c)
        assert "Secure" in c.get("/login").headers["set-cookie"]
        # The browser (which sees HTTPS) sends the Secure login cookie back; httpx over HTTP would not.
        c.cookies.set(LOGIN_CSRF_COOKIE, token)
        response = c.post("/login", data={"staff_id": "wangfang", "password": PASSWORD, "csrf_token": token})
        assert "Secure" in session_set_cookie(response)
    plain, _ = build_app(auth, page_dir, public_limiter)
    with TestClient(plain, base_url="https://testserver", follow_redirects=False) as c:
        assert "Secure" in session_set_cookie(sign_in(c, "wangfang", PASSWORD))


def test_two_consoles_on_one_host_can_use_different_cookie_names(
    auth: ConsoleAuth, page_dir: Path, public_limiter: RateLimiter,
) -> None:
    app, _ = build_app(auth, page_dir, public_limiter, session_cookie="qc_county_session")
    with TestClient(app, follow_redirects=False) as c:
        sign_in(c, "wangfang", PASSWORD)
        assert "qc_county_session" in c.cookies and SESSION_COOKIE not in c.cookies
        assert c.get("/").status_code == 200


def test_a_wrong_password_on_the_login_form_shows_the_chinese_message_and_no_cookie(client: TestClient) -> None:
    response = sign_in(client, "wangfang", "不是这个密码不是这个")
    assert response.status_code == 401 and "登录名或密码错误。" in response.text
    assert SESSION_COOKIE not in client.cookies


def test_the_fifth_failure_on_the_login_form_says_when_the_account_unlocks(client: TestClient) -> None:
    for _ in range(4):
        sign_in(client, "nobody", "不是这个密码不是这个")
    response = sign_in(client, "nobody", "不是这个密码不是这个")
    assert "已暂时锁定" in response.text and "北京时间 09:15 后再试" in response.text


def test_the_login_form_refuses_a_post_without_its_own_csrf_token(client: TestClient) -> None:
    response = client.post("/login", data={"staff_id": "wangfang", "password": PASSWORD})
    assert response.status_code == 403 and "安全校验失败" in response.text
    assert SESSION_COOKIE not in client.cookies


def test_opening_the_login_page_again_does_not_invalidate_the_form_already_on_screen(client: TestClient) -> None:
    first_form_token = login_csrf(client)
    client.get("/favicon.ico")          # a browser's own request, redirected to the login page
    login_csrf(client)                  # or a second tab
    response = client.post("/login", data={"staff_id": "wangfang", "password": PASSWORD, "next": "/",
                                           "csrf_token": first_form_token})
    assert response.status_code == 303


def test_the_login_form_never_redirects_to_another_site(client: TestClient) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        client.cookies.clear()
        response = sign_in(client, "wangfang", PASSWORD, next_url=target)
        assert response.headers["location"] == "/"


def test_a_post_without_a_csrf_token_is_refused_with_403_in_chinese(client: TestClient) -> None:
    sign_in(client, "wangfang", PASSWORD)
    response = client.post("/matters/note", data={"text": "已电话告知申请人"})
    assert response.status_code == 403 and "安全校验失败" in response.text
    json_response = client.post("/matters/note", json={"text": "x"}, headers={"accept": "application/json"})
    assert json_response.status_code == 403 and "安全校验失败" in json_response.json()["detail"]


def test_a_post_with_a_wrong_csrf_token_is_refused(client: TestClient) -> None:
    sign_in(client, "wangfang", PASSWORD)
    assert client.post("/matters/note", data={"text": "x", "csrf_token": "forged"}).status_code == 403
    assert client.post("/matters/note", data={"text": "x"}, headers={"X-CSRF-Token": "forged"}).status_code == 403


def test_the_csrf_token_from_another_session_is_refused(auth: ConsoleAuth, client: TestClient) -> None:
    other = auth.authenticate("lizhuren", DIRECTOR_PASSWORD).session.csrf_token
    sign_in(client, "wangfang", PASSWORD)
    assert client.post("/matters/note", data={"text": "x", "csrf_token": other}).status_code == 403


def test_a_post_carrying_the_sessions_token_reaches_the_handler_with_its_form_intact(client: TestClient) -> None:
    sign_in(client, "wangfang", PASSWORD)
    token = session_csrf(client)
    as_field = client.post("/matters/note", data={"text": "材料已齐全", "csrf_token": token})
    assert as_field.status_code == 200 and as_field.json() == {"by": "wangfang", "text": "材料已齐全"}
    as_header = client.post("/matters/note", data={"text": "已上报县中心"}, headers={"X-CSRF-Token": token})
    assert as_header.json()["text"] == "已上报县中心"
    multipart = client.post("/matters/note", data={"text": "附扫描件", "csrf_token": token},
                            files={"scan": ("户口本.jpg", b"\xff\xd8\xff" + b"0" * 5000, "image/jpeg")})
    assert multipart.status_code == 200 and multipart.json()["text"] == "附扫描件"


def test_a_request_from_another_origin_is_refused_with_403(client: TestClient) -> None:
    sign_in(client, "wangfang", PASSWORD)
    token = session_csrf(client)
    foreign = client.post("/matters/note", data={"text": "x", "csrf_token": token},
                          headers={"Origin": "http://evil.example"})
    assert foreign.status_code == 403 and "其他网站" in foreign.text
    assert client.post("/matters/note", data={"text": "x", "csrf_token": token},
                       headers={"Origin": "null"}).status_code == 403
    same = client.post("/matters/note", data={"text": "x", "csrf_token": token},
                       headers={"Origin": "http://testserver"})
    assert same.status_code == 200


def test_an_operator_calling_a_directors_action_gets_a_chinese_403_page(client: TestClient) -> None:
    sign_in(client, "wangfang", PASSWORD)
    token = session_csrf(client)
    response = client.post("/extensions/approve", data={"csrf_token": token})
    assert response.status_code == 403
    assert "此操作仅限中心主任" in response.text and "您当前的身份是窗口工作人员" in response.text
    assert "王芳" in response.text            # still inside the console layout
    assert client.get("/director/report").status_code == 403


def test_a_director_may_call_the_directors_action(client: TestClient) -> None:
    sign_in(client, "lizhuren", DIRECTOR_PASSWORD)
    response = client.post("/extensions/approve", headers={"X-CSRF-Token": session_csrf(client)})
    assert response.status_code == 200 and response.json() == {"approved_by": "lizhuren"}


def test_logging_out_deletes_the_session_and_the_old_cookie_no_longer_opens_pages(client: TestClient) -> None:
    sign_in(client, "wangfang", PASSWORD)
    old_cookie = client.cookies[SESSION_COOKIE]
    response = client.post("/logout", data={"csrf_token": session_csrf(client)})
    assert response.status_code == 303 and response.headers["location"] == "/login?bye=1"
    client.cookies.set(SESSION_COOKIE, old_cookie)
    assert client.get("/").status_code == 303
    assert "您已退出登录" in client.get("/login?bye=1").text


def test_logout_also_needs_the_csrf_token(client: TestClient) -> None:
    sign_in(client, "wangfang", PASSWORD)
    assert client.post("/logout").status_code == 403
    assert client.get("/").status_code == 200


def test_an_idle_session_sends_the_browser_back_to_the_login_form(client: TestClient, clock: FakeClock) -> None:
    sign_in(client, "wangfang", PASSWORD)
    clock.advance(dt.timedelta(minutes=31))
    response = client.get("/")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")


def test_the_public_page_is_rate_limited_per_client_with_a_chinese_429(client: TestClient, clock: FakeClock) -> None:
    assert [client.get("/public/status").status_code for _ in range(3)] == [200, 200, 200]
    limited = client.get("/public/status")
    assert limited.status_code == 429 and "请求过于频繁" in limited.text
    assert limited.headers["retry-after"] == "1"
    clock.advance(dt.timedelta(seconds=1))
    assert client.get("/public/status").status_code == 200


def test_the_rate_limiter_keeps_one_bucket_per_client_and_a_bounded_number_of_clients(clock: FakeClock) -> None:
    limiter = RateLimiter(capacity=2, refill_per_second=0.5, clock=clock, max_clients=3)
    assert [limiter.check("10.0.0.1").allowed for _ in range(3)] == [True, True, False]
    assert limiter.check("10.0.0.2").allowed            # another client has its own bucket
    for i in range(3, 50):
        limiter.check(f"10.0.0.{i}")
    assert len(limiter) == 3
    assert limiter.check("10.0.0.1").allowed            # evicted long ago: starts afresh


@settings(max_examples=60, deadline=None)
@given(gaps=st.lists(st.integers(min_value=0, max_value=5000), min_size=1, max_size=60))
def test_the_rate_limiter_never_allows_more_than_its_burst_plus_what_has_refilled(gaps: list[int]) -> None:
    clock = FakeClock(START)
    limiter = RateLimiter(capacity=3, refill_per_second=2.0, clock=clock)
    allowed = 0
    for gap_ms in gaps:
        clock.advance(dt.timedelta(milliseconds=gap_ms))
        allowed += limiter.check("10.0.0.1").allowed
    elapsed_s = sum(gaps) / 1000
    assert allowed <= 3 + elapsed_s * 2.0 + 1e-9


def test_a_callers_templates_are_found_before_the_consoles_own(tmp_path: Path) -> None:
    (tmp_path / "forbidden.html").write_text("自定义的无权页面", encoding="utf-8")
    env = make_jinja_env(tmp_path)
    assert env.get_template("forbidden.html").render() == "自定义的无权页面"
    assert "工作人员登录" in env.get_template("login.html").render(console_name="某镇")


# ------------------------------------------------------------------ the staff CLI


def run_staff(argv: list[str], auth: ConsoleAuth) -> int:
    parser = new_parser("town-center", "测试")
    register_staff_commands(add_subparsers(parser), lambda args: auth)
    args = parser.parse_args(argv)
    return int(args.handler(args))


def test_the_staff_commands_add_list_reset_and_disable_accounts(
    auth: ConsoleAuth, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(STAFF_PASSWORD_ENV, "赵六的第一个密码用于值班")
    assert run_staff(["staff", "add", "zhaoliu", "--name", "赵六", "--role", "中心主任"], auth) == 0
    assert "已添加账号 zhaoliu（赵六，中心主任）" in capsys.readouterr().out
    auth.authenticate("zhaoliu", "赵六的第一个密码用于值班")
    monkeypatch.setenv(STAFF_PASSWORD_ENV, "赵六的第二个密码秋季启用")
    run_staff(["staff", "passwd", "zhaoliu"], auth)
    auth.authenticate("zhaoliu", "赵六的第二个密码秋季启用")
    run_staff(["staff", "disable", "zhaoliu"], auth)
    capsys.readouterr()
    run_staff(["staff", "list"], auth)
    listing = capsys.readouterr().out
    assert "zhaoliu\t赵六\t中心主任\t已停用" in listing and "wangfang\t王芳\t窗口工作人员\t在用" in listing


def test_the_staff_command_refuses_a_short_password_before_touching_the_database(
    auth: ConsoleAuth, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(STAFF_PASSWORD_ENV, "short")
    with pytest.raises(PasswordPolicyError, match="至少需要 12 个字符"):
        run_staff(["staff", "add", "zhaoliu", "--name", "赵六", "--role", "operator"], auth)
    assert [a.staff_id for a in auth.list_staff()] == ["lizhuren", "wangfang"]


def test_the_staff_help_is_chinese(capsys: pytest.CaptureFixture[str], auth: ConsoleAuth) -> None:
    with pytest.raises(SystemExit):
        run_staff(["staff", "add", "--help"], auth)
    out = capsys.readouterr().out
    assert "用法：" in out and "窗口工作人员" in out and STAFF_PASSWORD_ENV in out



def test_the_console_works_behind_a_path_prefix(auth: ConsoleAuth, page_dir: Path, public_limiter: RateLimiter) -> None:
    app, _ = build_app(auth, page_dir, public_limiter)
    with TestClient(app, root_path="/town", follow_redirects=False) as c:
        to_login = c.get("/town/")
        assert to_login.status_code == 303 and to_login.headers["location"] == "/town/login?next=%2F"
        page = c.get("/town/login?next=%2F")
        assert 'action="/town/login"' in page.text and "/town/console-static/console.css" in page.text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        signed_in = c.post("/town/login", data={"staff_id": "wangfang", "password": PASSWORD, "next": "/",
                                                "csrf_token": token})
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/town/"
        assert "王芳" in c.get("/town/").text
