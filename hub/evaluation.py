"""The county's own 督办 reaches the county's staff, not only a log (`docs/evaluation.md`).

The deadline watch fires SUPERVISE once per (matter, hop) on the county's own hop clock. Before this
the county only logged it; `CountyStaffSupervisionRecorder` keeps it as a notice for the county's
staff (the clock's responsible person first, every county 督查 too) on the `/staff-notices` page,
where it stays until someone reads it. Idempotent on the notification's key, so a retry records once.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import urllib.parse
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Index,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from hub.store import township_figures
from shared.clock import Clock, from_unix_ms, to_unix_ms
from shared.console import ConsoleSession, require_role
from shared.deadline_watch.notify import Notification
from shared.domain.evaluation import (
    DEFAULT_FOLLOW_UP_PERCENT,
    DEFAULT_RECTIFY_WORKING_DAYS,
    EvaluationError,
    Period,
    ScoreInputs,
    ScoreWeights,
    assessment_score,
    check_county_values,
    parse_period,
    parse_weights,
)
from shared.domain.figures import bar_chart_svg, neutralise_formula
from shared.domain.handling import Role
from shared.wire.v1 import records_pb2

__all__ = ["metadata", "county_staff_notice", "township_evaluation_figures", "CountyStaffSupervisionRecorder", "add_routes",
           "NOTICE_ROLES", "TownshipFigures", "township_comparison", "add_comparison_routes", "keep_evaluation_figures",
           "CountySettings", "county_settings", "set_county_settings", "comparison_xlsx", "SETTINGS_META"]

log = logging.getLogger("hub.evaluation")

metadata = MetaData()

county_staff_notice = Table(
    "county_staff_notice", metadata,
    Column("notice_id", String(64), primary_key=True),
    Column("matter_id", String(64), nullable=False),
    Column("hop", String(16), nullable=False),
    Column("responsible", String(64), nullable=False, default=""),
    Column("message", Text, nullable=False),
    Column("issued_at_ms", BigInteger, nullable=False),
    Column("read_at_ms", BigInteger, nullable=True),
    Column("read_by", String(64), nullable=True),
    Index("ix_county_staff_notice_open", "read_at_ms", "issued_at_ms"),
)

# The 好差评 figures each township signs up per month (`EvaluationFigures`): the latest per township and
# month, the cells as received (per village and kind; counts only, no evaluator or matter).
township_evaluation_figures = Table(
    "township_evaluation_figures", metadata,
    Column("township_code", String(32), primary_key=True),
    Column("month", String(7), primary_key=True),
    Column("cells_json", Text, nullable=False),
    Column("computed_at_ms", BigInteger, nullable=False),
    Column("received_at_ms", BigInteger, nullable=False),
)

NOTICE_ROLES = (Role.OPERATOR, Role.APPROVER, Role.DIRECTOR, Role.SUPERVISOR)
SETTINGS_META = "assessment_settings"
_CELL_FIELDS = ("rated", "satisfaction_points", "agent_entered", "bad", "bad_closed", "followed_up", "follow_up_good",
                "complaints", "complaints_answered_late")


class CountyStaffSupervisionRecorder:
    """`shared.deadline_watch.notify.SupervisionPort` for the county: a 督办 becomes a staff notice."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock

    def record_supervision(self, notification: Notification) -> None:
        notice_id = hashlib.sha256(notification.idempotency_key.encode()).hexdigest()[:32]
        responsible = notification.recipient if notification.recipient not in ("", "office") else ""
        try:
            with self.engine.begin() as conn:
                if conn.execute(select(county_staff_notice.c.notice_id)
                                .where(county_staff_notice.c.notice_id == notice_id)).first():
                    return
                conn.execute(insert(county_staff_notice).values(
                    notice_id=notice_id, matter_id=notification.data.get("matter_id", ""),
                    hop=notification.data.get("hop", "")[:16], responsible=responsible[:64],
                    message=notification.text_zh, issued_at_ms=to_unix_ms(self.clock.now())))
        except IntegrityError:
            return   # recorded by a racing retry
        log.warning("county 督办 for matter %s recorded for staff %s", notification.data.get("matter_id", ""),
                    responsible or "(all)")

    def open_notices(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(county_staff_notice).where(county_staff_notice.c.read_at_ms.is_(None))
                                .order_by(county_staff_notice.c.issued_at_ms.desc()).limit(500)).all()
        return [dict(r._mapping, issued_at=from_unix_ms(int(r.issued_at_ms))) for r in rows]

    def mark_read(self, notice_id: str, *, by: str) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(update(county_staff_notice).where(
                county_staff_notice.c.notice_id == notice_id, county_staff_notice.c.read_at_ms.is_(None)).values(
                read_at_ms=to_unix_ms(self.clock.now()), read_by=by[:64])).rowcount == 1


def add_routes(web: FastAPI, pages: Any) -> None:
    """`/staff-notices`: the county's own 督办 for its staff, newest first, until read; and
    `/township-assessment` (`add_comparison_routes`)."""
    add_comparison_routes(web, pages)
    recorder = CountyStaffSupervisionRecorder(pages.app.store.engine, pages.app.clock)

    @web.get("/staff-notices", response_class=HTMLResponse)
    def staff_notices(request: Request, staff: ConsoleSession = Depends(require_role(*NOTICE_ROLES))) -> HTMLResponse:
        labels = pages.staff_labels()
        catalog = pages.app.handling.catalog
        rows = []
        for n in recorder.open_notices():
            rows.append({**n, "responsible_zh": pages.staff_label(n["responsible"], labels) if n["responsible"] else "县级经办人员",
                         "mine": n["responsible"] == staff.staff_id})
        rows.sort(key=lambda r: not r["mine"])
        return pages.render(request, "staff_notices.html", {"title": "县级督办提醒", "nav_here": "staff-notices",
                                                            "rows": rows, "catalog": catalog})

    @web.post("/staff-notices/{notice_id}/read")
    async def read(request: Request, notice_id: str,
                   staff: ConsoleSession = Depends(require_role(*NOTICE_ROLES))) -> Response:
        done = await run_in_threadpool(recorder.mark_read, notice_id, by=staff.staff_id)
        return pages.back("/staff-notices", "已阅" if done else "该提醒已由他人阅处")


# ---------------------------------------------------------------- what the townships send up


def keep_evaluation_figures(conn: Connection, township_code: str, body: records_pb2.EvaluationFigures, receipt_ms: int) -> None:
    """Keep one township's figures for one month (a later computation replaces an earlier one: a 差评
    rated in a month may be closed later). Raises `EvaluationError` on a malformed month."""
    month = body.month
    if len(month) != 7 or month[4] != "-" or not (month[:4] + month[5:]).isdigit() or not 1 <= int(month[5:]) <= 12:
        raise EvaluationError("乡镇上报的评价统计月份有误")
    if not township_code:
        raise EvaluationError("评价统计来自未登记乡镇代码的接入密钥")
    cells = [{"village_code": c.village_code[:32], "kind": int(c.kind), **{k: int(getattr(c, k)) for k in _CELL_FIELDS}}
             for c in body.cells]
    values = {"cells_json": json.dumps(cells, ensure_ascii=False), "computed_at_ms": int(body.computed_at_ms),
              "received_at_ms": receipt_ms}
    t = township_evaluation_figures
    held = conn.execute(select(t.c.computed_at_ms).where(t.c.township_code == township_code, t.c.month == month)).first()
    if held is None:
        conn.execute(insert(t).values(township_code=township_code, month=month, **values))
    elif int(held.computed_at_ms) <= int(body.computed_at_ms):
        conn.execute(update(t).where(t.c.township_code == township_code, t.c.month == month).values(**values))


# ---------------------------------------------------------------- the county's settings for every township


@dataclass(frozen=True)
class CountySettings:
    rectify_working_days: int = DEFAULT_RECTIFY_WORKING_DAYS
    weights: ScoreWeights = ScoreWeights()
    follow_up_percent: int = DEFAULT_FOLLOW_UP_PERCENT
    set_by: str = ""
    set_at_ms: int = 0

    def to_json(self) -> str:
        return json.dumps({"rectify_working_days": self.rectify_working_days, "weights": self.weights.as_dict(),
                           "follow_up_percent": self.follow_up_percent, "set_by": self.set_by,
                           "set_at_ms": self.set_at_ms}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> CountySettings:
        if not text:
            return cls()
        d = json.loads(text)
        return cls(int(d["rectify_working_days"]), ScoreWeights.from_dict(d["weights"]), int(d["follow_up_percent"]),
                   str(d.get("set_by", "")), int(d.get("set_at_ms", 0)))


def county_settings(store: Any) -> CountySettings:
    return CountySettings.from_json(store.get_meta(SETTINGS_META))


def set_county_settings(app: Any, *, by: str, rectify_working_days: int | None = None, weights: ScoreWeights | None = None,
                        follow_up_percent: int | None = None) -> CountySettings:
    """Check and keep the county's 整改 deadline, score weights and 回访 sample rate, and (signed, in the
    same transaction) send them down to every township, which uses them from then on
    (`docs/evaluation.md`). Raises `EvaluationError` in Chinese before anything is kept or sent."""
    if not by.strip():
        raise EvaluationError("请写明设置人")
    current = county_settings(app.store)
    now_ms = to_unix_ms(app.clock.now())
    days = current.rectify_working_days if rectify_working_days is None else rectify_working_days
    percent = current.follow_up_percent if follow_up_percent is None else follow_up_percent
    check_county_values(days, percent)
    settings = CountySettings(days, weights or current.weights, percent, by.strip()[:64], now_ms)
    record = records_pb2.Record()
    body = record.assessment_settings
    body.rectify_working_days, body.follow_up_sample_percent = days, percent
    body.complaint_deduction = settings.weights.complaint_deduction
    for k in ScoreWeights.PARTS:
        setattr(body.weights, k, getattr(settings.weights, k))
    body.set_by, body.set_at_ms = settings.set_by, now_ms
    with app.store.engine.begin() as conn:
        app.store.lock_own_tip(conn, app.signer.key_id)
        app.store.set_meta_in(conn, SETTINGS_META, settings.to_json())
        app.store.publish_in(conn, app.signer, record, ["*"], now_ms=now_ms)
    log.info("assessment settings saved by %s and sent to every township", settings.set_by)
    return settings


# ---------------------------------------------------------------- every township side by side


@dataclass
class TownshipFigures:
    """One township's timeliness over a period, per hop, as its signed status updates report it; on
    the township hop also its 好差评 figures as it signed them up per month, and the 百分制 score under
    the county's weights."""

    township_code: str
    township_name: str
    hop: str                  # "township" or "county"
    received: int = 0
    completed: int = 0
    on_time: int = 0
    overdue: int = 0
    office_ms: int = 0        # office time of the hops completed in the period, summed
    rated: int = 0
    satisfaction_points: int = 0
    agent_entered: int = 0
    bad: int = 0
    bad_closed: int = 0
    followed_up: int = 0
    follow_up_good: int = 0
    complaints: int = 0
    complaints_answered_late: int = 0
    has_evaluation: bool = False
    score: float | None = None

    @property
    def on_time_rate_text(self) -> str:
        return f"{self.on_time / self.completed * 100:.1f}%" if self.completed else ""

    @property
    def average_hours_text(self) -> str:
        return f"{self.office_ms / 3_600_000 / self.completed:.1f}" if self.completed else ""

    @property
    def satisfaction(self) -> float | None:
        return self.satisfaction_points / self.rated if self.rated else None

    @property
    def satisfaction_text(self) -> str:
        return "" if self.satisfaction is None else f"{self.satisfaction:.1f}"

    @property
    def bad_rate_text(self) -> str:
        return f"{self.bad / self.rated * 100:.1f}%" if self.rated else ""

    @property
    def closure_text(self) -> str:
        return f"{self.bad_closed / self.bad * 100:.1f}%" if self.bad else ""

    @property
    def follow_up_text(self) -> str:
        return f"{self.follow_up_good}/{self.followed_up}" if self.followed_up else ""

    @property
    def score_text(self) -> str:
        return "" if self.score is None else f"{self.score:.1f}"

    def add_cell(self, cell: dict[str, int]) -> None:
        self.has_evaluation = True
        for k in _CELL_FIELDS:
            setattr(self, k, getattr(self, k) + int(cell.get(k, 0)))

    def score_with(self, weights: ScoreWeights) -> float:
        return assessment_score(ScoreInputs(
            self.on_time / self.completed if self.completed else None, self.satisfaction,
            self.bad / self.rated if self.rated else None, self.bad_closed / self.bad if self.bad else None,
            self.follow_up_good / self.followed_up if self.followed_up else None, self.complaints), weights)


# (header, attribute) in the order the page and the workbook show them.
COMPARISON_COLUMNS: tuple[tuple[str, str], ...] = (
    ("受理件数", "received"), ("办结件数", "completed"), ("按时办结", "on_time"), ("按时办结率", "on_time_rate_text"),
    ("超期件数", "overdue"), ("平均用时（工作小时）", "average_hours_text"), ("群众评价件数", "rated"),
    ("满意度（百分制）", "satisfaction_text"), ("代为录入件数", "agent_entered"), ("差评件数", "bad"),
    ("差评率", "bad_rate_text"), ("差评办结率", "closure_text"), ("回访满意/回访件数", "follow_up_text"),
    ("投诉件数", "complaints"), ("投诉超期答复", "complaints_answered_late"), ("考核得分", "score_text"),
)

HOP_ZH = {"township": "乡镇办理", "county": "县级办理"}


def _scan_timeliness(table: dict[tuple[str, str], TownshipFigures], handling: Any, period: Period,
                     names: dict[str, str], *, now: dt.datetime) -> None:
    """The timeliness figures by a pass over every tracked matter's hops (the reference the kept counts
    are checked against, and the answer until they are built)."""
    calendar = handling.calendar
    cut_ms = to_unix_ms(min(period.end_at, now))
    start_ms, end_ms = to_unix_ms(period.start_at), to_unix_ms(period.end_at)
    for code, hops in handling.tracked_hops():
        for h in hops:
            hop = township_figures.HOP_OF_TIER.get(int(h.get("tier", 0)))
            if hop is None or not h.get("started_at_ms"):
                continue
            key = (code, hop)
            row = table.get(key) or table.setdefault(
                key, TownshipFigures(code, names.get(code) or "未登记名称的乡镇", hop))
            started, due, stopped = int(h["started_at_ms"]), int(h.get("due_at_ms") or 0), int(h.get("stopped_at_ms") or 0)
            if start_ms <= started < end_ms:
                row.received += 1
            if stopped and start_ms <= stopped < end_ms:
                row.completed += 1
                late = bool(due) and stopped > due
                row.on_time += not late
                row.overdue += late
                row.office_ms += calendar.office_time_between(from_unix_ms(started), from_unix_ms(stopped)) // dt.timedelta(milliseconds=1)
            elif (not stopped or stopped >= cut_ms) and started < cut_ms and due and due < cut_ms:
                row.overdue += 1


def township_comparison(handling: Any, period: Period, names: dict[str, str], *, now: dt.datetime,
                        engine: Engine | None = None, weights: ScoreWeights | None = None) -> list[TownshipFigures]:
    """Per township and hop (each on its own clock, as the township signed it): received, completed,
    on time, overdue (late when done, or open past its deadline at the period's end), average working
    hours; on the township hop, with `engine`, the 好差评 figures the township signed up for the
    period's months and the 百分制 score under the county's `weights`. Evaluators stay at the township:
    only counts come up. With `engine`, the timeliness figures are read from the counts kept as matters
    change (`hub/store/township_figures.py`, docs/performance.md) once they are built with the county's
    calendar; before that (and without `engine`) they come from a pass over every tracked matter."""
    calendar = handling.calendar
    table: dict[tuple[str, str], TownshipFigures] = {}
    kept = None
    if engine is not None:
        with engine.connect() as conn:
            if township_figures.is_built(conn, calendar):
                kept = township_figures.figures(conn, period, now)
    if kept is not None:
        for (code, hop), f in kept.items():
            table[(code, hop)] = TownshipFigures(
                code, names.get(code) or "未登记名称的乡镇", hop, received=f.received, completed=f.completed,
                on_time=f.on_time, overdue=f.overdue, office_ms=f.office_ms)
    else:
        _scan_timeliness(table, handling, period, names, now=now)
    months = township_figures.months_of(period)
    if engine is not None and months:
        t = township_evaluation_figures
        with engine.connect() as conn:
            held = conn.execute(select(t.c.township_code, t.c.cells_json).where(t.c.month.in_(months))).all()
        for code, cells_json in held:
            row = table.setdefault((code, "township"), TownshipFigures(code, names.get(code) or "未登记名称的乡镇", "township"))
            for cell in json.loads(cells_json):
                row.add_cell(cell)
    if weights is not None and months:
        for row in table.values():
            if row.hop == "township":
                row.score = row.score_with(weights)
    return sorted(table.values(), key=lambda r: (r.hop != "township", r.township_name))


def comparison_xlsx(rows: list[TownshipFigures], period: Period, weights: ScoreWeights) -> bytes:
    """The comparison as an .xlsx workbook (openpyxl): the cells the page shows, a chart of the scores
    and the weights used."""
    from openpyxl import Workbook
    from openpyxl.chart import BarChart, Reference
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    ws.title = "乡镇考核对比"
    ws.append([f"{period.label}乡镇考核对比"])
    ws["A1"].font = Font(bold=True, size=14)
    ws.append(["乡镇", "环节", *[h for h, _ in COMPARISON_COLUMNS]])
    for cell in ws[2]:
        cell.font = Font(bold=True)
    for r in rows:
        ws.append([neutralise_formula(r.township_name), HOP_ZH[r.hop], *[neutralise_formula(getattr(r, a)) for _, a in COMPARISON_COLUMNS]])
    ws.column_dimensions["A"].width = 20
    scored = [(i, r) for i, r in enumerate(rows, start=3) if r.score is not None]
    if scored:
        col = len(COMPARISON_COLUMNS) + 4
        ws.cell(row=2, column=col, value="得分（图表用）")
        for i, r in scored:
            ws.cell(row=i, column=col, value=r.score)
        ws.column_dimensions[ws.cell(row=2, column=col).column_letter].hidden = True
        chart = BarChart()
        chart.type, chart.title, chart.y_axis.title = "bar", "乡镇考核得分", "分"
        chart.add_data(Reference(ws, min_col=col, min_row=2, max_row=2 + len(rows)), titles_from_data=True)
        chart.set_categories(Reference(ws, min_col=1, min_row=3, max_row=2 + len(rows)))
        ws.add_chart(chart, f"A{len(rows) + 5}")
    sheet = wb.create_sheet("考核权重")
    sheet.append(["项目", "分值"])
    for k, v in weights.as_dict().items():
        sheet.append([WEIGHT_NAMES_ZH.get(k, k), v])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


WEIGHT_NAMES_ZH = {"on_time": "按时办结", "satisfaction": "群众满意度", "no_bad_reviews": "无差评",
                   "bad_reviews_closed": "差评整改办结", "follow_up_good": "回访满意", "complaint_deduction": "每件投诉扣分"}


def add_comparison_routes(web: FastAPI, pages: Any) -> None:
    """`/township-assessment` (and `.xlsx`): every township side by side for a month, quarter, year or day range."""

    def rows_for(period: str) -> tuple[list[TownshipFigures], Period, str | None, ScoreWeights]:
        today = pages.app.handling.calendar.local_date(pages.now())
        error = None
        try:
            chosen = parse_period(period, today)
        except EvaluationError as exc:
            error, chosen = str(exc), parse_period("", today)
        weights = county_settings(pages.app.store).weights
        rows = township_comparison(pages.app.handling, chosen, pages.township_names(), now=pages.now(),
                                   engine=pages.app.store.engine, weights=weights)
        return rows, chosen, error, weights

    @web.get("/township-assessment", response_class=HTMLResponse)
    def comparison(request: Request, period: str = "",
                   staff: ConsoleSession = Depends(require_role(*NOTICE_ROLES))) -> HTMLResponse:
        rows, chosen, error, weights = rows_for(period)
        chart = bar_chart_svg([(r.township_name, r.score or 0.0) for r in rows if r.hop == "township"],
                              title="乡镇考核得分", unit="分")
        settings = county_settings(pages.app.store)
        return pages.render(request, "township_assessment.html", {
            "title": "乡镇考核对比", "nav_here": "township-assessment", "rows": rows, "period": chosen, "hop_zh": HOP_ZH,
            "chart": chart, "error": error, "period_text": period or chosen.label_key, "columns": COMPARISON_COLUMNS,
            "by_month": township_figures.months_of(chosen) is not None, "settings": settings, "weight_names": WEIGHT_NAMES_ZH,
            "may_set": staff.role is Role.DIRECTOR},
            status_code=400 if error else 200)

    @web.post("/township-assessment/settings")
    async def save_settings(request: Request, staff: ConsoleSession = Depends(require_role(Role.DIRECTOR))) -> Response:
        """The director sets the county's assessment settings here as with `county-hub evaluation settings`."""
        form = await request.form()

        def number(name: str) -> int:
            text = str(form.get(name, "")).strip()
            if not text.isdigit():
                raise EvaluationError("整改期限、抽样比例和各项分值请填写整数")
            return int(text)

        try:
            weights = ScoreWeights(**{k: number(k) for k in (*ScoreWeights.PARTS, "complaint_deduction")})
            await run_in_threadpool(set_county_settings, pages.app, by=staff.display_name or staff.staff_id,
                                    rectify_working_days=number("rectify_working_days"), weights=weights,
                                    follow_up_percent=number("follow_up_percent"))
        except EvaluationError as exc:
            return pages.back("/township-assessment", f"考核设置未保存：{exc}")
        return pages.back("/township-assessment", "考核设置已保存并下发各乡镇，各乡镇下次与县级同步时生效")

    @web.get("/township-assessment.xlsx")
    def comparison_workbook(period: str = "", staff: ConsoleSession = Depends(require_role(*NOTICE_ROLES))) -> Response:
        rows, chosen, error, weights = rows_for(period)
        if error:
            return Response(error, status_code=400, media_type="text/plain; charset=utf-8")
        name = urllib.parse.quote(f"乡镇考核对比-{chosen.label_key}.xlsx")
        return Response(comparison_xlsx(rows, chosen, weights),
                        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{name}"})


def add_evaluation_commands(subparsers: Any, add_home: Any, open_app: Any) -> None:
    """`county-hub evaluation settings`: the county's 整改 deadline, score weights and 回访 sample rate
    for every township (shown when given nothing to change)."""
    from shared import cli_common

    group = cli_common.add_command(subparsers, "evaluation", "好差评考核：设置各乡镇统一的整改期限、考核权重和回访抽样比例")
    sub = group.add_subparsers(dest="evaluation_command", metavar="<操作>", required=True)
    settings = cli_common.add_command(sub, "settings", "查看或设置并下发各乡镇：差评整改期限、考核权重、每件投诉扣分、回访抽样比例")
    add_home(settings)
    cli_common.add_passphrase_option(settings)
    settings.add_argument("--rectify-days", type=int, default=None, metavar="天数", help="差评整改期限，1 到 30 个工作日")
    settings.add_argument("--weights", default=None, metavar="权重",
                          help="如 on_time=40,satisfaction=30,no_bad_reviews=10,bad_reviews_closed=10,follow_up_good=10,"
                               "complaint_deduction=5（前五项合计 100 分）")
    settings.add_argument("--follow-up-percent", type=int, default=None, metavar="比例", help="每周回访随机抽样比例，1 到 100")
    settings.add_argument("--by", default="", metavar="设置人", help="设置人（记入审计并随设置下发）")

    def run(args: Any) -> int:
        weights = parse_weights(args.weights) if args.weights else None
        changed = args.rectify_days is not None or weights is not None or args.follow_up_percent is not None
        if changed and not args.by.strip():
            raise EvaluationError("修改设置时请用 --by 写明设置人")
        app = open_app(args)
        try:
            current = (set_county_settings(app, by=args.by, rectify_working_days=args.rectify_days, weights=weights,
                                           follow_up_percent=args.follow_up_percent)
                       if changed else county_settings(app.store))
        finally:
            app.close()
        w = current.weights
        if changed:
            print("已保存并下发各乡镇（各乡镇下次与县级同步时生效）。")
        print(f"差评整改期限：{current.rectify_working_days} 个工作日")
        print(f"回访抽样比例：{current.follow_up_percent}%")
        print(f"考核权重：按时办结 {w.on_time}，群众满意度 {w.satisfaction}，无差评 {w.no_bad_reviews}，"
              f"差评整改办结 {w.bad_reviews_closed}，回访满意 {w.follow_up_good}；每件投诉扣 {w.complaint_deduction} 分")
        print(f"设置人：{current.set_by or '尚未设置（各乡镇暂用本乡镇的设置）'}")
        return 0

    settings.set_defaults(handler=run)
