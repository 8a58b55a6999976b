"""督查 at the township on a real SQLite file with a fake clock: the township's own 督办 reaches the
matter's owner and the supervisors (never the village laptop); the daily overdue list counts working
days late, takes the window's cause and solution, and from 3 working days the supervisor's contact
with the applicant."""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shared.console import ConsoleAuth, ScryptParams, create_console_tables
from shared.deadline_watch.notify import LogNotifier, OutboxRelay
from shared.domain.catalog import MatterKind
from shared.domain.evaluation import EvaluationError
from shared.domain.handling import Actor, Role
from tests.town_fixtures import BACKUP, OPERATOR, VillageDevice, township
from town_center.bootstrap import TownApp
from town_center.console import create_console_app
from town_center.supervision import Oversight, SignedSupervisionRecorder

SUPERVISOR = Actor("qian", Role.SUPERVISOR)
PASSWORD = "青石镇窗口2026春季值班"


@pytest.fixture
def town(tmp_path: Path) -> Iterator[TownApp]:
    app = township(f"sqlite:///{tmp_path / 'town.db'}")   # Monday 23 November 2026, 09:00
    yield app
    app.close()


def late_matter(town: TownApp) -> tuple[VillageDevice, str]:
    village = VillageDevice(town)
    matter_id = village.file("MZ-003")
    town.handling.classify(matter_id, MatterKind.IMMEDIATE, actor=OPERATOR)   # due in 30 office minutes
    return village, matter_id


def test_the_townships_own_supervision_notice_goes_to_the_owner_and_the_supervisor_not_the_laptop(town: TownApp) -> None:
    village, matter_id = late_matter(town)
    town.clock.advance(dt.timedelta(days=7))
    relay = OutboxRelay(town.deadlines, LogNotifier(), SignedSupervisionRecorder(town.services, town.handling.audience_for),
                        owner="test")
    fired = town.deadlines.fire_due(town.clock.now(), fired_by="test")
    assert any(e.hop == "township" for e in fired)
    relay.drain(town.clock.now())
    relay.drain(town.clock.now())     # a retry records nothing twice
    assert not [r for r in village.down_records() if r.WhichOneof("body") == "supervision_notice"]
    oversight = Oversight(town.handling)
    (mine,) = oversight.notices_for(OPERATOR)
    assert mine["matter_id"] == matter_id and "督办" in mine["message"]
    assert len(oversight.notices_for(SUPERVISOR)) == 1 and oversight.notices_for(BACKUP) == []
    oversight.mark_read(mine["notice_id"], actor=OPERATOR)
    assert oversight.notices_for(OPERATOR) == [] and len(oversight.notices_for(SUPERVISOR)) == 1
    with pytest.raises(EvaluationError):
        oversight.mark_read(mine["notice_id"], actor=BACKUP)


def test_the_daily_list_takes_the_cause_and_from_three_working_days_the_contact(town: TownApp) -> None:
    _, matter_id = late_matter(town)
    oversight = Oversight(town.handling)
    town.clock.advance(dt.timedelta(days=2))   # Wednesday: 2 working days late
    (item,) = oversight.daily()
    assert item.matter_id == matter_id and item.overdue_working_days == 2 and item.needs_cause and not item.needs_contact
    with pytest.raises(EvaluationError, match="超期原因"):
        oversight.record_cause(matter_id, "weather", "已通知申请人补齐材料", actor=OPERATOR)
    with pytest.raises(EvaluationError, match="手机号码"):
        oversight.record_cause(matter_id, "applicant", "请申请人打13800001111补材料", actor=OPERATOR)
    oversight.record_cause(matter_id, "applicant", "已通知申请人补齐户口簿复印件", actor=OPERATOR)
    with pytest.raises(EvaluationError, match="满 3 个工作日"):
        oversight.record_contact(matter_id, reached=True, outcome="理解", actor=SUPERVISOR)
    town.clock.advance(dt.timedelta(days=1))   # Thursday: 3 working days late
    (item,) = oversight.daily()
    assert item.overdue_working_days == 3 and item.needs_contact and item.cause is not None
    assert item.solution == "已通知申请人补齐户口簿复印件"
    with pytest.raises(EvaluationError, match="督查"):
        oversight.record_contact(matter_id, reached=True, outcome="表示理解", actor=OPERATOR)
    oversight.record_contact(matter_id, reached=True, outcome="表示理解，周五送来材料", actor=SUPERVISOR)
    (item,) = oversight.daily()
    assert not item.needs_contact and item.contacts[0]["outcome"] == "表示理解，周五送来材料"


def test_the_supervisor_sees_whom_to_call_on_the_daily_page(town: TownApp) -> None:
    late_matter(town)
    town.clock.advance(dt.timedelta(days=3))
    create_console_tables(town.store.engine)
    auth = ConsoleAuth(town.store.engine, town.clock, kdf=ScryptParams(n=2**10, r=8, p=1))
    auth.create_staff("qian", "钱督查", Role.SUPERVISOR, PASSWORD)
    auth.create_staff("wang", "王芳", Role.OPERATOR, PASSWORD)
    web = create_console_app(town, auth)

    def page_for(staff_id: str) -> str:
        client = TestClient(web, follow_redirects=False)
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
        assert token
        client.post("/login", data={"staff_id": staff_id, "password": PASSWORD, "next": "/", "csrf_token": token.group(1)})
        answer = client.get("/oversight")
        assert answer.status_code == 200
        return answer.text

    supervisor = page_for("qian")
    assert "须联系申请人" in supervisor and "测试村民 13800001111" in supervisor and "未说明原因" in supervisor
    operator = page_for("wang")
    assert "13800001111" not in operator and "登记联系" not in operator and "未说明原因" in operator
