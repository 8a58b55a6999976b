"""The six kinds of matter through their lifecycles, with hop clocks checked against the deadline engine."""
from __future__ import annotations

import datetime as dt

import pytest

from shared.calendar import WorkingCalendar
from shared.catalog import load_catalog
from shared.domain.catalog import MatterKind, Tier
from shared.domain.deadlines import ClockState, SuspensionReason, due_after
from shared.domain.handling import IMMEDIATE_LIMIT, Actor, HandledMatter, Role, Stage
from shared.domain.limits import Limit
from shared.errors import HandlingError

CAL = WorkingCalendar()
CATALOG = load_catalog()
TOWN_ITEM = next(i for i in CATALOG if i.decided_by is Tier.TOWNSHIP)
COUNTY_ITEM = next(i for i in CATALOG if i.decided_by is Tier.COUNTY)
A = Actor("op-a", Role.OPERATOR)
B = Actor("op-b", Role.OPERATOR)
DIRECTOR = Actor("dir-1", Role.DIRECTOR)
# Monday 2026-11-23 10:00 in Shanghai
RECEIVED = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def received(item=TOWN_ITEM) -> HandledMatter:
    return HandledMatter.received("m-1", item.code, Tier.TOWNSHIP, RECEIVED)


def test_an_immediate_matter_runs_a_thirty_office_minute_clock_and_closes_on_sign_off() -> None:
    m = received().classify(MatterKind.IMMEDIATE, actor=A, at=RECEIVED, item=TOWN_ITEM)
    assert m.stage is Stage.IN_PROGRESS and m.owner == "op-a"
    assert m.clock is not None and m.clock.due_at(CAL) == due_after(RECEIVED, IMMEDIATE_LIMIT, CAL)
    assert m.clock.due_at(CAL) == RECEIVED + dt.timedelta(minutes=30)
    m = m.record_result(item=TOWN_ITEM, actor=A, at=RECEIVED + dt.timedelta(minutes=15), approved=True, summary="当场办结")
    assert m.stage is Stage.RESULT_READY and m.clock is not None and not m.clock.is_open
    assert m.clock.state_at(RECEIVED + 5 * HOUR, CAL) is ClockState.ON_TIME  # frozen at the stop
    assert m.handed_over().signed_off().stage is Stage.SIGNED_OFF


def test_a_promised_matter_needs_a_written_promise_and_is_due_by_the_catalogue_limit() -> None:
    with pytest.raises(HandlingError, match="书面承诺"):
        received().classify(MatterKind.PROMISED, actor=A, at=RECEIVED, item=TOWN_ITEM)
    m = received().classify(MatterKind.PROMISED, actor=A, at=RECEIVED, item=TOWN_ITEM, calendar=CAL)
    hop = TOWN_ITEM.hop(Tier.TOWNSHIP)
    assert m.clock is not None and m.clock.due_at(CAL) == due_after(RECEIVED, hop.promised, CAL)


def test_a_supplement_matter_waits_uncounted_until_the_materials_are_complete() -> None:
    with pytest.raises(HandlingError, match="一次性书面告知"):
        received().classify(MatterKind.SUPPLEMENT, actor=A, at=RECEIVED, item=TOWN_ITEM)
    m = received().classify(MatterKind.SUPPLEMENT, actor=A, at=RECEIVED, item=TOWN_ITEM, missing_materials=("户口簿",))
    assert m.stage is Stage.WAITING_MATERIALS and m.clock is not None and m.clock.due_at(CAL) is None
    with pytest.raises(HandlingError, match="待补齐材料"):
        m.record_result(item=TOWN_ITEM, actor=A, at=RECEIVED + HOUR, approved=True, summary="办结")
    back = RECEIVED + dt.timedelta(days=3)
    m = m.materials_completed(actor=A, at=back)
    hop = TOWN_ITEM.hop(Tier.TOWNSHIP)
    assert m.stage is Stage.IN_PROGRESS and m.clock is not None
    assert m.clock.due_at(CAL) == due_after(back, hop.promised, CAL)


def test_a_returned_matter_needs_a_written_reason_and_is_final() -> None:
    with pytest.raises(HandlingError, match="退回理由"):
        received().classify(MatterKind.RETURNED, actor=A, at=RECEIVED, item=TOWN_ITEM)
    m = received().classify(MatterKind.RETURNED, actor=A, at=RECEIVED, item=TOWN_ITEM, return_reason="不符合政策规定")
    assert m.stage is Stage.RETURNED and m.is_final and m.clock is None
    with pytest.raises(HandlingError):
        m.withdrawn(at=RECEIVED + HOUR)


def test_a_joint_matter_has_a_lead_window_two_or_more_departments_and_one_limit() -> None:
    with pytest.raises(HandlingError, match="参与部门"):
        received().classify(MatterKind.JOINT, actor=A, at=RECEIVED, item=TOWN_ITEM, lead_window="民政窗口", departments=("民政",))
    m = received().classify(MatterKind.JOINT, actor=A, at=RECEIVED, item=TOWN_ITEM, lead_window="民政窗口",
                            departments=("民政", "残联", "民政"))
    assert m.departments == ("民政", "残联") and m.clock is not None
    assert m.clock.due_at(CAL) == due_after(RECEIVED, TOWN_ITEM.hop(Tier.TOWNSHIP).promised, CAL)


def test_a_reported_matter_stops_the_township_clock_when_the_county_receipts_it() -> None:
    with pytest.raises(HandlingError, match="只能按以下类型办理"):
        received().classify(MatterKind.REPORTED, actor=A, at=RECEIVED, item=TOWN_ITEM)
    m = received(COUNTY_ITEM).classify(MatterKind.REPORTED, actor=A, at=RECEIVED, item=COUNTY_ITEM)
    assert m.stage is Stage.ESCALATING
    m = m.escalated(at=RECEIVED + HOUR)
    assert m.stage is Stage.ESCALATED and m.clock is not None and m.clock.stop_at == RECEIVED + HOUR
    m = m.upper_tier_decided(approved=True, summary="县级审批通过")
    assert m.stage is Stage.RESULT_READY and m.approved


def test_only_the_owner_or_a_director_acts_and_an_ab_handover_keeps_the_first_owner_watching() -> None:
    m = received().classify(MatterKind.PROMISED, actor=A, at=RECEIVED, item=TOWN_ITEM, calendar=CAL)
    with pytest.raises(HandlingError, match="首问责任人"):
        m.suspend(actor=B, at=RECEIVED + HOUR, reason=SuspensionReason.APPRAISAL)
    m = m.hand_over_to(actor=A, at=RECEIVED + HOUR, to_staff="op-b", reason="主岗请假")
    assert m.owner == "op-b" and m.watchers == ("op-a",) and m.handovers[0].reason == "主岗请假"
    m = m.suspend(actor=B, at=RECEIVED + 2 * HOUR, reason=SuspensionReason.APPRAISAL)
    m = m.resume(actor=DIRECTOR, at=RECEIVED + dt.timedelta(days=2))
    assert m.clock is not None and m.clock.due_at(CAL) is not None


def test_an_extension_needs_a_director_and_never_passes_the_statutory_limit() -> None:
    m = received().classify(MatterKind.PROMISED, actor=A, at=RECEIVED, item=TOWN_ITEM, calendar=CAL)
    assert m.clock is not None
    statutory = m.clock.statutory
    with pytest.raises(HandlingError, match="超过法定时限"):
        m.request_extension(actor=A, at=RECEIVED + HOUR, new_limit=Limit(statutory.amount + 1, statutory.unit), reason="需现场核查")
    m = m.request_extension(actor=A, at=RECEIVED + HOUR, new_limit=statutory, reason="需现场核查")
    with pytest.raises(HandlingError, match="中心主任批准"):
        m.decide_extension(actor=A, at=RECEIVED + 2 * HOUR, approve=True, calendar=CAL)
    if statutory == TOWN_ITEM.hop(Tier.TOWNSHIP).promised:
        pytest.skip("this item's promised limit already equals its statutory one")
    m = m.decide_extension(actor=DIRECTOR, at=RECEIVED + 2 * HOUR, approve=True, calendar=CAL)
    assert m.clock is not None and m.clock.limit == statutory and m.pending_extension is None
    assert m.clock.unnotified_extensions  # the applicant must still be told in writing
    assert m.clock.due_at(CAL) == due_after(RECEIVED, statutory, CAL)


def test_a_matter_cannot_be_classified_twice_and_every_transition_bumps_the_version() -> None:
    m = received()
    m2 = m.classify(MatterKind.IMMEDIATE, actor=A, at=RECEIVED, item=TOWN_ITEM)
    assert m2.version == m.version + 1
    with pytest.raises(HandlingError, match="再次分类"):
        m2.classify(MatterKind.PROMISED, actor=A, at=RECEIVED, item=TOWN_ITEM, calendar=CAL)


def test_materials_requested_mid_way_suspend_the_clock_until_they_arrive() -> None:
    m = received().classify(MatterKind.PROMISED, actor=A, at=RECEIVED, item=TOWN_ITEM, calendar=CAL)
    assert m.clock is not None
    due_before = m.clock.due_at(CAL)
    m = m.materials_requested(actor=A, at=RECEIVED + HOUR, missing_materials=("收入证明",))
    assert m.stage is Stage.WAITING_MATERIALS
    m = m.materials_completed(actor=A, at=RECEIVED + dt.timedelta(days=4))
    assert m.clock is not None and due_before is not None and m.clock.due_at(CAL) is not None
    assert m.clock.due_at(CAL) > due_before  # the wait is not counted
