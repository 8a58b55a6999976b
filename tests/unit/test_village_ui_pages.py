"""The village pages through Starlette's TestClient on a real data folder: a return files as a 退回 with
its notice, sign-off needs the villager's mark, the village hop's clock is shown, and no internal
identifier (UUID, material id, raw gRPC text) reaches what the agent reads."""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from shared.catalog import load_catalog
from shared.clock import FakeClock
from shared.domain.catalog import Tier
from shared.domain.id_number import with_check_char
from shared.wire.v1 import records_pb2
from tests.unit.test_village_signature import blank_png, data_url, dot_png, fingerprint_photo_png, signature_png
from tests.village_fixtures import PASSPHRASE, make_agent, unlock_ui
from village_agent.bootstrap import open_agent
from village_agent.domain import MatterStatus
from village_agent.services import AgentService
from village_agent.ui.server import Reachability, create_app

NOW = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)  # Monday 10:00 in Shanghai
LOCAL = "http://127.0.0.1:8631"


def unlocked(app: Any) -> TestClient:
    """A client of the village UI that has typed the agent's passphrase on the unlock page."""
    client = TestClient(app, base_url=LOCAL)
    unlock_ui(client)
    return client
CATALOG = load_catalog()
VILLAGE_ITEM = next(i for i in CATALOG if i.decided_by is Tier.VILLAGE)
ITEM = next(i for i in CATALOG if i.decided_by is not Tier.VILLAGE
            and any(m.condition for m in i.auxiliary_materials) and any(m.tolerated_missing for m in i.auxiliary_materials))
CONDITIONAL = next(m for m in ITEM.auxiliary_materials if m.condition)
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


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


def request_form(token: str, item=ITEM, **overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "csrf_token": token, "name": "李桂兰", "id_number": with_check_char("43052419480312002"), "phone": "13907310001",
        "address": "东山村三组 12 号", "matter": item.code, "materials": [m.id for m in item.materials],
        "authorization": "witness", "witness_name": "村委会 张主任", "witness_statement": "申请人口头委托",
    }
    data.update(overrides)
    return data


def visible_text(html: str) -> str:
    """What a person reads: the page without its tags, attributes and scripts."""
    html = re.sub(r"<script.*?</script>", " ", html, flags=re.S)
    return re.sub(r"<[^>]+>", " ", html)


def file_matter(client: TestClient, **overrides: object) -> str:
    response = client.post("/matters", data=request_form(csrf(client), **overrides), follow_redirects=False)
    assert response.status_code == 303, response.text
    return response.headers["location"].split("/")[2]


def handed_over(client: TestClient, service: AgentService) -> tuple[str, str]:
    token = csrf(client)
    matter_id = file_matter(client, item=VILLAGE_ITEM, matter=VILLAGE_ITEM.code, materials=[m.id for m in VILLAGE_ITEM.materials])
    client.post(f"/matters/{matter_id}/handover", data={"csrf_token": token, "result_summary": "资格认证已通过"})
    assert service.store.matter_state(matter_id).status is MatterStatus.HANDED_OVER
    return matter_id, token


def test_a_request_missing_a_main_and_a_tolerated_material_files_as_a_return_with_its_notice(client, service) -> None:
    brought = [m.id for m in ITEM.main_materials][1:]   # a main material and every auxiliary one missing, no dates
    response = client.post("/matters", data=request_form(csrf(client), materials=brought), follow_redirects=False)
    assert response.status_code == 303
    receipt = client.get(response.headers["location"])
    text = visible_text(receipt.text)
    assert "退回告知书" in text and "退回原因" in text and ITEM.main_materials[0].name in text
    matter_id = response.headers["location"].split("/")[2]
    assert service.store.matter_state(matter_id).status is MatterStatus.RETURNED


def test_the_sign_off_page_offers_signature_photo_fingerprint_and_witness(client, service) -> None:
    matter_id, _ = handed_over(client, service)
    page = client.get(f"/matters/{matter_id}/signoff").text
    for label in ("在框内签名", "拍摄签了字的签收单", "按手印", "见证人证明"):
        assert label in page
    assert 'enctype="multipart/form-data"' in page


@pytest.mark.parametrize("pad, why", [(blank_png(), "空白"), (dot_png(), "一点笔迹")])
def test_an_empty_pad_is_refused_by_the_server_whatever_the_page_sent(client, service, pad: bytes, why: str) -> None:
    matter_id, token = handed_over(client, service)
    response = client.post(f"/matters/{matter_id}/signoff", data={"csrf_token": token, "rating": "satisfied",
                                                                  "method": "drawn_signature", "signature_data": data_url(pad)})
    assert response.status_code == 422 and why in response.text
    assert 'value="satisfied" checked' in response.text   # the rating stays chosen
    assert service.store.matter_state(matter_id).status is MatterStatus.HANDED_OVER


def test_a_sign_off_posted_without_any_mark_is_refused(client, service) -> None:
    matter_id, token = handed_over(client, service)
    response = client.post(f"/matters/{matter_id}/signoff", data={"csrf_token": token, "rating": "satisfied"})
    assert response.status_code == 422 and "见证人" in response.text
    assert service.store.matter_state(matter_id).status is MatterStatus.HANDED_OVER


def test_the_agent_named_as_witness_is_refused_beside_the_field(client, service) -> None:
    matter_id, token = handed_over(client, service)
    response = client.post(f"/matters/{matter_id}/signoff", data={
        "csrf_token": token, "rating": "satisfied", "method": "witness", "witness_name": "王芳", "witness_statement": "见证"})
    assert response.status_code == 422
    assert re.search(r'data-for="witness_name">[^<]*不能是代办员本人', response.text)


def test_a_fingerprint_photo_signs_off_the_matter(client, service) -> None:
    matter_id, token = handed_over(client, service)
    response = client.post(f"/matters/{matter_id}/signoff", data={"csrf_token": token, "rating": "very_satisfied", "method": "fingerprint"},
                           files={"evidence_file": ("手印.png", fingerprint_photo_png(), "image/png")}, follow_redirects=False)
    assert response.status_code == 303
    assert service.store.matter_state(matter_id).status is MatterStatus.SIGNED_OFF
    records = [records_pb2.Record.FromString(r.envelope.payload) for r in service.store.ledger_rows()]
    body = next(r for r in reversed(records) if r.HasField("signed_off")).signed_off   # the 交付签收单's record follows it
    assert body.confirmation_method == records_pb2.AUTHORIZATION_METHOD_FINGERPRINT
    assert "按手印" in client.get(response.headers["location"]).text


def test_a_drawn_signature_on_the_pad_signs_off_the_matter(client, service) -> None:
    matter_id, token = handed_over(client, service)
    response = client.post(f"/matters/{matter_id}/signoff", data={"csrf_token": token, "rating": "satisfied",
                                                                  "method": "drawn_signature", "signature_data": data_url(signature_png())},
                           follow_redirects=False)
    assert response.status_code == 303 and service.store.matter_state(matter_id).status is MatterStatus.SIGNED_OFF


def test_the_list_shows_each_matter_by_lookup_code_with_its_report_clock(client, service) -> None:
    matter_id = file_matter(client)
    code = service.store.lookup_code_of(matter_id)
    page = visible_text(client.get("/").text)
    assert code in page and "报送 · 待乡镇收到" in page and "2026-11-24 17:30 前" in page
    service.clock.advance(dt.timedelta(hours=8))
    assert "报送 · 临期预警" in visible_text(client.get("/").text)
    service.clock.advance(dt.timedelta(days=2))
    assert "报送 · 已超期" in visible_text(client.get("/").text)


def test_a_lookup_code_typed_on_the_list_opens_the_matter_and_an_unknown_one_says_so(client, service) -> None:
    matter_id = file_matter(client)
    code = service.store.lookup_code_of(matter_id)
    found = client.get("/", params={"code": code.lower().replace("-", "")}, follow_redirects=False)
    assert found.status_code == 303 and found.headers["location"] == f"/matters/{matter_id}"
    missing = client.get("/", params={"code": "ZZZZZ-ZZZZZ"})
    assert missing.status_code == 404 and "本机没有查询码为 ZZZZZ-ZZZZZ 的事项" in missing.text
    assert client.get(f"/matters/{code}").status_code == 200   # a matter's page also answers to its lookup code


def test_the_matter_page_shows_the_report_clock_and_each_material_as_recorded(client, service) -> None:
    tolerated = [m for m in ITEM.auxiliary_materials if m is not CONDITIONAL]
    data = request_form(csrf(client), materials=[m.id for m in ITEM.main_materials], not_applicable=[CONDITIONAL.id])
    data.update({f"commit:{m.id}": "2026-12-05" for m in tolerated})
    response = client.post("/matters", data=data, follow_redirects=False)
    matter_id = response.headers["location"].split("/")[2]
    html = client.get(f"/matters/{matter_id}").text
    text = visible_text(html)
    assert re.search(rf"{re.escape(CONDITIONAL.name)}\s+\S+\s*：\s*不适用", text), text
    assert f'value="{CONDITIONAL.id}"' not in html   # never offered as a material to add
    assert "承诺于 2026-12-05 前补交" in text
    assert "报送时限" in text and "2026-11-24 17:30 前" in text and "本县规定时限" in text


def test_no_page_shows_an_internal_id_or_a_material_id(client, service) -> None:
    matter_id = file_matter(client)
    token = csrf(client)
    client.post("/appointments", data={"csrf_token": token, "scheduled_at": "2026-11-24T09:30", "place": "applicant_home",
                                       "purpose": "上门核对材料", "matter": service.store.lookup_code_of(matter_id)})
    material_ids = {m.id for m in ITEM.materials}
    for path in ("/", f"/matters/{matter_id}", f"/matters/{matter_id}/receipt", f"/matters/{matter_id}/signoff",
                 "/appointments", "/sync", "/matters/new"):
        text = visible_text(client.get(path).text)
        assert not UUID.search(text), path
        assert not any(re.search(rf"(?<![A-Za-z_]){mid}(?![A-Za-z_])", text) for mid in material_ids), path


def test_an_appointment_names_its_matter_by_lookup_code(client, service) -> None:
    matter_id = file_matter(client)
    code = service.store.lookup_code_of(matter_id)
    token = csrf(client)
    prefilled = client.get("/appointments", params={"matter_id": matter_id}).text
    assert f'value="{code}"' in prefilled
    unknown = client.post("/appointments", data={"csrf_token": token, "scheduled_at": "2026-11-24T09:30",
                                                 "place": "applicant_home", "purpose": "上门", "matter": "ZZZZZ-ZZZZZ"})
    assert unknown.status_code == 422 and "本机没有这个查询码的事项" in unknown.text
    made = client.post("/appointments", data={"csrf_token": token, "scheduled_at": "2026-11-24T09:30",
                                              "place": "applicant_home", "purpose": "上门", "matter": code}, follow_redirects=False)
    assert made.status_code == 303
    assert [r.matter_id for r in service.store.appointments()] == [matter_id]


def test_the_sync_page_shows_no_raw_grpc_error_text(service) -> None:
    raw = ("无法连接乡镇（UNAVAILABLE：failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:7001: "
           "Failed to connect to remote host: Connection refused）")
    client = unlocked(create_app(service, sync_status=lambda: Reachability(False, raw)))
    text = visible_text(client.get("/sync").text)
    assert "无法连接乡镇" in text and "网络不通" in text
    assert "UNAVAILABLE" not in text and "failed to connect" not in text and "ipv4" not in text
