"""Refusals made in front of the JSON API, by the console's web server it is mounted in (Host allow-list,
Origin check, the console's middleware) and by the API's own limit on bad tokens, answer like every other
API error: `{"code", "message"}` JSON with a Chinese message, never `{"detail": …}` or an HTML page. The
real township console server (uvicorn, port 0, behind `HostGuard`) over a real SQLite file."""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from shared.console import ConsoleAuth, ScryptParams, create_console_tables
from shared.domain.handling import Role
from tests.town_fixtures import township
from town_center import cli as town_cli
from town_center.console import create_console_app, start_console_server

PASSWORD = "青石镇窗口2026春季值班"
_CJK = re.compile(r"[\u4e00-\u9fff]")


@dataclass
class Server:
    base_url: str
    port: int
    home: Path
    db_url: str

    def token(self, capsys: pytest.CaptureFixture[str]) -> str:
        capsys.readouterr()
        assert town_cli.main(["staff", "token", "create", "wang", "--home", str(self.home), "--db", self.db_url]) == 0
        return next(line for line in capsys.readouterr().out.splitlines() if line.startswith("qc_"))


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[Server]:
    db_url = f"sqlite:///{tmp_path / 'town.db'}"
    town = township(db_url)
    create_console_tables(town.store.engine)
    auth = ConsoleAuth(town.store.engine, town.clock, kdf=ScryptParams(n=2**10, r=8, p=1))
    auth.create_staff("wang", "王芳", Role.OPERATOR, PASSWORD)
    console = start_console_server(create_console_app(town, auth), "127.0.0.1:0")
    try:
        yield Server(f"http://127.0.0.1:{console.port}", console.port, tmp_path, db_url)
    finally:
        console.stop()
        town.close()


def _api_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers["content-type"]
    body = response.json()
    assert set(body) == {"code", "message"} and body["code"] == code, body
    assert _CJK.search(body["message"]), body
    assert response.headers.get("x-content-type-options") == "nosniff"
    return str(body["message"])


def test_a_foreign_host_on_an_api_path_gets_the_api_error_body_and_pages_still_get_html(
        server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    token = server.token(capsys)
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        for path in ("/api/me", "/api", "/api/openapi.json"):
            refused = http.get(path, headers={"Host": "attacker.example", "Authorization": f"Bearer {token}"})
            assert "--allowed-host" in _api_error(refused, 400, "foreign_host")
        page = http.get("/login", headers={"Host": "attacker.example"})
        assert page.status_code == 400 and page.headers["content-type"].startswith("text/html")
        assert http.get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_a_call_from_another_sites_origin_gets_the_api_error_body(
        server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    token = server.token(capsys)
    with httpx.Client(base_url=server.base_url, timeout=10, headers={"Authorization": f"Bearer {token}"}) as http:
        refused = http.post("/api/matters/x/classify", json={"expected_version": 0, "kind": "immediate"},
                            headers={"Origin": "https://attacker.example"})
        assert "其他网站" in _api_error(refused, 403, "foreign_origin")
        same_site = http.get("/api/me", headers={"Origin": server.base_url})
        assert same_site.status_code == 200


def test_a_flood_of_bad_tokens_from_one_address_is_limited_with_the_api_error_body_and_a_live_token_still_works(
        server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    token = server.token(capsys)
    bad = "qc_" + "A" * 43
    with httpx.Client(base_url=f"{server.base_url}/api", timeout=10) as http:
        answers = [http.get("/me", headers={"Authorization": f"Bearer {bad}"}) for _ in range(25)]
        assert answers[0].status_code == 401 and answers[0].json()["code"] == "token_invalid"
        limited = answers[-1]
        assert "秒后再试" in _api_error(limited, 429, "rate_limited")
        assert int(limited.headers["retry-after"]) > 0
        assert sum(a.status_code == 401 for a in answers) == 20
        assert http.get("/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_an_unknown_api_path_and_a_cookie_without_csrf_token_get_the_api_error_body(server: Server) -> None:
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        _api_error(http.get("/api/no-such-thing"), 404, "not_found")
        # The console's session cookie and CSRF rules do not reach the API (bearer tokens only): a
        # signed-in browser's cookie, sent without any CSRF token, is simply not a credential here.
        login = http.get("/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
        assert csrf is not None
        assert http.post("/login", data={"staff_id": "wang", "password": PASSWORD, "next": "/",
                                         "csrf_token": csrf.group(1)}).status_code == 303
        _api_error(http.post("/api/matters/x/classify", json={"expected_version": 0, "kind": "immediate"}),
                   401, "token_missing")
