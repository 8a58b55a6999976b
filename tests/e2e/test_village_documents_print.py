"""The village laptop prints its numbered 代办收件回执 and 代理服务委托书 from its browser: from the receipt
page, the first print numbers and signs them, the print view is laid out for A4 (print media hides the
button; Chromium's print to PDF gives A4 sheets) and a second print is the same page. Debian's Chromium;
screenshots go to `test-artifacts/documents/`."""
from __future__ import annotations

import io
from pathlib import Path

import pypdf
import pytest

from tests.e2e.conftest import CHROMIUM, RunningUI

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed: browser tests need Debian's chromium")

SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "documents"


def test_the_agent_prints_the_numbered_receipt_and_authorization_from_the_receipt_page(ui_server: RunningUI, page) -> None:
    from shared.domain.catalog import Tier
    from shared.domain.id_number import with_check_char
    from village_agent.services import RequestForm

    SHOTS.mkdir(parents=True, exist_ok=True)
    service = ui_server.service
    item = next(i for i in service.catalog if i.decided_by is not Tier.VILLAGE
                and any(m.condition for m in i.auxiliary_materials))
    conditional = next(m for m in item.auxiliary_materials if m.condition)
    filed = service.file_request(RequestForm(
        applicant_name="李桂兰", id_number=with_check_char("43052419480312002"), phone="13907310001",
        address="东山村三组 12 号", catalog_code=item.code,
        materials_brought=[m.id for m in item.materials if m is not conditional], not_applicable=[conditional.id],
        authorization_method="witness", witness_name="村委会 张主任", witness_statement="申请人口头委托"))
    page.goto(f"{ui_server.base_url}/matters/{filed.matter_id}/receipt")
    page.click("#numbered-documents >> text=代办收件回执")
    page.wait_for_url("**/documents/**")
    assert page.locator("#doc-title").inner_text() == "代办收件回执"
    assert "收字第1号" in page.locator("#doc-number").inner_text()
    lines = page.locator("#doc-lines").inner_text()
    assert conditional.name in lines and "不适用的材料" in lines and filed.lookup_code in lines
    page.emulate_media(media="print")
    assert not page.locator(".toolbar").is_visible()
    page.screenshot(path=str(SHOTS / "10-village-receipt-print.png"), full_page=True)
    printed = page.pdf(format="A4", prefer_css_page_size=True)
    first_page = pypdf.PdfReader(io.BytesIO(printed)).pages[0]
    assert abs(float(first_page.mediabox.width) - 595.3) < 2
    page.emulate_media(media="screen")
    page.goto(f"{ui_server.base_url}/matters/{filed.matter_id}/receipt")
    page.click("#numbered-documents >> text=代理服务委托书")
    page.wait_for_url("**/documents/**")
    first = page.content()
    assert "委托权限" in first and "见证人不得为代办员本人" in first
    page.screenshot(path=str(SHOTS / "11-village-authorization.png"), full_page=True)
    page.goto(f"{ui_server.base_url}/matters/{filed.matter_id}/documents/authorization")
    assert page.content() == first                   # a reprint is the first print
