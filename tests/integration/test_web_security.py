"""The web servers of the three tiers as an attacker on the LAN, or a careless link, would meet them:
real uvicorn servers on free loopback ports (the township console, the county board, the village UI),
real SQLite files, httpx as the client.

* a foreign `Host` is refused by all three (DNS rebinding); the listen address's own names and the
  names an administrator adds are served;
* every page of every tier carries the Content-Security-Policy, `X-Frame-Options: DENY`, `nosniff` and
  `Referrer-Policy`, refusals and static files included;
* a forged `X-Forwarded-For` from loopback buys no more login tries or public lookups; forwarded
  addresses count only from a configured trusted proxy;
* an attacker hammering an account locks only themselves out: the holder at the usual address still
  signs in, also when the attacker spreads over many addresses;
* `?notice=` puts nothing in the official notice box; a real action's notice shows once;
* a clerk cannot ask for more materials on a matter another clerk owns (the director can);
* the village UI answers nothing but its unlock page before the passphrase.
"""
from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.clock import FakeClock
from shared.console import ConsoleAuth, ScryptParams, create_console_tables
from shared.console.guard import WebSecurity, uvicorn_options
from shared.console.serve import ConsoleServer, start_console_server
from shared.domain.catalog import MatterKind
from shared.domain.handling import Actor, Role, Stage
from tests.county_fixtures import County, county
from tests.town_fixtures import MONDAY_9AM, VillageDevice, township
from tests.village_fixtures import PASSPHRASE, make_agent, unlock_ui
from town_center.bootstrap import TownApp

PASSWORD = "青石镇窗口2026春季值班"
FAST_KDF = ScryptParams(n=2**10, r=8, p=1)
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
NEEDED_HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


def assert_security_headers(response: httpx.Response) -> None:
    for name, value in NEEDED_HEADERS.items():
        assert response.headers.get(name) == value, (response.request.url, name, response.headers.get(name))
    csp = response.headers.get("content-security-policy", "")
    for part in ("default-src 'self'", "script-src 'self'", "frame-ancestors 'none'", "object-src 'none'",
                 "base-uri 'none'", "form-action 'self'"):
        assert part in csp, (response.request.url, csp)
    assert "unsafe-eval" not in csp and "script-src 'self' 'unsafe-inline'" not in csp


def sign_in(http: httpx.Client, staff_id: str, password: str = PASSWORD,
            headers: dict[str, str] | None = None) -> httpx.Response:
    form = http.get("/login", headers=headers)
    token = _CSRF.search(form.text)
    assert token is not None, form.text[:300]
    return http.post("/login", data={"csrf_token": token.group(1), "staff_id": staff_id, "password": password,
                                     "next": "/"}, headers=headers)


def csrf_of(page: httpx.Response) -> str:
    token = _CSRF.search(page.text)
    assert token is not None, page.text[:300]
    return token.group(1)


# ---------------------------------------------------------------- servers


@dataclass
class Town:
    app: TownApp
    auth: ConsoleAuth
    village: VillageDevice
    clock: FakeClock
    servers: list[ConsoleServer]

    def serve(self, security: WebSecurity | None = None) -> str:
        from town_center.console import create_console_app

        server = start_console_server(create_console_app(self.app, self.auth), "127.0.0.1:0", security=security)
        self.servers.append(server)
        return f"http://127.0.0.1:{server.port}"


@pytest.fixture
def town(tmp_path: Path) -> Iterator[Town]:
    app = township(f"sqlite:///{tmp_path / 'town.db'}")
    create_console_tables(app.store.engine)
    auth = ConsoleAuth(app.store.engine, app.clock, kdf=FAST_KDF)
    auth.create_staff("wang", "王芳", Role.OPERATOR, PASSWORD)
    auth.create_staff("li", "李强", Role.OPERATOR, PASSWORD)
    auth.create_staff("zhao", "赵主任", Role.DIRECTOR, PASSWORD)
    made = Town(app, auth, VillageDevice(app), app.clock, [])
    try:
        yield made
    finally:
        for server in made.servers:
            server.stop()
        app.close()


@pytest.fixture
def board(tmp_path: Path) -> Iterator[str]:
    from hub.console import create_console_app, open_console_auth

    hub: County = county(f"sqlite:///{tmp_path / 'county.db'}", FakeClock(MONDAY_9AM))
    auth = open_console_auth(hub.app, kdf=FAST_KDF)
    auth.create_staff("chen", "陈主任", Role.DIRECTOR, PASSWORD)
    server = start_console_server(create_console_app(hub.app, auth), "127.0.0.1:0")
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()
        hub.close()


@dataclass
class VillageUI:
    base_url: str
    service: Any


@pytest.fixture
def village_ui(tmp_path: Path) -> Iterator[VillageUI]:
    """The village UI as `village-agent serve` builds it: Host allow-list from the listen address."""
    import uvicorn

    from village_agent.bootstrap import open_agent
    from village_agent.ui.server import create_app

    root = tmp_path / "agent"
    make_agent(root)
    service = open_agent(root, PASSPHRASE)
    hosts = WebSecurity.for_address("127.0.0.1:0").allowed_hosts
    server = uvicorn.Server(uvicorn.Config(create_app(service, allowed_hosts=hosts), host="127.0.0.1", port=0,
                                           **uvicorn_options()))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "村代办员网页服务未能启动"
        time.sleep(0.02)
    try:
        yield VillageUI(f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}", service)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        service.store.close()


def client(base_url: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, timeout=20, follow_redirects=False)


# ---------------------------------------------------------------- Host allow-list


def test_all_three_tiers_refuse_a_foreign_host_header_and_answer_their_own_names(
        town: Town, board: str, village_ui: VillageUI) -> None:
    town_url = town.serve()
    for base in (town_url, board, village_ui.base_url):
        port = base.rsplit(":", 1)[1]
        with client(base) as http:
            for forged in ("attacker.example", f"attacker.example:{port}", "192.168.1.50", ""):
                refused = http.get("/login" if base != village_ui.base_url else "/unlock", headers={"Host": forged})
                assert refused.status_code in (400, 403), (base, forged, refused.status_code)
                assert "拒绝访问" in refused.text and "attacker" not in refused.text
                assert_security_headers(refused)
            for own in (f"127.0.0.1:{port}", f"localhost:{port}"):
                ok = http.get("/login" if base != village_ui.base_url else "/unlock", headers={"Host": own})
                assert ok.status_code == 200, (base, own)


def test_a_name_the_administrator_adds_is_served_and_others_still_are_not(town: Town) -> None:
    base = town.serve(WebSecurity.for_address("127.0.0.1:0", extra_hosts=["town.example.gov.cn"]))
    with client(base) as http:
        assert http.get("/login", headers={"Host": "town.example.gov.cn"}).status_code == 200
        assert http.get("/login", headers={"Host": "evil.example.gov.cn"}).status_code == 400


def test_a_listen_address_off_loopback_allows_its_own_name_and_bad_settings_are_refused_in_chinese() -> None:
    from shared.console.errors import WebSettingError

    assert WebSecurity.for_address("192.168.1.5:8700").allowed_hosts == {"192.168.1.5"}
    assert "127.0.0.1" in WebSecurity.for_address("[::1]:8700").allowed_hosts
    with pytest.raises(WebSettingError, match="受信任的代理"):
        WebSecurity.for_address("127.0.0.1:8700", trusted_proxies=["反向代理"])
    with pytest.raises(WebSettingError, match="允许的服务器名称"):
        WebSecurity.for_address("127.0.0.1:8700", extra_hosts=["http://town.example/"])


# ---------------------------------------------------------------- security headers


def test_every_page_of_the_three_tiers_carries_the_security_headers(
        town: Town, board: str, village_ui: VillageUI) -> None:
    town_url = town.serve()
    with client(town_url) as http:
        for path in ("/login", "/public", "/town-static/town.css", "/console-static/console.css", "/no-such-page", "/"):
            assert_security_headers(http.get(path))
        assert sign_in(http, "wang").status_code == 303
        for path in ("/", "/supervision", "/figures", "/agents", "/matters/不存在"):
            assert_security_headers(http.get(path))
        assert_security_headers(http.post("/follow-ups/draw", data={}))   # refused: no CSRF token
    with client(board) as http:
        assert sign_in(http, "chen").status_code == 303
        for path in ("/", "/overdue", "/notices", "/refusals", "/townships", "/calendar", "/county-static/county.css",
                     "/nowhere", "/login"):
            assert_security_headers(http.get(path))
    with client(village_ui.base_url) as http:
        for path in ("/unlock", "/", "/static/app.css", "/static/app.js", "/api/assess?matter=MZ-001"):
            assert_security_headers(http.get(path))
        unlock_ui(http)
        for path in ("/", "/matters/new", "/appointments", "/sync", "/matters/no-such", "/nowhere"):
            assert_security_headers(http.get(path))


# ---------------------------------------------------------------- forwarded headers and rate limits


def test_a_forged_x_forwarded_for_from_loopback_buys_no_more_login_tries_or_public_lookups(town: Town) -> None:
    base = town.serve()
    with client(base) as http:
        token = csrf_of(http.get("/login"))
        statuses = []
        for n in range(30):
            response = http.post("/login", data={"csrf_token": token, "staff_id": "wang", "password": f"猜的密码{n:04d}猜的密码",
                                                 "next": "/"}, headers={"X-Forwarded-For": f"10.0.{n}.{n + 1}"})
            statuses.append(response.status_code)
        # The limiter's 20 at once for this socket address, whatever the header says; then 429 in Chinese.
        assert statuses.count(429) == 10 and 429 not in statuses[:20]
        assert "请求过于频繁" in response.text and response.headers["Retry-After"]
        lookups = [http.post("/public", data={"code": "AB3CD-EF4GH"}, headers={"X-Forwarded-For": f"172.16.0.{n}"}).status_code
                   for n in range(50)]
        assert lookups.count(429) == 40 and 429 not in lookups[:10]


def test_forwarded_addresses_count_only_from_a_configured_trusted_proxy(town: Town) -> None:
    behind_proxy = town.serve(WebSecurity.for_address("127.0.0.1:0", trusted_proxies=["127.0.0.1"]))
    with client(behind_proxy) as http:
        # Each villager behind the proxy has a bucket of their own...
        lookups = [http.post("/public", data={"code": "AB3CD-EF4GH"}, headers={"X-Forwarded-For": f"172.16.0.{n}"}).status_code
                   for n in range(30)]
        assert 429 not in lookups
        # ...and one villager asking too often is still limited, however the proxy chain is padded.
        again = [http.post("/public", data={"code": "AB3CD-EF4GH"},
                           headers={"X-Forwarded-For": f"6.6.6.{n}, 172.16.9.9"}).status_code for n in range(12)]
        assert again.count(429) == 2


def test_the_client_behind_a_chain_of_trusted_proxies_is_the_first_untrusted_address() -> None:
    security = WebSecurity.for_address("127.0.0.1:0", trusted_proxies=["127.0.0.1", "10.0.0.0/8"])
    assert security.client_from_chain("127.0.0.1", ["203.0.113.7, 10.1.2.3"]) == "203.0.113.7"
    assert security.client_from_chain("127.0.0.1", ["1.1.1.1, 203.0.113.7, 10.1.2.3"]) == "203.0.113.7"
    assert security.client_from_chain("192.0.2.9", ["203.0.113.7"]) == "192.0.2.9"   # not a proxy: header ignored


# ---------------------------------------------------------------- lock-out by address and account


def test_an_attacker_hammering_an_account_cannot_lock_its_holder_out_at_the_usual_address(town: Town) -> None:
    base = town.serve(WebSecurity.for_address("127.0.0.1:0", trusted_proxies=["127.0.0.1"]))
    desk = {"X-Forwarded-For": "10.1.1.1"}
    with client(base) as holder:
        assert sign_in(holder, "wang", headers=desk).status_code == 303   # the usual desk, remembered
    with client(base) as attacker:
        for n in range(5):
            assert sign_in(attacker, "wang", f"猜错的密码第{n}次猜错", headers={"X-Forwarded-For": "10.9.9.9"}).status_code == 401
        locked = sign_in(attacker, "wang", PASSWORD, headers={"X-Forwarded-For": "10.9.9.9"})
        assert locked.status_code == 401 and "这台电脑上已暂时锁定" in locked.text   # even the right password
    with client(base) as holder:
        assert sign_in(holder, "wang", headers=desk).status_code == 303
    with client(base) as attacker:   # now from many addresses, a few tries each: the account-wide bar
        for n in range(20):
            sign_in(attacker, "wang", f"换个地址再猜第{n}次", headers={"X-Forwarded-For": f"10.8.{n}.1"})
        elsewhere = sign_in(attacker, "wang", PASSWORD, headers={"X-Forwarded-For": "10.7.7.7"})
        assert elsewhere.status_code == 401 and "多处登录失败" in elsewhere.text
    with client(base) as holder:
        signed_in = sign_in(holder, "wang", headers=desk)
        assert signed_in.status_code == 303
        assert "王芳" in holder.get("/").text
    town.clock.advance(dt.timedelta(minutes=16))   # the locks end on their own
    with client(base) as later:
        assert sign_in(later, "wang", headers={"X-Forwarded-For": "10.7.7.7"}).status_code == 303


# ---------------------------------------------------------------- notices


def test_the_notice_parameter_puts_nothing_in_the_official_notice_box_and_a_real_notice_shows_once(
        town: Town, board: str) -> None:
    forged = "系统升级：请把密码发送到 13800001111 核验"
    with client(town.serve()) as http:
        assert sign_in(http, "zhao").status_code == 303
        for path in ("/", "/follow-ups", "/agents", "/extensions", "/county-notices"):
            page = http.get(path, params={"notice": forged})
            assert forged not in page.text and 'class="notice"' not in page.text
        drawn = http.post("/follow-ups/draw", data={"csrf_token": csrf_of(http.get("/follow-ups"))})
        assert drawn.status_code == 303 and "notice" not in drawn.headers["location"]
        first = http.get(drawn.headers["location"]).text
        assert 'class="notice"' in first and "本周" in first
        assert 'class="notice"' not in http.get(drawn.headers["location"]).text   # once only
    with client(board) as http:
        assert sign_in(http, "chen").status_code == 303
        for path in ("/", "/townships", "/overdue", "/calendar"):
            page = http.get(path, params={"notice": forged})
            assert forged not in page.text and 'class="notice"' not in page.text


# ---------------------------------------------------------------- who may ask for materials


def test_a_clerk_cannot_ask_for_materials_on_a_matter_another_clerk_owns_but_the_director_can(town: Town) -> None:
    matter_id = town.village.file("MZ-003")
    town.app.handling.classify(matter_id, MatterKind.PROMISED, actor=Actor("wang", Role.OPERATOR))
    base = town.serve()
    with client(base) as li:
        assert sign_in(li, "li").status_code == 303
        page = li.get(f"/matters/{matter_id}")
        version = re.search(r'name="expected_version" value="(\d+)"', page.text)
        assert version is not None
        refused = li.post(f"/matters/{matter_id}/request_materials", data={
            "csrf_token": csrf_of(page), "expected_version": version.group(1), "missing_materials": "户口簿复印件"})
        assert refused.status_code == 400 and "首问责任人" in refused.text
    assert town.app.handling.page(matter_id).matter.stage is Stage.IN_PROGRESS
    with client(base) as zhao:
        assert sign_in(zhao, "zhao").status_code == 303
        page = zhao.get(f"/matters/{matter_id}")
        version = re.search(r'name="expected_version" value="(\d+)"', page.text)
        assert version is not None
        done = zhao.post(f"/matters/{matter_id}/request_materials", data={
            "csrf_token": csrf_of(page), "expected_version": version.group(1), "missing_materials": "户口簿复印件"})
        assert done.status_code == 303
    assert town.app.handling.page(matter_id).matter.stage is Stage.WAITING_MATERIALS


# ---------------------------------------------------------------- the village UI before unlocking


def test_the_village_ui_shows_and_files_nothing_before_the_passphrase_is_typed(village_ui: VillageUI) -> None:
    service = village_ui.service
    before = service.store.tip().seq
    with client(village_ui.base_url) as http:
        for path in ("/", "/matters/new", "/appointments", "/sync", "/matters/whatever/receipt"):
            response = http.get(path)
            assert response.status_code == 303 and response.headers["location"].startswith("/unlock")
        api = http.get("/api/assess", params={"matter": "MZ-001"})
        assert api.status_code == 401 and "解锁" in api.json()["error"]
        token = csrf_of(http.get("/unlock"))
        filed = http.post("/matters", data={"csrf_token": token, "name": "李桂兰", "matter": "MZ-001"})
        assert filed.status_code == 303 and filed.headers["location"] == "/unlock"
        wrong = http.post("/unlock", data={"csrf_token": token, "secret": "不是这个口令", "next": "/"})
        assert wrong.status_code == 401 and "口令或 PIN 不正确" in wrong.text
        # A forged Host naming this machine does not help: the lock is not about names.
        assert http.get("/", headers={"Host": "127.0.0.1"}).status_code == 303
        unlock_ui(http)
        assert http.get("/").status_code == 200
    assert service.store.tip().seq == before and service.store.count_matters() == 0
