"""好差评 between the townships and the county over the real link (a county gRPC server on port 0, the
shared relay client): monthly figures go up as counts only and the county shows every township side
by side (page and .xlsx); the county's assessment settings come down and replace a township's own."""
from __future__ import annotations

import datetime as dt
import io
import re
from html import unescape
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import select

from hub.console import create_console_app
from hub.evaluation import county_settings, set_county_settings, township_evaluation_figures
from shared.clock import FakeClock
from shared.console import ConsoleAuth, ScryptParams, create_console_tables
from shared.domain.catalog import MatterKind
from shared.domain.evaluation import BadReason, EvaluationError, Level, Rating, ScoreWeights
from shared.domain.front_desk import CaseKind
from shared.domain.front_desk import Channel as DeskChannel
from shared.domain.handling import Role
from tests.county_fixtures import LinkedTownship, county, linked_township
from tests.town_fixtures import DIRECTOR, MONDAY_9AM, OPERATOR, VillageDevice
from town_center.evaluation import Evaluations
from town_center.evaluation_figures import FiguresPublisher

PASSWORD = "correct horse battery staple"


def _done_and_rated(town: LinkedTownship, clock: FakeClock, village: str, rating: Rating) -> str:
    matter_id = VillageDevice(town.app, village_code=village).file("MZ-003")
    town.app.handling.classify(matter_id, MatterKind.IMMEDIATE, actor=OPERATOR)
    clock.advance(dt.timedelta(minutes=20))
    town.app.handling.record_result(matter_id, approved=True, summary="已发放", actor=OPERATOR)
    evaluations = Evaluations(town.app.handling)
    evaluations.rate_with_token(evaluations.issue_token(matter_id, by="wang"), rating)
    return matter_id


def _signed_in(web: object, staff_id: str) -> TestClient:
    client = TestClient(web, follow_redirects=False)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert token
    client.post("/login", data={"staff_id": staff_id, "password": PASSWORD, "next": "/", "csrf_token": token.group(1)})
    return client


def test_the_county_sees_each_townships_satisfaction_bad_reviews_complaints_and_score_on_its_page_and_in_its_xlsx(
        tmp_path: Path) -> None:
    clock = FakeClock(MONDAY_9AM)
    hub = county(f"sqlite:///{tmp_path / 'county.db'}", clock)
    east = linked_township(tmp_path / "east.db", clock, hub, code="T01", name="青山镇")
    west = linked_township(tmp_path / "west.db", clock, hub, code="T02", name="白水乡")
    try:
        bad = _done_and_rated(east, clock, "V001", Rating(Level.DISSATISFIED, BadReason.ATTITUDE, "窗口说话很冲"))
        _done_and_rated(east, clock, "V002", Rating(Level.VERY_SATISFIED))
        _done_and_rated(west, clock, "V201", Rating(Level.SATISFIED))
        assert east.app.front_desk is not None
        east.app.front_desk.register_case(CaseKind.COMPLAINT, actor=OPERATOR, channel=DeskChannel.PHONE,
                                          subject="临时救助办理", content="窗口说话不耐烦", anonymous=True,
                                          linked_matter_id=bad)
        for t in (east, west):
            assert FiguresPublisher(t.app).run() >= 1
            assert FiguresPublisher(t.app).run() == 0      # nothing changed: nothing more goes up
            t.sync()
        hub.app.handling.run_once()

        with hub.app.store.engine.connect() as conn:
            kept = conn.execute(select(township_evaluation_figures)).all()
        assert {r.township_code for r in kept} == {"T01", "T02"}
        assert not [r for r in kept if "窗口说话很冲" in r.cells_json or bad in r.cells_json]   # counts, never the rating

        create_console_tables(hub.app.store.engine)
        auth = ConsoleAuth(hub.app.store.engine, clock, kdf=ScryptParams(n=2**10, r=8, p=1))
        auth.create_staff("sun", "孙督查", Role.SUPERVISOR, PASSWORD)
        auth.create_staff("ma", "马主任", Role.DIRECTOR, PASSWORD)
        web = create_console_app(hub.app, auth)
        director, supervisor = _signed_in(web, "ma"), _signed_in(web, "sun")
        form_page = director.get("/township-assessment").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form_page)
        assert csrf and 'id="assessment-settings-form"' in form_page
        fields = {"csrf_token": csrf.group(1), "rectify_working_days": "5", "follow_up_percent": "10", "on_time": "40",
                  "satisfaction": "30", "no_bad_reviews": "10", "bad_reviews_closed": "10", "follow_up_good": "10",
                  "complaint_deduction": "10"}
        refused = director.post("/township-assessment/settings", data={**fields, "on_time": "50"})
        assert refused.status_code == 303 and "合计 100" in director.get("/township-assessment").text
        assert county_settings(hub.app.store).set_by == ""
        assert 'id="assessment-settings-form"' not in supervisor.get("/township-assessment").text
        sup_csrf = re.search(r'name="csrf_token" value="([^"]+)"', supervisor.get("/staff-notices").text)
        assert supervisor.post("/township-assessment/settings",
                               data={**fields, "csrf_token": sup_csrf.group(1) if sup_csrf else ""}).status_code == 403
        assert director.post("/township-assessment/settings", data=fields).status_code == 303
        assert county_settings(hub.app.store).weights.complaint_deduction == 10
        page = supervisor.get("/township-assessment", params={"period": "2026-11"})
        assert page.status_code == 200 and "<svg" in page.text and "马主任" in page.text
        table = re.search(r'<table class="table" id="township-assessment">(.*?)</table>', page.text, re.S)
        assert table
        shown = [[unescape(c).strip() for c in re.findall(r"<t[hd]>(.*?)</t[hd]>", tr, re.S)]
                 for tr in re.findall(r"<tr>(.*?)</tr>", table.group(1), re.S)]
        header = shown[0]
        rows = {r[0]: dict(zip(header, r, strict=True)) for r in shown[1:] if r[1] == "乡镇办理"}
        # 青山镇: 100 and 30 → 65.0; one 差评 of two; the complaint takes the county's 10 points off.
        east_row, west_row = rows["青山镇"], rows["白水乡"]
        assert (east_row["群众评价件数"], east_row["满意度（百分制）"], east_row["差评件数"], east_row["差评率"]) == (
            "2", "65.0", "1", "50.0%")
        assert east_row["投诉件数"] == "1" and west_row["投诉件数"] == "0"
        # on time 40 + 65% of 30 + half of 10 + none closed 0 + no 回访 10 − 10 for the complaint
        assert east_row["考核得分"] == f"{40 + 19.5 + 5 + 0 + 10 - 10:.1f}"
        assert west_row["满意度（百分制）"] == "80.0" and west_row["考核得分"] == f"{40 + 24 + 10 + 10 + 10:.1f}"

        book = supervisor.get("/township-assessment.xlsx", params={"period": "2026-11"})
        assert book.status_code == 200 and book.headers["content-type"].startswith("application/vnd.openxml")
        sheet = load_workbook(io.BytesIO(book.content))["乡镇考核对比"]
        read = [["" if v is None else str(v) for v in row[:len(header)]] for row in sheet.iter_rows(min_row=2, values_only=True)]
        assert read[0] == header and read[1:] == shown[1:]
        assert sheet._charts, "the workbook carries a chart of the scores"
        quarter = supervisor.get("/township-assessment", params={"period": "2026-Q4"}).text
        assert "2026年第4季度" in quarter and "65.0" in quarter and "按整月上报" not in quarter   # months add up
        days = supervisor.get("/township-assessment", params={"period": "2026-11-02~2026-11-05"})
        assert days.status_code == 200 and "按整月上报" in days.text
    finally:
        for t in (east, west):
            t.client.stop()
            t.app.close()
        hub.close()


def test_the_countys_settings_reach_every_township_and_replace_its_own_from_then_on(tmp_path: Path) -> None:
    clock = FakeClock(MONDAY_9AM)
    hub = county(f"sqlite:///{tmp_path / 'county.db'}", clock)
    town = linked_township(tmp_path / "east.db", clock, hub, code="T01", name="青山镇")
    try:
        evaluations = Evaluations(town.app.handling)
        own = evaluations.configure(rectify_working_days=7, follow_up_percent=30)
        assert (own.rectify_working_days, own.follow_up_percent, own.from_county) == (7, 30, False)
        with pytest.raises(EvaluationError, match="回访抽样比例"):
            set_county_settings(hub.app, by="马主任", follow_up_percent=0)
        assert county_settings(hub.app.store).set_by == ""          # refused: nothing kept, nothing sent
        # Signed by the county yet out of range here (a later county version, say): folded once, changes nothing.
        from shared.clock import to_unix_ms
        from shared.wire.v1 import records_pb2
        odd = records_pb2.Record()
        odd.assessment_settings.rectify_working_days, odd.assessment_settings.follow_up_sample_percent = 45, 10
        odd.assessment_settings.set_by, odd.assessment_settings.set_at_ms = "马主任", to_unix_ms(clock.now())
        with hub.app.store.engine.begin() as conn:
            hub.app.store.lock_own_tip(conn, hub.app.signer.key_id)
            hub.app.store.publish_in(conn, hub.app.signer, odd, ["*"], now_ms=to_unix_ms(clock.now()))
        town.sync()
        assert town.app.county_link is not None and town.app.county_link.outbox.unapplied_inbox() == []
        assert (evaluations.settings().rectify_working_days, evaluations.settings().from_county) == (7, False)
        weights = ScoreWeights(on_time=30, satisfaction=40, no_bad_reviews=10, bad_reviews_closed=10, follow_up_good=10,
                               complaint_deduction=8)
        set_county_settings(hub.app, by="马主任", rectify_working_days=10, weights=weights, follow_up_percent=20)
        town.sync()
        settings = evaluations.settings()
        assert (settings.rectify_working_days, settings.weights, settings.follow_up_percent) == (10, weights, 20)
        assert settings.from_county and settings.county_set_by == "马主任"
        with pytest.raises(EvaluationError, match="已由县级统一设置"):
            evaluations.configure(rectify_working_days=3)
        # The public address stays the township's own.
        assert evaluations.configure(public_url="https://qingshan.example.cn").public_url == "https://qingshan.example.cn"
        assert evaluations.settings().rectify_working_days == 10
        # A 差评's 整改 deadline now follows the county's 10 working days.
        bad = _done_and_rated(town, clock, "V001", Rating(Level.VERY_DISSATISFIED, BadReason.EFFICIENCY))
        (view,) = [v for v in evaluations.views(role=Role.DIRECTOR) if v.matter_id == bad]
        rect = evaluations.assign_rectification(view.evaluation_id, "wang", actor=DIRECTOR)
        assert rect.due_at == town.app.handling.calendar.shift_working_days(clock.now(), 10)
    finally:
        town.client.stop()
        town.app.close()
        hub.close()


def test_county_hub_evaluation_settings_shows_saves_and_refuses_in_chinese(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from hub.cli import main as county_hub
    from shared import cli_common

    monkeypatch.setenv(cli_common.PASSPHRASE_ENV, "县级测试口令-足够长的一句话")
    home = ["--home", str(tmp_path / "county")]
    assert county_hub(["init", *home]) == 0
    capsys.readouterr()
    assert county_hub(["evaluation", "settings", *home]) == 0
    assert "尚未设置" in capsys.readouterr().out
    assert county_hub(["evaluation", "settings", *home, "--rectify-days", "8"]) == 2
    assert "设置人" in capsys.readouterr().err
    assert county_hub(["evaluation", "settings", *home, "--weights", "on_time=90", "--by", "马主任"]) == 2
    assert "合计 100" in capsys.readouterr().err
    assert county_hub(["evaluation", "settings", *home, "--rectify-days", "8", "--follow-up-percent", "15",
                       "--weights", "on_time=40,satisfaction=30,no_bad_reviews=10,bad_reviews_closed=10,"
                                    "follow_up_good=10,complaint_deduction=3", "--by", "马主任"]) == 0
    out = capsys.readouterr().out
    assert "已保存并下发各乡镇" in out and "8 个工作日" in out and "15%" in out and "每件投诉扣 3 分" in out
    assert county_hub(["evaluation", "settings", *home]) == 0
    assert "马主任" in capsys.readouterr().out


def test_the_weekly_follow_up_sample_draws_at_the_rate_in_force(tmp_path: Path) -> None:
    from tests.town_fixtures import township

    def drawn(percent: int, name: str) -> int:
        town = township(f"sqlite:///{tmp_path / name}")
        try:
            village = VillageDevice(town)
            for _ in range(8):
                matter_id = village.file("MZ-003")
                town.handling.classify(matter_id, MatterKind.IMMEDIATE, actor=OPERATOR)
                town.handling.record_result(matter_id, approved=True, summary="已发放", actor=OPERATOR)
            evaluations = Evaluations(town.handling)
            evaluations.configure(follow_up_percent=percent)
            return evaluations.draw_follow_ups()[0]
        finally:
            town.close()

    assert drawn(10, "a.db") == 3          # 10% of 8 rounds to 1: the minimum of three
    assert drawn(100, "b.db") == 8
