"""A village agent cannot put an ID or mobile number into free text that is signed in plain text:
each action refuses it in Chinese, names the field, echoes no number and writes nothing."""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest

from shared.clock import FakeClock
from shared.domain.id_number import with_check_char
from tests.unit.test_village_services import NOW, form
from tests.village_fixtures import PASSPHRASE, make_agent
from village_agent.bootstrap import open_agent
from village_agent.errors import FormError
from village_agent.services import AgentService

ID18 = with_check_char("43052419480312002")
MOBILE = "139 0731 0001"


@pytest.fixture()
def service(tmp_path: Path) -> AgentService:
    make_agent(tmp_path / "agent")
    agent = open_agent(tmp_path / "agent", PASSPHRASE, FakeClock(NOW))
    yield agent
    agent.store.close()


def _refused(service: AgentService, act: Callable[[], object], field: str) -> str:
    before = service.store.outbox_size()
    with pytest.raises(FormError) as caught:
        act()
    problems = {p.field: p.message for p in caught.value.problems}
    assert field in problems, problems
    assert service.store.outbox_size() == before
    assert ID18 not in str(caught.value) and "07310001" not in str(caught.value)
    return problems[field]


def test_a_request_note_with_an_id_number_is_refused_and_nothing_is_filed(service: AgentService) -> None:
    message = _refused(service, lambda: service.file_request(form(note=f"身份证{ID18}")), "note")
    assert "身份证号码" in message and "备注" in message


@pytest.mark.parametrize("action, field", [
    ("materials", "note"), ("appointment", "purpose"), ("visit", "outcome"), ("withdraw", "reason"),
])
def test_later_free_text_with_a_mobile_number_is_refused(service: AgentService, action: str, field: str) -> None:
    matter_id = service.file_request(form()).matter_id
    text = f"请联系家属 {MOBILE}"
    act = {
        "materials": lambda: service.add_materials(matter_id, ["household_register"], note=text),
        "appointment": lambda: service.make_appointment(scheduled_at=NOW + dt.timedelta(days=1), place="service_room",
                                                        purpose=text, matter_id=matter_id),
        "visit": lambda: service.record_visit(matter_id=matter_id, outcome=text),
        "withdraw": lambda: service.withdraw(matter_id, text),
    }[action]
    assert "手机号码" in _refused(service, act, field)


def test_the_same_actions_with_plain_words_are_recorded(service: AgentService) -> None:
    before = service.store.outbox_size()
    matter_id = service.file_request(form(note="老人行动不便，需上门")).matter_id
    service.make_appointment(scheduled_at=NOW + dt.timedelta(days=1), place="service_room", purpose="补签委托书",
                             matter_id=matter_id)
    service.withdraw(matter_id, "群众决定暂不办理")
    assert service.store.outbox_size() == before + 3 + 4   # and the filing's four documents
