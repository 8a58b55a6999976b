"""Deciding by the rules: who may take a matter as which kind, promises generated from clocks, refusals
registered and approved, the clocks before acceptance and after the result (issue 14)."""
from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.calendar import WorkingCalendar
from shared.catalog import load_catalog, shipped_catalog_text
from shared.domain.authority import allowed_kinds, may_decide, tracks_only, typical_kind_allowed
from shared.domain.catalog import CatalogError, MatterKind, Tier, parse_catalog
from shared.domain.deadlines import ClockState, ClockStatus, due_after
from shared.domain.handling import (
    ACCEPTANCE_LIMIT,
    Actor,
    HandledMatter,
    RefusalKind,
    Role,
    Stage,
    promise_text_zh,
)
from shared.domain.limits import Limit
from shared.errors import HandlingError

CAL = WorkingCalendar()
CATALOG = load_catalog()
TOWN_ITEM = CATALOG.item("MZ-003")        # decided by the township, a 承诺件
COUNTY_ITEM = CATALOG.item("MZ-004")      # decided by the county
MAJOR_COUNTY_ITEM = CATALOG.item("MZ-001")
MAJOR_TOWN_ITEM = CATALOG.item("NY-001")
VILLAGE_ITEM = CATALOG.item("RS-003")
OPERATOR = Actor("op-a", Role.OPERATOR)
DIRECTOR = Actor("dir-1", Role.DIRECTOR)
RECEIVED = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)   # Monday 10:00 in Shanghai
HOUR = dt.timedelta(hours=1)
DECISIONS = frozenset({MatterKind.IMMEDIATE, MatterKind.PROMISED, MatterKind.SUPPLEMENT, MatterKind.JOINT})


def received(item=TOWN_ITEM) -> HandledMatter:
    return HandledMatter.received("m-1", item.code, Tier.TOWNSHIP, RECEIVED, item)


# ---------------------------------------------------------------- authority


def test_every_catalogue_entrys_typical_kind_is_allowed_for_its_deciding_tier() -> None:
    for item in CATALOG:
        assert typical_kind_allowed(item), f"{item.code}: {item.typical_kind} decided by {item.decided_by}"


def test_a_catalogue_whose_typical_kind_contradicts_its_deciding_tier_is_refused() -> None:
    text = shipped_catalog_text().replace(
        'code = "MZ-004"', 'code = "MZ-004"', 1).replace(
        'decided_by = "county"\ntypical_kind = "reported"', 'decided_by = "county"\ntypical_kind = "promised"', 1)
    with pytest.raises(CatalogError, match="典型办件类型不能是承诺件"):
        parse_catalog(text)


@given(st.sampled_from(list(CATALOG)), st.sampled_from(list(Tier)))
def test_no_tier_is_ever_allowed_a_decision_it_has_no_authority_for(item, tier) -> None:
    kinds = allowed_kinds(item, tier)
    if tier is not item.decided_by:
        assert not kinds & DECISIONS
        assert not may_decide(item, tier)
    if MatterKind.REPORTED in kinds:
        assert item.decided_by.rank > tier.rank or tier is Tier.COUNTY is item.decided_by
    if tracks_only(item, tier):
        assert kinds == frozenset()


def test_the_township_may_only_return_or_escalate_a_county_matter() -> None:
    assert allowed_kinds(COUNTY_ITEM, Tier.TOWNSHIP) == {MatterKind.RETURNED, MatterKind.REPORTED}
    for kind in (MatterKind.IMMEDIATE, MatterKind.PROMISED, MatterKind.JOINT, MatterKind.SUPPLEMENT):
        with pytest.raises(HandlingError, match="无权按"):
            received(COUNTY_ITEM).classify(kind, actor=OPERATOR, at=RECEIVED, item=COUNTY_ITEM, calendar=CAL,
                                           lead_window="民政窗口", departments=("民政", "财政"),
                                           missing_materials=("户口簿",))


def test_the_township_cannot_record_an_approval_on_a_county_matter_even_from_in_progress() -> None:
    # A matter decided by the township but checked against a county item: the item decides.
    m = received().classify(MatterKind.IMMEDIATE, actor=OPERATOR, at=RECEIVED, item=TOWN_ITEM)
    forged = HandledMatter(**{**m.__dict__, "catalog_code": COUNTY_ITEM.code})
    with pytest.raises(HandlingError, match="无权作出准予"):
        forged.record_result(actor=OPERATOR, at=RECEIVED + HOUR, approved=True, summary="同意", item=COUNTY_ITEM)


def test_a_village_decided_item_is_tracked_at_the_township_never_classified() -> None:
    m = received(VILLAGE_ITEM)
    assert m.stage is Stage.VILLAGE_OWN and m.acceptance_clock is None
    with pytest.raises(HandlingError, match="只跟踪进度"):
        m.classify(MatterKind.IMMEDIATE, actor=OPERATOR, at=RECEIVED, item=VILLAGE_ITEM)
    assert m.handed_over().signed_off(at=RECEIVED + HOUR).stage is Stage.SIGNED_OFF


# ---------------------------------------------------------------- the written promise


def test_a_promise_is_generated_from_its_clock_and_never_disagrees_with_it() -> None:
    m = received().classify(MatterKind.PROMISED, actor=OPERATOR, at=RECEIVED, item=TOWN_ITEM, calendar=CAL,
                            promised_limit=Limit.working_days(2))
    assert m.clock is not None and m.clock.limit == Limit.working_days(2)
    due = due_after(RECEIVED, Limit.working_days(2), CAL)
    assert m.written_promise == promise_text_zh(m.clock, CAL)
    local_due = due.astimezone(dt.timezone(dt.timedelta(hours=8)))
    assert "2个工作日" in m.written_promise and f"{local_due:%m月%d日}".lstrip("0") in m.written_promise


def test_a_promise_must_be_at_least_one_working_day_and_within_the_catalogue() -> None:
    catalogue = TOWN_ITEM.hop(Tier.TOWNSHIP).promised
    with pytest.raises(HandlingError, match="至少为1个工作日"):
        received().classify(MatterKind.PROMISED, actor=OPERATOR, at=RECEIVED, item=TOWN_ITEM, calendar=CAL,
                            promised_limit=Limit.minutes(60))
    with pytest.raises(HandlingError, match="不能超过服务事项目录的承诺时限"):
        received().classify(MatterKind.PROMISED, actor=OPERATOR, at=RECEIVED, item=TOWN_ITEM, calendar=CAL,
                            promised_limit=Limit.working_days(catalogue.amount + 1))


# ---------------------------------------------------------------- refusals 否定报备


def test_a_refusal_records_its_kind_and_a_major_one_needs_the_director_first() -> None:
    m = received().classify(MatterKind.RETURNED, actor=OPERATOR, at=RECEIVED, item=TOWN_ITEM, return_reason="不符合条件")
    assert m.refusal is RefusalKind.NOT_ACCEPTED and m.refusal_approved_by == ""
    major = received(MAJOR_TOWN_ITEM)
    with pytest.raises(HandlingError, match="重大疑难事项"):
        major.classify(MatterKind.RETURNED, actor=OPERATOR, at=RECEIVED, item=MAJOR_TOWN_ITEM, return_reason="不符合")
    asked = major.request_refusal(actor=OPERATOR, at=RECEIVED, item=MAJOR_TOWN_ITEM,
                                  kind=RefusalKind.NOT_ACCEPTED, reason="超出宅基地面积标准")
    assert asked.pending_refusal is not None and asked.stage is Stage.RECEIVED
    with pytest.raises(HandlingError, match="中心主任审批"):
        asked.refusal_request_declined(actor=OPERATOR)
    done = asked.classify(MatterKind.RETURNED, actor=DIRECTOR, at=RECEIVED + HOUR, item=MAJOR_TOWN_ITEM,
                          return_reason="超出宅基地面积标准", refusal_approved_by="dir-1")
    assert done.refusal_approved_by == "dir-1" and done.pending_refusal is None


def test_refusing_approval_of_a_major_matter_needs_the_director() -> None:
    m = received(MAJOR_TOWN_ITEM).classify(MatterKind.JOINT, actor=OPERATOR, at=RECEIVED, item=MAJOR_TOWN_ITEM,
                                           lead_window="国土所", departments=("国土所", "农业办"))
    with pytest.raises(HandlingError, match="不予批准须先经中心主任批准"):
        m.record_result(actor=OPERATOR, at=RECEIVED + HOUR, approved=False, summary="不符合规划", item=MAJOR_TOWN_ITEM)
    refused = m.record_result(actor=DIRECTOR, at=RECEIVED + HOUR, approved=False, summary="不符合规划",
                              item=MAJOR_TOWN_ITEM)
    assert refused.refusal is RefusalKind.NOT_APPROVED and refused.refusal_approved_by == "dir-1"


# ---------------------------------------------------------------- clocks before acceptance and after the result


def test_a_matter_waiting_to_be_accepted_runs_a_five_working_day_clock_that_goes_overdue() -> None:
    m = received()
    clock = m.acceptance_clock
    assert m.stage is Stage.RECEIVED and clock is not None and clock.limit == ACCEPTANCE_LIMIT
    due = clock.due_at(CAL)
    assert due == due_after(RECEIVED, ACCEPTANCE_LIMIT, CAL)
    assert clock.state_at(due - HOUR, CAL) is ClockState.WARNING
    assert clock.state_at(due + HOUR, CAL) is ClockState.OVERDUE
    accepted = m.classify(MatterKind.IMMEDIATE, actor=OPERATOR, at=RECEIVED + HOUR, item=TOWN_ITEM)
    assert accepted.acceptance_clock is not None and accepted.acceptance_clock.status is ClockStatus.STOPPED
    assert accepted.acceptance_clock.state_at(due + HOUR, CAL) is ClockState.ON_TIME


def test_delivery_runs_from_the_result_to_the_villagers_sign_off() -> None:
    m = received().classify(MatterKind.IMMEDIATE, actor=OPERATOR, at=RECEIVED, item=TOWN_ITEM)
    m = m.record_result(actor=OPERATOR, at=RECEIVED + HOUR, approved=True, summary="已办结", item=TOWN_ITEM,
                        delivery_limit=CATALOG.delivery_limit_for(TOWN_ITEM))
    assert m.delivery_clock is not None and m.delivery_clock.status is ClockStatus.RUNNING
    assert m.delivery_clock.due_at(CAL) == due_after(RECEIVED + HOUR, Limit.working_days(3), CAL)
    m = m.handed_over().signed_off(at=RECEIVED + 2 * HOUR)
    assert m.delivery_clock is not None and m.delivery_clock.stop_at == RECEIVED + 2 * HOUR


def test_an_escalation_needs_the_township_opinion() -> None:
    m = received(COUNTY_ITEM).classify(MatterKind.REPORTED, actor=OPERATOR, at=RECEIVED, item=COUNTY_ITEM)
    with pytest.raises(HandlingError, match="初审意见"):
        m.send_escalation(actor=OPERATOR, at=RECEIVED + HOUR, opinion="  ")
    sent = m.send_escalation(actor=OPERATOR, at=RECEIVED + HOUR, opinion="材料齐全，符合条件，建议批准")
    assert sent.escalation_opinion == "材料齐全，符合条件，建议批准"


def test_major_items_are_flagged_in_the_catalogue() -> None:
    assert MAJOR_COUNTY_ITEM.major and MAJOR_TOWN_ITEM.major and not TOWN_ITEM.major
