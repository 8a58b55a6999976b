"""Assessment reports on a real SQLite file with a fake clock across the end of September 2026 and
the National Day holiday (1–7 October): each month counts what happened in it, working hours skip the
holiday, open matters past their deadline count as overdue in every month they stay open, the
villager's own ratings make the satisfaction and 代为录入 stays apart; the .xlsx read back with
openpyxl holds exactly the cells the page shows."""
from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from shared.console import ConsoleAuth, ScryptParams, create_console_tables
from shared.domain.catalog import MatterKind
from shared.domain.evaluation import EvaluationError, Level, Rating
from shared.domain.front_desk import CaseKind, Channel
from shared.domain.handling import Role
from shared.domain.limits import Limit, LimitUnit
from shared.wire.v1 import records_pb2
from tests.town_fixtures import OPERATOR, VillageDevice, township
from town_center.assessment import Assessment, parse_period, report_xlsx, rows_as_table
from town_center.bootstrap import TownApp
from town_center.console import create_console_app
from town_center.evaluation import Evaluations

BEIJING = dt.timezone(dt.timedelta(hours=8))
PASSWORD = "青石镇窗口2026春季值班"


class Staff:
    def active_name(self, staff_id: str) -> str | None:
        return {"wang": "王芳"}.get(staff_id)


@pytest.fixture
def town(tmp_path: Path) -> Iterator[TownApp]:
    # Wednesday 30 September 2026, 16:00 in Beijing: the last working afternoon before the holiday.
    app = township(f"sqlite:///{tmp_path / 'town.db'}", start_at=dt.datetime(2026, 9, 30, 16, tzinfo=BEIJING))
    app.handling.staff = Staff()
    yield app
    app.close()


def build_the_two_months(town: TownApp) -> tuple[str, str]:
    village = VillageDevice(town, village_code="V001")
    promised = village.file("MZ-003")
    town.handling.classify(promised, MatterKind.PROMISED, actor=OPERATOR, promised_limit=Limit(3, LimitUnit.WORKING_DAYS))
    late = village.file("MZ-003")
    town.handling.classify(late, MatterKind.IMMEDIATE, actor=OPERATOR)     # 30 office minutes, never done
    town.clock.set(dt.datetime(2026, 10, 8, 10, tzinfo=BEIJING))
    town.handling.record_result(promised, approved=True, summary="已办结", actor=OPERATOR)
    evaluations = Evaluations(town.handling)
    evaluations.rate_with_token(evaluations.issue_token(promised, by="wang"), Rating(Level.SATISFIED))
    village.village_record("result_handed_over", promised)
    village.village_record("signed_off", promised, rating=records_pb2.RATING_VERY_DISSATISFIED)
    assert town.front_desk is not None
    town.front_desk.register_case(CaseKind.COMPLAINT, actor=OPERATOR, channel=Channel.PHONE, subject="临时救助办理",
                                  content="窗口说话不耐烦", anonymous=True, linked_matter_id=promised)
    return promised, late


def test_monthly_figures_across_a_month_boundary_and_the_national_day_holiday(town: TownApp) -> None:
    build_the_two_months(town)
    assessment = Assessment(Evaluations(town.handling))
    today = dt.date(2026, 10, 8)
    (sep,) = assessment.report(parse_period("2026-09", today), "village").rows
    assert (sep.received, sep.completed, sep.overdue, sep.rated) == (2, 0, 1, 0)
    (oct_,) = assessment.report(parse_period("2026-10", today), "village").rows
    assert (oct_.received, oct_.completed, oct_.on_time, oct_.overdue) == (0, 1, 1, 1)
    assert oct_.average_hours == pytest.approx(3.0)     # 16:00–17:30 on 30 Sept, 08:30–10:00 on 8 Oct
    assert (oct_.rated, oct_.satisfaction, oct_.agent_entered, oct_.bad) == (1, 80, 1, 0)
    assert (sep.complaints, oct_.complaints) == (0, 1)
    (quarter,) = assessment.report(parse_period("2026-Q3", today), "village").rows
    assert quarter.received == 2 and parse_period("2026-Q4", today).start == dt.date(2026, 10, 1)
    hops = {r.key: r for r in assessment.report(parse_period("2026-10", today), "hop").rows}
    assert hops["township"].completed == 1 and hops["township"].on_time == 1
    assert hops["delivery"].received == 1
    with pytest.raises(EvaluationError, match="统计期间"):
        parse_period("十月", today)


def test_the_xlsx_opens_with_the_figures_the_page_shows(town: TownApp) -> None:
    build_the_two_months(town)
    create_console_tables(town.store.engine)
    auth = ConsoleAuth(town.store.engine, town.clock, kdf=ScryptParams(n=2**10, r=8, p=1))
    auth.create_staff("zhao", "赵主任", Role.DIRECTOR, PASSWORD)
    client = TestClient(create_console_app(town, auth), follow_redirects=False)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert token
    client.post("/login", data={"staff_id": "zhao", "password": PASSWORD, "next": "/", "csrf_token": token.group(1)})
    for by in ("village", "kind", "hop"):
        page = client.get("/assessment", params={"period": "2026-10", "by": by})
        assert page.status_code == 200 and "<svg" in page.text
        table = re.search(r'<table class="table" id="assessment">(.*?)</table>', page.text, re.S)
        assert table
        shown = [[unescape(c).strip() for c in re.findall(r"<t[hd]>(.*?)</t[hd]>", tr, re.S)]
                 for tr in re.findall(r"<tr>(.*?)</tr>", table.group(1), re.S)]
        book = client.get("/assessment.xlsx", params={"period": "2026-10", "by": by})
        assert book.status_code == 200 and book.headers["content-type"].startswith("application/vnd.openxml")
        sheet = load_workbook(io.BytesIO(book.content))["考核统计"]
        width = len(shown[0])
        read = [["" if v is None else str(v) for v in row[:width]] for row in sheet.iter_rows(min_row=2, values_only=True)]
        assert read == shown
        assert sheet._charts, "the workbook carries a chart of the scores"
    printed = client.get("/assessment/print", params={"period": "2026-10", "by": "village"})
    assert printed.status_code == 200 and "Ctrl+P" in printed.text and 'class="mainnav"' not in printed.text
    assert client.get("/assessment", params={"period": "十月"}).status_code == 400


def test_an_invalidated_bad_review_counts_nowhere_and_the_score_follows_the_countys_weights(town: TownApp) -> None:
    promised, _ = build_the_two_months(town)
    evaluations = Evaluations(town.handling)
    assessment = Assessment(evaluations)
    period = parse_period("2026-10", dt.date(2026, 10, 8))
    before = assessment.report(period, "operator").rows[0]
    # on time 1/1 → 40, satisfaction 80 → 24, no 差评 → 10, nothing to close or call back → 10 + 10;
    # the 投诉 about the matter takes 5 off (004: 基本分 100, 扣分)
    assert before.label == "王芳" and before.complaints == 1 and before.score == pytest.approx(94.0 - 5)
    from shared.domain.evaluation import ScoreWeights
    evaluations.configure(weights=ScoreWeights(on_time=20, satisfaction=50, no_bad_reviews=10, bad_reviews_closed=10,
                                               follow_up_good=10, complaint_deduction=12))
    assert assessment.report(period, "operator").rows[0].score == pytest.approx(20 + 40 + 30 - 12)
    workbook = load_workbook(io.BytesIO(report_xlsx(assessment.report(period, "operator"))))
    assert [list(r) for r in workbook["考核权重"].iter_rows(min_row=2, values_only=True)][1] == ["群众满意度", 50]
    assert list(rows_as_table(assessment.report(period, "operator")))[1][0] == "王芳"
