"""The county board in the browser: a director signs in, reads the 上报件看板 with both hops' clocks,
decides a matter, is stopped with a Chinese message (and keeps what was typed) when a refusal has no
reason, issues 督办 and watches it reach the township, approves a township's link key, uploads the
coming years' working calendar and reads the overdue counts.

Deciding by the rules (issue 14): a county operator is offered no decision and a crafted POST of one
fails with a Chinese reason; a delegated approver is offered only what he may take (no 不予批准 of a
major matter: he asks, the director approves) and the refusal lands in the 否定报备 page; the matter
page shows what is decided on (authorization, materials by name, the agent's note, the elderly flag),
says where each limit comes from, suspends, resumes and extends the county clock; no page shows a
matter's id, and unknown pages answer in Chinese.

A real county on SQLite with its gRPC server on a free loopback port, a real township linked to it
in process (its own link key, outbox and sync client), one fake clock for both, and the board served
by uvicorn on port 0; Debian's Chromium at 1366×768. Screenshots go to `test-artifacts/county-board/`."""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import CHROMIUM

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed: browser tests need Debian's chromium")

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "county-board"
PASSWORD = "县政务中心2026冬季值班"
# What the village device files for every applicant (tests.town_fixtures.VillageDevice.file).
PERSONAL = ("测试村民", "13800001111", "110101199003070011")


@dataclass
class RunningBoard:
    base_url: str
    hub: object          # tests.county_fixtures.County
    town: object         # tests.county_fixtures.LinkedTownship
    approve_id: str      # 上报件 the director approves
    refuse_id: str       # 上报件 (not major) the delegated approver refuses, first without a reason
    watched_id: str      # 上报件 that gets a 督办 from its page
    race_id: str         # 上报件 two staff members decide at once
    late_id: str         # township 承诺件 past its due date
    pending_key_id: str  # a second township's link key, waiting for approval
    major_id: str        # 上报件 of a major item the approver asks to refuse and the director approves
    crafted_id: str      # 上报件 an operator tries to decide with a crafted POST
    care_id: str         # 上报件 of an elderly applicant with a signature sealed to the county
    clock_id: str        # 上报件 whose county clock is suspended, resumed and extended


def _escalate(town, hub, village, clock, summary: str, code: str = "MZ-001", matter_id: str = "") -> str:
    from shared.domain.catalog import MatterKind
    from tests.county_fixtures import advance
    from tests.town_fixtures import OPERATOR

    matter_id = matter_id or village.file(code)
    town.app.handling.classify(matter_id, MatterKind.REPORTED, actor=OPERATOR)
    advance(clock, minutes=30)
    town.app.handling.escalate(matter_id, summary, actor=OPERATOR)
    advance(clock, minutes=5)
    town.sync()                  # pushed and receipted: the township hop stops at the county's receipt
    hub.app.handling.run_once()  # the county verifies both signatures and starts its own clock
    town.sync()                  # the county's clock record comes down
    return matter_id


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBoard]:
    from hub.console import create_console_app, open_console_auth, start_console_server
    from hub.delegation import delegate
    from shared.clock import FakeClock
    from shared.console import ScryptParams
    from shared.domain.catalog import MatterKind
    from shared.domain.handling import Role
    from tests.county_fixtures import advance, county, linked_township
    from tests.integration.test_county_deciding_rules import file_with_dossier
    from tests.town_fixtures import MONDAY_9AM, OPERATOR, VillageDevice

    root = tmp_path_factory.mktemp("county-board")
    clock = FakeClock(MONDAY_9AM)
    hub = county(f"sqlite:///{root / 'county.db'}", clock)
    town = linked_township(root / "town.db", clock, hub, code="T01", name="青山镇")
    other = linked_township(root / "t02.db", clock, hub, code="T02", name="白水乡", approve=False)
    village = VillageDevice(town.app)
    approve_id = _escalate(town, hub, village, clock, "低保申请，入户调查属实，乡镇初审通过")
    refuse_id = _escalate(town, hub, village, clock, "临时救助申请，家庭收入待核", "MZ-004")
    watched_id = _escalate(town, hub, village, clock, "低保申请，民主评议已公示")
    race_id = _escalate(town, hub, village, clock, "低保申请，材料齐全")
    major_id = _escalate(town, hub, village, clock, "低保申请，家庭收入偏高")
    crafted_id = _escalate(town, hub, village, clock, "临时救助申请，材料齐全", "MZ-004")
    care_id = _escalate(town, hub, village, clock, "临时救助申请，申请人年老行动不便，代办员上门收件",
                        matter_id=file_with_dossier(village, hub, elderly=True, sealed_to_county=True))
    clock_id = _escalate(town, hub, village, clock, "低保申请，需作专家评审")
    late_id = village.file("MZ-003")
    town.app.handling.classify(late_id, MatterKind.PROMISED, actor=OPERATOR)
    town.sync()
    hub.app.handling.run_once()
    # Nine days on (Wednesday 2 December): the 承诺件 is two working days past its five; the county's
    # seven-day hops fall due this afternoon, so the board shows them in warning colours.
    advance(clock, days=9)
    [pending] = [k for k in hub.app.store.keys() if k.info.township_code == "T02"]

    auth = open_console_auth(hub.app, kdf=ScryptParams(n=2**10, r=8, p=1))
    auth.create_staff("chen", "陈主任", Role.DIRECTOR, PASSWORD)
    auth.create_staff("liu", "刘芳", Role.OPERATOR, PASSWORD)
    auth.create_staff("zhou", "周明", Role.OPERATOR, PASSWORD)
    delegate(hub.app.store.engine, "liu", by="chen", now_ms=0)    # `county-hub staff delegate liu --by chen`
    server = start_console_server(create_console_app(hub.app, auth), "127.0.0.1:0")
    try:
        yield RunningBoard(f"http://127.0.0.1:{server.port}", hub, town, approve_id, refuse_id, watched_id, race_id,
                           late_id, pending.key_id, major_id, crafted_id, care_id, clock_id)
    finally:
        server.stop()
        for t in (town, other):
            t.client.stop()
            t.app.close()
        hub.close()


@pytest.fixture(scope="module")
def shots() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def sign_in(page, base: str, staff_id: str, path: str = "/") -> None:
    page.goto(f"{base}{path}")
    page.wait_for_url(re.compile(r"/login"))
    assert "县政务服务中心" in page.locator(".topbar-name").inner_text()
    page.fill("input[name=staff_id]", staff_id)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}{path}")


def notice_text(page) -> str:
    page.wait_for_selector("div.notice[role=status]")
    return page.locator("div.notice[role=status]").inner_text()


def alert_text(page) -> str:
    page.wait_for_selector("main div.alert[role=alert]")
    return page.locator("main div.alert[role=alert]").inner_text()


def test_the_board_lists_every_escalated_matter_with_both_hops_and_no_personal_data(board: RunningBoard, new_page, shots: Path) -> None:
    base = board.base_url
    page = new_page()
    sign_in(page, base, "chen")
    row = page.locator(f"#board tr[data-matter='{board.approve_id}']")
    text = row.inner_text()
    assert "青山镇" in text and "最低生活保障申请" in text and "办理中" in text and "青山镇 11月23日 09:00 收件" in text
    township, county_cell = row.locator("td.hop-township").inner_text(), row.locator("td.hop-county").inner_text()
    # Township hop: received 09:00 Monday, stopped at the county's receipt well inside its 15 days.
    assert "乡镇收件 2026-11-23 09:00" in township and "已停止（未超时限）" in township and "停止 2026-11-23" in township
    # County hop: 7 working days from its receipt, one day left after the clock moved on: a warning.
    assert "县级签收 2026-11-23" in county_cell and "办结期限 2026-12-02" in county_cell and "临期预警" in county_cell
    # Where each limit comes from: MZ-001's figures are the county's own, not the statute's.
    assert "本县规定时限 10个工作日" in county_cell and "本县规定时限 20个工作日" in township
    assert "法定时限" not in county_cell
    assert "row-warning" in (row.get_attribute("class") or "")
    assert page.locator("#board tbody tr").count() == 8
    # The elderly applicant's matter comes first, flagged.
    first = page.locator("#board tbody tr").first
    assert first.get_attribute("data-matter") == board.care_id and "老年人/残疾人" in first.inner_text()
    body = page.locator("body").inner_text()
    for secret in (*PERSONAL, board.approve_id, board.care_id, "T01", "MZ-001"):
        assert secret not in body
    page.screenshot(path=str(shots / "01-board.png"), full_page=True)

    page.select_option("#filters select[name=township]", "T02")
    page.click("#filters button[type=submit]")
    page.wait_for_url(re.compile(r"township=T02"))
    assert "没有符合条件的上报件" in page.locator("main").inner_text()
    page.select_option("#filters select[name=township]", "T01")
    page.click("#filters button[type=submit]")
    page.wait_for_url(re.compile(r"township=T01"))
    assert page.locator(f"#board tr[data-matter='{board.approve_id}']").is_visible()


def test_approving_a_matter_on_its_page_signs_the_decision_down_and_writes_it_in_the_history(
        board: RunningBoard, new_page, shots: Path) -> None:
    from shared.domain.handling import Stage

    base = board.base_url
    page = new_page()
    sign_in(page, base, "chen", f"/matters/{board.approve_id}")
    applicant = page.locator("#applicant").inner_text()
    assert all(secret in applicant for secret in PERSONAL)
    hops = page.locator("#hops").inner_text()
    assert "乡镇环节" in hops and "县级环节" in hops and "临期预警" in hops
    assert "入户调查属实" in page.locator("#township-summary").inner_text()
    page.screenshot(path=str(shots / "02-matter-before-decision.png"), full_page=True)

    form = page.locator("#action-decide")
    form.locator("input[name=outcome][value=approve]").check()
    form.locator("textarea[name=reason]").fill("准予纳入最低生活保障")
    form.locator("button[type=submit]").click()
    assert "已作出县级决定：批准" in notice_text(page)
    assert page.locator("#stage").inner_text() == "结果待交付"
    assert "批准：准予纳入最低生活保障" in page.locator("#outcome").inner_text()
    history = page.locator("#history").inner_text()
    assert "陈主任（中心主任）" in history and "县级批准：准予纳入最低生活保障" in history
    assert page.locator("#action-decide").count() == 0
    assert "已停止" in page.locator("#hop-county").inner_text()
    page.screenshot(path=str(shots / "03-matter-approved.png"), full_page=True)

    # The signed decision reaches the township on its next sync.
    board.town.sync()
    assert board.town.app.handling.page(board.approve_id).matter.stage is Stage.RESULT_READY


def test_refusing_without_a_reason_is_stopped_with_a_chinese_message_and_keeps_what_was_typed(
        board: RunningBoard, new_page, shots: Path) -> None:
    base = board.base_url
    page = new_page()
    sign_in(page, base, "liu", f"/matters/{board.refuse_id}")
    assert "刘芳（受委托审批人）" in page.locator("#signed-in-as").inner_text()
    form = page.locator("#action-decide")
    form.locator("input[name=outcome][value=refuse]").check()
    form.locator("textarea[name=missing]").fill("家庭收入证明")
    form.locator("button[type=submit]").click()
    assert "不予批准须写明理由" in alert_text(page)
    form = page.locator("#action-decide")
    assert "failed" in (form.get_attribute("class") or "")
    assert form.locator("input[name=outcome][value=refuse]").is_checked()
    assert form.locator("textarea[name=missing]").input_value() == "家庭收入证明"
    assert page.locator("#stage").inner_text() == "办理中"
    page.screenshot(path=str(shots / "04-refusal-without-reason.png"), full_page=True)

    form.locator("textarea[name=reason]").fill("家庭人均收入高于当地低保标准")
    form.locator("button[type=submit]").click()
    assert "已作出县级决定：不予批准" in notice_text(page)
    assert "县级不予批准：家庭人均收入高于当地低保标准" in page.locator("#history").inner_text()
    assert "刘芳（受委托审批人）" in page.locator("#history").inner_text()


def test_a_decision_on_a_page_someone_else_has_already_decided_is_not_saved_and_keeps_what_was_typed(
        board: RunningBoard, new_page, shots: Path) -> None:
    base = board.base_url
    first, second = new_page(), new_page()
    sign_in(first, base, "chen", f"/matters/{board.race_id}")
    sign_in(second, base, "liu", f"/matters/{board.race_id}")
    first.locator("#action-decide input[name=outcome][value=approve]").check()
    first.locator("#action-decide button[type=submit]").click()
    assert "已作出县级决定：批准" in notice_text(first)

    form = second.locator("#action-decide")
    form.locator("input[name=outcome][value=needs_materials]").check()
    form.locator("textarea[name=missing]").fill("户口簿复印件\n家庭收入证明")
    form.locator("button[type=submit]").click()
    assert "本件刚被其他人修改过，您的操作未保存" in alert_text(second)
    form = second.locator("#action-decide")
    assert form.locator("input[name=outcome][value=needs_materials]").is_checked()
    assert form.locator("textarea[name=missing]").input_value() == "户口簿复印件\n家庭收入证明"
    assert second.locator("#stage").inner_text() == "结果待交付"
    assert "县级批准" in second.locator("#history").inner_text()
    second.screenshot(path=str(shots / "05-decision-overtaken.png"), full_page=True)


def test_a_supervision_notice_is_shown_issued_then_delivered_after_two_township_syncs_then_answered(
        board: RunningBoard, new_page, shots: Path) -> None:
    base = board.base_url
    page = new_page()
    sign_in(page, base, "chen", f"/matters/{board.watched_id}")
    form = page.locator("#action-supervise")
    form.locator("textarea[name=message]").fill("请核实民主评议记录并于三日内回复")
    form.locator("button[type=submit]").click()
    assert "已签发督办通知" in notice_text(page)
    assert "县级督办：请核实民主评议记录并于三日内回复" in page.locator("#history").inner_text()

    page.goto(f"{base}/notices")
    row = page.locator(f"#notices tr[data-matter='{board.watched_id}']")
    assert row.get_attribute("data-status") == "issued"
    assert row.locator("td.status").inner_text() == "已签发" and "尚未送达" in row.inner_text()
    page.screenshot(path=str(shots / "06-notice-issued.png"), full_page=True)

    town = board.town
    town.sync()   # pulled and folded
    town.sync()   # the next pull asks after it: the county marks it received
    page.reload()
    row = page.locator(f"#notices tr[data-matter='{board.watched_id}']")
    assert row.get_attribute("data-status") == "received"
    assert row.locator("td.status").inner_text() == "已送达" and "尚未回复" in row.inner_text()
    page.screenshot(path=str(shots / "07-notice-received.png"), full_page=True)

    link = town.app.county_link
    [notice] = [n for n in link.open_notices() if n["matter_id"] == board.watched_id]
    link.acknowledge(notice["notice_id"], "评议记录已补正，今日报县", by="wang")
    town.sync()
    board.hub.app.handling.run_once()
    page.reload()
    row = page.locator(f"#notices tr[data-matter='{board.watched_id}']")
    assert row.get_attribute("data-status") == "acknowledged"
    assert row.locator("td.status").inner_text() == "已回复" and "评议记录已补正，今日报县" in row.inner_text()
    page.screenshot(path=str(shots / "08-notice-answered.png"), full_page=True)


def test_a_director_approves_a_pending_township_link_key_that_an_operator_may_only_read_and_can_revoke_it(
        board: RunningBoard, new_page, shots: Path) -> None:
    from shared.relay.ports import KeyState

    base = board.base_url
    operator = new_page()
    sign_in(operator, base, "liu", "/townships")
    row = operator.locator(f"#townships tr[data-key='{board.pending_key_id}']")
    assert "待审批" in row.inner_text() and "由中心主任或系统管理员办理" in row.inner_text()

    page = new_page()
    sign_in(page, base, "chen", "/townships")
    row = page.locator(f"#townships tr[data-key='{board.pending_key_id}']")
    [key] = [k for k in board.hub.app.store.keys() if k.key_id == board.pending_key_id]
    assert "白水乡" in row.inner_text() and key.info.fingerprint in row.inner_text()
    page.screenshot(path=str(shots / "09-townships-pending.png"), full_page=True)
    row.locator("form[action$='/approve'] button").click()
    assert "已批准白水乡的接入密钥" in notice_text(page)
    row = page.locator(f"#townships tr[data-key='{board.pending_key_id}']")
    assert row.get_attribute("data-state") == "approved" and "审批通过（陈主任（中心主任）" in row.inner_text()
    [key] = [k for k in board.hub.app.store.keys() if k.key_id == board.pending_key_id]
    assert key.state is KeyState.APPROVED and key.status_changed_by == "chen"
    page.screenshot(path=str(shots / "10-townships-approved.png"), full_page=True)

    # The same key revoked (its server was stolen): a reason is required, and it is kept.
    row.locator("form[action$='/revoke'] input[name=reason]").fill("乡镇服务器失窃")
    row.locator("form[action$='/revoke'] button").click()
    assert "已吊销白水乡的接入密钥" in notice_text(page)
    row = page.locator(f"#townships tr[data-key='{board.pending_key_id}']")
    assert row.get_attribute("data-state") == "revoked"
    [key] = [k for k in board.hub.app.store.keys() if k.key_id == board.pending_key_id]
    assert key.state is KeyState.REVOKED and key.status_reason == "乡镇服务器失窃"
    page.screenshot(path=str(shots / "10b-townships-revoked.png"), full_page=True)


BAD_CALENDAR = """format = 1
[year_2028]
holidays = [ { name = "元旦", date = 2028-01-01 } ]
"""
GOOD_CALENDAR = """format = 1
issued_by = "县政务服务中心"

[year_2028]
confirmed = false
holidays = [ { name = "元旦", from = 2028-01-01, to = 2028-01-03 } ]
"""


def test_an_invalid_calendar_file_is_refused_in_chinese_keeping_its_text_and_a_2028_draft_is_accepted(
        board: RunningBoard, new_page, shots: Path) -> None:
    from shared.calendar import YearSource

    base = board.base_url
    page = new_page()
    sign_in(page, base, "chen", "/calendar")
    years = page.locator("#years")
    assert years.locator("tr[data-year='2026']").get_attribute("data-source") == "library"
    assert "已确认" in years.locator("tr[data-year='2026']").inner_text()
    assert "尚未录入" in years.locator("tr[data-year='2028']").inner_text()
    assert "工作日历未确认" in page.locator("#calendar-warning").inner_text()

    page.set_input_files("input[name=toml_file]", files=[{"name": "2028.toml", "mimeType": "text/plain",
                                                          "buffer": BAD_CALENDAR.encode()}])
    page.click("#calendar-form button[type=submit]")
    error = alert_text(page)
    assert "工作日历未保存" in error and "必须写明 confirmed = true 或 false" in error and "[year_2028]" in error
    assert page.locator("textarea[name=toml_text]").input_value() == BAD_CALENDAR
    assert board.hub.app.deadlines.calendar.year_source(2028) is YearSource.WEEKENDS_ONLY
    page.screenshot(path=str(shots / "11-calendar-refused.png"), full_page=True)

    page.set_input_files("input[name=toml_file]", files=[{"name": "2028.toml", "mimeType": "text/plain",
                                                          "buffer": GOOD_CALENDAR.encode()}])
    page.click("#calendar-form button[type=submit]")
    assert "已保存工作日历：2028年（草案）" in notice_text(page)
    row = page.locator("#years tr[data-year='2028']")
    assert "放假 3 天" in row.inner_text() and "1月3日 元旦" in row.inner_text()
    assert "chen" in page.locator("#saved-by").inner_text()
    assert page.locator("textarea[name=toml_text]").input_value() == GOOD_CALENDAR
    assert board.hub.app.store.get_meta("calendar_override_toml") == GOOD_CALENDAR
    page.screenshot(path=str(shots / "12-calendar-accepted.png"), full_page=True)


def test_an_accepted_calendar_file_counts_deadlines_at_once(board: RunningBoard, new_page, shots: Path) -> None:
    from shared.calendar import YearSource

    base = board.base_url
    page = new_page()
    sign_in(page, base, "chen", "/calendar")
    page.fill("textarea[name=toml_text]", GOOD_CALENDAR)
    page.click("#calendar-form button[type=submit]")
    assert "已保存工作日历：2028年（草案）" in notice_text(page)
    assert "未能立即启用" not in notice_text(page) and page.locator("#calendar-pending").count() == 0
    row = page.locator("#years tr[data-year='2028']")
    assert row.get_attribute("data-source") == "override_draft" and "县级发布的草案" in row.inner_text()
    # Monday 3 January 2028 is a day off now; Tuesday is not.
    calendar = board.hub.app.deadlines.calendar
    assert calendar.year_source(2028) is YearSource.OVERRIDE_DRAFT
    assert not calendar.is_working_day(dt.date(2028, 1, 3)) and calendar.is_working_day(dt.date(2028, 1, 4))


def test_the_overdue_page_counts_by_township_and_kind_and_issues_supervision_for_a_late_matter(
        board: RunningBoard, new_page, shots: Path) -> None:
    base = board.base_url
    page = new_page()
    sign_in(page, base, "liu", "/overdue")
    township = page.locator("#by-township tr[data-key='T01']")
    assert "青山镇" in township.inner_text()
    assert int(township.locator("td.late").inner_text()) >= 1
    kind = page.locator("#by-kind tr[data-key='承诺件']")
    assert kind.locator("td.open").inner_text() == "1" and kind.locator("td.late").inner_text() == "1"
    row = page.locator(f"#overdue tr[data-matter='{board.late_id}']")
    assert "临时救助申请" in row.inner_text() and "承诺件" in row.inner_text() and "个工作日" in row.inner_text()
    for secret in PERSONAL:
        assert secret not in page.locator("body").inner_text()
    page.screenshot(path=str(shots / "13-overdue.png"), full_page=True)

    row.locator("textarea[name=message]").fill("   ")
    row.locator("button[type=submit]").click()
    assert "请填写督办内容" in alert_text(page)
    row = page.locator(f"#overdue tr[data-matter='{board.late_id}']")
    row.locator("textarea[name=message]").fill("已超期，请今日内说明原因")
    row.locator("button[type=submit]").click()
    assert "已签发督办通知" in notice_text(page)
    row = page.locator(f"#overdue tr[data-matter='{board.late_id}']")
    assert "已督办 1 次" in row.inner_text()
    page.goto(f"{base}/notices")
    notice = page.locator(f"#notices tr[data-matter='{board.late_id}']")
    assert notice.get_attribute("data-status") == "issued" and "已超期，请今日内说明原因" in notice.inner_text()
    page.screenshot(path=str(shots / "14-overdue-supervised.png"), full_page=True)


# ---------------------------------------------------------------- deciding by the rules (issue 14)


def craft_post(page, base: str, path: str, fields: dict[str, str]) -> None:
    """Submit a form the page never offered, from the signed-in page itself (session, CSRF token and
    Origin as a real browser sends them): what a staff member with the developer tools could do."""
    token = page.locator("input[name=csrf_token]").first.input_value()
    page.evaluate("""([action, fields]) => {
        const form = document.createElement("form");
        form.method = "post"; form.action = action;
        for (const [name, value] of Object.entries(fields)) {
            const input = document.createElement("input");
            input.type = "hidden"; input.name = name; input.value = value; form.appendChild(input);
        }
        document.body.appendChild(form); form.submit();
    }""", [f"{base}{path}", {"csrf_token": token, **fields}])
    page.wait_for_load_state()


def test_an_operator_is_offered_no_decision_and_a_crafted_post_of_one_fails_with_a_chinese_reason(
        board: RunningBoard, new_page, shots: Path) -> None:
    from shared.domain.handling import Stage

    base = board.base_url
    page = new_page()
    sign_in(page, base, "zhou", f"/matters/{board.crafted_id}")
    assert page.locator("#action-decide").count() == 0 and page.locator("#action-suspend").count() == 0
    assert "县级决定须由中心主任或经主任委托的审批人作出" in page.locator("#decision-refusal").inner_text()
    assert page.locator("#action-supervise").is_visible()          # 督办 stays an operator's work
    version = page.locator("#action-supervise input[name=expected_version]").input_value()

    with page.expect_response(re.compile(rf"/matters/{board.crafted_id}/decide$")) as answer:
        craft_post(page, base, f"/matters/{board.crafted_id}/decide",
                   {"expected_version": version, "outcome": "approve", "reason": "准予"})
    assert answer.value.status == 403
    assert "县级决定须由中心主任或经主任委托的审批人作出" in alert_text(page)
    assert page.locator("#stage").inner_text() == "办理中" and page.locator("#action-decide").count() == 0
    page.screenshot(path=str(shots / "15-operator-crafted-decision-refused.png"), full_page=True)
    assert board.hub.app.handling.history(board.crafted_id).matter.stage is Stage.IN_PROGRESS

    # The director is offered all three decisions on the same matter.
    director = new_page()
    sign_in(director, base, "chen", f"/matters/{board.crafted_id}")
    offered = director.locator("#action-decide input[name=outcome]")
    assert [offered.nth(i).get_attribute("value") for i in range(offered.count())] == ["approve", "refuse", "needs_materials"]


def test_an_approver_is_offered_no_refusal_of_a_major_matter_asks_the_director_and_the_refusal_is_registered(
        board: RunningBoard, new_page, shots: Path) -> None:
    base = board.base_url
    page = new_page()
    sign_in(page, base, "liu", f"/matters/{board.major_id}")
    offered = page.locator("#action-decide input[name=outcome]")
    assert [offered.nth(i).get_attribute("value") for i in range(offered.count())] == ["approve", "needs_materials"]
    assert "重大疑难事项" in page.locator("#major-hint").inner_text()
    version = page.locator("#action-decide input[name=expected_version]").input_value()
    craft_post(page, base, f"/matters/{board.major_id}/decide",
               {"expected_version": version, "outcome": "refuse", "reason": "收入超标"})
    assert "属重大疑难事项，不予批准须由中心主任决定" in alert_text(page)
    assert page.locator("#stage").inner_text() == "办理中"

    form = page.locator("#action-request_refusal")
    form.locator("textarea[name=reason]").fill("家庭人均收入高于当地低保标准")
    form.locator("button[type=submit]").click()
    assert "已提出不予批准申请，等待中心主任审批" in notice_text(page)
    assert "家庭人均收入高于当地低保标准" in page.locator("#pending-refusal").inner_text()
    assert page.locator("#action-approve_refusal").count() == 0 and page.locator("#action-refusal-request").count() == 0

    director = new_page()
    sign_in(director, base, "chen", f"/matters/{board.major_id}")
    request = director.locator("#action-refusal-request")
    assert "刘芳（受委托审批人） 申请不予批准：家庭人均收入高于当地低保标准" in request.inner_text()
    director.screenshot(path=str(shots / "16-refusal-request-for-the-director.png"), full_page=True)
    request.locator("form[action$='/approve_refusal'] button").click()
    assert "已批准不予批准申请" in notice_text(director)
    assert director.locator("#stage").inner_text() == "结果待交付"
    assert "陈主任（中心主任）" in director.locator("#refusal-approved").inner_text()

    director.click("nav >> text=否定报备")
    director.wait_for_url(re.compile(r"/refusals$"))
    row = director.locator(f"#refusals tr[data-matter='{board.major_id}']")
    assert "青山镇" in row.inner_text() and "最低生活保障申请" in row.inner_text() and "重大疑难事项" in row.inner_text()
    assert row.locator("td.reason").inner_text() == "家庭人均收入高于当地低保标准"
    assert row.locator("td.decided").inner_text() == "刘芳（受委托审批人），受陈主任（中心主任）委托"
    assert row.locator("td.approved").inner_text() == "陈主任（中心主任）"
    # The approver's own refusal of a matter that is not major needed nobody's approval.
    plain = director.locator(f"#refusals tr[data-matter='{board.refuse_id}']")
    assert "临时救助申请" in plain.inner_text() and "无需（非重大疑难事项" in plain.locator("td.approved").inner_text()
    body = director.locator("body").inner_text()
    assert board.major_id not in body and board.refuse_id not in body and "T01" not in body
    director.screenshot(path=str(shots / "17-refusal-register.png"), full_page=True)


def test_the_matter_page_shows_the_authorization_materials_note_and_flag_and_where_the_limits_come_from(
        board: RunningBoard, new_page, shots: Path) -> None:
    from shared.catalog import load_catalog

    base = board.base_url
    page = new_page()
    sign_in(page, base, "chen", f"/matters/{board.care_id}")
    assert page.locator("#care-flag").inner_text() == "老年人/残疾人"
    dossier = page.locator("#dossier")
    assert "老年人/残疾人" in dossier.locator("#care").inner_text() and "上门收件" in dossier.locator("#care").inner_text()
    assert dossier.locator("#agent-note").inner_text() == "申请人行动不便，上门收件"
    assert dossier.locator("#auth-method").inner_text() == "申请人在代办员电脑上现场手写签名"
    image = dossier.locator("#auth-image")
    image.wait_for()
    assert page.evaluate("img => img.complete && img.naturalWidth > 0", image.element_handle())
    item = load_catalog().item("MZ-004")
    materials = dossier.locator("#materials").inner_text()
    for m in item.main_materials:
        assert m.name in materials
    for m in item.auxiliary_materials:
        assert m.name in materials
    assert "未带" in materials and "已带" in materials
    assert "申请人年老行动不便" in page.locator("#township-summary").inner_text()
    assert "本县规定时限 10个工作日" in page.locator("#hop-county td.basis").inner_text()
    assert page.locator("#action-extend").count() == 0             # five working days ran out: too late to extend
    assert "（本县规定时限 10个工作日）" in page.locator("#county-limit").inner_text()
    body = page.locator("body").inner_text()
    for internal in (board.care_id, "MZ-004", "T01", *(m.id for m in item.materials)):
        assert internal not in body
    page.screenshot(path=str(shots / "18-matter-dossier.png"), full_page=True)


def test_the_director_suspends_the_county_clock_for_expert_review_resumes_it_extends_it_and_records_the_notice(
        board: RunningBoard, new_page, shots: Path) -> None:
    from shared.domain.deadlines import ClockStatus
    from town_center.handling import COUNTY_HOP

    base = board.base_url
    town = board.town
    page = new_page()
    sign_in(page, base, "chen", f"/matters/{board.clock_id}")
    options = page.locator("#action-suspend select[name=reason] option")
    labels = [options.nth(i).inner_text() for i in range(options.count())]
    assert "专家评审" in labels and "鉴定" in labels and not any("现场勘查" in x or "补正" in x for x in labels)
    form = page.locator("#action-suspend")
    form.locator("select[name=reason]").select_option("expert_review")
    form.locator("textarea[name=note]").fill("组织三名专家评审家庭困难程度，约需5个工作日")
    form.locator("button[type=submit]").click()
    assert "县级已中止计时（专家评审）" in notice_text(page)
    assert "专家评审" in page.locator("#suspensions").inner_text() and "进行中" in page.locator("#suspensions").inner_text()
    assert page.locator("#action-decide").count() == 0            # decided after the review, not during it
    town.sync()
    assert town.app.deadlines.load_clock(board.clock_id, COUNTY_HOP).status is ClockStatus.SUSPENDED

    page.locator("#action-resume button[type=submit]").click()
    assert "县级已恢复计时" in notice_text(page)
    form = page.locator("#action-extend")
    form.locator("input[name=new_limit]").fill("10")
    form.locator("textarea[name=reason]").fill("专家意见需复核")
    form.locator("button[type=submit]").click()
    assert "已批准延期至10个工作日" in notice_text(page)
    extensions = page.locator("#extensions").inner_text()
    assert "7个工作日 → 10个工作日" in extensions and "尚未登记告知" in extensions
    page.locator("#action-extension_notified button[type=submit]").click()
    assert "已登记书面告知申请人延期" in notice_text(page)
    assert "尚未登记告知" not in page.locator("#extensions").inner_text()
    assert "已书面告知申请人延期：延期告知书经乡镇转交申请人签收" in page.locator("#history").inner_text()
    assert page.locator("#action-extend").count() == 0             # at the statutory ten days: nothing more to offer
    page.screenshot(path=str(shots / "19-county-clock.png"), full_page=True)
    town.sync()
    replica = town.app.deadlines.load_clock(board.clock_id, COUNTY_HOP)
    own = board.hub.app.deadlines.load_clock(board.clock_id, "county")
    assert replica.limit.amount == 10 and replica.status is ClockStatus.RUNNING
    assert replica.due_at(town.app.deadlines.calendar) == own.due_at(board.hub.app.deadlines.calendar)


def test_an_unknown_page_or_matter_answers_in_chinese_without_ids_or_english(board: RunningBoard, new_page, shots: Path) -> None:
    import uuid

    base = board.base_url
    page = new_page()
    sign_in(page, base, "chen")
    answer = page.goto(f"{base}/no-such-page")
    assert answer is not None and answer.status == 404
    assert "找不到该页面" in alert_text(page) and "Not Found" not in page.content()
    missing = str(uuid.uuid4())
    answer = page.goto(f"{base}/matters/{missing}")
    assert answer is not None and answer.status == 404
    assert "找不到县级办件" in alert_text(page)
    assert missing not in page.locator("body").inner_text()
    page.screenshot(path=str(shots / "20-not-found.png"), full_page=True)
    for path in ("/", "/overdue", "/notices", "/refusals", "/townships"):
        page.goto(f"{base}{path}")
        body = page.locator("body").inner_text()
        assert not re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-", body), f"{path} shows a matter id"
