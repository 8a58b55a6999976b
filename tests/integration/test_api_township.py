"""The township's JSON API on the console's real uvicorn server (port 0) over a real SQLite file, driven
with httpx: tokens made by `town-center staff token …` on the command line, the console's role rule,
the same matters as the console pages, JSON errors with a code and a Chinese message, and an OpenAPI
document that validates."""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from openapi_spec_validator import validate

from shared.clock import FakeClock
from shared.console import ConsoleAuth, ScryptParams, create_console_tables
from shared.domain.catalog import MatterKind
from shared.domain.handling import Role, Stage
from tests.town_fixtures import VillageDevice, township
from town_center import cli as town_cli
from town_center.bootstrap import TownApp
from town_center.console import create_console_app, start_console_server
from village_agent.services import lookup_code_hash

PASSWORD = "青石镇窗口2026春季值班"
CODE = "HK7PM-3QW9X"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_CJK = re.compile(r"[\u4e00-\u9fff]")


@dataclass
class Township:
    base_url: str
    town: TownApp
    db_url: str
    home: Path
    village: VillageDevice

    def token(self, staff_id: str, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
        """A token made the way an administrator makes one: `town-center staff token create`."""
        capsys.readouterr()
        assert town_cli.main(["staff", "token", "create", staff_id, *extra, "--home", str(self.home),
                              "--db", self.db_url]) == 0
        out = capsys.readouterr().out
        assert "只显示这一次" in out
        return next(line for line in out.splitlines() if line.startswith("qc_"))

    def api(self, token: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=f"{self.base_url}/api", headers=headers, timeout=10)


@pytest.fixture()
def township_server(tmp_path: Path) -> Iterator[Township]:
    db_url = f"sqlite:///{tmp_path / 'town.db'}"
    town = township(db_url)
    create_console_tables(town.store.engine)
    auth = ConsoleAuth(town.store.engine, town.clock, kdf=ScryptParams(n=2**10, r=8, p=1))
    auth.create_staff("wang", "王芳", Role.OPERATOR, PASSWORD)
    auth.create_staff("li", "李强", Role.OPERATOR, PASSWORD)
    auth.create_staff("zhao", "赵主任", Role.DIRECTOR, PASSWORD)
    auth.create_staff("admin", "系统管理员", Role.ADMINISTRATOR, PASSWORD)
    server = start_console_server(create_console_app(town, auth), "127.0.0.1:0")
    try:
        yield Township(f"http://127.0.0.1:{server.port}", town, db_url, tmp_path, VillageDevice(town, village_code="V001"))
    finally:
        server.stop()
        town.close()


def _signed_in(base_url: str, staff_id: str) -> httpx.Client:
    client = httpx.Client(base_url=base_url, timeout=10)
    form = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    done = client.post("/login", data={"staff_id": staff_id, "password": PASSWORD, "next": "/",
                                       "csrf_token": token.group(1)})
    assert done.status_code == 303, done.text
    return client


def _page_form(client: httpx.Client, path: str) -> dict[str, str]:
    page = client.get(path).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    version = re.search(r'name="expected_version" value="(\d+)"', page)
    assert csrf is not None and version is not None
    return {"csrf_token": csrf.group(1), "expected_version": version.group(1)}


def _assert_error(response: httpx.Response, status: int, code: str) -> dict[str, str]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code
    assert _CJK.search(body["message"]) and not _UUID.search(body["message"]), body
    return body


# ---------------------------------------------------------------- tokens


def test_a_token_created_on_the_command_line_authenticates_as_its_staff_member(
        township_server: Township, capsys: pytest.CaptureFixture[str]) -> None:
    token = township_server.token("wang", capsys, "--note", "县数据平台对接")
    with township_server.api(token) as api:
        me = api.get("/me")
    assert me.status_code == 200
    assert me.json() == {"staff_id": "wang", "display_name": "王芳", "role": "operator", "role_zh": "窗口工作人员"}
    assert me.headers["cache-control"] == "no-store"
    # Listed by number, owner and purpose; the token itself is never shown again, nor stored.
    assert town_cli.main(["staff", "token", "list", "--home", str(township_server.home), "--db", township_server.db_url]) == 0
    listing = capsys.readouterr().out
    assert "王芳" in listing and "县数据平台对接" in listing and "有效" in listing and token not in listing
    with township_server.town.store.engine.connect() as conn:
        dump = "\n".join(conn.connection.driver_connection.iterdump())
    assert token not in dump and token.encode().hex() not in dump


def test_a_revoked_token_and_an_expired_token_are_refused_with_a_chinese_reason(
        township_server: Township, capsys: pytest.CaptureFixture[str]) -> None:
    revoked = township_server.token("wang", capsys)
    expiring = township_server.token("li", capsys, "--expires", "1")
    assert town_cli.main(["staff", "token", "list", "wang", "--home", str(township_server.home),
                          "--db", township_server.db_url]) == 0
    number = re.search(r"^(\d+)\twang", capsys.readouterr().out, re.MULTILINE)
    assert number is not None
    assert town_cli.main(["staff", "token", "revoke", number.group(1), "--home", str(township_server.home),
                          "--db", township_server.db_url]) == 0
    assert "已吊销" in capsys.readouterr().out
    with township_server.api(revoked) as api:
        _assert_error(api.get("/me"), 401, "token_revoked")
    with township_server.api(expiring) as api:
        assert api.get("/me").status_code == 200
        clock = township_server.town.clock
        assert isinstance(clock, FakeClock)
        clock.advance(dt.timedelta(days=60))   # well past the day the CLI gave it (made on this machine's clock)
        _assert_error(api.get("/me"), 401, "token_expired")
    with township_server.api("qc_" + "x" * 43) as api:
        _assert_error(api.get("/matters"), 401, "token_invalid")
    with township_server.api(None) as api:
        _assert_error(api.get("/matters"), 401, "token_missing")


def test_the_console_session_cookie_does_not_work_for_the_api(
        township_server: Township) -> None:
    matter_id = township_server.village.file("MZ-003")
    browser = _signed_in(township_server.base_url, "wang")
    with closing(browser):
        # Even with the console's CSRF header, a signed-in browser cannot act through the API.
        csrf = _page_form(browser, f"/matters/{matter_id}")["csrf_token"]
        refused = browser.post(f"/api/matters/{matter_id}/classify", json={"expected_version": 0, "kind": "promised"},
                               headers={"x-csrf-token": csrf})
        _assert_error(refused, 401, "token_missing")
        _assert_error(browser.get("/api/matters"), 401, "token_missing")
    assert township_server.town.handling.page(matter_id).matter.stage is Stage.RECEIVED


# ---------------------------------------------------------------- the same matters, the same rules


def test_a_classification_through_the_api_is_seen_on_the_console_page_and_the_consoles_through_the_api(
        township_server: Township, capsys: pytest.CaptureFixture[str]) -> None:
    by_code = township_server.village.file("MZ-003", lookup_hash=lookup_code_hash(CODE))
    other = township_server.village.file("MZ-003")
    token = township_server.token("wang", capsys)
    browser = _signed_in(township_server.base_url, "wang")
    with township_server.api(token) as api, closing(browser):
        # The receipt's lookup code (spaces, lower case, no dash all fine) addresses the matter.
        detail = api.get("/matters/hk7pm 3qw9x").json()
        assert detail["matter_id"] == by_code and detail["allowed_actions"] == ["classify"]
        done = api.post(f"/matters/{CODE}/classify", json={"expected_version": detail["version"], "kind": "promised"})
        assert done.status_code == 200, done.text
        assert done.json()["message"] == "已受理，按承诺件办理"
        page = browser.get(f"/matters/{by_code}").text
        assert "办理中" in page and "承诺件：" in page and 'name="kind"' not in page   # classified: no form left

        form = _page_form(browser, f"/matters/{other}")
        posted = browser.post(f"/matters/{other}/classify", data={**form, "kind": "promised"})
        assert posted.status_code == 303
        seen = api.get(f"/matters/{other}").json()
        assert seen["stage"] == "in_progress" and seen["kind"] == "promised" and seen["owner_name"] == "王芳"
        assert seen["version"] == int(form["expected_version"]) + 1
        assert "suspend" in seen["allowed_actions"] and "classify" not in seen["allowed_actions"]
        inbox = api.get("/matters", params={"mine": "true"}).json()
        assert {m["matter_id"] for m in inbox["items"]} == {by_code, other}


def test_a_stale_version_is_a_conflict_and_changes_nothing(
        township_server: Township, capsys: pytest.CaptureFixture[str]) -> None:
    matter_id = township_server.village.file("MZ-003")
    with township_server.api(township_server.token("wang", capsys)) as api:
        assert api.post(f"/matters/{matter_id}/classify", json={"expected_version": 0, "kind": "promised"}).status_code == 200
        again = api.post(f"/matters/{matter_id}/classify", json={"expected_version": 0, "kind": "immediate"})
        _assert_error(again, 409, "version_conflict")
    assert township_server.town.handling.page(matter_id).matter.kind is MatterKind.PROMISED


def test_bad_input_gets_a_field_by_field_chinese_answer_and_unknown_matters_a_404(
        township_server: Township, capsys: pytest.CaptureFixture[str]) -> None:
    matter_id = township_server.village.file("MZ-003")
    with township_server.api(township_server.token("wang", capsys)) as api:
        bad = _assert_error(api.post(f"/matters/{matter_id}/classify", json={"expected_version": "x", "kind": "别的"}),
                            422, "invalid_request")
        assert {f["field"] for f in bad["fields"]} == {"expected_version", "kind"}
        _assert_error(api.post(f"/matters/{matter_id}/escalate", json={"expected_version": 0, "opinion": "",
                                                                       "confirm": True}), 422, "refused")
        _assert_error(api.get("/matters/AAAAA-BBBBB"), 404, "matter_not_found")
        _assert_error(api.get("/matters/7f9c0a8e-4b1d-4c55-9d0e-1a2b3c4d5e6f"), 404, "matter_not_found")
        _assert_error(api.get("/no-such-thing"), 404, "not_found")
    assert township_server.town.handling.page(matter_id).matter.stage is Stage.RECEIVED


def test_each_token_carries_exactly_its_staff_members_console_role(
        township_server: Township, capsys: pytest.CaptureFixture[str]) -> None:
    matter_id = township_server.village.file("MZ-003")
    town = township_server.town
    with township_server.api(township_server.token("wang", capsys)) as operator, \
            township_server.api(township_server.token("zhao", capsys)) as director, \
            township_server.api(township_server.token("admin", capsys)) as admin:
        version = operator.post(f"/matters/{matter_id}/classify", json={"expected_version": 0, "kind": "promised"}
                                ).json()["matter"]["version"]
        asked = operator.post(f"/matters/{matter_id}/request_extension", json={
            "expected_version": version, "new_limit": {"amount": 10, "unit": "working_days"}, "reason": "需现场核实"})
        assert asked.status_code == 200, asked.text
        version = asked.json()["matter"]["version"]
        # The console refuses an operator the director's approval; so does the API, in the same words.
        refused = _assert_error(operator.post(f"/matters/{matter_id}/decide_extension",
                                              json={"expected_version": version, "approve": True}), 403, "forbidden")
        assert "中心主任" in refused["message"] and "窗口工作人员" in refused["message"]
        # The administrator runs accounts, not cases.
        _assert_error(admin.post(f"/matters/{matter_id}/resume", json={"expected_version": version}), 403, "forbidden")
        assert admin.get(f"/matters/{matter_id}").json()["allowed_actions"] == []
        assert "decide_extension" in director.get(f"/matters/{matter_id}").json()["allowed_actions"]
        approved = director.post(f"/matters/{matter_id}/decide_extension", json={"expected_version": version, "approve": True})
        assert approved.status_code == 200 and approved.json()["message"] == "已批准延期，请书面告知申请人"
        assert approved.json()["matter"]["township_clock"]["limit"]["text_zh"] == "10个工作日"
        # A role change takes effect at the next call, as it does for a console session.
        ConsoleAuth(town.store.engine, town.clock).set_role("wang", Role.ADMINISTRATOR)
        _assert_error(operator.post(f"/matters/{matter_id}/resume", json={"expected_version": 0}), 403, "forbidden")
        ConsoleAuth(town.store.engine, town.clock).disable_staff("wang")
        _assert_error(operator.get("/me"), 401, "account_disabled")


def test_the_openapi_document_validates_and_every_operation_is_described_in_chinese(
        township_server: Township) -> None:
    with township_server.api(None) as api:
        response = api.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    validate(spec)
    operations = [(path, method, op) for path, item in spec["paths"].items() for method, op in item.items()]
    assert len(operations) >= 25
    for path, method, op in operations:
        assert _CJK.search(op.get("summary", "")), f"{method.upper()} {path} has no Chinese summary"
        assert op.get("security"), f"{method.upper()} {path} does not say it needs a token"
    assert {"/matters/{ref}/classify", "/matters/{ref}/escalate", "/figures", "/agents/{key_id}/revoke",
            "/supervision"} <= set(spec["paths"])
    assert spec["servers"] == [{"url": "/api"}]
    assert _CJK.search(spec["info"]["description"])


def test_a_handover_goes_to_an_active_colleague_from_the_colleagues_list(
        township_server: Township, capsys: pytest.CaptureFixture[str]) -> None:
    matter_id = township_server.village.file("MZ-003")
    with township_server.api(township_server.token("wang", capsys)) as api:
        version = api.post(f"/matters/{matter_id}/classify", json={"expected_version": 0, "kind": "promised"}
                           ).json()["matter"]["version"]
        colleagues = {c["staff_id"]: c["display_name"] for c in api.get("/colleagues").json()}
        assert colleagues == {"wang": "王芳", "li": "李强", "zhao": "赵主任"}    # never the administrator
        _assert_error(api.post(f"/matters/{matter_id}/hand_over", json={
            "expected_version": version, "to_staff": "admin", "reason": "请假"}), 422, "refused")
        handed = api.post(f"/matters/{matter_id}/hand_over", json={"expected_version": version, "to_staff": "li",
                                                                   "reason": "请假"})
        assert handed.status_code == 200, handed.text
        assert handed.json()["matter"]["owner_name"] == "李强"
        assert handed.json()["matter"]["events"][-1]["actor"] == "王芳"
    assert township_server.town.handling.page(matter_id).matter.owner == "li"
