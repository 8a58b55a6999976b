"""The public rating page as a villager sees it on a phone: opened from the QR code's URL, large
Chinese text and big choices, a 差评 without a reason refused in plain words with the choice kept,
then thanked. A real uvicorn server on a free loopback port over a real SQLite file; Debian's
Chromium at a phone's size. Screenshots go to `test-artifacts/evaluate/`."""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import CHROMIUM

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed: browser tests need Debian's chromium")

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "evaluate"
PHONE = {"width": 390, "height": 844}
CODE = "HK7PM-3QW9X"
PASSWORD = "青石镇窗口2026春季值班"


@dataclass
class Running:
    url: str
    base: str


@pytest.fixture(scope="module")
def rating_link(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    from shared.console import ConsoleAuth, ScryptParams, create_console_tables
    from shared.domain.catalog import MatterKind
    from tests.town_fixtures import OPERATOR, VillageDevice, township
    from town_center.console import create_console_app, start_console_server
    from village_agent.services import lookup_code_hash

    root = tmp_path_factory.mktemp("evaluate")
    town = township(f"sqlite:///{root / 'town.db'}")
    create_console_tables(town.store.engine)
    auth = ConsoleAuth(town.store.engine, town.clock, kdf=ScryptParams(n=2**10, r=8, p=1))
    from shared.domain.handling import Role

    auth.create_staff("zhao", "赵主任", Role.DIRECTOR, PASSWORD)
    auth.create_staff("wang", "王芳", Role.OPERATOR, PASSWORD)
    web = create_console_app(town, auth, console_name="青石镇便民服务中心")
    matter_id = VillageDevice(town).file("MZ-003", lookup_hash=lookup_code_hash(CODE))
    town.handling.classify(matter_id, MatterKind.IMMEDIATE, actor=OPERATOR)
    town.handling.record_result(matter_id, approved=True, summary="已发放临时救助金", actor=OPERATOR)
    server = start_console_server(web, "127.0.0.1:0")
    try:
        link = web.state.evaluations.evaluation_link(matter_id, f"http://127.0.0.1:{server.port}", by="wang", code=CODE)
        yield Running(link.url, f"http://127.0.0.1:{server.port}")
    finally:
        server.stop()
        town.close()


def test_a_villager_rates_on_a_phone_from_the_qr_link(browser, rating_link: Running) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True,
                                  locale="zh-CN", timezone_id="Asia/Shanghai")
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        page.goto(rating_link.url)
        assert page.locator("h1").inner_text() == "给这次办事打个分"
        # Elderly villagers on small screens: the text is large and every choice is a big target.
        size = page.locator(".choice").first.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
        assert size >= 20
        boxes = [page.locator(".choice").nth(i).bounding_box() for i in range(5)]
        assert all(b is not None and b["height"] >= 56 and b["width"] >= 300 for b in boxes)
        body = page.locator("body").inner_text()
        assert not re.search(r"[A-Za-z]{4,}", body.replace(CODE, "").replace(CODE.replace("-", ""), "")
                             .replace(page.locator("input[name=t]").input_value(), "")), body
        page.screenshot(path=str(ARTIFACTS / "1-form.png"), full_page=True)

        page.locator("label.choice", has_text="非常不满意").click()
        page.fill("textarea[name=comment]", "跑了三趟才办好")
        page.click("button.submit")
        assert "请选择一个原因" in page.locator("#rate-error").inner_text()
        assert page.locator("input[name=level][value='5']").is_checked()
        assert page.locator("textarea[name=comment]").input_value() == "跑了三趟才办好"
        page.screenshot(path=str(ARTIFACTS / "2-reason-needed.png"), full_page=True)

        page.locator("label.choice", has_text="办事慢、超时或推诿").click()
        page.click("button.submit")
        thanks = page.locator("#thanks").inner_text()
        assert "非常不满意" in thanks and "回访" in thanks
        page.screenshot(path=str(ARTIFACTS / "3-thanks.png"), full_page=True)
    finally:
        context.close()


def test_the_director_sees_who_rated_and_the_rated_operator_only_his_figures(browser, rating_link: Running) -> None:
    """Runs after the villager's rating above (same module server)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN", timezone_id="Asia/Shanghai")
    context.set_default_timeout(10_000)
    try:
        for staff_id, shot in (("zhao", "4-director-evaluations.png"), ("wang", "5-operator-own-figures.png")):
            page = context.new_page()
            page.goto(f"{rating_link.base}/login")
            page.fill("input[name=staff_id]", staff_id)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{rating_link.base}/")
            page.goto(f"{rating_link.base}/evaluations")
            text = page.locator("main").inner_text()
            assert ("测试村民" in text) is (staff_id == "zhao")
            page.screenshot(path=str(ARTIFACTS / shot), full_page=True)
            if staff_id == "zhao":
                page.goto(f"{rating_link.base}/assessment")
                assert page.locator("#assessment").is_visible()
                page.screenshot(path=str(ARTIFACTS / "6-assessment.png"), full_page=True)
            page.click("form.topbar-logout button")
            page.close()
    finally:
        context.close()
