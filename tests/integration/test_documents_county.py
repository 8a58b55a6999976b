"""The county's written documents, through a real township linked over gRPC to a real county (SQLite
files): a county 不予批准 issues the 不予许可决定书 with the reason and the applicant's rights, a request
for materials the 补办件通知书, an approved extension the 延期告知书 and a 督办 the 督办通知 — each numbered,
signed, archived as a PDF whose text carries its fields, listed for the matter, reprinted byte for
byte, and verified (store and `county-hub document verify`), refused once tampered with."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from sqlalchemy import update

from hub.cli import main as county_hub
from hub.handling import Outcome
from shared.clock import FakeClock
from shared.console.store import staff
from shared.documents.adapters import sql
from shared.documents.content import short_hash
from shared.documents.render import render_html
from shared.domain.catalog import MatterKind
from shared.domain.handling import Actor, Role
from shared.keys import save_key_file
from tests.county_fixtures import County, LinkedTownship, advance
from tests.town_fixtures import OPERATOR, VillageDevice

DIRECTOR = Actor("chen", Role.DIRECTOR)
COUNTY_OPERATOR = Actor("zhou", Role.OPERATOR)


def pdf_text(pdf: bytes | None) -> str:
    """The PDF as `pdftotext` (poppler-utils) reads it, as an archivist's tools would; table cells and
    wrapped lines come out with breaks and spaces, so the fields are checked as words."""
    assert pdf is not None
    out = subprocess.run(["pdftotext", "-enc", "UTF-8", "-", "-"], input=pdf, capture_output=True, check=True).stdout
    return "".join(out.decode("utf-8").split())


def _escalate(town: LinkedTownship, hub: County, village: VillageDevice, clock: FakeClock, code: str = "MZ-004") -> str:
    matter_id = village.file(code)
    town.app.handling.classify(matter_id, MatterKind.REPORTED, actor=OPERATOR)
    advance(clock, hours=1)
    town.app.handling.escalate(matter_id, "乡镇初审：材料齐全，情况属实", actor=OPERATOR)
    advance(clock, minutes=5)
    town.sync()
    hub.app.handling.run_once()
    town.sync()
    return matter_id


def _name_staff(hub: County) -> None:
    with hub.app.store.engine.begin() as conn:
        conn.execute(staff.insert().values(staff_id="chen", display_name="陈主任", role="director", password_hash="x",
                                           disabled=False, created_at_ms=0, password_changed_at_ms=0))


def _docs(hub: County, matter_id: str) -> dict[str, sql.IssuedDocument]:
    documents = hub.app.handling.documents
    assert documents is not None
    return {d.title: documents.load(d.number) for d in documents.of_matter(matter_id)}


def test_a_county_refusal_is_a_written_decision_with_the_reason_and_the_right_to_reconsideration_or_litigation(
        town: LinkedTownship, hub: County, clock: FakeClock) -> None:
    _name_staff(hub)
    matter_id = _escalate(town, hub, VillageDevice(town.app), clock)
    hub.app.handling.decide(matter_id, Outcome.REFUSE, actor=DIRECTOR, reason="家庭财产状况不符合救助条件")
    docs = _docs(hub, matter_id)
    [(title, doc)] = [(t, d) for t, d in docs.items() if t != "受理通知书"]
    assert title in ("不予许可决定书", "不予行政许可决定书") and doc.number == "县政务中心〔2026〕不许字第1号"
    text = pdf_text(doc.pdf)
    for needed in (title, doc.number, "测试村民", "家庭财产状况不符合救助条件", "陈主任", "经青山镇便民服务中心上报",
                   "六十日内", "行政复议", "六个月内", "行政诉讼", "县政务服务中心", short_hash(doc.content_hash)):
        assert needed in text, needed
    assert render_html(doc.content) == doc.html            # a reprint from the signed content is the first print


def test_the_county_taking_a_report_in_issues_its_acceptance_notice_with_its_due_date_and_the_periods_not_counted(
        town: LinkedTownship, hub: County, clock: FakeClock) -> None:
    matter_id = _escalate(town, hub, VillageDevice(town.app), clock)
    doc = _docs(hub, matter_id)["受理通知书"]
    assert doc.number == "县政务中心〔2026〕受字第1号"
    assert [d.title for d in hub.app.handling.documents.of_matter(matter_id)] == ["受理通知书"]   # once, not twice
    text = pdf_text(doc.pdf)
    for needed in ("受理通知书", "县级受理时间", "承诺办结日期", "听证、招标、拍卖", "补正材料的时间不计入办理时限", "测试村民",
                   "经青山镇便民服务中心上报"):
        assert needed in text, needed


def test_a_request_for_materials_an_extension_and_a_supervision_each_issue_their_document(
        town: LinkedTownship, hub: County, clock: FakeClock) -> None:
    village = VillageDevice(town.app)
    first = _escalate(town, hub, village, clock)
    hub.app.handling.decide(first, Outcome.NEEDS_MATERIALS, actor=DIRECTOR, missing=["村委会出具的困难证明"])
    second = _escalate(town, hub, village, clock)
    hub.app.handling.extend(second, 8, "需组织专家评审家庭困难程度", actor=DIRECTOR)
    hub.app.handling.issue_supervision(second, "请说明逾期原因并联系申请人", actor=COUNTY_OPERATOR, overdue_working_days=3)
    supplement = _docs(hub, first)["补办件通知书"]
    assert "村委会出具的困难证明" in pdf_text(supplement.pdf) and "一次性" in pdf_text(supplement.pdf)
    docs = _docs(hub, second)
    assert set(docs) == {"受理通知书", "延期告知书", "督办通知"}
    extension = pdf_text(docs["延期告知书"].pdf)
    for needed in ("延期告知书", "需组织专家评审家庭困难程度", "8个工作日", "延长后办结日期", "县级办理时限"):
        assert needed in extension, needed
    supervision = pdf_text(docs["督办通知"].pdf)
    for needed in ("督办通知", "青山镇便民服务中心", "请说明逾期原因并联系申请人", "3个工作日", "连续延误三个工作日"):
        assert needed in supervision, needed
    assert docs["督办通知"].number == "县政务中心〔2026〕督字第1号"


def test_county_hub_document_verify_accepts_the_genuine_decision_and_refuses_it_once_altered(
        tmp_path: Path, town: LinkedTownship, hub: County, clock: FakeClock, capsys: pytest.CaptureFixture[str]) -> None:
    matter_id = _escalate(town, hub, VillageDevice(town.app), clock)
    hub.app.handling.decide(matter_id, Outcome.REFUSE, actor=DIRECTOR, reason="不符合条件")
    [doc] = [d for t, d in _docs(hub, matter_id).items() if t != "受理通知书"]
    home = tmp_path / "county-home"
    home.mkdir()
    save_key_file(home / "county.key", hub.app.signer, "passphrase-for-tests-2026", scrypt_n=2**10)
    db = hub.app.store.engine.url.render_as_string(hide_password=False)
    args = ["document", "verify", doc.number, "--code", short_hash(doc.content_hash), "--home", str(home), "--db", db]
    assert county_hub(args) == 0
    assert "核验通过" in capsys.readouterr().out
    with hub.app.store.engine.begin() as conn:
        conn.execute(update(sql.issued_document).where(sql.issued_document.c.number == doc.number).values(
            content_json=doc.content_json.replace("不符合条件".encode(), "符合条件".encode())))
    assert county_hub(args) == 1
    out = capsys.readouterr().out
    assert "核验未通过" in out and "内容被改动过" in out


def test_the_county_verifies_a_township_notice_by_its_check_code_html_or_pdf_against_what_the_township_signed(
        tmp_path: Path, town: LinkedTownship, hub: County, clock: FakeClock, capsys: pytest.CaptureFixture[str]) -> None:
    matter_id = _escalate(town, hub, VillageDevice(town.app), clock)
    town_docs = town.app.handling.documents
    assert town_docs is not None
    [listing] = [d for d in town_docs.of_matter(matter_id) if d.title == "上报件通知书"]
    doc = town_docs.load(listing.number)
    pdf = town_docs.pdf(listing.number)
    county_docs = hub.app.handling.documents
    assert county_docs is not None
    # The township's notice reached the county as a record of its signed chain, not as its content.
    assert county_docs.verify(doc.number, typed_hash=doc.content_hash[:16]).genuine
    assert "便民服务中心" in county_docs.verify(doc.number, typed_hash=doc.content_hash[:16]).issuer_name
    assert not county_docs.verify(doc.number, typed_hash="0" * 16).genuine
    home = tmp_path / "county-home"
    home.mkdir()
    save_key_file(home / "county.key", hub.app.signer, "passphrase-for-tests-2026", scrypt_n=2**10)
    db = hub.app.store.engine.url.render_as_string(hide_password=False)
    html_file, pdf_file = tmp_path / "notice.html", tmp_path / "notice.pdf"
    html_file.write_bytes(doc.html.encode("utf-8"))
    pdf_file.write_bytes(pdf)
    args = ["document", "verify", doc.number, "--home", str(home), "--db", db]
    assert county_hub([*args, "--html", str(html_file), "--pdf", str(pdf_file)]) == 0
    out = capsys.readouterr().out
    assert "核验通过" in out and "上报件通知书" in out and "逐字节相同" in out
    # A tampered paper: the HTML altered, the PDF laid out from altered HTML, a PDF with a line appended.
    html_file.write_bytes(doc.html.replace("上报", "退回").encode("utf-8"))
    assert county_hub([*args, "--html", str(html_file)]) == 1
    assert "不是同一份" in capsys.readouterr().out
    from shared.documents.adapters.pdf import html_to_pdf

    pdf_file.write_bytes(html_to_pdf(doc.html.replace("上报", "退回")))
    assert county_hub([*args, "--pdf", str(pdf_file)]) == 1
    assert "核验未通过" in capsys.readouterr().out
    pdf_file.write_bytes(pdf + b"%% appended\n")
    assert county_hub([*args, "--pdf", str(pdf_file)]) == 1
    assert "被改动过" in capsys.readouterr().out
    assert county_hub(args) == 1   # nothing to compare: the record alone proves only that the number exists
    assert "请提供文书上印的校验码" in capsys.readouterr().out


def test_the_county_named_by_its_settings_signs_its_decision_under_that_name_and_the_township_can_verify_it(
        tmp_path: Path, town: LinkedTownship, hub: County, clock: FakeClock) -> None:
    db = hub.app.store.engine.url.render_as_string(hide_password=False)
    assert county_hub(["document", "issuer", "--name", "青山县政务服务中心", "--seal", "青山县人民政府政务服务中心",
                       "--prefix", "青山县政务", "--home", str(tmp_path), "--db", db]) == 0
    matter_id = _escalate(town, hub, VillageDevice(town.app), clock)
    _name_staff(hub)
    hub.app.handling.decide(matter_id, Outcome.REFUSE, actor=DIRECTOR, reason="申请人不符合补助条件")
    [doc] = [d for t, d in _docs(hub, matter_id).items() if t != "受理通知书"]
    assert doc.number == "青山县政务〔2026〕不许字第1号"
    text = pdf_text(doc.pdf)
    assert "青山县政务服务中心" in text and "青山县人民政府政务服务中心" in text and "申请人不符合补助条件" in text
    # The decision went down the county's signed chain with the matter's other records: the township that
    # hands it to the applicant checks the paper against it, and refuses another check code.
    town.sync()
    town_docs = town.app.handling.documents
    assert town_docs is not None
    result = town_docs.verify(doc.number, typed_hash=doc.content_hash[:16])
    assert result.genuine and result.issuer_name == "县政务服务中心" and result.title == "不予行政许可决定书"
    assert not town_docs.verify(doc.number, typed_hash="f" * 16).genuine
