"""The village agent's actions through `AgentService`, on a real SQLite file, with a fake clock."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from shared.catalog import load_catalog
from shared.clock import FakeClock, to_unix_ms
from shared.domain.catalog import IntakeOutcome
from shared.domain.id_number import mask, with_check_char
from shared.envelope import GENESIS, sign_next
from shared.sealing import open_sealed
from shared.signing import Signer
from shared.wire.v1 import records_pb2
from tests.unit.test_village_signature import signature_png
from tests.village_fixtures import PASSPHRASE, SIGNATURE_PNG, make_agent
from village_agent.bootstrap import open_agent
from village_agent.domain import AppointmentStatus, MatterStatus
from village_agent.errors import FormError, TransitionError
from village_agent.services import AgentService, RequestForm

NOW = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)  # Monday 10:00 in Shanghai
CATALOG = load_catalog()
VILLAGE_ITEM = next(i for i in CATALOG if i.decided_by.value == "village")
TOWNSHIP_ITEM = next(i for i in CATALOG if i.decided_by.value == "township" and i.auxiliary_materials)


@pytest.fixture()
def agent(tmp_path: Path) -> tuple[AgentService, Signer, FakeClock]:
    township = make_agent(tmp_path / "agent")
    clock = FakeClock(NOW)
    service = open_agent(tmp_path / "agent", PASSPHRASE, clock)
    yield service, township, clock
    service.store.close()


def form(item=TOWNSHIP_ITEM, **overrides: object) -> RequestForm:
    values: dict[str, object] = dict(
        applicant_name="李桂兰", id_number=with_check_char("43052419480312002"), phone="13907310001",
        address="东山村三组 12 号", catalog_code=item.code, materials_brought=[m.id for m in item.main_materials],
        commitments={m.id: "2026-12-01" for m in item.auxiliary_materials},
        authorization_method="drawn_signature", authorization_evidence=SIGNATURE_PNG)
    values.update(overrides)
    return RequestForm(**values)


def township_record(township: Signer, tip, body_setter) -> tuple:
    record = records_pb2.Record()
    body_setter(record)
    signed = sign_next(township, record, tip, to_unix_ms(NOW))
    return signed, record


def test_a_complete_request_is_signed_queued_and_shown_masked(agent) -> None:
    service, _, _ = agent
    filed = service.file_request(form(commitments={}, materials_brought=[m.id for m in TOWNSHIP_ITEM.materials]))
    state = service.store.matter_state(filed.matter_id)
    assert filed.assessment.outcome is IntakeOutcome.ACCEPT and state.status is MatterStatus.RECORDED
    assert state.id_masked == mask(with_check_char("43052419480312002")) and "*" in state.id_masked
    assert service.store.outbox_size() == 2 + 4 and filed.seq == 2   # then the filing's four documents
    assert len(filed.lookup_code) == 11 and service.store.matter_by_lookup_code(filed.lookup_code.lower()).matter_id == filed.matter_id


def test_personal_data_in_the_record_is_sealed_so_only_the_township_can_open_it(agent) -> None:
    service, township, _ = agent
    filed = service.file_request(form())
    payload = service.store.ledger_rows(after_seq=1)[0].envelope.payload
    assert "李桂兰".encode() not in payload
    record = records_pb2.Record.FromString(payload)
    details = records_pb2.ApplicantDetails.FromString(open_sealed(township.seed(), record.request_filed.applicant.sealed_details))
    assert details.name == "李桂兰" and details.id_number == with_check_char("43052419480312002")
    assert open_sealed(township.seed(), record.request_filed.authorization.sealed_evidence) == SIGNATURE_PNG
    assert record.request_filed.matter_id == filed.matter_id


def test_missing_auxiliary_materials_need_a_commitment_date_for_each(agent) -> None:
    service, _, _ = agent
    with pytest.raises(FormError) as caught:
        service.file_request(form(commitments={}))
    fields = {p.field for p in caught.value.problems}
    assert fields == {f"commitment:{m.id}" for m in TOWNSHIP_ITEM.auxiliary_materials}
    assert service.store.outbox_size() == 1


def test_a_commitment_date_in_the_past_is_refused(agent) -> None:
    service, _, _ = agent
    with pytest.raises(FormError, match="应在今天到"):
        service.file_request(form(commitments={m.id: "2026-11-01" for m in TOWNSHIP_ITEM.auxiliary_materials}))


def test_a_request_missing_a_main_material_is_recorded_as_returned_with_the_reason(agent) -> None:
    service, _, _ = agent
    filed = service.file_request(form(materials_brought=[]))
    state = service.store.matter_state(filed.matter_id)
    assert filed.assessment.outcome is IntakeOutcome.RETURN and state.status is MatterStatus.RETURNED
    assert "缺少主要材料" in state.message


def test_every_bad_field_is_named_in_chinese_and_nothing_is_written(agent) -> None:
    service, _, _ = agent
    bad = form(applicant_name="", id_number="430524194803120021", phone="123", address="", catalog_code="XX-999",
               authorization_method="photo_of_form", authorization_evidence=b"not an image", note="")
    with pytest.raises(FormError) as caught:
        service.file_request(bad)
    labels = {p.label for p in caught.value.problems}
    assert {"申请人姓名", "身份证号码", "联系电话", "住址", "办理事项", "委托书"} <= labels
    assert service.store.tip().seq == 1 and service.store.count_matters() == 0


def test_a_note_carrying_an_id_number_is_refused(agent) -> None:
    service, _, _ = agent
    with pytest.raises(FormError, match="备注"):
        service.file_request(form(note="身份证 " + with_check_char("11010519491231002")))


def test_a_witness_can_stand_in_when_the_villager_cannot_sign(agent) -> None:
    service, township, _ = agent
    filed = service.file_request(form(authorization_method="witness", authorization_evidence=b"",
                                      witness_name="村委会 张主任", witness_statement="申请人口头委托"))
    record = records_pb2.Record.FromString(service.store.ledger_rows(after_seq=1)[0].envelope.payload)
    assert record.request_filed.authorization.method == records_pb2.AUTHORIZATION_METHOD_WITNESS
    assert "张主任" in open_sealed(township.seed(), record.request_filed.authorization.sealed_evidence).decode()
    assert filed.matter_id


def test_sign_off_before_hand_over_is_refused_and_after_it_closes_the_matter(agent) -> None:
    service, _, _ = agent
    filed = service.file_request(form(item=VILLAGE_ITEM, commitments={m.id: "2026-12-01" for m in VILLAGE_ITEM.auxiliary_materials},
                                      materials_brought=[m.id for m in VILLAGE_ITEM.main_materials]))
    with pytest.raises(TransitionError, match="须先交付"):
        service.sign_off(filed.matter_id, "satisfied", signature_png=signature_png())
    service.hand_over(filed.matter_id, "资格认证已完成")
    service.sign_off(filed.matter_id, "very_satisfied", "代办员服务周到", signature_png())
    state = service.store.matter_state(filed.matter_id)
    assert state.status is MatterStatus.SIGNED_OFF and state.rating == records_pb2.RATING_VERY_SATISFIED
    with pytest.raises(TransitionError):
        service.withdraw(filed.matter_id, "不办了")
    service.follow_up(filed.matter_id, reached=True, outcome="群众表示满意")
    assert service.store.matter_state(filed.matter_id).followed_up


def test_a_township_matter_is_handed_over_only_after_the_result_comes_down(agent) -> None:
    service, township, _ = agent
    filed = service.file_request(form())
    with pytest.raises(TransitionError, match="尚未送达"):
        service.hand_over(filed.matter_id, "已办结")
    classified, rec1 = township_record(township, GENESIS, lambda r: (
        setattr(r.matter_classified, "matter_id", filed.matter_id),
        setattr(r.matter_classified, "kind", records_pb2.MATTER_KIND_PROMISED),
        setattr(r.matter_classified, "due_at_ms", to_unix_ms(NOW + dt.timedelta(days=7)))))
    ready, rec2 = township_record(township, classified.tip, lambda r: (
        setattr(r.result_ready, "matter_id", filed.matter_id), setattr(r.result_ready, "result_summary", "审批通过")))
    assert service.store.apply_down([classified.envelope, ready.envelope], [rec1, rec2], next_cursor=2) == 2
    assert service.store.apply_down([ready.envelope], [rec2], next_cursor=2) == 0  # replay changes nothing
    assert service.store.matter_state(filed.matter_id).status is MatterStatus.RESULT_READY
    service.hand_over(filed.matter_id, "审批通过，证件已交付")
    late, rec3 = township_record(township, ready.tip, lambda r: (
        setattr(r.status_update, "matter_id", filed.matter_id), setattr(r.status_update, "stage", records_pb2.STAGE_IN_PROGRESS)))
    service.store.apply_down([late.envelope], [rec3], next_cursor=3)
    assert service.store.matter_state(filed.matter_id).status is MatterStatus.HANDED_OVER


def test_rebuilding_from_the_ledger_gives_back_every_matter_exactly(agent) -> None:
    service, township, _ = agent
    ids = [service.file_request(form(applicant_name=f"测试{'甲乙丙丁戊'[i]}")).matter_id for i in range(5)]
    service.add_materials(ids[0], [TOWNSHIP_ITEM.auxiliary_materials[0].id])
    service.withdraw(ids[1], "申请人不再办理")
    signed, rec = township_record(township, GENESIS, lambda r: (
        setattr(r.result_ready, "matter_id", ids[2]), setattr(r.result_ready, "result_summary", "通过")))
    service.store.apply_down([signed.envelope], [rec], next_cursor=1)
    before = {i: service.store.matter_state(i) for i in ids}
    # every record replays: enrollment, 5 requests, materials, withdrawal, and the township's record
    assert service.store.rebuild_projections() == 9 + 5 * 4   # with the four documents of each filing
    assert {i: service.store.matter_state(i) for i in ids} == before


def _forfeits(service) -> list[records_pb2.AppointmentForfeited]:
    bodies = [records_pb2.Record.FromString(r.envelope.payload) for r in service.store.ledger_rows()]
    return [b.appointment_forfeited for b in bodies if b.WhichOneof("body") == "appointment_forfeited"]


def test_an_appointment_is_forfeited_only_thirty_minutes_late_and_after_a_failed_contact_signed_into_the_record(agent) -> None:
    service, _, clock = agent
    at = NOW + dt.timedelta(hours=1)
    missed_id, _ = service.make_appointment(scheduled_at=at, place="service_room", purpose="补交材料")
    clock.advance(dt.timedelta(hours=1, minutes=20))
    assert service.appointments_awaiting_contact() == []   # 20 minutes late: still within the grace
    with pytest.raises(FormError, match="30 分钟"):
        service.forfeit_appointment(missed_id, contact_at=clock.now(), method="phone", outcome="无人接听")
    clock.advance(dt.timedelta(minutes=15))
    assert service.appointments_awaiting_contact() == [missed_id]
    # nothing forfeits by itself any more: without a recorded contact attempt it is refused in Chinese
    with pytest.raises(FormError, match="须先联系群众"):
        service.forfeit_appointment(missed_id, contact_at=None, method="phone", outcome="无人接听")
    with pytest.raises(FormError, match="约定时间之后"):
        service.forfeit_appointment(missed_id, contact_at=at - dt.timedelta(minutes=5), method="phone", outcome="无人接听")
    with pytest.raises(FormError, match="联系方式"):
        service.forfeit_appointment(missed_id, contact_at=clock.now(), method="telepathy", outcome="无人接听")
    with pytest.raises(FormError, match="联系结果"):
        service.forfeit_appointment(missed_id, contact_at=clock.now(), method="phone", outcome=" ")
    with pytest.raises(FormError):
        service.forfeit_appointment(missed_id, contact_at=clock.now(), method="phone", outcome="打 13812345678 无人接")
    assert _forfeits(service) == [] and service.store.appointment_row(missed_id).status == AppointmentStatus.SCHEDULED.value
    called_at = at + dt.timedelta(minutes=32)
    service.forfeit_appointment(missed_id, contact_at=called_at, method="phone", outcome="电话无人接听")
    [forfeit] = _forfeits(service)
    assert forfeit.appointment_id == missed_id and forfeit.rebook_contact_needed
    assert (forfeit.contact.attempted_at_ms, forfeit.contact.method, forfeit.contact.outcome) == (
        to_unix_ms(called_at), "phone", "电话无人接听")
    assert service.store.appointment_row(missed_id).status == AppointmentStatus.FORFEITED.value
    with pytest.raises(FormError, match="不能再标记失约"):
        service.forfeit_appointment(missed_id, contact_at=called_at, method="phone", outcome="电话无人接听")


def test_a_late_visit_or_one_after_the_forfeit_is_still_recorded_with_its_reason(agent) -> None:
    service, _, clock = agent
    on_time_id, _ = service.make_appointment(scheduled_at=NOW + dt.timedelta(hours=1), place="applicant_home", purpose="上门核对材料",
                                             place_detail="东山村三组 12 号")
    late_id, _ = service.make_appointment(scheduled_at=NOW + dt.timedelta(hours=1), place="service_room", purpose="补交材料")
    forfeited_id, _ = service.make_appointment(scheduled_at=NOW + dt.timedelta(hours=1), place="service_room", purpose="领证")
    clock.advance(dt.timedelta(hours=1, minutes=5))
    service.record_visit(appointment_id=on_time_id, outcome="已上门核对")      # on time: no reason asked
    clock.advance(dt.timedelta(minutes=40))
    with pytest.raises(FormError, match="须写明原因"):
        service.record_visit(appointment_id=late_id, outcome="已收材料")
    service.record_visit(appointment_id=late_id, outcome="已收材料", late_reason="路上拖拉机坏了")
    service.forfeit_appointment(forfeited_id, contact_at=clock.now(), method="via_relative", outcome="邻居说去县城了")
    clock.advance(dt.timedelta(hours=2))
    with pytest.raises(FormError, match="须写明原因"):
        service.record_visit(appointment_id=forfeited_id, outcome="已领证")
    service.record_visit(appointment_id=forfeited_id, outcome="已领证", late_reason="从县城回来后自己来了")
    statuses = {r.appointment_id: r.status for r in service.store.appointments()}
    assert set(statuses.values()) == {AppointmentStatus.KEPT.value}
    bodies = [records_pb2.Record.FromString(r.envelope.payload) for r in service.store.ledger_rows()]
    reasons = [b.visit_recorded.late_reason for b in bodies if b.WhichOneof("body") == "visit_recorded"]
    assert reasons == ["", "路上拖拉机坏了", "从县城回来后自己来了"]
    with pytest.raises(FormError, match="已履约"):
        service.record_visit(appointment_id=late_id, outcome="又来了", late_reason="再来一次")
    # the projection rebuilt from the ledger agrees: a visit after a forfeit leaves the appointment kept
    service.store.rebuild_projections()
    assert {r.appointment_id: r.status for r in service.store.appointments()} == statuses


def test_an_appointment_in_the_past_or_at_an_unknown_place_is_refused(agent) -> None:
    service, _, _ = agent
    with pytest.raises(FormError) as caught:
        service.make_appointment(scheduled_at=NOW - dt.timedelta(hours=1), place="moon", purpose="")
    assert {p.field for p in caught.value.problems} == {"scheduled_at", "place", "purpose"}


def test_a_full_disk_refuses_the_record_in_chinese_and_leaves_nothing_half_written(agent) -> None:
    from sqlalchemy import event

    from village_agent.errors import StoreError

    service, _, _ = agent
    service.file_request(form())
    tip, outbox = service.store.tip(), service.store.outbox_size()
    # SQLite reports SQLITE_FULL ("database or disk is full") exactly as for a full disk once the
    # file may not grow past its current size.
    service.store.engine.dispose()

    def cap(dbapi_connection, _record):
        pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
        dbapi_connection.execute(f"PRAGMA max_page_count={pages}")

    event.listen(service.store.engine, "connect", cap)
    with pytest.raises(StoreError, match="磁盘空间不足"):
        for _ in range(50):  # the first few may still fit in free pages
            service.file_request(form(authorization_evidence=SIGNATURE_PNG + bytes(200_000)))
    event.remove(service.store.engine, "connect", cap)
    service.store.engine.dispose()
    assert service.store.outbox_size() == service.store.tip().seq - tip.seq + outbox
    # each filing with its four documents, whole or not at all
    assert service.store.count_matters() * 5 == service.store.tip().seq - 1
    import sqlite3
    with sqlite3.connect(service.store.path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_later_clock_note_does_not_replace_the_result_the_agent_reads_to_the_villager() -> None:
    from village_agent.domain import apply, filed_state

    filed = records_pb2.Record()
    filed.request_filed.matter_id, filed.request_filed.catalog_code = "m-1", "MZ-001"
    state = filed_state(filed)
    ready = records_pb2.Record()
    ready.result_ready.matter_id, ready.result_ready.result_summary = "m-1", "县级决定：不予批准（家庭收入超过当地低保标准）"
    state = apply(state, ready)
    note = records_pb2.Record()
    note.status_update.matter_id, note.status_update.stage = "m-1", records_pb2.STAGE_RESULT_READY
    note.status_update.message = "县级停止计时：县级已作出决定"
    state = apply(state, note)
    assert state is not None and state.status is MatterStatus.RESULT_READY
    assert state.message == "县级决定：不予批准（家庭收入超过当地低保标准）"


def test_a_token_or_blank_drawn_authorization_is_refused_before_anything_is_signed(agent) -> None:
    from tests.unit.test_village_signature import blank_png, dot_png
    from tests.village_fixtures import TINY_PNG
    service, _, _ = agent
    before = service.store.tip().seq
    for bad, why in ((TINY_PNG, "过小"), (blank_png(), "空白"), (dot_png(), "一点笔迹")):
        with pytest.raises(FormError) as refused:
            service.file_request(form(authorization_evidence=bad))
        assert any(why in p.message for p in refused.value.problems)
    assert service.store.tip().seq == before
