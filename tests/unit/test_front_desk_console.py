"""The front desk's pages through FastAPI's TestClient on a real SQLite file: what each role may do,
what a refused form keeps, and what an operator never sees."""
from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shared.console import ConsoleAuth, ScryptParams, create_console_tables
from shared.domain.handling import Role
from tests.front_desk_fixtures import pad_signature
from tests.town_fixtures import township
from town_center.bootstrap import TownApp
from town_center.console import create_console_app

PASSWORD = "青石镇窗口2026春季值班"


@pytest.fixture
def town(tmp_path: Path) -> Iterator[TownApp]:
    app = township(f"sqlite:///{tmp_path / 'town.db'}")
    yield app
    app.close()


@pytest.fixture
def web(town: TownApp):
    create_console_tables(town.store.engine)
    auth = ConsoleAuth(town.store.engine, town.clock, kdf=ScryptParams(n=2**10, r=8, p=1))
    auth.create_staff("wang", "王芳", Role.OPERATOR, PASSWORD)
    auth.create_staff("li", "李强", Role.OPERATOR, PASSWORD)
    auth.create_staff("zhao", "赵主任", Role.DIRECTOR, PASSWORD)
    auth.create_staff("admin", "系统管理员", Role.ADMINISTRATOR, PASSWORD)
    return create_console_app(town, auth)


def signed_in(web, staff_id: str) -> tuple[TestClient, str]:
    client = TestClient(web, follow_redirects=False)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert token
    response = client.post("/login", data={"staff_id": staff_id, "password": PASSWORD, "next": "/",
                                           "csrf_token": token.group(1)})
    assert response.status_code == 303
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/front-desk").text)
    assert csrf
    return client, csrf.group(1)


def walk_in_data(town: TownApp, csrf: str, **overrides: object) -> dict[str, object]:
    item = town.handling.catalog.item("MZ-001")
    data: dict[str, object] = {
        "csrf_token": csrf, "catalog_code": "MZ-001", "applicant_name": "张秀英", "id_number": "110101199003070011",
        "phone": "13800001111", "address": "青石村一组",
        "signature": "data:image/png;base64," + base64.b64encode(pad_signature()).decode(),
        "brought": [m.id for m in item.materials if not m.condition],
        "not_applicable": [m.id for m in item.materials if m.condition]}
    data.update(overrides)
    return data


def test_a_walk_in_posted_from_the_page_prints_a_receipt_with_the_lookup_code_once(town: TownApp, web) -> None:
    client, csrf = signed_in(web, "wang")
    response = client.post("/front-desk/walk-in", data=walk_in_data(town, csrf))
    assert response.status_code == 200
    code = re.search(r'id="lookup-code">([^<]+)<', response.text)
    assert code and re.fullmatch(r"[2-9A-HJ-NP-Z]{5}-[2-9A-HJ-NP-Z]{5}", code.group(1))
    assert "王芳（窗口工作人员）" in response.text and "front_desk.css" in response.text
    matter_id = re.search(r"/matters/([0-9a-f-]{36})", response.text).group(1)
    page = client.get(f"/matters/{matter_id}").text
    assert "王芳（窗口工作人员，现场登记）" in page and "乡镇便民服务中心窗口" in page
    assert code.group(1) not in page    # the township keeps only the code's hash


def test_a_refused_walk_in_keeps_what_was_typed_except_the_id_number_and_says_why_in_chinese(town: TownApp, web) -> None:
    client, csrf = signed_in(web, "wang")
    response = client.post("/front-desk/walk-in", data=walk_in_data(town, csrf, id_number="110101199003070012",
                                                                     signature=""))
    assert response.status_code == 400
    alert = re.search(r'class="alert" role="alert">([^<]+)<', response.text)
    assert alert and "身份证号码" in alert.group(1) and "签名" in alert.group(1)
    assert 'value="张秀英"' in response.text and "110101199003070012" not in response.text
    assert re.search(r'name="brought" value="[^"]+" checked', response.text)


def test_the_administrator_may_look_but_registers_nothing(town: TownApp, web) -> None:
    client, csrf = signed_in(web, "admin")
    assert client.get("/front-desk").status_code == 200
    response = client.post("/front-desk/walk-in", data=walk_in_data(town, csrf))
    assert response.status_code == 403 and "系统管理员" in response.text


def test_an_operator_never_sees_who_complained_and_the_director_does(town: TownApp, web) -> None:
    client, csrf = signed_in(web, "wang")
    response = client.post("/front-desk/cases", data={
        "csrf_token": csrf, "kind": "complaint", "channel": "phone", "complexity": "simple", "person_name": "李四",
        "person_contact": "青石村二组", "subject": "窗口态度", "content": "说话不耐烦", "handler": "li"})
    assert response.status_code == 303
    case_url = response.headers["location"]
    for page in (client.get(case_url).text, client.get("/front-desk/cases?kind=complaint").text, client.get("/front-desk").text):
        assert "李四" not in page and "青石村二组" not in page
    director, _ = signed_in(web, "zhao")
    assert "李四" in director.get(case_url).text and "李四" in director.get("/front-desk/cases?kind=complaint").text


def test_a_consultation_prints_its_one_time_notification_and_an_unknown_entry_is_a_chinese_404(town: TownApp, web) -> None:
    client, csrf = signed_in(web, "wang")
    response = client.post("/front-desk/cases", data={
        "csrf_token": csrf, "kind": "consultation", "channel": "visit", "person_name": "吴九", "subject": "低保怎么申请",
        "catalog_code": "MZ-001", "answer": "已当场一次性告知所需材料和流程"})
    case_url = response.headers["location"]
    moved = client.get(case_url + "/print/notice")
    assert moved.status_code == 303 and "/documents/" in moved.headers["location"]   # the numbered, signed copy
    printed = client.get(moved.headers["location"])
    assert printed.status_code == 200 and "一次性告知书" in printed.text and "最低生活保障申请书" in printed.text
    assert "告字第1号" in printed.text and "吴九" not in printed.text
    missing = client.get("/front-desk/cases/no-such-case")
    assert missing.status_code == 404 and "找不到该登记" in missing.text


def test_a_booking_at_a_bad_time_is_refused_in_chinese_and_lists_nothing(town: TownApp, web) -> None:
    client, csrf = signed_in(web, "wang")
    response = client.post("/front-desk/appointments", data={
        "csrf_token": csrf, "applicant_name": "钱阿姨", "phone": "13900003333", "catalog_code": "MZ-001",
        "date": "2026-11-28", "time": "09:30"})
    assert response.status_code == 303
    page = client.get("/front-desk/appointments").text
    assert "预约时间须在工作日" in page and "钱阿姨" not in page
    response = client.post("/front-desk/appointments", data={
        "csrf_token": csrf, "applicant_name": "钱阿姨", "phone": "13900003333", "catalog_code": "MZ-001",
        "date": "下周一", "time": "上午"})
    assert "请填写日期" in client.get("/front-desk/appointments").text


def test_a_complaint_about_a_matter_is_registered_from_its_page_and_links_back(town: TownApp, web) -> None:
    from tests.town_fixtures import VillageDevice

    matter_id = VillageDevice(town).file("MZ-001")
    client, csrf = signed_in(web, "wang")
    link = re.search(r'href="([^"]+)" id="complain-about-matter"', client.get(f"/matters/{matter_id}").text)
    assert link
    form = client.get(link.group(1).replace("&amp;", "&")).text
    assert f'name="linked_matter_id" value="{matter_id}"' in form
    response = client.post("/front-desk/cases", data={
        "csrf_token": csrf, "kind": "complaint", "channel": "visit", "complexity": "complex", "person_name": "赵六",
        "subject": "低保迟迟不办", "content": "已过承诺时限", "handler": "wang", "linked_matter_id": matter_id})
    assert f'href="/matters/{matter_id}"' in client.get(response.headers["location"]).text


def test_a_walk_ins_hand_over_slip_carries_the_evaluation_qr_and_the_applicant_rates_through_the_public_page(
        town: TownApp, web) -> None:
    from shared.domain.catalog import MatterKind
    from shared.domain.handling import Actor
    from tests.front_desk_fixtures import walk_in_form

    web.state.evaluations.configure(public_url="https://qingshi.example.cn")
    desk = town.front_desk
    assert desk is not None
    matter_id = desk.window.register(walk_in_form(town.handling.catalog, "MZ-003"), operator=Actor("wang", Role.OPERATOR),
                                     operator_name="王芳").matter_id
    town.handling.classify(matter_id, MatterKind.PROMISED, actor=Actor("li", Role.OPERATOR))
    town.handling.record_result(matter_id, approved=True, summary="准予临时救助 800 元", actor=Actor("li", Role.OPERATOR))
    client, csrf = signed_in(web, "li")
    done = client.post(f"/front-desk/walk-ins/{matter_id}/sign-off", data={
        "csrf_token": csrf, "comment": "", "signature": "data:image/png;base64," + base64.b64encode(pad_signature()).decode()})
    assert done.status_code == 303 and done.headers["location"].endswith(f"/front-desk/walk-ins/{matter_id}/slip")
    slip = client.get(done.headers["location"]).text
    assert "交付签收单" in slip and "准予临时救助 800 元" in slip and "<svg" in slip and "李强" in slip
    url = re.search(r'id="evaluation-url">([^<]+)<', slip).group(1).replace("&amp;", "&")
    token = re.search(r'id="evaluation-token">([^<]+)<', slip).group(1)
    assert url.startswith("https://qingshi.example.cn/evaluate?t=") and token.replace("-", "") in url.replace("-", "")
    assert matter_id not in re.sub(r'href="[^"]*"', "", slip)   # the slip names the matter, never by its id

    # The applicant, on their own phone, opens the public page the QR points at and rates.
    villager = TestClient(web, follow_redirects=False)
    form = villager.get("/evaluate?" + url.split("?", 1)[1]).text
    assert token in form
    rated = villager.post("/evaluate", data={"t": token, "c": "", "level": "2", "reason": "", "comment": "办得快"})
    assert rated.status_code == 200 and "满意" in rated.text
    [row] = [r for r in web.state.evaluations.views(role=Role.DIRECTOR) if r.matter_id == matter_id]
    assert (row.level.value, row.comment, row.channel.value) == (2, "办得快", "qr")
    again = villager.post("/evaluate", data={"t": token, "c": "", "level": "5", "reason": "", "comment": ""})
    assert again.status_code == 400   # 一次一评
    # a village's matter gets no window slip
    village_matter = __import__("tests.town_fixtures", fromlist=["VillageDevice"]).VillageDevice(town).file("MZ-001")
    assert client.get(f"/front-desk/walk-ins/{village_matter}/slip").status_code == 409
