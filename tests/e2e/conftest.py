"""A real village agent UI (uvicorn in a thread, port 0, real data folder) and Debian's Chromium.

Playwright's own browser download does not work here, so the tests drive `/usr/bin/chromium`;
without it the browser tests are skipped, saying why.
"""
from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "village-ui"
VIEWPORT = {"width": 1366, "height": 768}  # the cheap laptop's screen


@dataclass
class RunningUI:
    base_url: str
    service: object  # AgentService; typed loosely so collection does not import the app when skipped


@contextlib.contextmanager
def serve_village_ui(service: object, name: str) -> Iterator[RunningUI]:
    """The village agent UI for `service` on a port-0 uvicorn in a thread; closes the store after."""
    import uvicorn

    from shared.console.guard import uvicorn_options
    from village_agent.ui.server import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(service), host="127.0.0.1", port=0,
                                           **uvicorn_options()))
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("村代办员网页服务未能启动")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield RunningUI(f"http://127.0.0.1:{port}", service)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        service.store.close()


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningUI]:
    from tests.village_fixtures import PASSPHRASE, make_agent
    from village_agent.bootstrap import open_agent

    root = tmp_path_factory.mktemp("village-ui") / "agent"
    make_agent(root)
    with serve_village_ui(open_agent(root, PASSPHRASE), "village-ui") as ui:
        yield ui


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed (run `bash ops/install.sh --test`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=30_000)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture()
def page(browser, ui_server: RunningUI) -> Iterator[object]:
    from tests.village_fixtures import unlock_page

    # bypass_csp: these tests poll the page with string predicates (an eval the pages' CSP forbids);
    # the CSP itself is checked without it in test_village_unlock.py.
    context = browser.new_context(viewport=VIEWPORT, locale="zh-CN", timezone_id="Asia/Shanghai", bypass_csp=True)
    context.set_default_timeout(10_000)
    page = context.new_page()
    unlock_page(page, ui_server.base_url)   # the agent types the passphrase first
    try:
        yield page
    finally:
        context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture()
def new_page(browser):
    """Fresh browser contexts (the cheap laptop's screen, Chinese locale, Beijing time), closed afterwards."""
    contexts = []

    def make():
        context = browser.new_context(viewport=VIEWPORT, locale="zh-CN", timezone_id="Asia/Shanghai")
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for c in contexts:
        c.close()


def console_sign_in(page, base: str, staff_id: str, password: str) -> None:
    """Sign in on a township console as a person does: the inbox sends to the login page and back."""
    page.goto(f"{base}/")
    page.wait_for_url(re.compile(r"/login"))
    page.fill("input[name=staff_id]", staff_id)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
