"""Which county acts each role is offered (`hub.acts`): pure, over the whole shipped catalogue."""
from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from hub.acts import DECISIONS, Act, offered, permission_zh, state_zh
from shared.catalog import load_catalog
from shared.domain.catalog import MatterKind, Tier
from shared.domain.deadlines import HopClock, SuspensionReason
from shared.domain.handling import Actor, HandledMatter, Role, Stage
from shared.domain.limits import Limit

CATALOG = load_catalog()
AT = dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC)
ROLES = tuple(Role)


def at_county(code: str) -> HandledMatter:
    """A matter in progress at the county, whoever the catalogue says decides it (a catalogue that
    changed after the 上报 can leave the county holding one it may not decide)."""
    limit = Limit.working_days(7)
    return HandledMatter(matter_id="m", catalog_code=code, tier=Tier.COUNTY, received_at=AT, stage=Stage.IN_PROGRESS,
                         kind=MatterKind.REPORTED, clock=HopClock.received(AT, limit, Limit.working_days(10)))


@pytest.mark.parametrize("code", CATALOG.codes)
@pytest.mark.parametrize("role", ROLES)
def test_no_role_is_ever_offered_a_decision_the_county_has_no_authority_for(code: str, role: Role) -> None:
    item = CATALOG.item(code)
    acts = offered(at_county(code), item, role)
    decisions = acts & {*DECISIONS, Act.REQUEST_REFUSAL, Act.APPROVE_REFUSAL}
    if item.decided_by is not Tier.COUNTY or role not in (Role.DIRECTOR, Role.APPROVER):
        assert decisions == set()
    if role is Role.APPROVER and item.major and item.decided_by is Tier.COUNTY:
        assert Act.REFUSE not in acts and Act.REQUEST_REFUSAL in acts
    if role is Role.ADMINISTRATOR:
        assert acts == set()


def test_the_director_is_offered_all_three_decisions_and_an_operator_only_supervision() -> None:
    item = CATALOG.item("MZ-001")
    assert set(DECISIONS) <= offered(at_county("MZ-001"), item, Role.DIRECTOR)
    assert offered(at_county("MZ-001"), item, Role.OPERATOR) == {Act.SUPERVISE}
    assert "窗口工作人员不能作出批准" in permission_zh(Act.APPROVE, Role.OPERATOR, item)


def test_a_matter_the_catalogue_no_longer_holds_cannot_be_decided() -> None:
    assert "服务事项目录中已没有该事项" in permission_zh(Act.APPROVE, Role.DIRECTOR, None)


def test_a_suspended_clock_offers_resume_but_no_decision_and_materials_wait_for_the_township() -> None:
    item = CATALOG.item("MZ-004")
    director = Actor("chen", Role.DIRECTOR)
    m = at_county("MZ-004").suspend(actor=director, at=AT, reason=SuspensionReason.EXPERT_REVIEW, note="专家评审")
    acts = offered(m, item, Role.DIRECTOR)
    assert Act.RESUME in acts and not acts & set(DECISIONS) and Act.SUSPEND not in acts
    waiting = at_county("MZ-004").materials_requested(actor=director, at=AT, missing_materials=("户口簿",))
    assert state_zh(Act.RESUME, waiting) == "本件当前为“待补齐材料”，不能恢复计时"


def test_no_extension_is_offered_past_the_due_date_or_at_the_statutory_limit() -> None:
    item = CATALOG.item("MZ-004")
    assert Act.EXTEND not in offered(at_county("MZ-004"), item, Role.DIRECTOR, past_due=True)
    at_max = at_county("MZ-004")
    assert at_max.clock is not None
    at_max = replace(at_max, clock=replace(at_max.clock, limit=Limit.working_days(10)))
    assert "不能再延期" in state_zh(Act.EXTEND, at_max)
