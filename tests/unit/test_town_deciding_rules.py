"""The township deciding by the rules through its console and service (issue 14): authority, village
matters tracked, refusals registered and approved, the clock before acceptance, handovers to real
colleagues, escalation with an opinion and a confirmation, Chinese pages for what does not exist."""
from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from shared.console import ConsoleAuth, RateLimiter, ScryptParams, create_console_tables
from shared.domain.catalog import MatterKind
from shared.domain.deadlines import ClockState
from shared.domain.handling import Role, Stage, matter_to_json_dict
from shared.errors import HandlingError
from tests.town_fixtures import OPERATOR, VillageDevice, township
from town_center.bootstrap import TownApp
from town_center.console import create_console_app
from town_center.handling import ACCEPTANCE_HOP
from town_center.store.matter_tables import town_matter

FAST_KDF = ScryptParams(n=2**10, r=8, p=1)
PASSWORD = "青石镇便民窗口2026春"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture
def town(tmp_path: Path) -> Iterator[TownApp]:
    app = township(f"sqlite:///{tmp_path / 'town.db'}")
    yield app
    app.close()


@pytest.fixture
def auth(town: TownApp) -> ConsoleAuth:
    create_console_tables(town.store.engine)
    auth = ConsoleAuth(town.store.engine, town.clock, kdf=FAST_KDF)
    auth.create_staff("wang", "王芳", Role.OPERATOR, PASSWORD)
    auth.create_staff("li", "李强", Role.OPERATOR, PASSWORD)
    auth.create_staff("zhao", "赵主任", Role.DIRECTOR, PASSWORD)
    auth.create_staff("gone", "调离人员", Role.OPERATOR, PASSWORD)
    auth.disable_staff("gone")
    return auth


@pytest.fixture
def web(town: TownApp, auth: ConsoleAuth):
    return create_console_app(town, auth, public_limiter=RateLimiter(capacity=3, refill_per_second=0.001, clock=town.clock))


@pytest.fixture
def village(town: TownApp) -> VillageDevice:
    return VillageDevice(town, village_code="V001")


def client_for(web, staff_id: str) -> TestClient:
    client = TestClient(web, follow_redirects=False)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert token
    response = client.post("/login", data={"staff_id": staff_id, "password": PASSWORD, "next": "/",
                                           "csrf_token": token.group(1)})
    assert response.status_code == 303, response.text
    return client


def form_tokens(client: TestClient, matter_id: str) -> dict[str, str]:
    page = client.get(f"/matters/{matter_id}").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    version = re.search(r'name="expected_version" value="(\d+)"', page)
    assert csrf
    # A page that offers no action carries no version: a crafted POST sends the first one.
    return {"csrf_token": csrf.group(1), "expected_version": version.group(1) if version else "0"}


def kind_options(page: str) -> set[str]:
    select = re.search(r'<select name="kind" id="kind-select">(.*?)</select>', page, re.S)
    return set(re.findall(r'value="([a-z]+)"', select.group(1))) if select else set()


def test_the_console_offers_only_return_or_escalate_for_a_county_matter_and_a_crafted_post_fails(
        web, town: TownApp, village: VillageDevice) -> None:
    matter_id = village.file("MZ-004")
    client = client_for(web, "wang")
    page = client.get(f"/matters/{matter_id}").text
    assert kind_options(page) == {"returned", "reported"}
    assert "乡镇只能退回或上报" in page
    # Only the fields of the offered kinds: no 补办 list or 联办 departments for a matter it may not take.
    assert 'name="return_reason"' in page
    assert 'name="missing_materials"' not in page and 'name="lead_window"' not in page and 'name="departments"' not in page
    for kind in ("promised", "immediate", "joint"):
        response = client.post(f"/matters/{matter_id}/classify", data={**form_tokens(client, matter_id), "kind": kind,
                                                                        "lead_window": "民政", "departments": "民政\n财政"})
        assert response.status_code == 400 and "无权按" in response.text
    assert town.handling.page(matter_id).matter.stage is Stage.RECEIVED
    with pytest.raises(HandlingError, match="只能退回或上报"):
        town.handling.classify(matter_id, MatterKind.PROMISED, actor=OPERATOR)


def test_a_township_matter_offers_its_own_kinds_and_a_promise_is_written_from_the_chosen_limit(
        web, town: TownApp, village: VillageDevice) -> None:
    matter_id = village.file("MZ-003")
    client = client_for(web, "wang")
    assert kind_options(client.get(f"/matters/{matter_id}").text) == {
        "immediate", "promised", "supplement", "returned", "joint"}
    response = client.post(f"/matters/{matter_id}/classify", data={
        **form_tokens(client, matter_id), "kind": "promised", "promise_amount": "2", "promise_unit": "working_days"})
    assert response.status_code == 303
    matter = town.handling.page(matter_id).matter
    assert matter.clock is not None and matter.clock.limit.amount == 2
    assert "2个工作日内办结" in matter.written_promise
    assert "记录" not in UUID.sub("", "")   # the page below shows no internal identifiers
    page = client.get(f"/matters/{matter_id}").text
    assert not UUID.search(re.sub(r'(href|action|src)="[^"]*"', "", page))


def test_a_village_decided_matter_is_tracked_at_the_township_and_classifying_it_is_refused_not_a_crash(
        web, town: TownApp, village: VillageDevice) -> None:
    matter_id = village.file("RS-003")
    matter = town.handling.page(matter_id).matter
    assert matter.stage is Stage.VILLAGE_OWN
    client = client_for(web, "wang")
    page = client.get(f"/matters/{matter_id}").text
    assert "村级自办事项" in page and 'id="kind-select"' not in page
    response = client.post(f"/matters/{matter_id}/classify", data={**form_tokens(client, matter_id), "kind": "immediate"})
    assert response.status_code == 400 and "只跟踪进度" in response.text
    inbox = client.get("/", params={"stage": "village_own"}).text
    assert "村级办理（乡镇跟踪）" in inbox and "城乡居民养老保险待遇领取资格认证" in inbox
    # The village closes its own matter: the township follows it to the end.
    village.village_record("result_handed_over", matter_id)
    village.village_record("signed_off", matter_id, rating=1)
    town.intake.run_once()
    assert town.handling.page(matter_id).matter.stage is Stage.SIGNED_OFF


def test_every_refusal_is_registered_and_a_major_one_waits_for_the_director(
        web, town: TownApp, village: VillageDevice) -> None:
    plain = village.file("MZ-003")
    town.handling.classify(plain, MatterKind.RETURNED, actor=OPERATOR, return_reason="不属于临时救助范围")
    decided = village.file("MZ-003")
    town.handling.classify(decided, MatterKind.IMMEDIATE, actor=OPERATOR)
    town.handling.record_result(decided, approved=False, summary="家庭收入超过救助标准", actor=OPERATOR)
    major = village.file("NY-001")
    operator = client_for(web, "wang")
    refused = operator.post(f"/matters/{major}/classify", data={**form_tokens(operator, major), "kind": "returned",
                                                                 "return_reason": "超出面积标准"})
    assert refused.status_code == 400 and "须先经中心主任批准" in refused.text
    asked = operator.post(f"/matters/{major}/request_refusal", data={
        **form_tokens(operator, major), "refusal_kind": "not_accepted", "reason": "超出宅基地面积标准"})
    assert asked.status_code == 303
    forged = operator.post(f"/matters/{major}/decide_refusal", data={**form_tokens(operator, major), "decision": "approve"})
    assert forged.status_code == 403 and "仅限中心主任" in forged.text
    director = client_for(web, "zhao")
    assert "审批不予受理/不予批准" in director.get(f"/matters/{major}").text
    approved = director.post(f"/matters/{major}/decide_refusal", data={**form_tokens(director, major), "decision": "approve"})
    assert approved.status_code == 303
    rows = {r["matter_id"]: r for r in town.handling.refusals()}
    assert rows[plain]["refusal_kind"] == "not_accepted" and rows[plain]["approved_by"] == ""
    assert rows[decided]["refusal_kind"] == "not_approved" and rows[decided]["reason"] == "家庭收入超过救助标准"
    assert rows[major]["refusal_kind"] == "not_accepted" and rows[major]["approved_by"] == "zhao"
    register = director.get("/refusals").text
    assert "不予批准" in register and "不予受理" in register and "农村宅基地" in register


def test_a_matter_left_unaccepted_warns_goes_overdue_and_reaches_the_supervision_list(
        web, town: TownApp, village: VillageDevice) -> None:
    matter_id = village.file("MZ-003")
    clock = town.deadlines.load_clock(matter_id, ACCEPTANCE_HOP)
    assert clock is not None
    due = clock.due_at(town.deadlines.calendar)
    assert due is not None
    town.clock.set(due + dt.timedelta(days=4))
    listed = {m.matter_id: m for m in town.handling.supervision_list()}
    assert matter_id in listed and listed[matter_id].state is not None
    assert listed[matter_id].state.rank >= ClockState.OVERDUE.rank and listed[matter_id].stage is Stage.RECEIVED
    assert "待受理" in client_for(web, "wang").get("/supervision").text


def test_the_inbox_pages_through_every_matter_and_puts_elderly_applicants_first(
        web, town: TownApp, village: VillageDevice) -> None:
    ids = [village.file("MZ-003") for _ in range(5)]
    first = town.handling.inbox_page(page=1, page_size=2)
    rest = town.handling.inbox_page(page=2, page_size=2).items + town.handling.inbox_page(page=3, page_size=2).items
    assert first.total == 5 and first.pages == 3
    assert {m.matter_id for m in first.items + rest} == set(ids)
    client = client_for(web, "wang")
    assert "共 5 件" in client.get("/").text


def test_a_handover_names_an_existing_active_colleague(web, town: TownApp, village: VillageDevice) -> None:
    matter_id = village.file("MZ-003")
    town.handling.classify(matter_id, MatterKind.IMMEDIATE, actor=OPERATOR)
    client = client_for(web, "wang")
    page = client.get(f"/matters/{matter_id}").text
    assert "李强（li）" in page and "调离人员" not in page
    for who in ("nobody", "gone"):
        response = client.post(f"/matters/{matter_id}/hand_over", data={**form_tokens(client, matter_id),
                                                                        "to_staff": who, "reason": "请假"})
        assert response.status_code == 400 and "在岗的工作人员" in response.text
    ok = client.post(f"/matters/{matter_id}/hand_over", data={**form_tokens(client, matter_id), "to_staff": "li",
                                                              "reason": "请假"})
    assert ok.status_code == 303 and town.handling.page(matter_id).matter.owner == "li"


def test_an_escalation_needs_an_opinion_and_a_confirmation(web, town: TownApp, village: VillageDevice) -> None:
    matter_id = village.file("MZ-004")
    town.handling.classify(matter_id, MatterKind.REPORTED, actor=OPERATOR)
    client = client_for(web, "wang")
    empty = client.post(f"/matters/{matter_id}/escalate", data={**form_tokens(client, matter_id), "summary": " ",
                                                                "confirm": "yes"})
    assert empty.status_code == 400 and "初审意见" in empty.text
    unconfirmed = client.post(f"/matters/{matter_id}/escalate", data={**form_tokens(client, matter_id),
                                                                      "summary": "符合条件，建议批准"})
    assert unconfirmed.status_code == 400 and "勾选确认" in unconfirmed.text
    assert town.handling.page(matter_id).matter.escalation_sent_at is None


def test_what_does_not_exist_answers_a_chinese_page_never_an_english_error(web, village: VillageDevice) -> None:
    client = client_for(web, "wang")
    for path in ("/no-such-page", "/matters/00000000-0000-0000-0000-000000000000"):
        response = client.get(path, headers={"accept": "text/html"})
        assert response.status_code == 404
        assert "找不到" in response.text and "Not Found" not in response.text and "detail" not in response.text
        assert "00000000" not in response.text


def test_the_matter_page_shows_the_decision_maker_the_authorization_note_and_the_elderly_flag(
        web, town: TownApp, village: VillageDevice) -> None:
    matter_id = village.file("MZ-003")
    page = client_for(web, "wang").get(f"/matters/{matter_id}").text
    assert 'id="authorization"' in page and "首问责任人" in page and "承办人" in page
    assert "代办员V001" in page           # the agent who took it on is the 首问责任人, by name
    assert "本县规定时限" in page and "现场勘查在时限内进行" in page
    assert "待受理时限" in page


def test_a_reported_matters_township_hop_is_charged_on_the_township_clock_not_the_county_decision(
        town: TownApp, village: VillageDevice) -> None:
    matter_id = village.file("MZ-004")
    town.handling.classify(matter_id, MatterKind.REPORTED, actor=OPERATOR)
    receipt_at = town.clock.now() + dt.timedelta(hours=2)
    town.clock.set(receipt_at)
    # The county's receipt stops the township hop (the send itself needs a county link; the fold does not).
    sent = town.handling.page(matter_id).matter.send_escalation(actor=OPERATOR, at=receipt_at, opinion="建议批准")
    with town.store.engine.begin() as conn:
        conn.execute(update(town_matter).where(town_matter.c.matter_id == matter_id).values(
            version=sent.version, state_json=json.dumps(matter_to_json_dict(sent))))
    town.handling.record_escalated(matter_id, county_receipt_at=receipt_at)
    town.clock.set(receipt_at + dt.timedelta(days=30))    # the county decides a month later
    town.handling.record_county_decision(matter_id, approved=True, summary="准予")
    facts = {f.matter_id: f for f in town.handling.matter_facts()}[matter_id]
    assert facts.completed_at == receipt_at
    assert facts.state is ClockState.ON_TIME
    assert facts.working_hours is not None and facts.working_hours <= 2.0


def test_a_blank_or_tiny_drawn_authorization_is_shown_as_invalid_and_the_matter_can_only_be_returned_or_supplemented(
        web, town: TownApp, village: VillageDevice) -> None:
    from tests.unit.test_village_signature import blank_png, signature_png
    from tests.village_fixtures import TINY_PNG
    client = client_for(web, "wang")
    for bad in (TINY_PNG, blank_png()):
        matter_id = village.file("MZ-003", signature_png=bad)
        assert 'id="authorization-problem"' in client.get(f"/matters/{matter_id}").text
        with pytest.raises(HandlingError, match="委托授权不能成立"):
            town.handling.classify(matter_id, MatterKind.PROMISED, actor=OPERATOR)
        town.handling.classify(matter_id, MatterKind.SUPPLEMENT, actor=OPERATOR, missing_materials=["委托书（补签）"])
        assert town.handling.page(matter_id).matter.stage is Stage.WAITING_MATERIALS
    signed = village.file("MZ-003", signature_png=signature_png())
    assert 'id="authorization-problem"' not in client.get(f"/matters/{signed}").text
    town.handling.classify(signed, MatterKind.PROMISED, actor=OPERATOR)
    assert town.handling.page(signed).matter.stage is Stage.IN_PROGRESS
