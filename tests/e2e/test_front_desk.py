"""The township window in the browser: a walk-in registered with the applicant's signature drawn on
the pad, its receipt, and its classification by a colleague (首问 and 承办 two people); a complaint
registered, answered by its handler and closed with the complainant's feedback, the complainant's
name seen by the director only; an absence with 顶岗 moving the operator's matter to the backup.
A real uvicorn server on a free loopback port over a real SQLite file; Debian's Chromium at 1366×768.
Screenshots go to `test-artifacts/front-desk/`."""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import CHROMIUM, console_sign_in

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed: browser tests need Debian's chromium")

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "front-desk"
PASSWORD = "青石镇窗口2026春季值班"


@dataclass
class RunningConsole:
    base_url: str
    town: object       # TownApp
    village_matter: str


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningConsole]:
    from shared.console import ConsoleAuth, ScryptParams, create_console_tables
    from shared.domain.catalog import MatterKind
    from shared.domain.handling import Actor, Role
    from tests.town_fixtures import VillageDevice, township
    from town_center.console import create_console_app, start_console_server

    root = tmp_path_factory.mktemp("front-desk")
    town = township(f"sqlite:///{root / 'town.db'}")
    create_console_tables(town.store.engine)
    auth = ConsoleAuth(town.store.engine, town.clock, kdf=ScryptParams(n=2**10, r=8, p=1))
    auth.create_staff("wang", "王芳", Role.OPERATOR, PASSWORD)
    auth.create_staff("li", "李强", Role.OPERATOR, PASSWORD)
    auth.create_staff("zhao", "赵主任", Role.DIRECTOR, PASSWORD)
    web = create_console_app(town, auth)
    village_matter = VillageDevice(town, village_code="V001").file("MZ-001")
    town.handling.classify(village_matter, MatterKind.REPORTED, actor=Actor("wang", Role.OPERATOR))
    server = start_console_server(web, "127.0.0.1:0")
    try:
        yield RunningConsole(f"http://127.0.0.1:{server.port}", town, village_matter)
    finally:
        server.stop()
        town.close()


@pytest.fixture(scope="module")
def shots() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def sign_in(page, base: str, staff_id: str) -> None:
    console_sign_in(page, base, staff_id, PASSWORD)


def draw_signature(page) -> None:
    box = page.locator(".sigpad canvas").bounding_box()
    x0, y0 = box["x"] + 40, box["y"] + box["height"] / 2
    page.mouse.move(x0, y0)
    page.mouse.down()
    for step in range(1, 40):
        page.mouse.move(x0 + step * 10, y0 + (25 if step % 4 < 2 else -25))
    page.mouse.up()


def test_a_walk_in_is_registered_with_a_drawn_signature_and_classified_by_a_colleague(
        console_server: RunningConsole, new_page, shots: Path) -> None:
    base = console_server.base_url
    page = new_page()
    sign_in(page, base, "wang")
    page.click("nav.mainnav >> text=窗口前台")
    page.click("#desk-nav >> text=现场登记")
    page.select_option("#pick-item select[name=code]", "MZ-001")
    page.click("#pick-item button[type=submit]")
    form = page.locator("#walk-in-form")
    form.locator("input[name=applicant_name]").fill("张秀英")
    form.locator("input[name=id_number]").fill("110101199003070011")
    form.locator("input[name=phone]").fill("13800001111")
    form.locator("input[name=address]").fill("青石村一组")
    form.locator("input[name=elderly_or_disabled]").check()
    for box in form.locator("input[name=brought]").all():
        box.check()
    for box in form.locator("input[name=not_applicable]").all():
        value = box.get_attribute("value")
        form.locator(f"input[name=brought][value='{value}']").uncheck()
        box.check()
    # A blank pad is refused on the page before anything is sent.
    form.locator("#register-walk-in").click()
    assert "空白" in page.locator(".sig-problem").inner_text()
    draw_signature(page)
    page.screenshot(path=str(shots / "01-walk-in-form.png"), full_page=True)
    form.locator("#register-walk-in").click()
    page.wait_for_selector("#walk-in-receipt")
    code = page.locator("#lookup-code").inner_text()
    assert re.fullmatch(r"[2-9A-HJ-NP-Z]{5}-[2-9A-HJ-NP-Z]{5}", code)
    receipt = page.locator("#walk-in-receipt").inner_text()
    assert "王芳" in receipt and "一次性告知书" in receipt and "收费标准" in receipt
    page.screenshot(path=str(shots / "02-walk-in-receipt.png"), full_page=True)
    page.click("#open-matter")
    assert page.locator("#first-asked").inner_text().startswith("王芳（窗口工作人员，现场登记")
    assert page.locator("#stage").inner_text() == "待受理" and "老年人" in page.locator("#applicant-flag").inner_text()
    matter_url = page.url

    # A colleague classifies it: the 承办人 is 李强, the 首问责任人 stays 王芳.
    other = new_page()
    sign_in(other, base, "li")
    other.goto(matter_url)
    classify = other.locator("#action-classify")
    classify.locator("select[name=kind]").select_option("reported")
    classify.locator("button[type=submit]").click()
    other.wait_for_selector("div.notice[role=status]")
    assert other.locator("#stage").inner_text() == "待上报县级"
    assert other.locator("#owner").inner_text().startswith("li")
    assert other.locator("#first-asked").inner_text().startswith("王芳")
    other.screenshot(path=str(shots / "03-walk-in-classified.png"), full_page=True)


def test_a_complaint_is_answered_by_its_handler_and_closed_and_only_the_director_sees_who_complained(
        console_server: RunningConsole, new_page, shots: Path) -> None:
    base = console_server.base_url
    page = new_page()
    sign_in(page, base, "wang")
    page.goto(f"{base}/front-desk/cases?kind=complaint")
    form = page.locator("#case-form")
    form.locator("select[name=channel]").select_option("visit")
    form.locator("select[name=complexity]").select_option("simple")
    form.locator("input[name=person_name]").fill("李四")
    form.locator("input[name=person_contact]").fill("青石村二组")
    form.locator("input[name=subject]").fill("窗口排队无人引导")
    form.locator("textarea[name=content]").fill("上午排队一个多小时，无人告知需要取号")
    form.locator("select[name=handler]").select_option("li")
    form.locator("#register-case").click()
    page.wait_for_selector("#case-summary")
    assert "已登记 投诉〔2026〕" in page.locator("div.notice[role=status]").inner_text()
    assert "保密" in page.locator("#person").inner_text() and "李四" not in page.content()
    assert "正常" in page.locator("#due").inner_text()
    page.screenshot(path=str(shots / "04-complaint-registered.png"), full_page=True)
    case_url = page.url

    handler = new_page()
    sign_in(handler, base, "li")
    handler.goto(case_url)
    handler.locator("#answer-form textarea[name=answer]").fill("已安排导办人员在大厅入口引导取号，并向投诉人当面致歉")
    handler.locator("#answer-case").click()
    handler.wait_for_selector("#feedback-form")
    assert handler.locator("#case-stage").inner_text() == "已答复，待回访反馈"
    handler.locator("#feedback-form select[name=feedback]").select_option("satisfied")
    handler.locator("#feedback-form input[name=note]").fill("电话回访，投诉人表示满意")
    handler.locator("#record-feedback").click()
    handler.wait_for_selector("#feedback")
    assert handler.locator("#case-stage").inner_text() == "已办结" and "满意" in handler.locator("#feedback").inner_text()
    handler.screenshot(path=str(shots / "05-complaint-answered.png"), full_page=True)

    director = new_page()
    sign_in(director, base, "zhao")
    director.goto(case_url)
    assert "李四" in director.locator("#person").inner_text()


def test_an_absence_moves_the_operators_matter_to_the_backup_and_the_page_says_who_covers_whom(
        console_server: RunningConsole, new_page, shots: Path) -> None:
    base = console_server.base_url
    director = new_page()
    sign_in(director, base, "zhao")
    director.goto(f"{base}/front-desk/posts")
    post = director.locator("#post-form")
    post.locator("input[name=name]").fill("社会救助窗口")
    post.locator("select[name=a_staff]").select_option("wang")
    post.locator("select[name=b_staff]").select_option("li")
    post.locator("button[type=submit]").click()
    director.wait_for_selector("div.notice[role=status]")
    absence = director.locator("#absence-form")
    absence.locator("select[name=staff_id]").select_option("wang")
    absence.locator("input[name=reason]").fill("年休假")
    absence.locator("#register-absence").click()
    director.wait_for_selector("div.notice[role=status]")
    assert "已移交顶岗人" in director.locator("div.notice[role=status]").inner_text()
    assert "李强 顶 王芳 的岗" in director.locator("#covering-today").inner_text()
    assert "办件：最低生活保障申请" in director.locator("#absences").inner_text()
    director.screenshot(path=str(shots / "06-absence-covering.png"), full_page=True)
    director.goto(f"{base}/matters/{console_server.village_matter}")
    assert director.locator("#owner").inner_text().startswith("li")


def test_the_windows_queue_calls_the_elderly_first(console_server: RunningConsole, new_page, shots: Path) -> None:
    base = console_server.base_url
    page = new_page()
    sign_in(page, base, "wang")
    page.goto(f"{base}/front-desk")
    for name, elderly in (("先到的村民", False), ("拄拐的老人", True)):
        ticket = page.locator("#take-ticket")
        ticket.locator("input[name=applicant_name]").fill(name)
        if elderly:
            ticket.locator("input[name=elderly_or_disabled]").check()
        ticket.locator("button[type=submit]").click()
        page.wait_for_selector("div.notice[role=status]")
    rows = page.locator("#queue tbody tr")
    assert "拄拐的老人" in rows.nth(0).inner_text() and "先到的村民" in rows.nth(1).inner_text()
    page.screenshot(path=str(shots / "07-queue.png"), full_page=True)
    page.click("#call-next")
    page.wait_for_selector("div.notice[role=status]")
    assert "拄拐的老人 到窗口办理" in page.locator("div.notice[role=status]").inner_text()


def test_a_walk_in_signed_off_at_the_window_gets_a_slip_whose_qr_link_the_applicant_rates_through(
        console_server: RunningConsole, new_page, shots: Path) -> None:
    from shared.domain.catalog import MatterKind
    from shared.domain.handling import Actor, Role
    from tests.front_desk_fixtures import walk_in_form
    from town_center.evaluation import Evaluations

    base = console_server.base_url
    town = console_server.town
    # The public address printed in the QR is this very server, so the browser can follow it.
    Evaluations(town.handling).configure(public_url=base)
    li = Actor("li", Role.OPERATOR)
    matter_id = town.front_desk.window.register(walk_in_form(town.handling.catalog, "MZ-003"),
                                                operator=li, operator_name="李强").matter_id
    town.handling.classify(matter_id, MatterKind.PROMISED, actor=li)
    town.handling.record_result(matter_id, approved=True, summary="准予临时救助 800 元", actor=li)

    page = new_page()
    sign_in(page, base, "li")
    page.goto(f"{base}/front-desk/walk-ins/{matter_id}/sign-off")
    page.locator("#sign-off-form .sigpad canvas").scroll_into_view_if_needed()
    draw_signature(page)
    page.click("#confirm-sign-off")
    page.wait_for_selector("#hand-over-slip")
    slip = page.locator("#hand-over-slip")
    assert "交付签收单" in slip.inner_text() and "准予临时救助 800 元" in slip.inner_text()
    assert slip.locator("#evaluation-qr svg").count() == 1
    box = slip.locator("#evaluation-qr svg").bounding_box()
    assert box is not None and box["width"] > 100 and box["height"] > 100   # big enough to scan
    url = page.locator("#evaluation-url").inner_text()
    token = page.locator("#evaluation-token").inner_text()
    page.screenshot(path=str(shots / "08-walk-in-slip-with-qr.png"), full_page=True)

    phone = new_page()                 # the applicant's own phone: no console session
    phone.goto(url)
    assert phone.locator("input[name=t]").input_value() == token
    phone.locator("input[name=level][value='1']").check()
    phone.locator("textarea[name=comment]").fill("窗口办得快")
    phone.locator("#rate-form button[type=submit]").click()
    phone.wait_for_selector("#thanks")
    assert "非常满意" in phone.locator("#thanks").inner_text()
    phone.screenshot(path=str(shots / "09-walk-in-rated.png"), full_page=True)
    rated = [r for r in Evaluations(town.handling).views(role=Role.DIRECTOR) if r.matter_id == matter_id]
    assert [(r.level.value, r.channel.value) for r in rated] == [(1, "qr")]


def test_a_petition_registered_on_the_page_lists_its_numbered_assignment_and_notice_which_print_on_a4(
        console_server: RunningConsole, new_page, shots: Path) -> None:
    base = console_server.base_url
    page = new_page()
    sign_in(page, base, "zhao")
    page.goto(f"{base}/front-desk/cases?kind=petition")
    form = page.locator("#case-form")
    form.locator("select[name=channel]").select_option("visit")
    form.locator("input[name=person_name]").fill("孙七")
    form.locator("input[name=subject]").fill("村道硬化补偿款未到位")
    form.locator("textarea[name=content]").fill("去年修路占地的补偿至今未发")
    form.locator("select[name=handler]").select_option("li")
    form.locator("#register-case").click()
    page.wait_for_selector("#case-summary")
    listed = page.locator("#document-list").inner_text()
    assert "信访事项交办单" in listed and "访交字第" in listed and "信访事项告知书" in listed and "访告字第" in listed
    page.screenshot(path=str(shots / "10-petition-documents.png"), full_page=True)
    with page.expect_popup() as popup:
        page.click("#print-assignment")
    paper = popup.value
    paper.wait_for_load_state()
    text = paper.locator("body").inner_text()
    assert "信访事项交办单" in text and "村道硬化补偿款未到位" in text and "李强" in text and "孙七" not in text
    paper.screenshot(path=str(shots / "11-petition-assignment-print.png"), full_page=True)
