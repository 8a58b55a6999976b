"""The township's written notices in the browser: the matter page lists the 承诺件受理通知书 issued when
the operator classified the matter; its print view laid out for A4 (print media, and Chromium's own
print to PDF gives one A4 page per sheet); anyone checks it on the public verify page by number and
check code, and a copy altered in the database is refused there. A real uvicorn server on a free
loopback port over a real SQLite file; Debian's Chromium. Screenshots go to `test-artifacts/documents/`."""
from __future__ import annotations

import io
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pypdf
import pytest
from sqlalchemy import update

from tests.e2e.conftest import CHROMIUM, console_sign_in

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed: browser tests need Debian's chromium")

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "documents"
PASSWORD = "青石镇窗口2026春季值班"


@dataclass
class Running:
    base_url: str
    town: object       # TownApp
    matter_id: str


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    from shared.console import ConsoleAuth, ScryptParams, create_console_tables
    from shared.domain.catalog import MatterKind
    from shared.domain.handling import Actor, Role
    from tests.town_fixtures import VillageDevice, township
    from town_center.console import create_console_app, start_console_server

    root = tmp_path_factory.mktemp("documents")
    town = township(f"sqlite:///{root / 'town.db'}")
    create_console_tables(town.store.engine)
    auth = ConsoleAuth(town.store.engine, town.clock, kdf=ScryptParams(n=2**10, r=8, p=1))
    auth.create_staff("wang", "王芳", Role.OPERATOR, PASSWORD)
    matter_id = VillageDevice(town, village_code="V001").file("MZ-003")
    town.handling.classify(matter_id, MatterKind.PROMISED, actor=Actor("wang", Role.OPERATOR))
    server = start_console_server(create_console_app(town, auth), "127.0.0.1:0")
    try:
        yield Running(f"http://127.0.0.1:{server.port}", town, matter_id)
    finally:
        server.stop()
        town.close()


@pytest.fixture(scope="module")
def shots() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def test_the_notice_is_listed_on_the_matter_page_and_prints_on_a4(server: Running, new_page, shots: Path) -> None:
    base = server.base_url
    page = new_page()
    console_sign_in(page, base, "wang", PASSWORD)
    page.goto(f"{base}/matters/{server.matter_id}")
    listing = page.locator("#document-list")
    assert "承诺件受理通知书" in listing.inner_text() and "〔2026〕诺字第1号" in listing.inner_text()
    page.locator("#documents").screenshot(path=str(shots / "01-matter-documents.png"))
    href = page.locator("#document-list a", has_text="打印").get_attribute("href")
    assert href
    page.goto(base + href)
    assert page.locator("#doc-title").inner_text() == "承诺件受理通知书"
    assert "承诺办结日期" in page.locator("#doc-lines").inner_text()
    page.screenshot(path=str(shots / "02-print-view-screen.png"), full_page=True)
    page.emulate_media(media="print")
    assert not page.locator(".toolbar").is_visible()           # the print button is not printed
    page.screenshot(path=str(shots / "03-print-view-print-media.png"), full_page=True)
    printed = page.pdf(format="A4", prefer_css_page_size=True)
    reader = pypdf.PdfReader(io.BytesIO(printed))
    width, height = float(reader.pages[0].mediabox.width), float(reader.pages[0].mediabox.height)
    assert abs(width - 595.3) < 2 and abs(height - 841.9) < 2   # A4 in points
    assert "承诺件受理通知书" in "".join(reader.pages[0].extract_text().split())
    pdf = page.request.get(base + href + "/pdf")
    assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf" and pdf.body()[:5] == b"%PDF-"


def test_anyone_verifies_the_notice_on_the_public_page_and_an_altered_copy_is_refused(server: Running, new_page, shots: Path) -> None:
    from shared.documents.adapters import sql
    from shared.documents.content import short_hash

    town = server.town
    [listing] = town.handling.documents.of_matter(server.matter_id)
    doc = town.handling.documents.load(listing.number)
    page = new_page()                                       # not signed in
    page.goto(f"{server.base_url}/public/verify")
    page.fill("input[name=number]", doc.number)
    page.fill("input[name=code]", short_hash(doc.content_hash))
    page.click("#verify button[type=submit]")
    assert "真实有效" in page.locator("#verify-ok").inner_text()
    assert "测试村民" not in page.content()                    # no personal data on the public page
    page.screenshot(path=str(shots / "04-verify-genuine.png"), full_page=True)
    with town.store.engine.begin() as conn:
        conn.execute(update(sql.issued_document).where(sql.issued_document.c.number == doc.number).values(
            html=doc.html.replace("5个工作日", "2个工作日")))
    query = urllib.parse.urlencode({"number": doc.number, "code": short_hash(doc.content_hash)})
    page.goto(f"{server.base_url}/public/verify?{query}")
    assert "核验未通过" in page.locator("#verify-failed").inner_text()
    page.screenshot(path=str(shots / "05-verify-tampered.png"), full_page=True)
    page.goto(f"{server.base_url}/public/verify?number=abc&code=1234")
    assert "文书编号格式不对" in page.locator("#verify-error").inner_text()
