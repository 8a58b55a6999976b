"""Township and county staff cannot put an ID or mobile number into the free text the handling domain
signs and stores (reasons, opinions, results, notes, material and department names): each transition
refuses it with a Chinese message and leaves the matter as it was."""
from __future__ import annotations

import datetime as dt

import pytest

from shared.domain.catalog import MatterKind
from shared.domain.deadlines import SuspensionReason
from shared.domain.id_number import with_check_char
from shared.domain.limits import Limit
from shared.errors import HandlingError
from tests.unit.test_handling import CAL, COUNTY_ITEM, RECEIVED, TOWN_ITEM, A, received

ID18 = with_check_char("43052419480312002")
MOBILE = "+86 139-0731-0001"


def _in_progress():
    return received().classify(MatterKind.PROMISED, actor=A, at=RECEIVED, item=TOWN_ITEM, calendar=CAL)


LATER = RECEIVED + dt.timedelta(hours=1)
CASES = {
    "return reason": lambda t: received().classify(MatterKind.RETURNED, actor=A, at=RECEIVED, item=TOWN_ITEM,
                                                   return_reason=f"不符合条件，请致电{t}"),
    "missing material": lambda t: received().classify(MatterKind.SUPPLEMENT, actor=A, at=RECEIVED, item=TOWN_ITEM,
                                                      missing_materials=("户口簿", f"证明（{t}）")),
    "department": lambda t: received().classify(MatterKind.JOINT, actor=A, at=RECEIVED, item=TOWN_ITEM,
                                                lead_window="农业窗口", departments=("农业站", f"自然资源所{t}")),
    "suspension note": lambda t: _in_progress().suspend(actor=A, at=LATER, reason=SuspensionReason.HEARING, note=t),
    "extension reason": lambda t: _in_progress().request_extension(actor=A, at=LATER, new_limit=Limit.working_days(10),
                                                                   reason=f"需核实 {t}"),
    "handover reason": lambda t: _in_progress().hand_over_to(actor=A, at=LATER, to_staff="op-b", reason=f"请假，联系{t}"),
    "result": lambda t: _in_progress().record_result(actor=A, at=LATER, approved=True, item=TOWN_ITEM,
                                                     summary=f"已办结，身份证{t}"),
    "escalation opinion": lambda t: received(COUNTY_ITEM).classify(
        MatterKind.REPORTED, actor=A, at=RECEIVED, item=COUNTY_ITEM).send_escalation(actor=A, at=LATER, opinion=f"初审通过 {t}"),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("number", [ID18, MOBILE])
def test_staff_free_text_carrying_an_id_or_mobile_number_is_refused(case: str, number: str) -> None:
    with pytest.raises(HandlingError) as caught:
        CASES[case](number)
    message = str(caught.value)
    assert "不能填写" in message and ("身份证号码" in message or "手机号码" in message)
    assert ID18 not in message and "0731" not in message


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_same_transition_with_plain_words_goes_through(case: str) -> None:
    after = CASES[case]("本人到场核实")
    assert "本人到场核实" in repr(after)   # the words are kept on the matter as typed
