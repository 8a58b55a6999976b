"""The county's 乡镇考核对比 in real Chromium: two real townships linked to a real county (gRPC on port 0)
send their monthly 好差评 counts up; the director reads every township side by side with satisfaction,
差评, complaints and the 百分制 score, and sets the assessment settings that go down to them.
Screenshots go to `test-artifacts/county-board/`."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.e2e.conftest import CHROMIUM, VIEWPORT, console_sign_in

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed: browser tests need Debian's chromium")

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "county-board"
PASSWORD = "县政务中心2026冬季值班"


def test_the_director_compares_the_townships_and_sets_what_goes_down_to_them(browser, tmp_path: Path) -> None:
    from hub.console import create_console_app, open_console_auth, start_console_server
    from shared.clock import FakeClock
    from shared.console import ScryptParams
    from shared.domain.catalog import MatterKind
    from shared.domain.evaluation import BadReason, Level, Rating
    from shared.domain.handling import Role
    from tests.county_fixtures import county, linked_township
    from tests.town_fixtures import MONDAY_9AM, OPERATOR, VillageDevice
    from town_center.evaluation import Evaluations
    from town_center.evaluation_figures import FiguresPublisher

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    clock = FakeClock(MONDAY_9AM)
    hub = county(f"sqlite:///{tmp_path / 'county.db'}", clock)
    towns = [linked_township(tmp_path / "east.db", clock, hub, code="T01", name="青山镇"),
             linked_township(tmp_path / "west.db", clock, hub, code="T02", name="白水乡")]
    server = None
    try:
        ratings = {"T01": [Rating(Level.VERY_SATISFIED), Rating(Level.DISSATISFIED, BadReason.EFFICIENCY)],
                   "T02": [Rating(Level.SATISFIED), Rating(Level.VERY_SATISFIED), Rating(Level.SATISFIED)]}
        for t in towns:
            code = t.app.county_link.township_code
            evaluations = Evaluations(t.app.handling)
            for rating in ratings[code]:
                matter_id = VillageDevice(t.app, village_code=f"V{code[1:]}1").file("MZ-003")
                t.app.handling.classify(matter_id, MatterKind.IMMEDIATE, actor=OPERATOR)
                clock.advance(dt.timedelta(minutes=10))
                t.app.handling.record_result(matter_id, approved=True, summary="已发放", actor=OPERATOR)
                evaluations.rate_with_token(evaluations.issue_token(matter_id, by="wang"), rating)
            FiguresPublisher(t.app).run()
            t.sync()
        hub.app.handling.run_once()
        auth = open_console_auth(hub.app, kdf=ScryptParams(n=2**10, r=8, p=1))
        auth.create_staff("ma", "马主任", Role.DIRECTOR, PASSWORD)
        server = start_console_server(create_console_app(hub.app, auth), "127.0.0.1:0")
        base = f"http://127.0.0.1:{server.port}"
        context = browser.new_context(viewport=VIEWPORT, locale="zh-CN", timezone_id="Asia/Shanghai")
        context.set_default_timeout(10_000)
        page = context.new_page()
        try:
            console_sign_in(page, base, "ma", PASSWORD)
            page.goto(f"{base}/township-assessment?period=2026-11")
            rows = {r.locator("td").first.inner_text(): r.locator("td").all_inner_texts()
                    for r in page.locator("#township-assessment tbody tr").all()}
            east, west = rows["青山镇"], rows["白水乡"]
            # columns: 乡镇, 环节, 受理, 办结, 按时, 按时率, 超期, 用时, 群众评价件数, 满意度, 代为录入, 差评件数, 差评率 …
            assert (east[8], east[9], east[11], east[12]) == ("2", "65.0", "1", "50.0%")
            assert (west[8], west[9], west[11]) == ("3", "86.7", "0")
            assert page.locator(".chart svg").count() == 1
            page.screenshot(path=str(ARTIFACTS / "20-township-assessment.png"), full_page=True)
            page.fill("input[name=rectify_working_days]", "8")
            page.fill("input[name=complaint_deduction]", "6")
            page.click("#assessment-settings-form button[type=submit]")
            page.wait_for_url(f"{base}/township-assessment")
            assert "已保存并下发各乡镇" in page.content()
            assert "8 个工作日" in page.locator("#assessment-settings").inner_text()
            page.screenshot(path=str(ARTIFACTS / "21-assessment-settings-saved.png"), full_page=True)
        finally:
            context.close()
        for t in towns:
            t.sync()
            assert Evaluations(t.app.handling).settings().rectify_working_days == 8
    finally:
        if server is not None:
            server.stop()
        for t in towns:
            t.client.stop()
            t.app.close()
        hub.close()
