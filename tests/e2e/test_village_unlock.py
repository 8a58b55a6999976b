"""The village UI's unlock page in Debian's Chromium (1366×768): nothing shows before the agent types
the passphrase (or the PIN), a wrong one is explained in Chinese, five wrong ones lock the page for a
while (even against the right passphrase), the UI relocks after ten idle minutes and at the 锁定
button, and the browser runs the pages under the Content-Security-Policy without a single violation.
A real uvicorn server on a free port over a real data folder; the gate's clock is a fake one so the
idle and lock-out minutes pass at once. Screenshots go to `test-artifacts/village-ui/`."""
from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import CHROMIUM, VIEWPORT

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed: browser tests need Debian's chromium")

PIN = "582913"


@dataclass
class Locked:
    base_url: str
    clock: Any       # FakeClock driving the unlock gate
    service: Any


@pytest.fixture
def locked_ui(tmp_path: Path) -> Iterator[Locked]:
    import uvicorn

    from shared.clock import FakeClock
    from shared.console.guard import WebSecurity, uvicorn_options
    from tests.village_fixtures import PASSPHRASE, make_agent
    from village_agent.bootstrap import open_agent
    from village_agent.config import Paths
    from village_agent.ui.server import create_app
    from village_agent.ui.unlock import UnlockGate, UnlockPin

    root = tmp_path / "agent"
    make_agent(root)
    service = open_agent(root, PASSPHRASE)
    clock = FakeClock(dt.datetime(2026, 12, 7, 1, 0, tzinfo=dt.UTC))
    paths = Paths(root)
    gate = UnlockGate(paths.key, clock, pin=UnlockPin(paths.unlock_pin, service.signer))
    app = create_app(service, allowed_hosts=WebSecurity.for_address("127.0.0.1:0").allowed_hosts, unlock=gate)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, **uvicorn_options()))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "村代办员网页服务未能启动"
        time.sleep(0.02)
    try:
        yield Locked(f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}", clock, service)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        service.store.close()


@pytest.fixture
def fresh_page(browser) -> Iterator[Any]:
    context = browser.new_context(viewport=VIEWPORT, locale="zh-CN", timezone_id="Asia/Shanghai")
    context.set_default_timeout(10_000)
    page = context.new_page()
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.csp_violations = violations
    try:
        yield page
    finally:
        context.close()


def test_nothing_shows_before_the_passphrase_a_wrong_one_is_explained_and_idle_relocks(
        fresh_page, locked_ui: Locked, artifacts: Path) -> None:
    from tests.village_fixtures import PASSPHRASE

    page, base = fresh_page, locked_ui.base_url
    page.goto(f"{base}/matters/new")
    page.wait_for_url(re.compile(r"/unlock\?next="))
    assert "界面已锁定" in page.inner_text("h1") and "东山村便民服务室" in page.inner_text("header")
    assert page.locator("nav").count() == 0 and "新申请" not in page.inner_text("body")
    assert page.evaluate("document.activeElement.id") == "secret"   # the cursor waits in the field
    page.screenshot(path=str(artifacts / "unlock-01-locked.png"))

    page.fill("#secret", "不是这个口令")
    page.click("button[type=submit]")
    page.wait_for_selector("#unlock-error")
    assert "口令或 PIN 不正确" in page.inner_text("#unlock-error")
    page.screenshot(path=str(artifacts / "unlock-02-wrong.png"))

    page.fill("#secret", PASSPHRASE)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/matters/new")     # straight back to where the agent was going
    assert "新申请" in page.inner_text("nav")

    locked_ui.clock.advance(dt.timedelta(minutes=11))   # the agent walked away
    page.goto(f"{base}/sync")
    page.wait_for_url(re.compile(r"/unlock\?next=%2Fsync"))
    page.fill("#secret", PASSPHRASE)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/sync")

    page.click("#lock-btn")                       # 锁定 before leaving the desk
    page.wait_for_url(re.compile(r"/unlock\?locked=1"))
    assert "已锁定" in page.inner_text("main")
    page.goto(f"{base}/")
    page.wait_for_url(re.compile(r"/unlock"))
    page.screenshot(path=str(artifacts / "unlock-03-relocked.png"))
    assert page.csp_violations == []


def test_five_wrong_tries_lock_the_page_even_against_the_right_passphrase_until_the_minutes_pass(
        fresh_page, locked_ui: Locked, artifacts: Path) -> None:
    from tests.village_fixtures import PASSPHRASE

    page, base = fresh_page, locked_ui.base_url
    page.goto(f"{base}/")
    page.wait_for_url(re.compile(r"/unlock"))
    for n in range(5):
        page.fill("#secret", f"猜的口令{n}号")
        page.click("button[type=submit]")
        page.wait_for_selector("#unlock-error")
    assert "已暂时锁定" in page.inner_text("#unlock-error")
    page.fill("#secret", PASSPHRASE)
    page.click("button[type=submit]")
    page.wait_for_selector("#unlock-error")
    assert "已暂时锁定" in page.inner_text("#unlock-error") and "分钟后再试" in page.inner_text("#unlock-error")
    page.screenshot(path=str(artifacts / "unlock-04-locked-out.png"))
    locked_ui.clock.advance(dt.timedelta(minutes=6))
    page.fill("#secret", PASSPHRASE)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    assert "我的事项" in page.inner_text("nav")


def test_the_agents_pin_unlocks_and_the_pages_run_under_the_csp_without_violations(
        fresh_page, locked_ui: Locked, artifacts: Path) -> None:
    from village_agent.config import Paths
    from village_agent.ui.errors import PinError
    from village_agent.ui.unlock import UnlockPin

    pin = UnlockPin(Paths(locked_ui.service.store.path.parent).unlock_pin, locked_ui.service.signer)
    for weak in ("1234", "111111", "123456", "12a456"):
        with pytest.raises(PinError):
            pin.set(weak)
    pin.set(PIN)
    page, base = fresh_page, locked_ui.base_url
    page.goto(f"{base}/")
    page.wait_for_url(re.compile(r"/unlock"))
    assert "解锁 PIN" in page.inner_text("main")
    page.fill("#secret", PIN)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    # The behaviours that were inline handlers now come from /static/app.js under the CSP.
    page.select_option("select[name=status]", index=1)
    page.wait_for_url(re.compile(r"status="))
    page.goto(f"{base}/matters/new")
    page.wait_for_selector("select[name=matter]")
    page.screenshot(path=str(artifacts / "unlock-05-after-pin.png"))
    assert page.csp_violations == []
