"""Assessment reports (004 评比办法; 000 月报) for any period — a month, a quarter, a year or a range
of days — per village, agent, operator, matter type and kind, and per hop on each hop's own clock:
received, completed, on time, overdue, average working hours, satisfaction (the villager's own
ratings; 代为录入 apart), 差评 rate and closure, 回访 results, complaints registered at the front desk
about the staff member or the matter, and the 百分制 score under the county's weights. Exported as
.xlsx (openpyxl, with a chart) and shown as a printable page.
See `docs/evaluation.md`.
"""
from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from shared.clock import from_unix_ms, to_unix_ms
from shared.deadline_watch.store import hop_deadline
from shared.domain.catalog import MatterKind
from shared.domain.deadlines import HopClock
from shared.domain.evaluation import (
    Level,
    Period,
    PeriodError,
    RectificationState,
    ScoreInputs,
    assessment_score,
    parse_period,
)
from shared.domain.front_desk import CaseKind
from town_center.evaluation import Evaluations
from town_center.front_desk.tables import desk_case
from town_center.handling import ACCEPTANCE_HOP, COUNTY_HOP, DELIVERY_HOP, TOWNSHIP_HOP, VILLAGE_HOP
from town_center.store.evaluation_tables import evaluation, follow_up_finding
from town_center.store.matter_tables import town_matter
from town_center.store.tables import agent_key

__all__ = ["Period", "PeriodError", "parse_period", "Assessment", "AssessmentRow", "AssessmentReport", "DIMENSIONS", "HOPS", "COLUMNS",
           "report_xlsx"]

BEIJING = dt.timezone(dt.timedelta(hours=8))
DIMENSIONS = {"village": "按村", "agent": "按代办员", "operator": "按窗口工作人员", "catalog": "按事项", "kind": "按办件类型",
              "hop": "按环节"}
HOPS = {VILLAGE_HOP: "村级报送", ACCEPTANCE_HOP: "乡镇受理（一次性告知）", TOWNSHIP_HOP: "乡镇办理",
        COUNTY_HOP: "县级办理", DELIVERY_HOP: "结果送达"}
# (header, attribute or callable) in the order the page, the print view and the workbook show them.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("受理件数", "received"), ("办结件数", "completed"), ("按时办结", "on_time"), ("按时办结率", "on_time_rate_text"),
    ("超期件数", "overdue"), ("平均用时（工作小时）", "average_hours_text"), ("群众评价件数", "rated"),
    ("满意度（百分制）", "satisfaction_text"), ("代为录入件数", "agent_entered"), ("差评件数", "bad"),
    ("差评率", "bad_rate_text"), ("差评已办结", "bad_closed"), ("回访件数", "followed_up"), ("回访满意", "follow_up_good"),
    ("投诉件数", "complaints"), ("考核得分", "score_text"),
)


@dataclass
class AssessmentRow:
    key: str
    label: str
    received: int = 0
    completed: int = 0
    on_time: int = 0
    overdue: int = 0
    rated: int = 0
    agent_entered: int = 0
    bad: int = 0
    bad_closed: int = 0
    followed_up: int = 0
    follow_up_good: int = 0
    complaints: int = 0
    score: float | None = None
    _hours: list[float] = field(default_factory=list, repr=False)
    _scores: list[int] = field(default_factory=list, repr=False)

    @property
    def on_time_rate(self) -> float | None:
        return self.on_time / self.completed if self.completed else None

    @property
    def average_hours(self) -> float | None:
        return sum(self._hours) / len(self._hours) if self._hours else None

    @property
    def satisfaction(self) -> float | None:
        return sum(self._scores) / len(self._scores) if self._scores else None

    @property
    def bad_rate(self) -> float | None:
        return self.bad / self.rated if self.rated else None

    @property
    def closure(self) -> float | None:
        return self.bad_closed / self.bad if self.bad else None

    @property
    def follow_up_good_rate(self) -> float | None:
        return self.follow_up_good / self.followed_up if self.followed_up else None

    # What the page and the workbook print: one rounding for both.
    @property
    def on_time_rate_text(self) -> str:
        return "" if self.on_time_rate is None else f"{self.on_time_rate * 100:.1f}%"

    @property
    def average_hours_text(self) -> str:
        return "" if self.average_hours is None else f"{self.average_hours:.1f}"

    @property
    def satisfaction_text(self) -> str:
        return "" if self.satisfaction is None else f"{self.satisfaction:.1f}"

    @property
    def bad_rate_text(self) -> str:
        return "" if self.bad_rate is None else f"{self.bad_rate * 100:.1f}%"

    @property
    def score_text(self) -> str:
        return "" if self.score is None else f"{self.score:.1f}"

    def cell(self, attribute: str) -> int | str:
        value: int | str = getattr(self, attribute)
        return value


@dataclass(frozen=True)
class AssessmentReport:
    period: Period
    by: str
    rows: list[AssessmentRow]
    weights: dict[str, int]

    @property
    def title(self) -> str:
        return f"{self.period.label}考核统计（{DIMENSIONS[self.by]}）"


@dataclass(frozen=True)
class _Matter:
    matter_id: str
    keys: dict[str, str]          # dimension -> group key
    received_at: dt.datetime
    completed_at: dt.datetime | None
    due_at: dt.datetime | None


class Assessment:
    """Reports over the township's store, on its calendar, under the county's weights."""

    def __init__(self, evaluations: Evaluations) -> None:
        self.evaluations = evaluations
        self.handling = evaluations.handling
        self.store = evaluations.store

    def report(self, period: Period, by: str, *, now: dt.datetime | None = None) -> AssessmentReport:
        if by not in DIMENSIONS:
            by = "village"
        now = now or self.handling.clock.now()
        # An open matter counts as overdue when its deadline passed before the period's end (or now).
        cut = min(period.end_at, now)
        start_ms, end_ms = to_unix_ms(period.start_at), to_unix_ms(period.end_at)
        self.evaluations.import_agent_entered()
        calendar = self.handling.calendar
        labels = self._labels(by)
        rows: dict[str, AssessmentRow] = {}

        def row(key: str) -> AssessmentRow:
            if key not in rows:
                rows[key] = AssessmentRow(key, labels(key))
            return rows[key]

        with self.store.engine.connect() as conn:
            matters = {r.matter_id: self._matter(r) for r in conn.execute(select(
                town_matter.c.matter_id, town_matter.c.village_code, town_matter.c.author_key_id, town_matter.c.owner,
                town_matter.c.catalog_code, town_matter.c.kind, town_matter.c.received_at_ms,
                town_matter.c.completed_at_ms, town_matter.c.due_at_ms))}
            clocks = conn.execute(select(hop_deadline.c.matter_id, hop_deadline.c.hop, hop_deadline.c.clock_json)
                                  .where(hop_deadline.c.hop.in_(list(HOPS)))).all() if by == "hop" else []
            evals = conn.execute(select(evaluation).where(evaluation.c.rated_at_ms >= start_ms,
                                                          evaluation.c.rated_at_ms < end_ms)).all()
            finds = conn.execute(select(follow_up_finding).where(follow_up_finding.c.recorded_at_ms >= start_ms,
                                                                 follow_up_finding.c.recorded_at_ms < end_ms)).all()
            complaints = conn.execute(select(desk_case.c.linked_matter_id, desk_case.c.linked_staff_id).where(
                desk_case.c.kind == CaseKind.COMPLAINT.value, desk_case.c.received_at_ms >= start_ms,
                desk_case.c.received_at_ms < end_ms)).all()

        def in_period(at: dt.datetime | None) -> bool:
            return at is not None and period.start_at <= at < period.end_at

        if by == "hop":
            for r in clocks:
                clock = HopClock.from_json_dict(json.loads(r.clock_json))
                if clock.start_at is None:
                    continue
                self._count(row(r.hop), clock.start_at, clock.stop_at, clock.due_at(calendar), in_period, cut, calendar)
        else:
            for m in matters.values():
                self._count(row(m.keys[by]), m.received_at, m.completed_at, m.due_at, in_period, cut, calendar)

        def key_of(matter_id: str) -> list[str]:
            if by == "hop":
                return [TOWNSHIP_HOP]    # a rating and a 回访 judge the township's service
            m = matters.get(matter_id)
            return [m.keys[by]] if m is not None else []

        for e in evals:
            for k in key_of(e.matter_id):
                g = row(k)
                if not e.by_villager:
                    g.agent_entered += 1
                    continue
                if not e.valid:
                    continue   # 复核 found it malicious: it counts nowhere
                level = Level(int(e.level))
                g.rated += 1
                g._scores.append(level.score)
                if level.is_bad:
                    g.bad += 1
                    g.bad_closed += e.rect_state == RectificationState.CLOSED.value
        for f in finds:
            for k in key_of(f.matter_id):
                g = row(k)
                g.followed_up += 1
                g.follow_up_good += bool(f.reached and f.attitude_ok and f.efficiency_ok and f.by_the_rules_ok
                                         and f.integrity_ok and 0 < int(f.satisfaction) <= 3)
        for c in complaints:
            # 投诉来访登记表 names whom or what it is about: the staff member, else the matter.
            if by == "operator" and c.linked_staff_id:
                row(c.linked_staff_id).complaints += 1
            elif c.linked_matter_id:
                for k in key_of(c.linked_matter_id):
                    row(k).complaints += 1
        weights = self.evaluations.settings().weights
        for g in rows.values():
            g.score = assessment_score(ScoreInputs(g.on_time_rate, g.satisfaction, g.bad_rate, g.closure,
                                                   g.follow_up_good_rate, g.complaints), weights)
        order = list(HOPS) if by == "hop" else sorted(rows, key=lambda k: rows[k].label)
        return AssessmentReport(period, by, [rows[k] for k in order if k in rows], weights.as_dict())

    @staticmethod
    def _count(g: AssessmentRow, received: dt.datetime, completed: dt.datetime | None, due: dt.datetime | None,
               in_period: Callable[[dt.datetime | None], bool], cut: dt.datetime, calendar: Any) -> None:
        if in_period(received):
            g.received += 1
        if in_period(completed):
            assert completed is not None
            g.completed += 1
            late = due is not None and completed > due
            g.on_time += not late
            g.overdue += late
            g._hours.append(calendar.office_time_between(received, completed).total_seconds() / 3600)
        elif completed is None or completed >= cut:
            # Still open at the period's end: overdue when its deadline passed inside or before the period.
            if received < cut and due is not None and due < cut:
                g.overdue += 1

    def _matter(self, r: Any) -> _Matter:
        kind = r.kind or ""
        return _Matter(r.matter_id, {"village": r.village_code, "agent": r.author_key_id, "operator": r.owner or "",
                                     "catalog": r.catalog_code, "kind": kind},
                       from_unix_ms(int(r.received_at_ms)),
                       from_unix_ms(int(r.completed_at_ms)) if r.completed_at_ms else None,
                       from_unix_ms(int(r.due_at_ms)) if r.due_at_ms else None)

    def _labels(self, by: str) -> Callable[[str], str]:
        if by == "agent":
            with self.store.engine.connect() as conn:
                names = {k: f"代办员{n}（{v}）" for k, n, v in conn.execute(
                    select(agent_key.c.key_id, agent_key.c.holder_name, agent_key.c.village_code))}
            return lambda k: names.get(k, "（未登记的设备）")
        if by == "operator":
            staff = self.handling.staff
            return lambda k: ((staff.active_name(k) if staff is not None and k else None)
                              or ("（未分类）" if not k else "（已停用的工作人员）"))
        if by == "catalog":
            catalog = self.handling.catalog
            return lambda k: catalog.item(k).name if k in catalog else "（目录中已无此事项）"
        if by == "kind":
            return lambda k: MatterKind(k).label_zh if k else "待分类"
        if by == "hop":
            return lambda k: HOPS.get(k, "其他环节")
        return lambda k: k or "—"


def _safe(cell: object) -> object:
    """A text cell a spreadsheet would run as a formula is written as text (CSV/xlsx injection)."""
    if isinstance(cell, str) and cell.startswith(("=", "+", "-", "@", "\t", "\r")):
        return "'" + cell
    return cell


def report_xlsx(report: AssessmentReport, *, township_name: str = "") -> bytes:
    """The report as an .xlsx workbook: the same cells the page shows, a bar chart of the scores and a
    sheet with the weights used."""
    from openpyxl import Workbook
    from openpyxl.chart import BarChart, Reference
    from openpyxl.styles import Alignment, Font

    wb = Workbook()
    ws = wb.active
    ws.title = "考核统计"
    ws.append([_safe(f"{township_name}{report.title}")])
    ws["A1"].font = Font(bold=True, size=14)
    header = ["对象", *[h for h, _ in COLUMNS]]
    ws.append(header)
    for cell in ws[2]:
        cell.font = Font(bold=True)
        cell.alignment = Alignment(wrap_text=True, vertical="center")
    for r in report.rows:
        ws.append([_safe(r.label), *[_safe(r.cell(a)) for _, a in COLUMNS]])
    ws.column_dimensions["A"].width = 28
    for letter in "BCDEFGHIJKLMNOP":
        ws.column_dimensions[letter].width = 12
    if report.rows:
        # The score is text on the sheet (as on the page); the chart reads a hidden numeric copy.
        score_col = len(header) + 2
        ws.cell(row=2, column=score_col, value="得分（图表用）")
        for i, r in enumerate(report.rows, start=3):
            ws.cell(row=i, column=score_col, value=r.score)
        ws.column_dimensions[ws.cell(row=2, column=score_col).column_letter].hidden = True
        chart = BarChart()
        chart.type = "bar"
        chart.title = "考核得分"
        chart.y_axis.title = "分"
        data = Reference(ws, min_col=score_col, min_row=2, max_row=2 + len(report.rows))
        cats = Reference(ws, min_col=1, min_row=3, max_row=2 + len(report.rows))
        chart.add_data(data, titles_from_data=True)
        chart.set_categories(cats)
        chart.height, chart.width = 2 + 0.8 * len(report.rows), 18
        ws.add_chart(chart, f"A{len(report.rows) + 5}")
    weights = wb.create_sheet("考核权重")
    weights.append(["项目", "分值"])
    names = {"on_time": "按时办结", "satisfaction": "群众满意度", "no_bad_reviews": "无差评",
             "bad_reviews_closed": "差评整改办结", "follow_up_good": "回访满意", "complaint_deduction": "每件投诉扣分"}
    for k, v in report.weights.items():
        weights.append([names.get(k, k), v])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def rows_as_table(report: AssessmentReport) -> Iterable[list[object]]:
    """Header and rows as the page prints them (the test reads the workbook back against this)."""
    yield ["对象", *[h for h, _ in COLUMNS]]
    for r in report.rows:
        yield [r.label, *[r.cell(a) for _, a in COLUMNS]]
