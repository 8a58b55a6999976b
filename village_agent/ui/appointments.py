"""预约 (`/appointments`): booking a visit or a service-room slot, recording the visit, and marking a
missed appointment as forfeited only with the failed contact attempt (预约服务制度 第七条)."""
from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from village_agent import domain
from village_agent.domain import AppointmentStatus
from village_agent.errors import FieldProblem, FormError, UnknownMatterError
from village_agent.services import PLACES, SHANGHAI
from village_agent.ui.pages import Pages, errors_by_field

__all__ = ["router"]

PLACE_ZH = {"service_room": "村便民服务室", "applicant_home": "申请人家中", "township_center": "乡镇便民服务中心"}
PLACE_ZH_BY_ENUM = {PLACES[k]: v for k, v in PLACE_ZH.items()}


def router(pages: Pages) -> APIRouter:
    service = pages.service
    routes = APIRouter()

    @routes.get("/appointments", response_class=HTMLResponse)
    async def appointments(request: Request, matter_id: str = "") -> Response:
        # Opened from a matter page or a forfeited row ("改约"): the matter is filled in already, by its lookup code.
        prefill = {}
        if matter_id and service.store.has_matter(matter_id):
            prefill = {"matter": service.store.lookup_code_of(matter_id) or ""}
        return _render_appointments(request, values=prefill, problems=[])

    def _render_appointments(request: Request, *, values: dict[str, str], problems: list[FieldProblem],
                             status_code: int = 200, row_values: dict[str, str] | None = None,
                             row_problems: list[FieldProblem] | None = None, row_id: str = "") -> HTMLResponse:
        now = pages.now_ms()
        rows = []
        for row in service.store.appointments():
            status = AppointmentStatus(row.status)
            late = domain.is_late(row.scheduled_at_ms, now)
            rows.append({"id": row.appointment_id, "at": row.scheduled_at_ms, "place": PLACE_ZH_BY_ENUM.get(row.place, "其他"),
                         "purpose": row.purpose, "status": status, "status_zh": status.label_zh,
                         "matter_id": row.matter_id or "", "late": late,
                         "overdue": status is AppointmentStatus.SCHEDULED and late,
                         "matter_code": service.store.lookup_code_of(row.matter_id) if row.matter_id else ""})
        return pages.render(request, "appointments.html", status_code=status_code, rows=rows, places=PLACE_ZH,
                            values=values, errors=errors_by_field(problems), problems=problems,
                            contact_methods=domain.CONTACT_METHODS,
                            row_id=row_id, row_values=row_values or {}, row_problems=row_problems or [],
                            now_local=dt.datetime.fromtimestamp(now / 1000, SHANGHAI).strftime("%Y-%m-%d %H:%M"),
                            overdue_count=sum(1 for r in rows if r["overdue"]),
                            rebook_count=sum(1 for r in rows if r["status"] is AppointmentStatus.FORFEITED))

    @routes.post("/appointments")
    async def make_appointment(request: Request) -> Response:
        form = await pages.read_form(request)
        values = {k: str(form.get(k, "")) for k in ("scheduled_at", "place", "purpose", "matter", "place_detail")}
        try:
            try:
                at = dt.datetime.fromisoformat(values["scheduled_at"].strip())
            except ValueError:
                raise FormError([FieldProblem("scheduled_at", "预约时间", "请选择预约日期和时间")]) from None
            at = at if at.tzinfo else at.replace(tzinfo=SHANGHAI)
            matter_id = ""
            if values["matter"].strip():
                try:
                    matter_id = service.resolve_matter(values["matter"][:40])
                except UnknownMatterError:
                    raise FormError([FieldProblem("matter", "相关事项", "本机没有这个查询码的事项，请核对回执上的查询码")]) from None
            service.make_appointment(scheduled_at=at, place=values["place"], purpose=values["purpose"],
                                     matter_id=matter_id, place_detail=values["place_detail"])
        except FormError as exc:
            return _render_appointments(request, values=values, problems=exc.problems, status_code=422)
        return RedirectResponse("/appointments?done=appointment", status_code=303)

    @routes.post("/appointments/{appointment_id}/forfeit")
    async def forfeit(request: Request, appointment_id: str) -> Response:
        """预约服务制度 第七条: forfeited only with the failed contact attempt (when, how, outcome)."""
        form = await pages.read_form(request)
        values = {k: str(form.get(k, ""))[:200] for k in ("contact_at", "method", "outcome")}
        service.store.appointment_row(appointment_id)   # unknown: the not-found page
        try:
            contact_at = None
            if values["contact_at"].strip():
                try:
                    contact_at = dt.datetime.fromisoformat(values["contact_at"].strip())
                except ValueError:
                    raise FormError([FieldProblem("contact", "联系时间", "联系时间格式应为 年-月-日 时:分，如 2026-12-01 10:15")]) from None
                contact_at = contact_at if contact_at.tzinfo else contact_at.replace(tzinfo=SHANGHAI)
            service.forfeit_appointment(appointment_id, contact_at=contact_at, method=values["method"], outcome=values["outcome"])
        except FormError as exc:
            return _render_appointments(request, values={}, problems=[], status_code=422, row_id=appointment_id,
                                        row_values=values, row_problems=exc.problems)
        return RedirectResponse("/appointments?done=forfeit", status_code=303)

    @routes.post("/appointments/{appointment_id}/visit")
    async def visit(request: Request, appointment_id: str) -> Response:
        form = await pages.read_form(request)
        values = {k: str(form.get(k, ""))[:200] for k in ("outcome", "late_reason")}
        row = service.store.appointment_row(appointment_id)
        place = {v: k for k, v in PLACES.items()}.get(row.place, "applicant_home")
        try:
            service.record_visit(appointment_id=appointment_id, matter_id=row.matter_id or "", place=place,
                                 outcome=values["outcome"], late_reason=values["late_reason"])
        except FormError as exc:
            return _render_appointments(request, values={}, problems=[], status_code=422, row_id=appointment_id,
                                        row_values=values, row_problems=exc.problems)
        return RedirectResponse("/appointments?done=visit", status_code=303)

    return routes
