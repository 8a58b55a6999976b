"""The township operator's day in the browser: sign in, classify a new matter as 承诺件, issue a
补办 list for another, ask for an extension, have the director approve it, and look the matter up
on the public page by its receipt code. A real uvicorn server on a free loopback port over a real
SQLite file; Debian's Chromium at 1366×768. Screenshots go to `test-artifacts/town-console/`."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import CHROMIUM, console_sign_in

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed: browser tests need Debian's chromium")

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "town-console"
PASSWORD = "青石镇窗口2026春季值班"
CODE = "HK7PM-3QW9X"


@dataclass
class RunningConsole:
    base_url: str
    town: object       # TownApp
    promised_id: str
    supplement_id: str


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningConsole]:
    from shared.console import ConsoleAuth, ScryptParams, create_console_tables
    from shared.domain.handling import Role
    from tests.town_fixtures import VillageDevice, township
    from town_center.console import create_console_app, start_console_server
    from village_agent.services import lookup_code_hash

    root = tmp_path_factory.mktemp("town-console")
    town = township(f"sqlite:///{root / 'town.db'}")
    create_console_tables(town.store.engine)
    auth = ConsoleAuth(town.store.engine, town.clock, kdf=ScryptParams(n=2**10, r=8, p=1))
    auth.create_staff("wang", "王芳", Role.OPERATOR, PASSWORD)
    auth.create_staff("zhao", "赵主任", Role.DIRECTOR, PASSWORD)
    village = VillageDevice(town, village_code="V001")
    promised = village.file("MZ-003", lookup_hash=lookup_code_hash(CODE), materials=("application_form",))
    supplement = village.file("MZ-003", phone="13900002222")
    server = start_console_server(create_console_app(town, auth), "127.0.0.1:0")
    try:
        yield RunningConsole(f"http://127.0.0.1:{server.port}", town, promised, supplement)
    finally:
        server.stop()
        town.close()


@pytest.fixture(scope="module")
def shots() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def sign_in(page, base: str, staff_id: str) -> None:
    console_sign_in(page, base, staff_id, PASSWORD)


def test_an_operator_classifies_issues_a_supplement_list_and_the_director_approves_an_extension(
        console_server: RunningConsole, new_page, shots: Path) -> None:
    base = console_server.base_url
    page = new_page()
    sign_in(page, base, "wang")
    inbox = page.locator("#inbox")
    assert inbox.locator(f"tr[data-matter='{console_server.promised_id}']").is_visible()
    assert "待受理" in inbox.inner_text() and "临时救助申请" in inbox.inner_text()
    page.screenshot(path=str(shots / "01-inbox.png"), full_page=True)

    # 承诺件 with a written promise: the operator owns it and the township clock runs.
    page.goto(f"{base}/matters/{console_server.promised_id}")
    assert "测试村民" in page.locator("#applicant").inner_text()
    page.screenshot(path=str(shots / "02-matter-received.png"), full_page=True)
    form = page.locator("#action-classify")
    form.locator("select[name=kind]").select_option("promised")
    form.locator("input[name=promise_amount]").fill("5")
    form.locator("button[type=submit]").click()
    page.wait_for_selector("div.notice[role=status]")
    assert "已受理，按承诺件办理" in page.locator("div.notice[role=status]").inner_text()
    assert page.locator("#stage").inner_text() == "办理中" and page.locator("#owner").inner_text().startswith("wang")
    assert "计时中" in page.locator("#clock").inner_text() and page.locator("#due").inner_text() != "—"

    # A refused extension form keeps what was typed: beyond the statutory 10 working days.
    ext = page.locator("#action-request_extension")
    ext.locator("input[name=amount]").fill("30")
    ext.locator("select[name=unit]").select_option("working_days")
    ext.locator("input[name=reason]").fill("需入户核查家庭经济状况")
    ext.locator("button[type=submit]").click()
    page.wait_for_selector("div.alert[role=alert]")
    assert "超过法定时限" in page.locator("div.alert[role=alert]").inner_text()
    ext = page.locator("#action-request_extension")
    assert ext.locator("input[name=reason]").input_value() == "需入户核查家庭经济状况"
    page.screenshot(path=str(shots / "03-extension-refused-keeps-input.png"), full_page=True)
    ext.locator("input[name=amount]").fill("8")
    ext.locator("button[type=submit]").click()
    page.wait_for_selector("#pending-extension")
    assert "延期申请已提交" in page.locator("div.notice[role=status]").inner_text()

    # 补办件: one written list of everything missing; the clock waits.
    page.goto(f"{base}/matters/{console_server.supplement_id}")
    form = page.locator("#action-classify")
    form.locator("select[name=kind]").select_option("supplement")
    form.locator("textarea[name=missing_materials]").fill("户口簿复印件\n家庭收入情况说明")
    form.locator("button[type=submit]").click()
    page.wait_for_selector("div.notice[role=status]")
    assert page.locator("#stage").inner_text() == "待补齐材料"
    assert page.locator("#missing").inner_text() == "户口簿复印件、家庭收入情况说明"
    assert "材料补齐之日起计时" in page.locator("#clock").inner_text()
    page.screenshot(path=str(shots / "04-supplement-list.png"), full_page=True)

    # The operator may not decide the extension.
    page.goto(f"{base}/extensions")
    assert "仅中心主任可审批" in page.locator("#extensions").inner_text()

    # The director approves it from the list.
    director = new_page()
    sign_in(director, base, "zhao")
    director.goto(f"{base}/extensions")
    row = director.locator(f"tr[data-matter='{console_server.promised_id}']")
    assert "8个工作日" in row.inner_text() and "需入户核查家庭经济状况" in row.inner_text()
    director.screenshot(path=str(shots / "05-extensions-director.png"), full_page=True)
    row.locator("button[value=approve]").click()
    director.wait_for_selector("div.notice[role=status]")
    assert "已批准延期" in director.locator("div.notice[role=status]").inner_text()
    director.goto(f"{base}/matters/{console_server.promised_id}")
    done = director.locator("#extensions-done").inner_text()
    assert "zhao" in done and "8个工作日" in done and "尚未告知" in done
    director.screenshot(path=str(shots / "06-matter-extended.png"), full_page=True)


def test_anyone_sees_the_stage_on_the_public_page_without_personal_data(console_server: RunningConsole, new_page, shots: Path) -> None:
    base = console_server.base_url
    page = new_page()
    page.goto(f"{base}/public")
    assert "办件进度查询" in page.locator("h1").inner_text()
    page.fill("input[name=code]", "ZZZZZ-ZZZZ2")
    page.click("#lookup button[type=submit]")
    assert "未查到" in page.locator("#lookup-error").inner_text()
    page.fill("input[name=code]", CODE.lower())
    page.click("#lookup button[type=submit]")
    result = page.locator("#result").inner_text()
    assert "临时救助申请" in result
    assert page.locator("#public-stage").inner_text() in ("待受理", "办理中")
    body = page.locator("body").inner_text()
    for secret in ("测试村民", "13800001111", "110101199003070011", console_server.promised_id):
        assert secret not in body
    page.screenshot(path=str(shots / "07-public-lookup.png"), full_page=True)


def test_the_console_offers_only_what_the_township_may_decide_tracks_village_matters_and_checks_handovers_and_escalations(
        console_server: RunningConsole, new_page, shots: Path) -> None:
    from tests.town_fixtures import VillageDevice

    base, town = console_server.base_url, console_server.town
    village = VillageDevice(town, village_code="V007")
    county_matter = village.file("MZ-004")
    own_matter = village.file("RS-003")
    page = new_page()
    sign_in(page, base, "wang")

    # A county matter: only 退回 or 上报 are offered; a forged option is refused with a Chinese reason.
    page.goto(f"{base}/matters/{county_matter}")
    options = page.locator("#kind-select option").all_inner_texts()
    assert options == ["退回件", "上报件"]
    assert "乡镇只能退回或上报" in page.locator("#action-classify").inner_text()
    page.screenshot(path=str(shots / "10-county-matter-kinds.png"), full_page=True)
    page.evaluate("""() => { const o = document.createElement('option'); o.value = 'promised'; o.text = '承诺件';
                              document.querySelector('#kind-select').appendChild(o); }""")
    page.locator("#kind-select").select_option("promised")
    page.locator("#action-classify button[type=submit]").click()
    page.wait_for_selector("div.alert[role=alert]")
    assert "无权按承诺件办理" in page.locator("div.alert[role=alert]").inner_text()

    # 上报 needs the opinion and the confirmation box.
    page.locator("#kind-select").select_option("reported")
    page.locator("#action-classify button[type=submit]").click()
    page.wait_for_selector("#action-escalate")
    escalate = page.locator("#action-escalate")
    escalate.locator("textarea[name=summary]").fill("材料齐全，建议批准")
    escalate.locator("button[type=submit]").click()
    page.wait_for_selector("div.alert[role=alert]")
    assert "勾选确认" in page.locator("div.alert[role=alert]").inner_text()

    # AB handover: the colleague is chosen from the active staff, by name.
    handover = page.locator("#action-hand_over")
    assert "赵主任（zhao）" in handover.locator("select[name=to_staff]").inner_text()
    handover.locator("select[name=to_staff]").select_option("zhao")
    handover.locator("input[name=reason]").fill("主岗请假")
    handover.locator("button[type=submit]").click()
    page.wait_for_selector("div.notice[role=status]")
    assert page.locator("#owner").inner_text().startswith("zhao")

    # A village's own matter is shown as tracked, with nothing to classify, and no error.
    page.goto(f"{base}/matters/{own_matter}")
    assert "村级自办事项" in page.locator("#village-own").inner_text()
    assert page.locator("#kind-select").count() == 0
    page.screenshot(path=str(shots / "11-village-own-matter.png"), full_page=True)

    # What does not exist is a Chinese page.
    page.goto(f"{base}/no-such-page")
    assert "找不到该页面" in page.content() and "Not Found" not in page.content()
