"""The township's front desk, 好差评, 考核 and 督查 through the JSON API, on the console's real uvicorn
server (port 0) over a real SQLite file, with tokens made on the command line: the same service calls
as the console pages, the same role rules, Chinese `{code, message}` errors, and a complainant's or an
evaluator's identity only for the director and the supervision role."""
from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from openapi_spec_validator import validate

from shared.console import ConsoleAuth, ScryptParams, create_console_tables
from shared.domain.catalog import MatterKind
from shared.domain.evaluation import BadReason, Level, Rating
from shared.domain.handling import Role
from tests.front_desk_fixtures import pad_signature, walk_in_form
from tests.town_fixtures import OPERATOR, VillageDevice, township
from town_center import cli as town_cli
from town_center.bootstrap import TownApp
from town_center.console import create_console_app, start_console_server
from town_center.evaluation import Evaluations
from town_center.supervision import Cause
from village_agent.services import lookup_code_hash

PASSWORD = "青石镇窗口2026春季值班"
CODE = "HK7PM-3QW9X"
_CJK = re.compile(r"[\u4e00-\u9fff]")


@dataclass
class Township:
    base_url: str
    town: TownApp
    home: Path
    db_url: str
    tokens: dict[str, str]

    def api(self, staff_id: str) -> httpx.Client:
        return httpx.Client(base_url=f"{self.base_url}/api", timeout=15,
                            headers={"Authorization": f"Bearer {self.tokens[staff_id]}"})


@pytest.fixture()
def desk(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Township]:
    db_url = f"sqlite:///{tmp_path / 'town.db'}"
    town = township(db_url)
    create_console_tables(town.store.engine)
    auth = ConsoleAuth(town.store.engine, town.clock, kdf=ScryptParams(n=2**10, r=8, p=1))
    for staff_id, name, role in (("wang", "王芳", Role.OPERATOR), ("li", "李强", Role.OPERATOR),
                                 ("zhao", "赵主任", Role.DIRECTOR), ("sun", "孙督查", Role.SUPERVISOR),
                                 ("admin", "系统管理员", Role.ADMINISTRATOR)):
        auth.create_staff(staff_id, name, role, PASSWORD)
    tokens = {}
    for staff_id in ("wang", "li", "zhao", "sun", "admin"):
        capsys.readouterr()
        assert town_cli.main(["staff", "token", "create", staff_id, "--home", str(tmp_path), "--db", db_url]) == 0
        tokens[staff_id] = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("qc_"))
    server = start_console_server(create_console_app(town, auth), "127.0.0.1:0")
    try:
        yield Township(f"http://127.0.0.1:{server.port}", town, tmp_path, db_url, tokens)
    finally:
        server.stop()
        town.close()


def _refused(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and _CJK.search(body["message"]), body
    return str(body["message"])


def test_a_complaint_is_registered_answered_and_closed_and_only_the_director_sees_who_complained(desk: Township) -> None:
    with desk.api("wang") as wang:
        made = wang.post("/front-desk/cases", json={
            "kind": "complaint", "subject": "窗口排队太久", "content": "上午等了两个小时无人办理",
            "person_name": "周大爷", "person_contact": "东山村三组", "handler": "wang"})
        assert made.status_code == 200, made.text
        case = made.json()["case"]
        assert made.json()["message"].startswith("已登记 投诉")
        assert case["person"] is None and case["identity_hidden"] is True and case["stage"] == "open"
        listed = wang.get("/front-desk/cases", params={"kind": "complaint"}).json()
        assert [c["case_id"] for c in listed] == [case["case_id"]] and "周大爷" not in str(listed)
    with desk.api("zhao") as zhao:
        seen = zhao.get(f"/front-desk/cases/{case['case_id']}").json()
        assert seen["person"] == {"name": "周大爷", "contact": "东山村三组"}
        assert seen["identity_hidden"] is False and seen["events"]
    with desk.api("wang") as wang:
        stale = wang.post(f"/front-desk/cases/{case['case_id']}/answer",
                          json={"answer": "已增开窗口", "expected_version": case["version"] + 5})
        _refused(stale, 409, "version_conflict")
        answered = wang.post(f"/front-desk/cases/{case['case_id']}/answer",
                             json={"answer": "已增开一个窗口，高峰期分流", "expected_version": case["version"]})
        assert answered.status_code == 200, answered.text
        assert answered.json()["message"] == "已登记答复，请回访并登记反馈"
        closed = wang.post(f"/front-desk/cases/{case['case_id']}/feedback",
                           json={"feedback": "satisfied",
                                 "expected_version": answered.json()["case"]["version"]})
        assert closed.status_code == 200, closed.text
        assert closed.json()["case"]["stage"] == "closed"
        bad = wang.post("/front-desk/cases", json={"kind": "complaint", "subject": "", "content": ""})
        assert "请填写" in _refused(bad, 422, "refused")
        assert wang.get("/front-desk/cases", params={"kind": "complaint"}).json()[0]["stage"] == "closed"


def test_appointments_the_queue_and_absences_follow_the_console_role_rules(desk: Township) -> None:
    monday_10 = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    with desk.api("wang") as wang:
        booked = wang.post("/front-desk/appointments", json={
            "applicant_name": "李阿姨", "phone": "13907310002", "catalog_code": "MZ-003",
            "scheduled_at": (monday_10 + dt.timedelta(days=1)).isoformat()})
        assert booked.status_code == 200, booked.text
        appointment = booked.json()["appointment"]
        assert appointment["state"] == "confirmed" and "13907310002" not in booked.text
        assert [a["appointment_id"] for a in wang.get("/front-desk/appointments").json()] == [appointment["appointment_id"]]
        naive = wang.post("/front-desk/appointments", json={
            "applicant_name": "李阿姨", "phone": "13907310002", "catalog_code": "MZ-003",
            "scheduled_at": "2026-11-24T10:00:00"})
        assert "时区" in _refused(naive, 422, "refused")
        cancelled = wang.post(f"/front-desk/appointments/{appointment['appointment_id']}/change", json={
            "reason": "窗口临时停电", "approved_by": "zhao", "applicant_told": True,
            "expected_version": appointment["version"]})
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["message"] == "已取消预约"

        ticket = wang.post("/front-desk/queue", json={"applicant_name": "张三", "elderly_or_disabled": True})
        assert ticket.status_code == 200 and ticket.json()["number"] >= 1
        called = wang.post("/front-desk/queue/next")
        assert called.status_code == 200 and called.json()["applicant_name"] == "张三"
        assert "没有等候" in _refused(wang.post("/front-desk/queue/next"), 404, "queue_empty")
        overview = wang.get("/front-desk").json()
        assert overview["queue"][0]["called_by"] == "wang"

        # AB posts are the director's to set; an operator is refused in Chinese, as on the page.
        assert "中心主任" in _refused(wang.post("/front-desk/posts", json={"name": "民政窗口", "a_staff": "wang",
                                                                        "b_staff": "li"}), 403, "forbidden")
    with desk.api("zhao") as zhao:
        assert zhao.post("/front-desk/posts", json={"name": "民政窗口", "a_staff": "wang", "b_staff": "li"}).status_code == 200
        absence = zhao.post("/front-desk/absences", json={"staff_id": "wang", "from_date": "2026-11-24",
                                                           "to_date": "2026-11-25", "reason": "外出培训"})
        assert absence.status_code == 200, absence.text
        assert absence.json()["absence"]["absence"]["covered_by"] == "li"
    with desk.api("admin") as admin:
        # The administrator looks, never acts (separation of duties), exactly as on the pages.
        assert admin.get("/front-desk/posts").json()[0]["name"] == "民政窗口"
        _refused(admin.post("/front-desk/queue", json={"applicant_name": "王五"}), 403, "forbidden")


def _rated_badly(town: TownApp) -> str:
    village = VillageDevice(town)
    matter_id = village.file("MZ-003", lookup_hash=lookup_code_hash(CODE), phone="13907310003")
    town.handling.classify(matter_id, MatterKind.IMMEDIATE, actor=OPERATOR)
    town.handling.record_result(matter_id, approved=True, summary="已发放临时救助金", actor=OPERATOR)
    evaluations = Evaluations(town.handling)
    token = evaluations.issue_token(matter_id, by="wang")
    evaluations.rate_with_token(token, Rating(Level.VERY_DISSATISFIED, BadReason.ATTITUDE), raw_code=CODE)
    return matter_id


def test_the_evaluator_is_shown_to_the_director_and_the_supervisor_only_and_the_bad_review_is_worked_through_the_api(
        desk: Township) -> None:
    _rated_badly(desk.town)
    with desk.api("wang") as wang:
        assert "中心主任" in _refused(wang.get("/evaluations"), 403, "forbidden")
        mine = wang.get("/evaluations/mine")
        assert mine.status_code == 200 and "测试村民" not in mine.text and "13907310003" not in mine.text
    with desk.api("sun") as sun:
        [row] = sun.get("/evaluations", params={"bad_only": True}).json()
        assert row["evaluator_name"] == "测试村民" and row["level"] == int(Level.VERY_DISSATISFIED)
    with desk.api("zhao") as zhao:
        assigned = zhao.post(f"/evaluations/{row['evaluation_id']}/assign", json={"owner": "wang"})
        assert assigned.status_code == 200 and assigned.json()["message"] == "已指定整改责任人"
    with desk.api("wang") as wang:
        assert "中心主任" in _refused(wang.post(f"/evaluations/{row['evaluation_id']}/invalidate",
                                               json={"reason": "恶意差评"}), 403, "forbidden")
        fixed = wang.post(f"/evaluations/{row['evaluation_id']}/fix", json={"text": "已当面致歉，改进接待流程"})
        assert fixed.status_code == 200, fixed.text
        assert wang.get("/evaluations/mine").json()["tasks"]
    with desk.api("zhao") as zhao:
        assert zhao.get(f"/evaluations/{row['evaluation_id']}").json()["rectification"]["state"] == "fixed"


def test_the_assessment_report_and_the_oversight_list_come_as_json(desk: Township) -> None:
    _rated_badly(desk.town)
    with desk.api("wang") as wang:
        report = wang.get("/assessment", params={"period": "2026-11", "by": "village"})
        assert report.status_code == 200, report.text
        body = report.json()
        assert body["period"] == "2026-11" and body["by_zh"] == "按村" and "受理件数" in body["columns"]
        assert body["rows"] and body["rows"][0]["cells"]["受理件数"] >= 1
        assert "月份" in _refused(wang.get("/assessment", params={"period": "2026-13"}), 422, "refused")
        assert wang.get("/oversight").json() == []   # nothing overdue on the first morning
        cause = {"cause": list(Cause)[0].value, "solution": "增派人手"}
        assert "环节" in _refused(wang.post("/oversight/village/x/cause", json=cause), 404, "not_found")
        assert "超期清单" in _refused(wang.post("/oversight/township/x/cause", json=cause), 422, "refused")
    with desk.api("admin") as admin:
        _refused(admin.get("/assessment"), 403, "forbidden")


def test_the_openapi_document_validates_and_every_new_operation_has_a_chinese_summary(desk: Township) -> None:
    with httpx.Client(base_url=f"{desk.base_url}/api", timeout=15) as anyone:
        doc = anyone.get("/openapi.json").json()
    validate(doc)
    new = {p: ops for p, ops in doc["paths"].items()
           if p.startswith(("/front-desk", "/evaluations", "/assessment", "/oversight"))}
    assert {"/front-desk/cases", "/front-desk/appointments/{appointment_id}/change", "/front-desk/absences",
            "/evaluations/{evaluation_id}/invalidate", "/assessment", "/oversight/{hop}/{matter_id}/cause"} <= set(new)
    for path, ops in new.items():
        for method, op in ops.items():
            assert _CJK.search(op.get("summary", "")), (method, path)


def test_a_walk_in_is_registered_and_signed_off_through_the_api_and_bad_input_saves_nothing(desk: Township) -> None:
    form = walk_in_form(desk.town.handling.catalog, code="MZ-003")
    body = {"applicant_name": form.applicant_name, "id_number": form.id_number, "phone": form.phone,
            "address": form.address, "catalog_code": form.catalog_code, "materials_brought": form.materials_brought,
            "not_applicable": form.not_applicable,
            "signature_png_base64": base64.b64encode(pad_signature()).decode()}
    with desk.api("wang") as wang:
        inbox_before = wang.get("/matters").json()["total"]
        for bad, why in (({"signature_png_base64": "不是图片"}, "base64"), ({"note": "电话 13800001111"}, "备注"),
                         ({"signature_png_base64": base64.b64encode(pad_signature(40, 20)).decode()}, "签名")):
            refused = wang.post("/front-desk/walk-ins", json={**body, **bad})
            assert refused.status_code == 422 and why in refused.json()["message"], refused.text
            assert form.id_number not in refused.text
        assert wang.get("/matters").json()["total"] == inbox_before

        made = wang.post("/front-desk/walk-ins", json=body)
        assert made.status_code == 200, made.text
        receipt = made.json()
        assert re.fullmatch(r"[0-9A-Z]{5}-[0-9A-Z]{5}", receipt["lookup_code"]) and receipt["title"]
        assert form.id_number not in made.text and form.phone not in made.text
        # Found by the lookup code on the receipt, as a villager's matter is.
        matter = wang.get(f"/matters/{receipt['lookup_code']}").json()
        assert matter["matter_id"] == receipt["matter_id"]
        classified = wang.post(f"/matters/{receipt['matter_id']}/classify",
                               json={"expected_version": matter["version"], "kind": "immediate"})
        assert classified.status_code == 200, classified.text
        done = wang.post(f"/matters/{receipt['matter_id']}/record_result", json={
            "expected_version": classified.json()["matter"]["version"], "approved": True, "summary": "已发放"})
        assert done.status_code == 200, done.text
        signed = wang.post(f"/front-desk/walk-ins/{receipt['matter_id']}/sign-off",
                           json={"signature_png_base64": base64.b64encode(pad_signature()).decode()})
        assert signed.status_code == 200, signed.text
        assert "本件办结" in signed.json()["message"]
