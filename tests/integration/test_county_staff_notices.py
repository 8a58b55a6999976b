"""The county's own 督办 reaches the county's staff: the deadline watch's SUPERVISE notice on the
county hop becomes a notice on `/staff-notices` (the responsible person's first), once however often
it is retried, until someone reads it."""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from fastapi.testclient import TestClient

from hub.bootstrap import build_app
from hub.console import create_console_app
from hub.evaluation import CountyStaffSupervisionRecorder
from shared.calendar import WorkingCalendar
from shared.clock import FakeClock
from shared.console import ConsoleAuth, ScryptParams, create_console_tables
from shared.deadline_watch.notify import Audience, deadline_notifications
from shared.domain.deadlines import ClockState
from shared.domain.handling import Role
from shared.signing import Signer

AT = dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC)
PASSWORD = "县政务服务中心2026冬季值班"


def test_a_county_hop_supervision_notice_is_kept_for_the_countys_staff_until_read(tmp_path: Path) -> None:
    clock = FakeClock(AT)
    app = build_app(f"sqlite:///{tmp_path / 'county.db'}", Signer.generate(), clock=clock, calendar=WorkingCalendar())
    try:
        create_console_tables(app.store.engine)
        auth = ConsoleAuth(app.store.engine, clock, kdf=ScryptParams(n=2**10, r=8, p=1))
        auth.create_staff("chen", "陈审批", Role.OPERATOR, PASSWORD)
        auth.create_staff("sun", "孙督查", Role.SUPERVISOR, PASSWORD)
        (notice,) = [n for n in deadline_notifications(matter_id="m-1", hop="county", level=ClockState.SUPERVISE,
                                                       due_at=AT, responsible="chen") if n.audience is Audience.SUPERVISION]
        recorder = CountyStaffSupervisionRecorder(app.store.engine, clock)
        recorder.record_supervision(notice)
        recorder.record_supervision(notice)          # a retry after a crash
        (kept,) = recorder.open_notices()
        assert kept["responsible"] == "chen" and kept["message"] == notice.text_zh

        web = create_console_app(app, auth)

        def signed_in(staff_id: str) -> TestClient:
            client = TestClient(web, follow_redirects=False)
            token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
            assert token
            client.post("/login", data={"staff_id": staff_id, "password": PASSWORD, "next": "/", "csrf_token": token.group(1)})
            return client

        supervisor = signed_in("sun")
        page = supervisor.get("/staff-notices")
        assert page.status_code == 200 and "陈审批" in page.text and notice.text_zh in page.text
        operator = signed_in("chen")
        mine = operator.get("/staff-notices").text
        assert "（您）" in mine
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', mine)
        assert csrf
        done = operator.post(f"/staff-notices/{kept['notice_id']}/read", data={"csrf_token": csrf.group(1)})
        assert done.status_code == 303 and recorder.open_notices() == []
        assert "没有待阅的督办提醒" in supervisor.get("/staff-notices").text
        comparison = supervisor.get("/township-assessment", params={"period": "2026-Q4"})
        assert comparison.status_code == 200 and "2026年第4季度" in comparison.text
        assert supervisor.get("/township-assessment", params={"period": "2026-13"}).status_code == 400
    finally:
        app.close()


def test_the_county_sees_every_township_side_by_side_for_a_month(tmp_path: Path) -> None:
    from hub.evaluation import township_comparison
    from shared.domain.catalog import MatterKind
    from shared.domain.evaluation import parse_period
    from tests.county_fixtures import county, linked_township
    from tests.town_fixtures import MONDAY_9AM, OPERATOR, VillageDevice

    clock = FakeClock(MONDAY_9AM)
    hub = county(f"sqlite:///{tmp_path / 'county.db'}", clock)
    east = linked_township(tmp_path / "east.db", clock, hub, code="T01", name="青山镇")
    west = linked_township(tmp_path / "west.db", clock, hub, code="T02", name="白水乡")
    try:
        done = VillageDevice(east.app).file("MZ-003")
        east.app.handling.classify(done, MatterKind.IMMEDIATE, actor=OPERATOR)
        clock.advance(dt.timedelta(minutes=20))
        east.app.handling.record_result(done, approved=True, summary="已发放", actor=OPERATOR)
        late = VillageDevice(west.app, village_code="V201").file("MZ-003")
        west.app.handling.classify(late, MatterKind.IMMEDIATE, actor=OPERATOR)
        clock.advance(dt.timedelta(days=1))
        for t in (east, west):
            t.sync()
        hub.app.handling.run_once()
        rows = township_comparison(hub.app.handling, parse_period("2026-11", clock.now().date()),
                                   {"T01": "青山镇", "T02": "白水乡"}, now=clock.now())
        got = {(r.township_name, r.hop): (r.received, r.completed, r.on_time, r.overdue) for r in rows}
        assert got == {("白水乡", "township"): (1, 0, 0, 1), ("青山镇", "township"): (1, 1, 1, 0)}
        assert township_comparison(hub.app.handling, parse_period("2026-10", clock.now().date()), {},
                                   now=clock.now())[0].received == 0
    finally:
        for t in (east, west):
            t.client.stop()
            t.app.close()
        hub.close()


def test_the_countys_supervisor_reads_the_board_and_issues_supervision_but_decides_nothing(tmp_path: Path) -> None:
    from hub.acts import Act, permission_zh
    from shared.catalog import load_catalog
    from shared.domain.catalog import MatterKind
    from tests.county_fixtures import county, linked_township
    from tests.town_fixtures import MONDAY_9AM, OPERATOR, VillageDevice

    item = load_catalog().item("MZ-006")   # a 上报件 the county decides
    assert permission_zh(Act.SUPERVISE, Role.SUPERVISOR, item) == ""
    assert "不能作出" in permission_zh(Act.APPROVE, Role.SUPERVISOR, item)
    clock = FakeClock(MONDAY_9AM)
    hub = county(f"sqlite:///{tmp_path / 'county.db'}", clock)
    town = linked_township(tmp_path / "town.db", clock, hub)
    try:
        late = VillageDevice(town.app).file("MZ-003")
        town.app.handling.classify(late, MatterKind.IMMEDIATE, actor=OPERATOR)
        clock.advance(dt.timedelta(days=2))
        town.sync()
        hub.app.handling.run_once()
        create_console_tables(hub.app.store.engine)
        auth = ConsoleAuth(hub.app.store.engine, clock, kdf=ScryptParams(n=2**10, r=8, p=1))
        auth.create_staff("sun", "孙督查", Role.SUPERVISOR, PASSWORD)
        client = TestClient(create_console_app(hub.app, auth), follow_redirects=False)
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
        assert token
        client.post("/login", data={"staff_id": "sun", "password": PASSWORD, "next": "/", "csrf_token": token.group(1)})
        assert client.get("/").status_code == 200
        overdue = client.get("/overdue").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', overdue)
        assert csrf and late in overdue
        answer = client.post(f"/overdue/{late}/supervise", data={"csrf_token": csrf.group(1),
                                                                  "message": "请说明超期原因并尽快办结"})
        assert answer.status_code == 303
        assert [n["matter_id"] for n in hub.app.handling.notices()] == [late]
    finally:
        town.client.stop()
        town.app.close()
        hub.close()
