"""The township's written notices, on a real SQLite file and a real PostgreSQL: issued with the
handling action that decides them, numbered per year and kind without gaps (also when issued at
once from many threads, and when an action rolls back), reprinted byte for byte, archived as a PDF
whose text carries the required fields, verified by number and check code (the CLI and the store),
and refused once tampered with."""
from __future__ import annotations

import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from shared.documents.adapters import sql
from shared.documents.content import short_hash
from shared.documents.kinds import DocumentKind
from shared.documents.render import render_html
from shared.domain.catalog import MatterKind
from shared.keys import save_key_file
from tests.town_fixtures import DIRECTOR, OPERATOR, VillageDevice, township
from town_center.bootstrap import TownApp
from town_center.cli import main as town_cli


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'town.db'}"
    cluster = request.getfixturevalue("postgres_cluster")
    return str(cluster.create_database(f"docs_{uuid.uuid4().hex[:10]}"))


@pytest.fixture
def app(db_url: str) -> Iterator[TownApp]:
    app = township(db_url)
    yield app
    app.close()


@pytest.fixture
def village(app: TownApp) -> VillageDevice:
    return VillageDevice(app)


def pdf_text(pdf: bytes | None) -> str:
    """The PDF as `pdftotext` (poppler-utils) reads it, as an archivist's tools would; table cells and
    wrapped lines come out with breaks and spaces, so the fields are checked as words."""
    assert pdf is not None
    out = subprocess.run(["pdftotext", "-enc", "UTF-8", "-", "-"], input=pdf, capture_output=True, check=True).stdout
    return "".join(out.decode("utf-8").split())


def only_doc(app: TownApp, matter_id: str) -> sql.IssuedDocument:
    docs = app.handling.documents.of_matter(matter_id)
    assert len(docs) == 1, docs
    return app.handling.documents.load(docs[0].number)


def test_a_promised_matter_gets_its_acceptance_notice_with_the_due_date_and_the_periods_not_counted(
        app: TownApp, village: VillageDevice) -> None:
    matter_id = village.file("MZ-003")
    m = app.handling.classify(matter_id, MatterKind.PROMISED, actor=OPERATOR)
    doc = only_doc(app, matter_id)
    content = doc.content
    assert content.kind is DocumentKind.PROMISED_ACCEPTANCE and content.title == "承诺件受理通知书"
    assert doc.number == "乡镇便民中心〔2026〕诺字第1号"
    text = pdf_text(doc.pdf)
    due = m.clock.due_at(app.deadlines.calendar)
    for needed in ("承诺件受理通知书", doc.number, "测试村民", "临时救助申请", "2026年11月23日",
                   f"{due.astimezone(__import__('zoneinfo').ZoneInfo('Asia/Shanghai')).day}日", "承诺办结日期",
                   "听证、招标、拍卖、检验、检测、检疫、鉴定和专家评审", "补正材料的时间不计入办理时限",
                   short_hash(doc.content_hash)):
        assert needed in text, needed


@pytest.mark.parametrize(("kind", "title", "fields"), [
    (MatterKind.IMMEDIATE, "受理通知书", ("即办件",)),
    (MatterKind.SUPPLEMENT, "补办件通知书", ("一次性告知", "户口簿")),
    (MatterKind.RETURNED, "退回件通知书", ("退回理由", "主要材料缺失", "六十日内", "六个月内")),
    (MatterKind.JOINT, "联办件通知书", ("民政办", "牵头窗口", "承诺办结日期")),
])
def test_each_classification_issues_its_own_notice(app: TownApp, village: VillageDevice, kind: MatterKind,
                                                   title: str, fields: tuple[str, ...]) -> None:
    matter_id = village.file("MZ-003")
    app.handling.classify(matter_id, kind, actor=OPERATOR, missing_materials=["户口簿"], return_reason="主要材料缺失",
                          lead_window="民政办", departments=["民政办", "财政所"])
    doc = only_doc(app, matter_id)
    text = pdf_text(doc.pdf)
    assert doc.content.title == title and title in text and doc.number in text
    for needed in fields:
        assert needed in text, needed


def test_a_county_matter_taken_as_reported_gets_the_escalation_notice(app: TownApp, village: VillageDevice) -> None:
    matter_id = village.file("MZ-001")
    app.handling.classify(matter_id, MatterKind.REPORTED, actor=OPERATOR)
    doc = only_doc(app, matter_id)
    text = pdf_text(doc.pdf)
    assert doc.content.title == "上报件通知书"
    for needed in ("上报件通知书", "乡镇上报时限", "县级承诺办理时限", "县政务服务中心"):
        assert needed in text, needed


def test_an_extension_and_a_refusal_are_issued_in_writing_with_the_new_date_the_reason_and_the_rights(
        app: TownApp, village: VillageDevice) -> None:
    matter_id = village.file("MZ-003")
    m = app.handling.classify(matter_id, MatterKind.PROMISED, actor=OPERATOR)
    assert m.clock is not None
    app.handling.request_extension(matter_id, m.clock.statutory, "需入户核实家庭收入", actor=OPERATOR)
    app.handling.decide_extension(matter_id, approve=True, actor=DIRECTOR)
    app.handling.record_result(matter_id, approved=False, summary="家庭人均收入高于临时救助标准", actor=OPERATOR)
    docs = {d.title: app.handling.documents.load(d.number) for d in app.handling.documents.of_matter(matter_id)}
    assert set(docs) == {"承诺件受理通知书", "延期告知书", "不予许可决定书"}
    extension = pdf_text(docs["延期告知书"].pdf)
    for needed in ("延期告知书", "需入户核实家庭收入", "10个工作日", "延长后办结日期", "法定办理时限"):
        assert needed in extension, needed
    refusal = pdf_text(docs["不予许可决定书"].pdf)
    for needed in ("不予许可决定书", "家庭人均收入高于临时救助标准", "不予许可的理由", "行政复议", "六十日内",
                   "行政诉讼", "六个月内", "测试村民"):
        assert needed in refusal, needed


def test_a_reprint_is_the_first_print_byte_for_byte(app: TownApp, village: VillageDevice) -> None:
    matter_id = village.file("MZ-003")
    app.handling.classify(matter_id, MatterKind.PROMISED, actor=OPERATOR)
    first = only_doc(app, matter_id)
    again = app.handling.documents.load(first.number)
    assert again.html.encode() == first.html.encode() and again.pdf == first.pdf
    # Rendering the signed content again gives the same page, and the PDF engine the same file.
    assert render_html(first.content) == first.html
    assert app.handling.documents.archive.pdf is not None and app.handling.documents.archive.pdf(first.html) == first.pdf


def test_numbers_run_per_kind_without_gaps_and_a_rolled_back_action_leaves_none(app: TownApp, village: VillageDevice) -> None:
    ids = [village.file("MZ-003") for _ in range(3)]
    for matter_id in ids:
        app.handling.classify(matter_id, MatterKind.PROMISED, actor=OPERATOR)
    # An action that fails after its number was allocated rolls the number back with it.
    with pytest.raises(RuntimeError):
        with app.store.engine.begin() as conn:
            assert sql.allocate_seq(conn, 2026, DocumentKind.PROMISED_ACCEPTANCE) == 4
            raise RuntimeError("the action failed after allocating")
    fourth = village.file("MZ-003")
    app.handling.classify(fourth, MatterKind.PROMISED, actor=OPERATOR)
    immediate = village.file("MZ-003")
    app.handling.classify(immediate, MatterKind.IMMEDIATE, actor=OPERATOR)
    numbers = [d.number for m in [*ids, fourth] for d in app.handling.documents.of_matter(m)]
    assert numbers == [f"乡镇便民中心〔2026〕诺字第{n}号" for n in (1, 2, 3, 4)]
    assert [d.number for d in app.handling.documents.of_matter(immediate)] == ["乡镇便民中心〔2026〕受字第1号"]
    assert all(d.has_pdf for m in [*ids, fourth, immediate] for d in app.handling.documents.of_matter(m))


def test_numbers_issued_at_once_from_many_threads_have_no_gaps_and_no_duplicates(app: TownApp) -> None:
    threads_n, per_thread = 6, 5
    numbers: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def issue() -> None:
        try:
            for _ in range(per_thread):
                with app.store.engine.begin() as conn:
                    app.store.lock_own_tip(conn, app.signer.key_id)   # what every handling action takes first
                    n = sql.allocate_seq(conn, 2026, DocumentKind.SUPERVISION)
                with lock:
                    numbers.append(n)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=issue) for _ in range(threads_n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert not errors, errors
    assert sorted(numbers) == list(range(1, threads_n * per_thread + 1))


def test_numbers_allocated_by_racing_transactions_without_a_common_lock_still_do_not_collide(app: TownApp) -> None:
    """The sequence row itself serializes (PostgreSQL's row lock; SQLite's write lock), so even callers that
    take no other lock first get distinct, consecutive numbers."""
    results: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def issue() -> None:
        try:
            for _ in range(5):
                for attempt in range(50):
                    try:
                        with app.store.engine.begin() as conn:
                            n = sql.allocate_seq(conn, 2027, DocumentKind.EXTENSION)
                        break
                    except Exception:
                        if attempt == 49:
                            raise
                with lock:
                    results.append(n)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    workers = [threading.Thread(target=issue) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert not errors, errors
    assert sorted(results) == list(range(1, 21))


def test_verification_accepts_the_genuine_document_and_refuses_every_kind_of_tampering(
        app: TownApp, village: VillageDevice) -> None:
    matter_id = village.file("MZ-003")
    app.handling.classify(matter_id, MatterKind.PROMISED, actor=OPERATOR)
    doc = only_doc(app, matter_id)
    docs = app.handling.documents
    assert docs.verify(doc.number, typed_hash=doc.content_hash[:16]).genuine
    assert not docs.verify(doc.number, typed_hash="0" * 16).genuine          # someone else's check code
    d = sql.issued_document
    tampered_content = doc.content_json.replace("5个工作日".encode(), "2个工作日".encode())
    assert tampered_content != doc.content_json
    for values in ({"content_json": tampered_content},
                   {"html": doc.html.replace("5个工作日", "2个工作日")},
                   {"pdf": doc.pdf[:-10] + b"0123456789"}):
        with app.store.engine.begin() as conn:
            conn.execute(update(d).where(d.c.number == doc.number).values(**values))
        result = docs.verify(doc.number, deep=True)     # deep: the archived PDF laid out again from the signed HTML
        assert not result.genuine and result.problems, values.keys()
        with app.store.engine.begin() as conn:
            conn.execute(update(d).where(d.c.number == doc.number).values(
                content_json=doc.content_json, html=doc.html, pdf=doc.pdf))
    assert docs.verify(doc.number, deep=True).genuine
    # Re-signing tampered content with another key does not make it the township's.
    with app.store.engine.begin() as conn:
        conn.execute(update(d).where(d.c.number == doc.number).values(key_id="0" * 32))
    assert "不是本机关的密钥" in "".join(docs.verify(doc.number).problems)


def test_the_cli_verifies_a_genuine_document_and_a_handed_in_pdf_and_refuses_a_tampered_one(
        app: TownApp, village: VillageDevice, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "town-home"
    home.mkdir()
    save_key_file(home / "town.key", app.signer, "passphrase-for-tests-2026", scrypt_n=2**10)
    matter_id = village.file("MZ-003")
    app.handling.classify(matter_id, MatterKind.PROMISED, actor=OPERATOR)
    doc = only_doc(app, matter_id)
    handed_in = tmp_path / "handed-in.pdf"
    handed_in.write_bytes(doc.pdf)
    args = ["document", "verify", doc.number, "--code", short_hash(doc.content_hash), "--home", str(home), "--db", db_url]
    assert town_cli([*args, "--pdf", str(handed_in)]) == 0
    out = capsys.readouterr().out
    assert "核验通过" in out and "承诺件受理通知书" in out and "逐字节相同" in out
    handed_in.write_bytes(doc.pdf + b"%% a line appended after printing\n")
    assert town_cli([*args, "--pdf", str(handed_in)]) == 1
    assert "不是同一份" in capsys.readouterr().out
    with app.store.engine.begin() as conn:
        conn.execute(update(sql.issued_document).where(sql.issued_document.c.number == doc.number).values(
            html=doc.html.replace("测试村民", "别的村民")))
    assert town_cli(args) == 1
    assert "核验未通过" in capsys.readouterr().out
    assert town_cli(["document", "verify", "不是编号", "--home", str(home), "--db", db_url]) != 0
    assert "文书编号格式不对" in capsys.readouterr().err


def test_a_township_named_by_its_settings_prints_its_name_seal_and_prefix(app: TownApp, village: VillageDevice,
                                                                          db_url: str, tmp_path: Path) -> None:
    assert town_cli(["document", "issuer", "--name", "青石镇便民服务中心", "--seal", "青石镇人民政府便民服务中心",
                     "--prefix", "青石便民", "--home", str(tmp_path), "--db", db_url]) == 0
    matter_id = village.file("MZ-003")
    app.handling.classify(matter_id, MatterKind.IMMEDIATE, actor=OPERATOR)
    doc = only_doc(app, matter_id)
    assert doc.number == "青石便民〔2026〕受字第1号"
    text = pdf_text(doc.pdf)
    assert "青石镇便民服务中心" in text and "青石镇人民政府便民服务中心" in text
    with app.store.engine.connect() as conn:
        assert conn.execute(select(sql.issued_document.c.matter_id)).scalar() == matter_id
