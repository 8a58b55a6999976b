"""The county's JSON API beside a real township's, both on their consoles' real uvicorn servers (port 0),
the township linked to the county's real gRPC server: a 上报件 goes from the village through the
township API and the county API back to the township, and the county's role rule holds for tokens
exactly as on its board (an operator cannot decide)."""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from openapi_spec_validator import validate

from hub import cli as hub_cli
from hub.console import create_console_app as county_console
from shared.clock import FakeClock
from shared.console import ConsoleAuth, ScryptParams, create_console_tables
from shared.domain.handling import Role
from tests.county_fixtures import County, LinkedTownship, advance
from tests.town_fixtures import VillageDevice
from town_center import cli as town_cli
from town_center.console import create_console_app as town_console
from town_center.console import start_console_server

PASSWORD = "县政务中心2026冬季值班"
_CJK = re.compile(r"[\u4e00-\u9fff]")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass
class Servers:
    town_url: str
    county_url: str
    tmp: Path

    def token(self, tier: str, staff_id: str, capsys: pytest.CaptureFixture[str]) -> str:
        main, db = (town_cli.main, "town.db") if tier == "town" else (hub_cli.main, "county.db")
        capsys.readouterr()
        assert main(["staff", "token", "create", staff_id, "--home", str(self.tmp), "--db",
                     f"sqlite:///{self.tmp / db}"]) == 0
        return next(line for line in capsys.readouterr().out.splitlines() if line.startswith("qc_"))

    def api(self, tier: str, token: str | None) -> httpx.Client:
        base = self.town_url if tier == "town" else self.county_url
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=f"{base}/api", headers=headers, timeout=10)


@pytest.fixture()
def servers(tmp_path: Path, hub: County, town: LinkedTownship) -> Iterator[Servers]:
    fast = ScryptParams(n=2**10, r=8, p=1)
    create_console_tables(hub.app.store.engine)
    county_auth = ConsoleAuth(hub.app.store.engine, hub.app.clock, kdf=fast)
    county_auth.create_staff("chen", "陈主任", Role.DIRECTOR, PASSWORD)
    county_auth.create_staff("zhou", "周明", Role.OPERATOR, PASSWORD)
    create_console_tables(town.app.store.engine)
    town_auth = ConsoleAuth(town.app.store.engine, town.app.clock, kdf=fast)
    town_auth.create_staff("wang", "王芳", Role.OPERATOR, PASSWORD)
    county_server = start_console_server(county_console(hub.app, county_auth), "127.0.0.1:0")
    town_server = start_console_server(town_console(town.app, town_auth), "127.0.0.1:0")
    try:
        yield Servers(f"http://127.0.0.1:{town_server.port}", f"http://127.0.0.1:{county_server.port}", tmp_path)
    finally:
        town_server.stop()
        county_server.stop()


def _escalated_through_the_api(servers: Servers, town: LinkedTownship, hub: County, clock: FakeClock,
                               capsys: pytest.CaptureFixture[str]) -> str:
    matter_id = VillageDevice(town.app).file("MZ-001")
    with servers.api("town", servers.token("town", "wang", capsys)) as api:
        detail = api.get(f"/matters/{matter_id}").json()
        assert "reported" in detail["allowed_kinds"] and "classify" in detail["allowed_actions"]
        classified = api.post(f"/matters/{matter_id}/classify", json={"expected_version": detail["version"],
                                                                      "kind": "reported"})
        assert classified.status_code == 200, classified.text
        assert classified.json()["matter"]["allowed_actions"].count("escalate") == 1
        advance(clock, hours=1)
        unconfirmed = api.post(f"/matters/{matter_id}/escalate", json={
            "expected_version": classified.json()["matter"]["version"], "opinion": "乡镇初审：材料齐全，情况属实",
            "confirm": False})
        assert unconfirmed.status_code == 422 and "确认" in unconfirmed.json()["message"]
        escalated = api.post(f"/matters/{matter_id}/escalate", json={
            "expected_version": classified.json()["matter"]["version"], "opinion": "乡镇初审：材料齐全，情况属实",
            "confirm": True})
        assert escalated.status_code == 200, escalated.text
        assert escalated.json()["message"] == "已签名上报县政务服务中心，等待县级签收"
    advance(clock, minutes=5)
    town.sync()
    hub.app.handling.run_once()
    town.sync()
    return matter_id


def test_a_reported_matter_goes_from_the_township_api_to_the_county_api_and_its_decision_comes_back(
        servers: Servers, town: LinkedTownship, hub: County, clock: FakeClock, capsys: pytest.CaptureFixture[str]) -> None:
    matter_id = _escalated_through_the_api(servers, town, hub, clock, capsys)
    town_token = servers.token("town", "wang", capsys)
    with servers.api("town", town_token) as township:
        assert township.get(f"/matters/{matter_id}").json()["stage"] == "escalated"
    with servers.api("county", servers.token("county", "chen", capsys)) as county:
        board = county.get("/matters").json()
        assert [m["matter_id"] for m in board] == [matter_id]
        assert board[0]["township_name"] == "青山镇" and board[0]["clock_state"] == "on_time"
        detail = county.get(f"/matters/{matter_id}").json()
        assert {"approve", "refuse", "needs_materials", "suspend"} <= set(detail["allowed_acts"])
        assert detail["summary"] == "乡镇初审：材料齐全，情况属实"
        assert any("乡镇" in e["actor"] for e in detail["events"])
        decided = county.post(f"/matters/{matter_id}/decide", json={"expected_version": detail["version"],
                                                                    "outcome": "approve", "reason": "符合条件"})
        assert decided.status_code == 200, decided.text
        assert decided.json()["message"] == "已作出县级决定：批准，已签名下发乡镇"
        assert decided.json()["matter"]["outcome"] == "approve"
        again = county.post(f"/matters/{matter_id}/decide", json={"expected_version": detail["version"],
                                                                  "outcome": "refuse", "reason": "重复提交"})
        assert again.status_code == 409 and again.json()["code"] == "version_conflict"
    town.sync()
    with servers.api("town", town_token) as township:
        back = township.get(f"/matters/{matter_id}").json()
    assert back["stage"] == "result_ready"
    assert any(e["text"].startswith("县级决定") and e["actor"] == "县政务服务中心" for e in back["events"])


def test_a_county_operator_token_cannot_decide_and_nothing_moves(
        servers: Servers, town: LinkedTownship, hub: County, clock: FakeClock, capsys: pytest.CaptureFixture[str]) -> None:
    matter_id = _escalated_through_the_api(servers, town, hub, clock, capsys)
    before = hub.app.handling.history(matter_id).view
    with servers.api("county", servers.token("county", "zhou", capsys)) as county:
        detail = county.get(f"/matters/{matter_id}").json()
        assert not {"approve", "refuse", "needs_materials"} & set(detail["allowed_acts"])
        assert "中心主任" in detail["decision_refusal_zh"]
        refused = county.post(f"/matters/{matter_id}/decide", json={"expected_version": detail["version"],
                                                                    "outcome": "approve"})
        assert refused.status_code == 403, refused.text
        body = refused.json()
        assert body["code"] == "forbidden" and "中心主任" in body["message"] and not _UUID.search(body["message"])
        # What the board lets an operator do, the API lets the operator do: 督办.
        issued = county.post(f"/matters/{matter_id}/supervise", json={"message": "请尽快补充说明"})
        assert issued.status_code == 200 and issued.json()["message"].startswith("已签发督办通知")
        # The administrator's duties (township keys) are not the operator's.
        key_id = hub.app.store.keys()[0].key_id
        assert county.post(f"/townships/{key_id}/revoke", json={"reason": "测试"}).json()["code"] == "forbidden"
    after = hub.app.handling.history(matter_id).view
    assert after.outcome == "" and after.stage == before.stage and after.version == before.version


def test_the_county_openapi_document_validates_and_every_operation_is_described_in_chinese(servers: Servers) -> None:
    with servers.api("county", None) as county:
        spec = county.get("/openapi.json").json()
        unauthenticated = county.get("/matters")
    validate(spec)
    operations = [(path, method, op) for path, item in spec["paths"].items() for method, op in item.items()]
    assert len(operations) >= 20
    for path, method, op in operations:
        assert _CJK.search(op.get("summary", "")), f"{method.upper()} {path} has no Chinese summary"
    assert {"/matters/{matter_id}/decide", "/overdue", "/notices", "/refusals", "/townships/{key_id}/approve"} <= set(spec["paths"])
    assert unauthenticated.status_code == 401 and unauthenticated.json()["code"] == "token_missing"


def test_the_county_clock_is_suspended_and_resumed_through_the_api_only_for_a_step_the_rules_do_not_count(
        servers: Servers, town: LinkedTownship, hub: County, clock: FakeClock, capsys: pytest.CaptureFixture[str]) -> None:
    matter_id = _escalated_through_the_api(servers, town, hub, clock, capsys)
    with servers.api("county", servers.token("county", "chen", capsys)) as county:
        version = county.get(f"/matters/{matter_id}").json()["version"]
        inspection = county.post(f"/matters/{matter_id}/suspend", json={
            "expected_version": version, "reason": "site_inspection", "note": "现场勘查约需 3 个工作日"})
        assert inspection.status_code == 422 and inspection.json()["code"] == "refused"
        assert inspection.json()["message"].startswith("只有听证")
        suspended = county.post(f"/matters/{matter_id}/suspend", json={
            "expected_version": version, "reason": "appraisal", "note": "房屋安全鉴定，约需 10 个工作日"})
        assert suspended.status_code == 200, suspended.text
        assert suspended.json()["message"] == "县级已中止计时（鉴定），已签名告知乡镇"
        assert suspended.json()["matter"]["clock_status"] == "suspended"
        assert "resume" in suspended.json()["matter"]["allowed_acts"]
        resumed = county.post(f"/matters/{matter_id}/resume",
                              json={"expected_version": suspended.json()["matter"]["version"]})
        assert resumed.status_code == 200 and resumed.json()["matter"]["clock_status"] == "running"
