"""The village agent's day in the browser: a request with a live checklist and a drawn signature,
the printed receipt, the hand-over and the villager's sign-off. Screenshots (1366×768) go to
`test-artifacts/village-ui/` so a person can look at the Chinese and the layout."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.conftest import CHROMIUM, RunningUI

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed: browser tests need Debian's chromium")

# 城乡居民养老保险待遇领取资格认证: decided in the village, so it can be handed over without the township.
MATTER = "RS-003"
ID_NUMBER = "43052419480312002X"


def draw_signature(page, canvas_selector: str) -> None:
    page.locator(canvas_selector).scroll_into_view_if_needed()   # the mouse only reaches what is on screen
    box = page.locator(canvas_selector).bounding_box()
    assert box is not None
    x, y = box["x"] + 40, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    for step in range(1, 25):
        page.mouse.move(x + step * 14, y + (18 if step % 2 else -18), steps=2)
    page.mouse.up()


def test_an_agent_files_a_request_prints_the_receipt_hands_over_and_gets_it_signed_off(page, ui_server: RunningUI, artifacts: Path) -> None:
    base = ui_server.base_url
    page.goto(f"{base}/matters/new")
    page.fill("input[name=name]", "李桂兰")
    page.fill("input[name=id_number]", ID_NUMBER)
    page.fill("input[name=phone]", "13907310001")
    page.fill("input[name=address]", "东山村三组 12 号")
    page.select_option("#matter-select", MATTER)

    # Nothing ticked: a main material is missing, so the matter must be returned, with the reason.
    outcome = page.locator("#outcome")
    missing = page.locator("#missing-list")
    page.wait_for_function("document.getElementById('outcome').className.includes('return')")
    assert "不予受理" in outcome.inner_text()
    assert "本人居民身份证" in missing.inner_text() and "社会保障卡" in missing.inner_text()
    assert "退回原因" in page.locator("#return-reason").inner_text()

    # The ID card arrives: accepted on tolerance, and a commitment date appears for the missing card.
    fieldset = page.locator(f"fieldset.mats[data-code='{MATTER}']")
    fieldset.locator("input[name=materials][value=id_card]").check()
    page.wait_for_function("document.getElementById('outcome').className.includes('accept_with_tolerance')")
    assert "本人居民身份证" not in missing.inner_text() and "社会保障卡" in missing.inner_text()
    assert fieldset.locator("input[name='commit:social_security_card']").is_visible()
    page.screenshot(path=str(artifacts / "01-checklist-tolerance.png"))

    # Everything brought: the checklist says so at once.
    fieldset.locator("input[name=materials][value=social_security_card]").check()
    page.wait_for_function("document.getElementById('outcome').className === 'outcome accept'")
    assert "材料齐全" in outcome.inner_text() and "无，材料齐全" in missing.inner_text()
    assert not fieldset.locator("input[name='commit:social_security_card']").is_visible()

    # The villager signs the authorization on the screen.
    page.check("input[name=authorization][value=drawn_signature]")
    draw_signature(page, ".auth-panel[data-method=drawn_signature] canvas")
    agreed = page.locator("#authorization-text").inner_text()
    assert "本人李桂兰委托" in agreed and "所选事项" not in agreed      # the villager hears what she agrees to
    signature = page.locator(".auth-panel[data-method=drawn_signature] input[name=signature_data]").input_value()
    assert signature.startswith("data:image/png;base64,")
    page.screenshot(path=str(artifacts / "02-new-request-signed.png"), full_page=True)

    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/matters/[0-9a-f-]{36}/receipt$"))
    matter_id = page.url.split("/")[-2]
    service = ui_server.service
    lookup_code = service.store.lookup_code_of(matter_id)
    assert page.locator("#lookup-code").inner_text() == lookup_code
    receipt = page.locator("#receipt").inner_text()
    # RS-003 is decided in the village itself, so the village 受理s it (a township matter gets a 代办收件回执).
    assert "受理回执" in receipt and "李桂兰" in receipt and ID_NUMBER not in receipt and "一次性告知书" in receipt
    assert page.locator("#print-btn").is_visible()
    page.screenshot(path=str(artifacts / "03-receipt.png"), full_page=True)
    page.emulate_media(media="print")
    assert not page.locator("#print-btn").is_visible() and not page.locator("header.top").is_visible()
    page.screenshot(path=str(artifacts / "04-receipt-print.png"), full_page=True)
    pdf = page.pdf(path=str(artifacts / "receipt.pdf"), format="A4", print_background=True)
    assert pdf.startswith(b"%PDF")
    page.emulate_media(media="screen")

    # The list shows the matter with its status.
    page.goto(f"{base}/")
    row = page.locator("table.list tbody tr", has_text="李桂兰")
    assert "已登记" in row.inner_text()
    page.screenshot(path=str(artifacts / "05-my-matters.png"))

    # The result is handed over ...
    page.goto(f"{base}/matters/{matter_id}")
    page.screenshot(path=str(artifacts / "06-matter.png"), full_page=True)
    page.fill("#handover-form input[name=result_summary]", "资格认证已通过，待遇按月发放")
    page.click("#handover-form button")
    page.wait_for_url(re.compile(r"/signoff\?done=handover$"))

    # ... and the villager confirms receipt, rates the service and signs.
    page.check("input[name=rating][value=satisfied]")
    page.fill("textarea[name=comment]", "代办员服务周到")
    draw_signature(page, "#signoff-form canvas")
    page.screenshot(path=str(artifacts / "07-signoff.png"), full_page=True)
    page.click("#signoff-form button.big")
    page.wait_for_url(re.compile(rf"/matters/{matter_id}\?done=signoff$"))
    assert "已签收评价" in page.locator(".status").inner_text()
    history = page.locator("table.history").inner_text()
    for step in ("登记代办申请", "交付办理结果", "群众签收评价"):
        assert step in history
    page.screenshot(path=str(artifacts / "08-signed-off.png"), full_page=True)
    assert service.store.matter_state(matter_id).status.value == "signed_off"


def test_a_bad_field_is_explained_beside_it_in_chinese_and_the_typed_values_stay(page, ui_server: RunningUI, artifacts: Path) -> None:
    service = ui_server.service
    before = service.store.count_matters()
    page.goto(f"{ui_server.base_url}/matters/new")
    page.fill("input[name=name]", "张德福")
    page.fill("input[name=id_number]", "430524194803120021")  # wrong check digit
    page.fill("input[name=phone]", "12345")
    page.fill("input[name=address]", "东山村五组 8 号")
    page.select_option("#matter-select", MATTER)
    page.locator(f"fieldset.mats[data-code='{MATTER}'] input[name=materials][value=id_card]").check()
    page.check("input[name=authorization][value=witness]")
    page.fill("input[name=witness_name]", "赵六")
    page.fill("input[name=witness_statement]", "申请人不识字，本人见证其口头委托")
    page.click("button[type=submit]")
    page.wait_for_selector(".notice.bad")
    assert page.locator(".err[data-for=id_number]").inner_text().strip()
    assert page.locator(".err[data-for=phone]").inner_text().strip()
    assert page.locator(".err[data-for='commitment:social_security_card']").is_visible()
    assert page.input_value("input[name=address]") == "东山村五组 8 号"
    assert page.input_value("input[name=witness_name]") == "赵六"
    page.screenshot(path=str(artifacts / "09-field-errors.png"), full_page=True)
    assert service.store.count_matters() == before


def test_the_sync_and_appointment_pages_render_in_chinese(page, ui_server: RunningUI, artifacts: Path) -> None:
    page.goto(f"{ui_server.base_url}/sync")
    assert "未连接" in page.locator("#reachable").inner_text()
    assert re.search(r"\d+ 条", page.locator("#waiting").inner_text())
    page.screenshot(path=str(artifacts / "10-sync.png"))
    page.goto(f"{ui_server.base_url}/appointments")
    page.fill("input[name=scheduled_at]", "2030-01-02T09:30")
    page.select_option("select[name=place]", "applicant_home")
    page.fill("input[name=purpose]", "上门核对低保材料")
    page.click("#appointment-form button")
    page.wait_for_url(re.compile(r"/appointments\?done=appointment$"))
    assert "上门核对低保材料" in page.locator("table.list").inner_text()
    page.screenshot(path=str(artifacts / "11-appointments.png"))


def test_a_photo_of_the_signed_paper_form_can_stand_in_for_the_drawn_signature(
        page, ui_server: RunningUI, artifacts: Path, tmp_path: Path) -> None:
    from tests.unit.test_village_signature import fingerprint_photo_png

    photo = tmp_path / "委托书.png"
    photo.write_bytes(fingerprint_photo_png())   # stands in for a photo of the paper form
    page.goto(f"{ui_server.base_url}/matters/new")
    page.fill("input[name=name]", "王秀英")
    page.fill("input[name=id_number]", ID_NUMBER)
    page.fill("input[name=phone]", "0731-5551234")
    page.fill("input[name=address]", "东山村二组 3 号")
    page.select_option("#matter-select", MATTER)
    fieldset = page.locator(f"fieldset.mats[data-code='{MATTER}']")
    fieldset.locator("input[name=materials][value=id_card]").check()
    fieldset.locator("input[name=materials][value=social_security_card]").check()
    page.check("input[name=authorization][value=photo_of_form]")
    page.set_input_files("input[name=authorization_file]", str(photo))
    assert page.locator(".filename").inner_text() == "委托书.png"
    page.screenshot(path=str(artifacts / "12-photo-authorization.png"))
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/receipt$"))
    assert "王秀英" in page.locator("#receipt").inner_text()


def fill_villager(page, name: str = "赵桂英") -> None:
    page.fill("input[name=name]", name)
    page.fill("input[name=id_number]", ID_NUMBER)
    page.fill("input[name=phone]", "13907310001")
    page.fill("input[name=address]", "东山村四组 7 号")


def test_a_request_missing_its_main_and_its_tolerated_material_is_returned_with_the_notice(
        page, ui_server: RunningUI, artifacts: Path) -> None:
    page.goto(f"{ui_server.base_url}/matters/new")
    fill_villager(page)
    page.select_option("#matter-select", MATTER)   # nothing ticked: the ID card (main) and the social security card (容缺) missing
    page.wait_for_function("document.getElementById('outcome').className.includes('return')")
    page.check("input[name=authorization][value=witness]")
    page.fill("input[name=witness_name]", "村委会 张主任")
    page.fill("input[name=witness_statement]", "申请人口头委托，本人在场见证")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/receipt$"))
    receipt = page.locator("#receipt").inner_text()
    assert page.locator("#receipt-title").inner_text() == "退回告知书"
    assert "退回原因" in receipt and "本人居民身份证" in receipt and "社会保障卡" in receipt and "补齐主要材料后可重新申请" in receipt
    page.screenshot(path=str(artifacts / "13-returned-notice.png"), full_page=True)


def _handed_over_matter(page, ui_server: RunningUI, name: str) -> str:
    page.goto(f"{ui_server.base_url}/matters/new")
    fill_villager(page, name)
    page.select_option("#matter-select", MATTER)
    fieldset = page.locator(f"fieldset.mats[data-code='{MATTER}']")
    fieldset.locator("input[name=materials][value=id_card]").check()
    fieldset.locator("input[name=materials][value=social_security_card]").check()
    page.check("input[name=authorization][value=witness]")
    page.fill("input[name=witness_name]", "村委会 张主任")
    page.fill("input[name=witness_statement]", "申请人口头委托")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/receipt$"))
    matter_id = page.url.split("/")[-2]
    page.goto(f"{ui_server.base_url}/matters/{matter_id}")
    page.fill("#handover-form input[name=result_summary]", "资格认证已通过")
    page.click("#handover-form button")
    page.wait_for_url(re.compile(r"/signoff\?done=handover$"))
    return matter_id


def test_an_empty_signature_pad_is_refused_before_submitting_and_by_the_server(page, ui_server: RunningUI, artifacts: Path) -> None:
    service = ui_server.service
    matter_id = _handed_over_matter(page, ui_server, "钱玉珍")
    page.check("input[name=rating][value=satisfied]")
    page.click("#signoff-form button.big")          # nothing drawn
    error = page.locator("#signoff-form .confirm-error")
    error.wait_for(state="visible")
    assert "空白" in error.inner_text() and page.url.endswith("/signoff?done=handover")
    box = page.locator("#signoff-form canvas").bounding_box()
    page.mouse.click(box["x"] + 50, box["y"] + 50)   # a tap is not a signature
    page.click("#signoff-form button.big")
    assert "一点笔迹" in error.inner_text()
    page.screenshot(path=str(artifacts / "14-signoff-empty-pad.png"), full_page=True)
    # A page whose script is bypassed: the server refuses the empty pad on its own.
    page.evaluate("""() => {
        const f = document.getElementById('signoff-form');
        const c = document.createElement('canvas'); c.width = 560; c.height = 180;
        f.querySelector('input[name=signature_data]').value = c.toDataURL('image/png');
        HTMLFormElement.prototype.submit.call(f);
    }""")
    page.wait_for_selector(".notice.bad")
    assert "空白" in page.locator(".notice.bad").inner_text()
    assert service.store.matter_state(matter_id).status.value == "handed_over"


def test_a_fingerprint_photo_signs_off_in_the_browser(page, ui_server: RunningUI, artifacts: Path, tmp_path: Path) -> None:
    from tests.unit.test_village_signature import fingerprint_photo_png

    service = ui_server.service
    matter_id = _handed_over_matter(page, ui_server, "孙秀英")
    thumb = tmp_path / "手印.png"
    thumb.write_bytes(fingerprint_photo_png())
    page.check("input[name=rating][value=very_satisfied]")
    page.check("input[name=method][value=fingerprint]")
    assert not page.locator("#signoff-form canvas").is_visible()
    assert "按手印" in page.locator("#signoff-form p[data-when=fingerprint]").inner_text()
    page.set_input_files("#signoff-form input[name=evidence_file]", str(thumb))
    page.screenshot(path=str(artifacts / "15-signoff-fingerprint.png"), full_page=True)
    page.click("#signoff-form button.big")
    page.wait_for_url(re.compile(rf"/matters/{matter_id}\?done=signoff$"))
    assert "按手印" in page.locator("table.history").inner_text()
    assert service.store.matter_state(matter_id).status.value == "signed_off"


def test_the_receipt_and_the_matter_page_show_what_was_recorded_and_the_report_clock(page, ui_server: RunningUI, artifacts: Path) -> None:
    import datetime as dt

    from shared.catalog import load_catalog

    item = load_catalog().item("MZ-001")
    conditional = next(m for m in item.auxiliary_materials if m.condition)
    later = (dt.date.today() + dt.timedelta(days=10)).isoformat()
    page.goto(f"{ui_server.base_url}/matters/new")
    fill_villager(page, "周德福")
    page.select_option("#matter-select", item.code)
    fieldset = page.locator(f"fieldset.mats[data-code='{item.code}']")
    for m in item.main_materials:
        fieldset.locator(f"input[name=materials][value={m.id}]").check()
    fieldset.locator(f"input[name=not_applicable][value={conditional.id}]").check()
    page.wait_for_function("document.getElementById('outcome').className.includes('accept_with_tolerance')")
    for m in item.auxiliary_materials:
        if m is not conditional:
            fieldset.locator(f"input[name='commit:{m.id}']").fill(later)
    page.check("input[name=authorization][value=drawn_signature]")
    draw_signature(page, ".auth-panel[data-method=drawn_signature] canvas")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/receipt$"))
    matter_id = page.url.split("/")[-2]
    notice = page.locator("#notice").inner_text()
    assert page.locator("#receipt-title").inner_text() == "代办收件回执"
    assert re.search(rf"{re.escape(conditional.name)}（[^）]*）：不适用", notice)
    assert not re.search(rf"{re.escape(conditional.name)}[^\n]*须补齐", notice)
    assert f"{later[:4]}年{later[5:7]}月{later[8:]}日前补交" in notice
    assert "报送时限" in notice and "本县规定时限" in notice
    hint = page.locator("#lookup-hint").inner_text()
    assert "办件进度查询" in hint and page.locator("#lookup-code").inner_text() in page.locator("#receipt").inner_text()
    page.screenshot(path=str(artifacts / "16-receipt-tolerance.png"), full_page=True)
    page.reload()
    assert page.locator("#notice").inner_text() == notice   # a reprint says the same
    page.goto(f"{ui_server.base_url}/matters/{matter_id}")
    hop = page.locator("#village-hop").inner_text()
    assert "前" in hop and "本县规定时限" in hop and ("待乡镇收到" in hop or "临期预警" in hop or "已超期" in hop)
    statuses = page.locator("#material-status").inner_text()
    assert re.search(rf"{re.escape(conditional.name)}.*：\s*不适用", statuses)
    page.screenshot(path=str(artifacts / "17-matter-report-clock.png"), full_page=True)
    page.goto(f"{ui_server.base_url}/")
    row = page.locator("table.list tbody tr", has_text="周德福")
    assert "报送" in row.inner_text()
    page.screenshot(path=str(artifacts / "18-my-matters-report-clock.png"))


def test_an_unknown_address_shows_the_chinese_not_found_page(page, ui_server: RunningUI, artifacts: Path) -> None:
    response = page.goto(f"{ui_server.base_url}/matters/00000000-0000-0000-0000-000000000000")
    assert response is not None and response.status == 404
    text = page.locator("main").inner_text()
    assert "没有找到" in text and "00000000" not in text and "detail" not in text
    page.fill("#not-found input[name=code]", "ZZZZZ-ZZZZZ")
    page.click("#not-found button")
    assert "本机没有查询码为 ZZZZZ-ZZZZZ 的事项" in page.locator("main").inner_text()
    page.goto(f"{ui_server.base_url}/no/such/page")
    assert "没有找到这个页面" in page.locator("main").inner_text()
    page.screenshot(path=str(artifacts / "19-not-found.png"))
