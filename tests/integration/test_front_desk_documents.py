"""The front desk's numbered, signed documents on a real SQLite file with a fake clock: a petition's
信访事项交办单 and 告知书 and a consultation's 一次性告知书 issued with the registration, a written complaint's
投诉答复书 with its answer; numbered without gaps per kind, listed with the entry, their archived PDFs
read back with pdftotext, reprinted byte for byte, verifiable, and never naming the person."""
from __future__ import annotations

import datetime as dt
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.domain.front_desk import CaseKind, Channel, Complexity
from tests.town_fixtures import BACKUP, OPERATOR, township
from town_center.bootstrap import TownApp
from town_center.front_desk.service import FrontDesk

pytestmark = pytest.mark.skipif(not Path("/usr/bin/pdftotext").exists(), reason="poppler-utils' pdftotext is not installed")


class Colleagues:
    names = {"wang": "王芳", "li": "李强", "zhao": "赵主任"}

    def active_name(self, staff_id: str) -> str | None:
        return self.names.get(staff_id)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[TownApp]:
    town_app = township(f"sqlite:///{tmp_path / 'town.db'}")
    town_app.handling.staff = Colleagues()
    yield town_app
    town_app.close()


@pytest.fixture
def desk(app: TownApp) -> FrontDesk:
    assert app.front_desk is not None
    return app.front_desk


def pdf_text(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "doc.pdf"
    path.write_bytes(pdf)
    out = subprocess.run(["/usr/bin/pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True, check=True).stdout
    return "".join(out.decode("utf-8").split())   # wrapped lines and table cells: compare as words


def test_a_petition_issues_its_assignment_and_its_notice_numbered_with_the_registration_and_naming_nobody(
        app: TownApp, desk: FrontDesk, tmp_path: Path) -> None:
    documents = app.handling.documents
    assert documents is not None
    first = desk.register_case(CaseKind.PETITION, actor=OPERATOR, channel=Channel.VISIT, subject="村道硬化补偿款未到位",
                               content="去年修路占地的补偿至今未发", person_name="孙七", person_contact="青石村三组", handler="li")
    second = desk.register_case(CaseKind.PETITION, actor=OPERATOR, channel=Channel.PHONE, subject="征地补偿",
                                content="要求领导接待", person_name="周八", complexity=Complexity.LEADER, handler="li")
    listed = desk.documents(first.case_id)
    assert [d.title for d in listed] == ["信访事项交办单", "信访事项告知书"]
    assert [d.number for d in listed] == ["乡镇便民中心〔2026〕访交字第1号", "乡镇便民中心〔2026〕访告字第1号"]
    assert [d.number for d in desk.documents(second.case_id)] == ["乡镇便民中心〔2026〕访交字第2号", "乡镇便民中心〔2026〕访告字第2号"]
    assignment, notice = (pdf_text(documents.pdf(d.number), tmp_path) for d in listed)
    for words in ("信访事项交办单", "李强", first.register_no, "村道硬化补偿款未到位", "去年修路占地的补偿至今未发",
                  "2026年11月26日", "三日内答复", "王芳", "来访人身份依《信访条例》保密"):
        assert words in assignment, words
    for words in ("信访事项告知书", "来访人", first.register_no, "已交李强办理", "2026年11月26日", "30日内请求上一级行政机关复查"):
        assert words in notice, words
    leader_notice = pdf_text(documents.pdf(desk.documents(second.case_id)[1].number), tmp_path)
    assert "领导接待事项" in leader_notice and "2026年11月30日" in leader_notice
    # each is a record of the township's own chain, addressed to no device
    from shared.envelope import open_record
    from town_center.handling import INTERNAL_AUDIENCE

    own, _ = app.store.read(INTERNAL_AUDIENCE, 0, 1000)
    chained = [open_record(e).document_issued for e in own if open_record(e).WhichOneof("body") == "document_issued"]
    assert [(r.number, r.kind, r.matter_id) for r in chained][:2] == [
        (listed[0].number, "petition_assignment", first.case_id), (listed[1].number, "petition_notice", first.case_id)]
    for d in listed:   # the person is sealed: never on a paper any colleague may reprint
        html = documents.load(d.number).html
        assert "孙七" not in html and "青石村三组" not in html and first.case_id not in html
        assert documents.verify(d.number).genuine


def test_a_consultation_prints_its_one_time_notification_and_a_written_complaint_gets_a_written_answer(
        app: TownApp, desk: FrontDesk, tmp_path: Path) -> None:
    documents = app.handling.documents
    assert documents is not None
    item = app.handling.catalog.item("MZ-001")
    asked = desk.register_case(CaseKind.CONSULTATION, actor=OPERATOR, channel=Channel.VISIT, subject="低保怎么申请",
                               content="", person_name="吴九", catalog_code="MZ-001", answer="已当场讲清材料和流程")
    [notice] = desk.documents(asked.case_id)
    assert (notice.title, notice.number) == ("一次性告知书", "乡镇便民中心〔2026〕告字第1号")
    text = pdf_text(documents.pdf(notice.number), tmp_path)
    for words in ("一次性告知书", asked.register_no, item.name, "所需全部材料", item.main_materials[0].name,
                  "收费标准", "办理依据", "已当场讲清材料和流程"):
        assert "".join(words.split()) in text, words
    bare = desk.register_case(CaseKind.CONSULTATION, actor=OPERATOR, channel=Channel.PHONE, subject="问问办事时间",
                              content="", person_name="郑十", answer="工作日 9 点到 17 点")
    assert desk.documents(bare.case_id) == []   # no matter asked about: nothing to notify in writing

    letter = desk.register_case(CaseKind.COMPLAINT, actor=OPERATOR, channel=Channel.LETTER, subject="窗口推诿",
                                content="来信反映办证被推来推去", person_name="冯十一", handler="li")
    spoken = desk.register_case(CaseKind.COMPLAINT, actor=OPERATOR, channel=Channel.VISIT, subject="排队太久",
                                content="上午排了一个小时", person_name="陈十二", handler="li")
    anonymous = desk.register_case(CaseKind.COMPLAINT, actor=OPERATOR, channel=Channel.BOX, subject="吃拿卡要",
                                   content="意见箱匿名信", anonymous=True, handler="li")
    assert desk.documents(letter.case_id) == []   # the written answer comes with the answer
    for case in (letter, spoken, anonymous):
        desk.answer_case(case.case_id, "经核实，已对窗口人员批评教育，并优化了导办流程", actor=BACKUP)
    [answer] = desk.documents(letter.case_id)
    assert (answer.title, answer.number) == ("投诉答复书", "乡镇便民中心〔2026〕诉复字第1号")
    text = pdf_text(documents.pdf(answer.number), tmp_path)
    for words in ("投诉答复书", "投诉人", letter.register_no, "窗口推诿", "来信", "经核实，已对窗口人员批评教育", "李强"):
        assert words in text, words
    assert desk.documents(spoken.case_id) == [] and desk.documents(anonymous.case_id) == []   # answered by word of mouth


def test_a_reprint_of_a_front_desk_document_is_the_first_print_byte_for_byte(app: TownApp, desk: FrontDesk) -> None:
    from fastapi.testclient import TestClient

    from shared.console import ConsoleAuth, ScryptParams, create_console_tables
    from shared.domain.handling import Role
    from town_center.console import create_console_app

    create_console_tables(app.store.engine)
    auth = ConsoleAuth(app.store.engine, app.clock, kdf=ScryptParams(n=2**10, r=8, p=1))
    auth.create_staff("wang", "王芳", Role.OPERATOR, "青石镇窗口2026春季值班")
    client = TestClient(create_console_app(app, auth), follow_redirects=False)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
    client.post("/login", data={"staff_id": "wang", "password": "青石镇窗口2026春季值班", "next": "/", "csrf_token": csrf})
    case = desk.register_case(CaseKind.PETITION, actor=OPERATOR, channel=Channel.VISIT, subject="宅基地纠纷",
                              content="邻居占地", person_name="孙七", handler="wang")
    page = client.get(f"/front-desk/cases/{case.case_id}").text
    assert "访交字第1号" in page and "访告字第1号" in page and 'id="print-assignment"' in page
    moved = client.get(f"/front-desk/cases/{case.case_id}/print/receipt")
    assert moved.status_code == 303 and "/documents/" in moved.headers["location"]
    first = client.get(moved.headers["location"])
    app.clock.advance(dt.timedelta(minutes=10))
    again = client.get(moved.headers["location"])
    assert first.status_code == again.status_code == 200 and first.content == again.content
    [stored] = [d for d in desk.documents(case.case_id) if d.title == "信访事项告知书"]
    assert first.content == app.handling.documents.load(stored.number).html.encode("utf-8")
    assert "信访事项告知书" in first.text and "孙七" not in first.text
    assert client.get(f"/front-desk/cases/{case.case_id}/print/notice").status_code == 404   # a petition has none
