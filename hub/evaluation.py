"""The county's own 督办 reaches the county's staff, not only a log (`docs/evaluation.md`).

The deadline watch fires SUPERVISE once per (matter, hop) on the county's own hop clock. Before this
the county only logged it; `CountyStaffSupervisionRecorder` keeps it as a notice for the county's
staff (the clock's responsible person first, every county 督查 too) on the `/staff-notices` page,
where it stays until someone reads it. Idempotent on the notification's key, so a retry records once.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import BigInteger, Column, Engine, Index, MetaData, String, Table, Text, insert, select, update
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from shared.clock import Clock, from_unix_ms, to_unix_ms
from shared.console import ConsoleSession, require_role
from shared.deadline_watch.notify import Notification
from shared.domain.evaluation import EvaluationError, Period, parse_period
from shared.domain.figures import bar_chart_svg
from shared.domain.handling import Role
from shared.wire.v1 import records_pb2

__all__ = ["metadata", "county_staff_notice", "CountyStaffSupervisionRecorder", "add_routes", "NOTICE_ROLES",
           "TownshipFigures", "township_comparison", "add_comparison_routes"]

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

NOTICE_ROLES = (Role.OPERATOR, Role.APPROVER, Role.DIRECTOR, Role.SUPERVISOR)


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


# ---------------------------------------------------------------- every township side by side


@dataclass
class TownshipFigures:
    """One township's timeliness over a period, per hop, as its signed status updates report it."""

    township_code: str
    township_name: str
    hop: str                  # "township" or "county"
    received: int = 0
    completed: int = 0
    on_time: int = 0
    overdue: int = 0
    hours: list[float] = field(default_factory=list)

    @property
    def on_time_rate_text(self) -> str:
        return f"{self.on_time / self.completed * 100:.1f}%" if self.completed else ""

    @property
    def average_hours_text(self) -> str:
        return f"{sum(self.hours) / len(self.hours):.1f}" if self.hours else ""


_HOP_OF_TIER = {records_pb2.TIER_TOWNSHIP: "township", records_pb2.TIER_COUNTY: "county"}
HOP_ZH = {"township": "乡镇办理", "county": "县级办理"}


def township_comparison(handling: Any, period: Period, names: dict[str, str], *, now: dt.datetime) -> list[TownshipFigures]:
    """Per township and hop (each on its own clock, as the township signed it): received, completed,
    on time, overdue (late when done, or open past its deadline at the period's end), average working
    hours. The townships' ratings stay at the townships (their evaluators are confidential there)."""
    calendar = handling.calendar
    start, end = period.start_at, period.end_at
    cut_ms = to_unix_ms(min(end, now))
    table: dict[tuple[str, str], TownshipFigures] = {}
    for t in handling.tracked():
        for h in t.hops:
            hop = _HOP_OF_TIER.get(int(h.get("tier", 0)))
            if hop is None or not h.get("started_at_ms"):
                continue
            key = (t.township_code, hop)
            row = table.setdefault(key, TownshipFigures(t.township_code, names.get(t.township_code) or "未登记名称的乡镇", hop))
            started, due, stopped = int(h["started_at_ms"]), int(h.get("due_at_ms") or 0), int(h.get("stopped_at_ms") or 0)
            if to_unix_ms(start) <= started < to_unix_ms(end):
                row.received += 1
            if stopped and to_unix_ms(start) <= stopped < to_unix_ms(end):
                row.completed += 1
                late = bool(due) and stopped > due
                row.on_time += not late
                row.overdue += late
                row.hours.append(calendar.office_time_between(from_unix_ms(started), from_unix_ms(stopped)).total_seconds() / 3600)
            elif (not stopped or stopped >= cut_ms) and started < cut_ms and due and due < cut_ms:
                row.overdue += 1
    return sorted(table.values(), key=lambda r: (r.hop != "township", r.township_name))


def add_comparison_routes(web: FastAPI, pages: Any) -> None:
    """`/township-assessment`: every township side by side for a month, quarter, year or day range."""

    @web.get("/township-assessment", response_class=HTMLResponse)
    def comparison(request: Request, period: str = "",
                   staff: ConsoleSession = Depends(require_role(*NOTICE_ROLES))) -> HTMLResponse:
        today = pages.app.handling.calendar.local_date(pages.now())
        error = None
        try:
            chosen = parse_period(period, today)
        except EvaluationError as exc:
            error, chosen = str(exc), parse_period("", today)
        rows = township_comparison(pages.app.handling, chosen, pages.township_names(), now=pages.now())
        chart = bar_chart_svg([(r.township_name, float(r.on_time_rate_text.rstrip("%") or 0)) for r in rows
                               if r.hop == "township"], title="乡镇按时办结率", unit="%")
        return pages.render(request, "township_assessment.html", {
            "title": "乡镇考核对比", "nav_here": "township-assessment", "rows": rows, "period": chosen, "hop_zh": HOP_ZH,
            "chart": chart, "error": error, "period_text": period or chosen.label_key},
            status_code=400 if error else 200)
