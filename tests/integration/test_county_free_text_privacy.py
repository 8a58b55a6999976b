"""The county's words that travel down signed (decision reasons, materials asked for, 督办 messages, how
an extension was told) and the township's answers and follow-up notes refuse an ID or mobile number in
Chinese; the matter, the county's clock and the township's notice list stay as they were. A real county
and a linked township over gRPC on port 0, both on SQLite files."""
from __future__ import annotations

import pytest

from hub.handling import Outcome
from shared.domain.id_number import with_check_char
from shared.errors import HandlingError
from tests.county_fixtures import COUNTY_STAFF, County, LinkedTownship
from tests.integration.test_county_hop import _escalate
from tests.town_fixtures import VillageDevice

ID18 = with_check_char("43052419480312002")


def _refused(act) -> str:
    with pytest.raises(HandlingError) as caught:
        act()
    assert "不能填写" in str(caught.value) and ID18 not in str(caught.value) and "0731" not in str(caught.value)
    return str(caught.value)


def test_a_county_decision_with_a_number_in_its_reason_or_materials_is_refused_and_nothing_changes(
        town: LinkedTownship, hub: County, clock) -> None:
    matter_id = _escalate(town, hub, VillageDevice(town.app, village_code="V001"), clock)
    before = hub.app.handling.history(matter_id).matter.version
    assert "决定理由" in _refused(lambda: hub.app.handling.decide(
        matter_id, Outcome.REFUSE, actor=COUNTY_STAFF, reason=f"申请人身份证 {ID18} 信息不符"))
    assert "补正材料" in _refused(lambda: hub.app.handling.decide(
        matter_id, Outcome.NEEDS_MATERIALS, actor=COUNTY_STAFF, missing=["收入证明（联系 139-0731-0001）"]))
    assert "督办内容" in _refused(lambda: hub.app.handling.issue_supervision(
        matter_id, "请联系申请人 13907310001", actor=COUNTY_STAFF))
    assert hub.app.handling.history(matter_id).matter.version == before
    hub.app.handling.decide(matter_id, Outcome.APPROVE, actor=COUNTY_STAFF, reason="准予")


def test_the_townships_answer_to_a_county_notice_with_a_number_is_refused_and_the_notice_stays_open(
        town: LinkedTownship, hub: County, clock) -> None:
    matter_id = _escalate(town, hub, VillageDevice(town.app, village_code="V001"), clock)
    notice_id = hub.app.handling.issue_supervision(matter_id, "请说明逾期原因", actor=COUNTY_STAFF)
    town.sync()
    assert town.app.county_link is not None
    assert "情况说明" in _refused(lambda: town.app.county_link.acknowledge(notice_id, "已联系 +86 13907310001", by="wang"))
    town.app.county_link.acknowledge(notice_id, "已联系申请人补充说明", by="wang")
