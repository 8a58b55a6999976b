"""The village laptop's appointments in Chromium, on a real data folder with a fake service clock: a
missed appointment asks the agent to call the villager, is refused as forfeited until the failed contact
is told (when, how, outcome) with the Chinese reason beside the row, is forfeited with it, and the
villager who turns up afterwards is still served, with the reason. Screenshots go to
`test-artifacts/village-ui/`."""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import CHROMIUM, VIEWPORT, RunningUI, serve_village_ui

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed: browser tests need Debian's chromium")

BOOKED_AT = dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC)   # Monday 09:00 in Beijing


@pytest.fixture(scope="module")
def clocked_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningUI]:
    from shared.clock import FakeClock
    from tests.village_fixtures import PASSPHRASE, make_agent
    from village_agent.bootstrap import open_agent

    root = tmp_path_factory.mktemp("village-appointments") / "agent"
    make_agent(root)
    with serve_village_ui(open_agent(root, PASSPHRASE, FakeClock(BOOKED_AT)), "village-ui-appointments") as ui:
        yield ui


def test_a_missed_appointment_is_forfeited_only_after_a_failed_contact_and_the_villager_is_still_served_later(
        browser, clocked_ui: RunningUI, artifacts: Path) -> None:
    from tests.village_fixtures import unlock_page
    from village_agent.domain import AppointmentStatus

    service = clocked_ui.service
    appointment_id, _ = service.make_appointment(
        scheduled_at=BOOKED_AT + dt.timedelta(hours=1), place="service_room", purpose="补交低保材料")
    service.clock.advance(dt.timedelta(hours=1, minutes=40))   # 10:40, 40 minutes late
    context = browser.new_context(viewport=VIEWPORT, locale="zh-CN", timezone_id="Asia/Shanghai")
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        unlock_page(page, clocked_ui.base_url)
        page.goto(f"{clocked_ui.base_url}/appointments")
        assert "有 1 个预约已超过约定时间 30 分钟，请联系群众" in page.locator("#contact-needed").inner_text()
        assert "已超时 30 分钟，请联系群众" in page.locator("table.list").inner_text()
        page.click("details.forfeit summary")
        form = page.locator("form.forfeit-form")
        form.locator("input[name=contact_at]").fill("2026-11-23 10:35")
        form.locator("input[name=outcome]").fill("电话无人接听")
        page.screenshot(path=str(artifacts / "20-appointment-contact.png"), full_page=True)
        form.locator("button").click()                     # no way of contact chosen: refused beside the row
        alert = page.locator("table.list [role=alert]")
        assert "请选择联系方式" in alert.inner_text() and "本次未保存" in alert.inner_text()
        assert page.locator("form.forfeit-form input[name=outcome]").input_value() == "电话无人接听"   # kept
        assert page.locator("form.visit-form input[name=outcome]").input_value() == ""   # not copied into the other form
        page.screenshot(path=str(artifacts / "21-appointment-forfeit-refused.png"), full_page=True)
        assert service.store.appointment_row(appointment_id).status == AppointmentStatus.SCHEDULED.value
        page.locator("form.forfeit-form select[name=method]").select_option("phone")
        page.locator("form.forfeit-form button").click()
        page.wait_for_url(re.compile(r"/appointments\?done=forfeit$"))
        assert "失约，请联系群众改约" in page.locator("table.list").inner_text()
        page.screenshot(path=str(artifacts / "22-appointment-forfeited.png"), full_page=True)

        # The villager turns up in the afternoon after all: served, with the reason.
        service.clock.advance(dt.timedelta(hours=4))
        page.goto(f"{clocked_ui.base_url}/appointments")
        visit = page.locator("form.visit-form")
        visit.locator("input[name=outcome]").fill("已收低保材料")
        visit.locator("button").click()
        assert "须写明原因" in page.locator("table.list [role=alert]").inner_text()
        page.locator("form.visit-form input[name=late_reason]").fill("上午去镇上看病，下午赶来")
        page.locator("form.visit-form button").click()
        page.wait_for_url(re.compile(r"/appointments\?done=visit$"))
        assert "已履约" in page.locator("table.list").inner_text()
        page.screenshot(path=str(artifacts / "23-appointment-late-visit.png"), full_page=True)
        assert service.store.appointment_row(appointment_id).status == AppointmentStatus.KEPT.value
    finally:
        context.close()
