"""The village agent's web UI through Starlette's TestClient, on a real data folder and a fake clock."""
from __future__ import annotations

import base64
import datetime as dt
import logging
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from shared.catalog import load_catalog
from shared.clock import FakeClock, to_unix_ms
from shared.domain.id_number import with_check_char
from shared.wire.v1 import records_pb2
from tests.unit.test_village_signature import data_url, fingerprint_photo_png, signature_png
from tests.village_fixtures import PASSPHRASE, SIGNATURE_PNG, TINY_PNG, make_agent, unlock_ui
from village_agent.bootstrap import open_agent
from village_agent.domain import AppointmentStatus, MatterStatus
from village_agent.services import AgentService, RequestForm
from village_agent.ui.server import Reachability, create_app, deadline_badge

NOW = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)  # Monday 10:00 in Shanghai
LOCAL = "http://127.0.0.1:8631"


def unlocked(app: Any) -> TestClient:
    """A client of the village UI that has typed the agent's passphrase on the unlock page."""
    client = TestClient(app, base_url=LOCAL)
    unlock_ui(client)
    return client
CATALOG = load_catalog()
VILLAGE_ITEM = next(i for i in CATALOG if i.decided_by.value == "village")
ID_NUMBER = with_check_char("43052419480312002")
SIGNATURE = "data:image/png;base64," + base64.b64encode(SIGNATURE_PNG).decode()
PAD_SIGNATURE = data_url(signature_png())   # a stroke across the sign-off pad


@pytest.fixture()
def service(tmp_path: Path) -> Iterator[AgentService]:
    make_agent(tmp_path / "agent")
    service = open_agent(tmp_path / "agent", PASSPHRASE, FakeClock(NOW))
    yield service
    service.store.close()


@pytest.fixture()
def client(service: AgentService) -> TestClient:
    return unlocked(create_app(service))


def csrf(client: TestClient) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/matters/new").text)
    assert match is not None
    return match.group(1)


def good_request(token: str, **overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "csrf_token": token, "name": "李桂兰", "id_number": ID_NUMBER, "phone": "13907310001",
        "address": "东山村三组 12 号", "matter": VILLAGE_ITEM.code,
        "materials": [m.id for m in VILLAGE_ITEM.materials], "authorization": "drawn_signature",
        "signature_data": SIGNATURE,
    }
    data.update(overrides)
    return data


def field_errors(html: str) -> dict[str, str]:
    return dict(re.findall(r'<span class="err" data-for="([^"]+)">([^<]+)</span>', html))


def test_a_complete_request_is_filed_and_the_receipt_shows_the_lookup_code_and_masked_id(client, service) -> None:
    response = client.post("/matters", data=good_request(csrf(client)), follow_redirects=False)
    assert response.status_code == 303
    matter_id = response.headers["location"].split("/")[2]
    receipt = client.get(response.headers["location"]).text
    assert service.store.lookup_code_of(matter_id) in receipt
    assert "受理回执" in receipt and "李桂兰" in receipt
    assert ID_NUMBER not in receipt and service.store.matter_state(matter_id).id_masked in receipt


def test_a_post_without_the_csrf_token_is_refused_and_writes_nothing(client, service) -> None:
    before = service.store.tip().seq
    data = good_request("")
    del data["csrf_token"]
    response = client.post("/matters", data=data)
    assert response.status_code == 403
    assert "安全校验码" in response.text
    assert service.store.tip().seq == before and service.store.count_matters() == 0


def test_a_post_with_a_wrong_csrf_token_is_refused(client, service) -> None:
    response = client.post("/matters", data=good_request("forged-token"))
    assert response.status_code == 403
    assert service.store.count_matters() == 0


def test_a_post_from_another_site_is_refused_even_with_the_token(client, service) -> None:
    token = csrf(client)
    response = client.post("/matters", data=good_request(token), headers={"Origin": "http://evil.example"})
    assert response.status_code == 403
    assert service.store.count_matters() == 0


def test_a_request_naming_a_foreign_host_is_refused_against_dns_rebinding(service) -> None:
    rebound = TestClient(create_app(service), base_url="http://attacker.example:8631")
    response = rebound.get("/")
    assert response.status_code == 403
    assert "127.0.0.1" in response.text


@pytest.mark.parametrize("host", ["127.0.0.1:8631", "localhost:8631", "[::1]:8631", "127.0.0.1"])
def test_pages_answer_to_the_local_host_names(service, host: str) -> None:
    client = unlocked(create_app(service))
    assert client.get("/", headers={"Host": host}).status_code == 200


def test_each_bad_field_gets_its_chinese_message_the_form_keeps_the_input_and_nothing_is_written(client, service) -> None:
    before = service.store.tip().seq
    data = good_request(csrf(client), id_number="430524194803120021", phone="12345", address="东山村五组 8 号")
    response = client.post("/matters", data=data)
    assert response.status_code == 422
    errors = field_errors(response.text)
    assert set(errors) == {"id_number", "phone"}
    assert all(re.search(r"[\u4e00-\u9fff]", message) for message in errors.values())
    assert 'value="东山村五组 8 号"' in response.text and 'value="李桂兰"' in response.text
    assert re.search(rf'<option value="{VILLAGE_ITEM.code}"[^>]* selected>', response.text)
    assert service.store.tip().seq == before and service.store.count_matters() == 0 and service.store.outbox_size() == 1


def test_a_missing_auxiliary_material_without_a_commitment_date_is_flagged_beside_its_date_field(client, service) -> None:
    main_only = [m.id for m in VILLAGE_ITEM.main_materials]
    aux = VILLAGE_ITEM.auxiliary_materials[0]
    response = client.post("/matters", data=good_request(csrf(client), materials=main_only))
    assert response.status_code == 422
    assert f"commitment:{aux.id}" in field_errors(response.text)
    committed = client.post("/matters", data={**good_request(csrf(client), materials=main_only), f"commit:{aux.id}": "2026-12-01"},
                            follow_redirects=False)
    assert committed.status_code == 303
    assert service.store.count_matters() == 1


def test_the_same_form_submitted_twice_files_one_matter(client, service) -> None:
    request_id = re.search(r'name="request_id" value="([^"]+)"', client.get("/matters/new").text)
    assert request_id is not None
    data = good_request(csrf(client), request_id=request_id.group(1))
    first = client.post("/matters", data=data, follow_redirects=False)
    second = client.post("/matters", data=data, follow_redirects=False)
    assert first.headers["location"] == second.headers["location"]
    assert service.store.count_matters() == 1


def test_the_live_checklist_lists_everything_missing_and_the_outcome(client) -> None:
    nothing = client.get("/api/assess", params={"matter": VILLAGE_ITEM.code}).json()
    assert nothing["outcome"] == "return" and nothing["return_reason"]
    assert [m["id"] for m in nothing["missing"]] == [m.id for m in VILLAGE_ITEM.materials]
    main_only = client.get("/api/assess", params={"matter": VILLAGE_ITEM.code,
                                                  "m": [m.id for m in VILLAGE_ITEM.main_materials]}).json()
    assert main_only["outcome"] == "accept_with_tolerance"
    assert main_only["commit_ids"] == [m.id for m in VILLAGE_ITEM.auxiliary_materials]
    unknown = client.get("/api/assess", params={"matter": "NO-SUCH"}).json()
    assert unknown["ok"] is False and re.search(r"[\u4e00-\u9fff]", unknown["error"])


def test_a_village_matter_is_handed_over_and_signed_off_with_a_rating(client, service) -> None:
    token = csrf(client)
    matter_id = client.post("/matters", data=good_request(token), follow_redirects=False).headers["location"].split("/")[2]
    empty = client.post(f"/matters/{matter_id}/handover", data={"csrf_token": token, "result_summary": " "})
    assert empty.status_code == 422 and "result_summary" in field_errors(empty.text)
    handed = client.post(f"/matters/{matter_id}/handover", data={"csrf_token": token, "result_summary": "资格认证已通过"},
                         follow_redirects=False)
    assert handed.status_code == 303 and "/signoff" in handed.headers["location"]
    page = client.get(handed.headers["location"]).text
    for label in ("非常满意", "满意", "基本满意", "不满意", "非常不满意"):
        assert f"> {label}</label>" in page
    no_rating = client.post(f"/matters/{matter_id}/signoff", data={"csrf_token": token})
    assert no_rating.status_code == 422 and "rating" in field_errors(no_rating.text)
    done = client.post(f"/matters/{matter_id}/signoff",
                       data={"csrf_token": token, "rating": "very_satisfied", "signature_data": PAD_SIGNATURE}, follow_redirects=False)
    assert done.status_code == 303
    state = service.store.matter_state(matter_id)
    assert state.status is MatterStatus.SIGNED_OFF and state.rating == records_pb2.RATING_VERY_SATISFIED
    assert "已签收评价" in client.get(done.headers["location"]).text


def test_an_action_that_does_not_fit_the_status_is_explained_in_chinese(client, service) -> None:
    token = csrf(client)
    matter_id = client.post("/matters", data=good_request(token), follow_redirects=False).headers["location"].split("/")[2]
    response = client.post(f"/matters/{matter_id}/signoff", data={"csrf_token": token, "rating": "satisfied"})
    assert response.status_code == 409
    assert "须先交付办理结果" in response.text


def test_an_unknown_page_or_matter_answers_with_the_chinese_not_found_page(client) -> None:
    for path in ("/no-such-page", "/static/no-such.css", "/matters/00000000-0000-0000-0000-000000000000",
                 "/matters/00000000-0000-0000-0000-000000000000/receipt", "/matters/ABCDE-FGHJK/signoff", "/matters/x/y/z"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert 'id="not-found"' in response.text and "没有找到" in response.text, path
        assert "detail" not in response.text and "Not Found" not in response.text, path
        assert "00000000-0000" not in response.text, path


def test_the_matter_list_shows_names_and_masked_ids_only(client, service) -> None:
    client.post("/matters", data=good_request(csrf(client)), follow_redirects=False)
    page = client.get("/").text
    assert "李桂兰" in page and ID_NUMBER not in page and "13907310001" not in page
    assert "共 1 件" in page


def test_the_sync_page_says_honestly_when_no_relay_is_wired(client, service) -> None:
    service.store.set_meta("last_sync_at_ms", str(to_unix_ms(NOW)))
    page = client.get("/sync").text
    assert "未连接" in page and "2026-11-23 10:00" in page
    assert f"{service.store.outbox_size()} 条" in page


def test_the_sync_page_shows_what_the_relay_reports(service) -> None:
    client = unlocked(create_app(service, sync_status=lambda: Reachability(False, "连接超时")))
    page = client.get("/sync").text
    assert "无法连接" in page and "连接超时" in page and "从未同步" in page


def test_a_missed_appointment_asks_for_a_contact_and_is_forfeited_only_with_a_failed_one(client, service) -> None:
    token = csrf(client)
    made = client.post("/appointments", data={"csrf_token": token, "scheduled_at": "2026-11-23T10:30", "place": "applicant_home",
                                              "purpose": "上门核对材料"}, follow_redirects=False)
    assert made.status_code == 303
    [row] = service.store.appointments()
    service.clock.advance(dt.timedelta(hours=1, minutes=5))   # 11:05, 35 minutes late
    page = client.get("/appointments").text
    assert "已超时 30 分钟，请联系群众" in page and "有 1 个预约已超过约定时间 30 分钟，请联系群众" in page
    assert "失约，请联系群众改约" not in page   # nothing forfeits by itself
    refused = client.post(f"/appointments/{row.appointment_id}/forfeit",
                          data={"csrf_token": token, "contact_at": "2026-11-23 11:02", "method": "", "outcome": "无人接听"})
    assert refused.status_code == 422 and "请选择联系方式" in refused.text and "本次未保存" in refused.text
    assert "无人接听" in refused.text   # what was typed is kept
    assert service.store.appointment_row(row.appointment_id).status == AppointmentStatus.SCHEDULED.value
    done = client.post(f"/appointments/{row.appointment_id}/forfeit", follow_redirects=False,
                       data={"csrf_token": token, "contact_at": "2026-11-23 11:02", "method": "phone", "outcome": "电话无人接听"})
    assert done.status_code == 303
    assert "失约，请联系群众改约" in client.get("/appointments?done=forfeit").text


def test_a_late_visit_is_refused_without_a_reason_and_recorded_with_one(client, service) -> None:
    token = csrf(client)
    client.post("/appointments", data={"csrf_token": token, "scheduled_at": "2026-11-23T10:30", "place": "service_room",
                                       "purpose": "补交材料"})
    [row] = service.store.appointments()
    service.clock.advance(dt.timedelta(hours=2))
    refused = client.post(f"/appointments/{row.appointment_id}/visit", data={"csrf_token": token, "outcome": "已收材料"})
    assert refused.status_code == 422 and "须写明原因" in refused.text and "已收材料" in refused.text
    ok = client.post(f"/appointments/{row.appointment_id}/visit", follow_redirects=False,
                     data={"csrf_token": token, "outcome": "已收材料", "late_reason": "赶集回来晚了"})
    assert ok.status_code == 303
    assert service.store.appointment_row(row.appointment_id).status == AppointmentStatus.KEPT.value


def test_an_appointment_without_a_time_is_refused_beside_the_field(client, service) -> None:
    response = client.post("/appointments", data={"csrf_token": csrf(client), "place": "applicant_home", "purpose": "上门"})
    assert response.status_code == 422 and "scheduled_at" in field_errors(response.text)
    assert service.store.appointments() == []


def test_the_deadline_colour_follows_the_clock(service) -> None:
    filed = service.file_request(RequestForm(
        applicant_name="李桂兰", id_number=ID_NUMBER, phone="13907310001", address="东山村", catalog_code=VILLAGE_ITEM.code,
        materials_brought=[m.id for m in VILLAGE_ITEM.materials], authorization_method="witness",
        witness_name="赵六", witness_statement="口头委托"))
    state = service.store.matter_state(filed.matter_id)
    now = to_unix_ms(NOW)
    day = 24 * 3600 * 1000
    assert deadline_badge(state, now).css == "untimed"
    assert deadline_badge(replace(state, due_at_ms=now + 3 * day), now).css == "on-time"
    assert deadline_badge(replace(state, due_at_ms=now + day // 2), now).css == "warning"
    assert deadline_badge(replace(state, due_at_ms=now - 1), now).css == "overdue"
    assert deadline_badge(replace(state, due_at_ms=now + 3 * day, clock_state=records_pb2.CLOCK_STATE_OVERDUE), now).css == "overdue"
    assert deadline_badge(replace(state, due_at_ms=now + 3 * day, clock_state=records_pb2.CLOCK_STATE_SUSPENDED), now).css == "untimed"


def test_no_personal_data_reaches_the_logs(client, caplog) -> None:
    with caplog.at_level(logging.DEBUG):
        client.post("/matters", data=good_request(csrf(client)), follow_redirects=False)
        client.post("/matters", data=good_request(csrf(client), phone="1"))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "李桂兰" not in logged and ID_NUMBER not in logged and "13907310001" not in logged


def test_a_photo_of_the_signed_paper_form_is_accepted_as_the_authorization(client, service) -> None:
    data = good_request(csrf(client), authorization="photo_of_form")
    del data["signature_data"]
    tiny = client.post("/matters", data=data, files={"authorization_file": ("weituo.png", TINY_PNG, "image/png")})
    assert tiny.status_code == 422 and "过小" in field_errors(tiny.text)["authorization_evidence"]
    response = client.post("/matters", data=data, files={"authorization_file": ("weituo.png", fingerprint_photo_png(), "image/png")},
                           follow_redirects=False)
    assert response.status_code == 303
    assert service.store.count_matters() == 1


def test_an_upload_that_is_not_an_image_is_refused_beside_the_authorization(client, service) -> None:
    data = good_request(csrf(client), authorization="photo_of_form")
    response = client.post("/matters", data=data, files={"authorization_file": ("weituo.txt", b"not an image", "text/plain")})
    assert response.status_code == 422
    assert "authorization_evidence" in field_errors(response.text)
    assert service.store.count_matters() == 0


def test_a_witness_needs_a_name_and_a_statement(client, service) -> None:
    response = client.post("/matters", data=good_request(csrf(client), authorization="witness", witness_name="赵六"))
    assert response.status_code == 422 and set(field_errors(response.text)) == {"witness_statement"}
    filed = client.post("/matters", data=good_request(csrf(client), authorization="witness", witness_name="赵六",
                                                      witness_statement="申请人口头委托"), follow_redirects=False)
    assert filed.status_code == 303


def test_materials_can_be_added_and_a_matter_withdrawn_with_a_reason(client, service) -> None:
    token = csrf(client)
    aux = VILLAGE_ITEM.auxiliary_materials[0]
    main_only = [m.id for m in VILLAGE_ITEM.main_materials]
    location = client.post("/matters", data={**good_request(token, materials=main_only), f"commit:{aux.id}": "2026-12-01"},
                           follow_redirects=False).headers["location"]
    matter_id = location.split("/")[2]
    assert aux.name in client.get(f"/matters/{matter_id}").text
    nothing = client.post(f"/matters/{matter_id}/materials", data={"csrf_token": token})
    assert nothing.status_code == 422 and "material_ids" in field_errors(nothing.text)
    added = client.post(f"/matters/{matter_id}/materials", data={"csrf_token": token, "material_ids": [aux.id]}, follow_redirects=False)
    assert added.status_code == 303 and aux.id in service.store.matter_state(matter_id).materials
    no_reason = client.post(f"/matters/{matter_id}/withdraw", data={"csrf_token": token, "reason": ""})
    assert no_reason.status_code == 422 and "reason" in field_errors(no_reason.text)
    client.post(f"/matters/{matter_id}/withdraw", data={"csrf_token": token, "reason": "申请人不再办理"})
    assert service.store.matter_state(matter_id).status is MatterStatus.WITHDRAWN


def test_every_page_warns_while_a_coming_year_calendar_is_unconfirmed(client) -> None:
    # 2026-11-23 + 120 days reaches into 2027, whose official holidays are not yet in the library.
    for path in ("/", "/matters/new", "/sync"):
        html = client.get(path).text
        assert 'class="notice warn' in html and "2027" in html, path
