"""The village laptop's numbered documents (代办收件回执, 一次性告知书, 代办服务申请表, 代理服务委托书, 交付签收单)
through `AgentService` and the web UI, on a real data folder and a fake clock: built from the signed
filing record, numbered per kind without gaps in the filing's transaction (the 交付签收单 in the
sign-off's), signed with the laptop's key and into its chain, reprinted byte for byte, and refused by
verification once altered. The receipt states exactly what was recorded,
a material marked 不适用 included."""
from __future__ import annotations

import datetime as dt
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from shared.catalog import load_catalog
from shared.clock import FakeClock
from shared.documents.adapters import sql
from shared.documents.errors import DocumentInvalid
from shared.documents.render import render_html
from shared.domain.catalog import Tier
from shared.domain.id_number import with_check_char
from tests.village_fixtures import PASSPHRASE, make_agent, unlock_ui
from village_agent.bootstrap import open_agent
from village_agent.receipt import VillageDocuments
from village_agent.services import AgentService, RequestForm

NOW = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)  # Monday 10:00 in Shanghai
CATALOG = load_catalog()
ITEM = next(i for i in CATALOG if i.decided_by is not Tier.VILLAGE
            and any(m.condition for m in i.auxiliary_materials) and any(m.tolerated_missing for m in i.auxiliary_materials))
CONDITIONAL = next(m for m in ITEM.auxiliary_materials if m.condition)
TOLERATED = next(m for m in ITEM.auxiliary_materials if m.tolerated_missing and not m.condition)


@pytest.fixture()
def service(tmp_path: Path) -> Iterator[AgentService]:
    make_agent(tmp_path / "agent")
    service = open_agent(tmp_path / "agent", PASSPHRASE, FakeClock(NOW))
    yield service
    service.store.close()


def form(**overrides: object) -> RequestForm:
    values: dict[str, object] = dict(
        applicant_name="李桂兰", id_number=with_check_char("43052419480312002"), phone="13907310001",
        address="东山村三组 12 号", catalog_code=ITEM.code, materials_brought=[m.id for m in ITEM.main_materials],
        authorization_method="witness", witness_name="村委会 张主任", witness_statement="申请人口头委托")
    values.update(overrides)
    return RequestForm(**values)


def lines_of(doc) -> dict[str, str]:
    return {line.label: line.value for line in doc.content.lines}


def test_the_numbered_receipt_states_exactly_what_was_recorded_a_material_marked_not_applicable_included(
        service: AgentService) -> None:
    others = [m for m in ITEM.auxiliary_materials if m not in (CONDITIONAL, TOLERATED)]
    commitments = {TOLERATED.id: "2026-12-05", **{m.id: "2026-12-10" for m in others}}
    filed = service.file_request(form(not_applicable=[CONDITIONAL.id], commitments=commitments))
    doc = VillageDocuments(service).issue_or_load("receipt", filed.matter_id)
    recorded = lines_of(doc)
    assert doc.content.title == "代办收件回执" and doc.number == "东山村代办〔2026〕收字第1号"
    assert recorded["不适用的材料"] == CONDITIONAL.name
    assert recorded["已收材料"] == "、".join(m.name for m in ITEM.main_materials)
    assert f"{TOLERATED.name}（承诺2026-12-05前补交）" in recorded["容缺材料"]
    assert recorded["尚缺材料"] == "无" and recorded["查询码"] == filed.lookup_code
    assert "青石镇便民服务中心“办件进度查询”页面" in doc.html and filed.matter_id not in doc.html
    assert CONDITIONAL.name in doc.html and "不适用的材料" in doc.html


def test_the_authorization_prints_the_matter_the_powers_the_period_the_agent_and_how_it_was_given(
        service: AgentService) -> None:
    filed = service.file_request(form(materials_brought=[m.id for m in ITEM.materials]))
    doc = VillageDocuments(service).issue_or_load("authorization", filed.matter_id)
    assert doc.content.title == "代理服务委托书"
    text = doc.content.opening
    assert "本人李桂兰委托东山村便民服务室代办员王芳" in text and ITEM.name in text and "委托期限" in text
    recorded = lines_of(doc)
    assert recorded["受托人（代办员）"] == "王芳" and "见证人见证" in recorded["委托方式"]
    assert "领取办理结果并交付委托人" in recorded["委托权限"]
    assert any("见证人不得为代办员本人" in s.label for s in doc.content.signatures)


def test_each_kind_is_numbered_without_gaps_and_a_reprint_is_the_first_print(service: AgentService) -> None:
    documents = VillageDocuments(service)
    first = service.file_request(form(materials_brought=[m.id for m in ITEM.materials]))
    second = service.file_request(form(materials_brought=[m.id for m in ITEM.materials], phone="13907310002"))
    a = documents.issue_or_load("receipt", first.matter_id)
    b = documents.issue_or_load("receipt", second.matter_id)
    notice = documents.issue_or_load("notice", first.matter_id)
    application = documents.issue_or_load("application", first.matter_id)
    assert [a.number, b.number] == ["东山村代办〔2026〕收字第1号", "东山村代办〔2026〕收字第2号"]
    assert notice.number == "东山村代办〔2026〕告字第1号" and application.number == "东山村代办〔2026〕申字第1号"
    again = documents.issue_or_load("receipt", first.matter_id)
    assert again.number == a.number and again.html.encode() == a.html.encode()
    assert render_html(a.content) == a.html
    assert "13907310001" in application.html      # the applicant's own form carries their phone; the receipt does not
    assert "13907310001" not in a.html
    with pytest.raises(DocumentInvalid, match="尚未交付"):
        documents.issue_or_load("handover", first.matter_id)


def test_an_altered_stored_document_fails_verification(service: AgentService) -> None:
    documents = VillageDocuments(service)
    filed = service.file_request(form(materials_brought=[m.id for m in ITEM.materials]))
    doc = documents.issue_or_load("receipt", filed.matter_id)
    assert documents.verify(doc.number, typed_hash=doc.content_hash[:16]).genuine
    with service.store.engine.begin() as conn:
        conn.execute(update(sql.issued_document).where(sql.issued_document.c.number == doc.number)
                     .values(html=doc.html.replace("李桂兰", "李桂英")))
    assert not documents.verify(doc.number).genuine


def test_the_ui_prints_a_numbered_document_and_reprints_the_same_bytes(service: AgentService) -> None:
    from starlette.testclient import TestClient

    from village_agent.ui.server import create_app

    filed = service.file_request(form(materials_brought=[m.id for m in ITEM.materials]))
    client = TestClient(create_app(service), base_url="http://127.0.0.1:8631")
    unlock_ui(client)
    receipt_page = client.get(f"/matters/{filed.matter_id}/receipt")
    assert "代理服务委托书" in receipt_page.text and "documents/authorization" in receipt_page.text
    first = client.get(f"/matters/{filed.matter_id}/documents/authorization", follow_redirects=False)
    assert first.status_code == 303
    location = first.headers["location"]
    assert urllib.parse.unquote(location) == "/documents/东山村代办〔2026〕委字第1号"
    printed = client.get(location)
    assert printed.status_code == 200 and "代理服务委托书" in printed.text and "王芳" in printed.text
    again = client.get(client.get(f"/matters/{filed.matter_id}/documents/authorization",
                                  follow_redirects=False).headers["location"])
    assert again.content == printed.content
    assert client.get("/document-static/document.css").status_code == 200
    refused = client.get(f"/matters/{filed.matter_id}/documents/handover")
    assert refused.status_code == 409 and "尚未交付" in refused.text


def test_the_new_request_page_shows_the_authorization_text_before_the_villager_signs(service: AgentService) -> None:
    from starlette.testclient import TestClient

    from village_agent.ui.server import create_app

    client = TestClient(create_app(service), base_url="http://127.0.0.1:8631")
    unlock_ui(client)
    page = client.get("/matters/new").text
    assert "委托东山村便民服务室代办员王芳" in page and "委托权限" in page and "委托期限" in page


def test_the_handover_record_is_numbered_at_sign_off_and_each_document_is_a_line_of_the_matters_history(
        service: AgentService) -> None:
    from starlette.testclient import TestClient

    from village_agent.services import Confirmation
    from village_agent.ui.server import create_app

    item = next(i for i in CATALOG if i.decided_by is Tier.VILLAGE)
    filed = service.file_request(form(catalog_code=item.code, materials_brought=[m.id for m in item.materials]))
    with pytest.raises(DocumentInvalid, match="交付后即可打印"):
        service.documents.issue_or_load("handover", filed.matter_id)      # nothing handed over yet
    service.hand_over(filed.matter_id, "资格认证已通过")
    service.sign_off(filed.matter_id, "very_satisfied", confirmation=Confirmation(
        "witness", witness_name="村委会 张主任", witness_statement="群众确认已收到"))
    handover = service.documents.issue_or_load("handover", filed.matter_id)
    assert handover.number == "东山村代办〔2026〕签字第1号" and "非常满意" in handover.html
    client = TestClient(create_app(service), base_url="http://127.0.0.1:8631")
    unlock_ui(client)
    page = client.get(f"/matters/{filed.matter_id}").text
    assert "签发文书" in page and "交付签收单 东山村代办〔2026〕签字第1号" in page
    assert "代办收件回执 东山村代办〔2026〕收字第1号" in page and "其他记录" not in page


def test_a_handover_record_printed_for_a_paper_sign_off_is_the_one_the_sign_off_keeps(service: AgentService) -> None:
    # A villager who signs the paper form (photographed, or a fingerprint) needs it before the sign-off.
    from village_agent.services import Confirmation

    item = next(i for i in CATALOG if i.decided_by is Tier.VILLAGE)
    filed = service.file_request(form(catalog_code=item.code, materials_brought=[m.id for m in item.materials]))
    service.hand_over(filed.matter_id, "资格认证已通过")
    printed = service.documents.issue_or_load("handover", filed.matter_id)
    assert printed.number == "东山村代办〔2026〕签字第1号" and "资格认证已通过" in printed.html
    service.sign_off(filed.matter_id, "satisfied", confirmation=Confirmation(
        "witness", witness_name="村委会 张主任", witness_statement="群众确认已收到"))
    again = service.documents.issue_or_load("handover", filed.matter_id)
    assert (again.number, again.html) == (printed.number, printed.html)
