"""Intake outcomes and the printed receipt through `AgentService`, on a real SQLite file and a fake clock:
a return is a 退回 with its notice (never a crash), and the receipt prints what was recorded at filing."""
from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.catalog import load_catalog
from shared.clock import FakeClock
from shared.domain.catalog import Catalog, IntakeOutcome, Tier
from shared.domain.id_number import with_check_char
from shared.wire.v1 import records_pb2
from tests.village_fixtures import PASSPHRASE, SIGNATURE_PNG, make_agent
from village_agent.bootstrap import open_agent
from village_agent.domain import MatterStatus
from village_agent.errors import FormError
from village_agent.receipt import build_receipt, receipt_text
from village_agent.services import AgentService, RequestForm

NOW = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)  # Monday 10:00 in Shanghai
CATALOG = load_catalog()
# An item the township or county decides, with a conditional material and a tolerated (容缺) one.
ITEM = next(i for i in CATALOG if i.decided_by is not Tier.VILLAGE
            and any(m.condition for m in i.auxiliary_materials) and any(m.tolerated_missing for m in i.auxiliary_materials))
CONDITIONAL = next(m for m in ITEM.auxiliary_materials if m.condition)
TOLERATED = next(m for m in ITEM.auxiliary_materials if m.tolerated_missing and not m.condition)
VILLAGE_ITEM = next(i for i in CATALOG if i.decided_by is Tier.VILLAGE)


@pytest.fixture()
def service(tmp_path: Path) -> Iterator[AgentService]:
    make_agent(tmp_path / "agent")
    service = open_agent(tmp_path / "agent", PASSPHRASE, FakeClock(NOW))
    yield service
    service.store.close()


def form(item=ITEM, **overrides: object) -> RequestForm:
    values: dict[str, object] = dict(
        applicant_name="李桂兰", id_number=with_check_char("43052419480312002"), phone="13907310001",
        address="东山村三组 12 号", catalog_code=item.code, materials_brought=[m.id for m in item.main_materials],
        authorization_method="witness", witness_name="村委会 张主任", witness_statement="申请人口头委托")
    values.update(overrides)
    return RequestForm(**values)


def test_a_request_missing_a_main_and_a_tolerated_material_is_returned_with_its_notice_not_a_crash(service) -> None:
    main = [m.id for m in ITEM.main_materials]
    filed = service.file_request(form(materials_brought=main[1:]))   # first main material and every auxiliary one missing
    state = service.store.matter_state(filed.matter_id)
    assert filed.assessment.outcome is IntakeOutcome.RETURN and state.status is MatterStatus.RETURNED
    body = service.store.filing_record(filed.matter_id).request_filed
    assert body.intake_outcome == records_pb2.INTAKE_OUTCOME_RETURN and len(body.tolerated_missing) == 0
    assert ITEM.main_materials[0].name in body.return_reason
    receipt = build_receipt(service, filed.matter_id)
    text = receipt_text(receipt)
    assert receipt.title == "退回告知书" and not receipt.accepted
    assert "一次性告知书" in text and "退回原因" in text and "补齐主要材料后可重新申请" in text
    # every missing material is told at once, the tolerated one included
    assert ITEM.main_materials[0].name in text and TOLERATED.name in text
    # enrollment and the returned request, registered for audit, with its 退回告知书 and the other filing documents
    assert service.store.outbox_size() == 2 + 4


def test_a_returned_request_ignores_commitment_dates_the_form_sent(service) -> None:
    filed = service.file_request(form(materials_brought=[], commitments={TOLERATED.id: "2026-12-01"}))
    assert filed.assessment.outcome is IntakeOutcome.RETURN
    assert len(service.store.filing_record(filed.matter_id).request_filed.tolerated_missing) == 0


def test_a_commitment_for_a_material_the_item_does_not_have_is_refused_and_nothing_is_written(service) -> None:
    with pytest.raises(FormError) as caught:
        service.file_request(form(commitments={"no_such_paper": "2026-12-01"}))
    assert "no_such_paper" in str(caught.value) and "该事项没有这些材料" in str(caught.value)
    assert service.store.count_matters() == 0 and service.store.tip().seq == 1


def test_an_unconditional_material_marked_not_applicable_is_refused_by_name(service) -> None:
    with pytest.raises(FormError) as caught:
        service.file_request(form(not_applicable=[TOLERATED.id]))
    assert TOLERATED.name in str(caught.value) and "不能标为不适用" in str(caught.value)
    assert TOLERATED.id not in str(caught.value)


def test_the_receipt_prints_not_applicable_as_such_and_tolerated_materials_with_their_dates(service) -> None:
    others = [m for m in ITEM.auxiliary_materials if m not in (CONDITIONAL, TOLERATED)]
    commitments = {TOLERATED.id: "2026-12-05", **{m.id: "2026-12-10" for m in others}}
    filed = service.file_request(form(not_applicable=[CONDITIONAL.id], commitments=commitments))
    assert filed.assessment.outcome is IntakeOutcome.ACCEPT_WITH_TOLERANCE
    receipt = build_receipt(service, filed.matter_id)
    lines = {line.strip() for line in receipt.notice_lines}
    assert any(line.endswith(f"{CONDITIONAL.name}（{_kind(CONDITIONAL)}）：不适用") for line in lines), lines
    assert not any(CONDITIONAL.name in line and "须补齐" in line for line in lines)
    assert any(TOLERATED.name in line and "2026年12月05日前补交" in line for line in lines)
    assert receipt.title == "代办收件回执" and "受理回执" not in receipt_text(receipt).replace("代办收件回执", "")
    state = service.store.matter_state(filed.matter_id)
    assert state.not_applicable == (CONDITIONAL.id,)


def _kind(m) -> str:
    tag = "辅助材料，可容缺" if m.tolerated_missing else "辅助材料"
    return f"{tag}；仅{m.condition}需要"


def test_the_receipt_shows_the_lookup_code_and_where_to_look_it_up(service) -> None:
    filed = service.file_request(form(materials_brought=[m.id for m in ITEM.materials]))
    text = receipt_text(build_receipt(service, filed.matter_id))
    assert f"查询码：{filed.lookup_code}" in text
    assert "青石镇便民服务中心“办件进度查询”页面" in text and "代办员王芳" in text
    assert filed.matter_id not in text   # the internal id never reaches the paper


def test_a_reprint_says_what_the_villager_was_told_even_after_the_catalogue_changed(service) -> None:
    filed = service.file_request(form(materials_brought=[m.id for m in ITEM.materials]))
    first = receipt_text(build_receipt(service, filed.matter_id))
    renamed = dataclasses.replace(ITEM, name="改名后的事项", fee="收费 10 元",
                                  main_materials=ITEM.main_materials[:1] + (dataclasses.replace(ITEM.main_materials[1], name="新材料名"),)
                                  + ITEM.main_materials[2:])
    service.catalog = Catalog(version="2099.1", source="测试", items=tuple(renamed if i.code == ITEM.code else i for i in CATALOG))
    again = receipt_text(build_receipt(service, filed.matter_id))
    assert again == first
    assert "改名后的事项" not in again and "收费 10 元" not in again and ITEM.fee in again


def test_a_village_decided_matter_is_taken_in_with_a_receipt_and_its_own_handling_limit(service) -> None:
    filed = service.file_request(form(item=VILLAGE_ITEM, materials_brought=[m.id for m in VILLAGE_ITEM.materials]))
    receipt = build_receipt(service, filed.matter_id)
    text = receipt_text(receipt)
    assert receipt.title == "受理回执" and "办理：东山村便民服务室" in text
    assert "报送时限" not in text and "办理时限：2026年11月23日 10:30前办结（本县规定时限）" in text


def test_the_notice_states_the_report_limit_with_where_it_comes_from(service) -> None:
    filed = service.file_request(form(materials_brought=[m.id for m in ITEM.materials]))
    text = receipt_text(build_receipt(service, filed.matter_id))
    assert "报送时限：2026年11月24日 17:30前报送青石镇便民服务中心（本县规定时限）" in text
    assert "法定时限" not in text or any(h.statutory_source.value == "statute" for h in ITEM.limits.values())


def test_a_receipt_for_a_record_filed_before_notices_were_kept_is_rebuilt_from_the_record_and_says_so(service) -> None:
    # What an older laptop release signed: the materials and dates, but no notice text.
    record = records_pb2.Record()
    body = record.request_filed
    body.matter_id, body.catalog_code, body.catalog_version = "0f0e0d0c-0000-4000-8000-000000000001", ITEM.code, CATALOG.version
    body.applicant.id_number_masked = "4305**********002X"
    body.materials_brought.extend(m.id for m in ITEM.main_materials)
    body.materials_not_applicable.append(CONDITIONAL.id)
    for m in ITEM.auxiliary_materials:
        if m is not CONDITIONAL:
            body.tolerated_missing.add(material_id=m.id, supply_by_date="2026-12-05", commitment_signed=True)
    body.intake_outcome = records_pb2.INTAKE_OUTCOME_ACCEPT_WITH_TOLERANCE
    service.store.append(service.signer, record, 1_795_000_000_000, queued_at_ms=1_795_000_000_000, lookup_code="ABCDE-FGHJK")
    receipt = build_receipt(service, body.matter_id)
    assert receipt.rebuilt and "重新生成" in receipt.notice_lines[-1]
    assert any(CONDITIONAL.name in line and line.endswith("：不适用") for line in receipt.notice_lines)
    assert any(TOLERATED.name in line and "2026年12月05日前补交" in line for line in receipt.notice_lines)
    assert receipt.lookup_code == "ABCDE-FGHJK"


def test_the_drawn_authorization_pad_must_not_be_blank(service) -> None:
    from tests.unit.test_village_signature import blank_png

    complete = [m.id for m in ITEM.materials]
    with pytest.raises(FormError, match="空白"):
        service.file_request(form(materials_brought=complete, authorization_method="drawn_signature",
                                  authorization_evidence=blank_png()))
    service.file_request(form(materials_brought=complete, authorization_method="drawn_signature", authorization_evidence=SIGNATURE_PNG))
    assert service.store.count_matters() == 1
