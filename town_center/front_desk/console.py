"""The front desk's console pages (窗口前台): walk-in registration with the signature pad and its
receipt, sign-off at the window, the register of complaints, petitions and consultations with their
printable notices, appointments, the queue of the day, AB posts and absences.

Installed into the township console by `install_front_desk`; every page reads and acts through
`FrontDesk` (the JSON API can expose the same service calls).
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Callable
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from shared.console import ConsoleAuth, ConsoleSession, require_role
from shared.documents.adapters.web import document_url
from shared.documents.kinds import DocumentKind
from shared.domain.evaluation import EvaluationError
from shared.domain.front_desk import AppointmentState, CaseKind, CaseStage, Channel, Complexity, Feedback
from shared.domain.handling import Role
from shared.errors import HandlingError
from town_center.errors import TownCenterError
from town_center.front_desk.errors import FrontDeskError, UnknownEntry
from town_center.front_desk.service import FrontDesk, may_see_identity
from town_center.front_desk.window import WalkInForm

__all__ = ["install_front_desk"]

# The print buttons of a register entry and the document kind each opens.
_PRINTABLE = {"notice": DocumentKind.ONE_TIME_NOTICE, "assignment": DocumentKind.PETITION_ASSIGNMENT,
              "receipt": DocumentKind.PETITION_NOTICE, "answer": DocumentKind.COMPLAINT_ANSWER}

BEIJING = dt.timezone(dt.timedelta(hours=8))
HANDLERS = (Role.OPERATOR, Role.DIRECTOR)
MAX_UPLOAD = 3 * 1024 * 1024


def _data_url_png(text: str) -> bytes:
    """The pad's PNG from its data URL (empty when nothing was drawn or it is not a PNG data URL)."""
    prefix = "data:image/png;base64,"
    if not text.startswith(prefix):
        return b""
    try:
        return base64.b64decode(text[len(prefix):], validate=True)
    except (binascii.Error, ValueError):
        return b""


def _when(date_text: str, time_text: str) -> dt.datetime:
    try:
        day = dt.date.fromisoformat(date_text.strip())
        hh, mm = (int(x) for x in time_text.strip().split(":")[:2])
        return dt.datetime.combine(day, dt.time(hh, mm), tzinfo=BEIJING)
    except (ValueError, TypeError):
        raise HandlingError("请填写日期（如 2026-12-01）和时间（如 09:30）") from None


def _date(text: str, label: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise HandlingError(f"{label}格式应为 年-月-日，如 2026-12-01") from None


def install_front_desk(web: FastAPI, desk: FrontDesk, *, render: Callable[..., HTMLResponse],
                       back: Callable[[str, str], RedirectResponse], auth: ConsoleAuth,
                       bj: Callable[..., str]) -> None:
    def catalog() -> Any:   # a catalogue published meanwhile is taken up
        return desk.handling.catalog

    def staff_names() -> dict[str, str]:
        return {a.staff_id: a.display_name for a in auth.list_staff(include_disabled=True)}

    def colleagues() -> list[tuple[str, str]]:
        return [(a.staff_id, a.display_name) for a in auth.list_staff(include_disabled=False)
                if a.role is not Role.ADMINISTRATOR]

    async def form_of(request: Request) -> dict[str, Any]:
        raw = await request.form()
        return {k: v for k, v in raw.multi_items() if k != "csrf_token"}

    def text(form: dict[str, Any], key: str) -> str:
        value = form.get(key, "")
        return value if isinstance(value, str) else ""

    # ------------------------------------------------------------------ overview and the queue

    @web.get("/front-desk", response_class=HTMLResponse)
    def overview(request: Request, staff: ConsoleSession = Depends(require_role(*HANDLERS, Role.ADMINISTRATOR))) -> HTMLResponse:
        desk.start_due_absences()
        return render(request, "front_desk.html", {
            "title": "窗口前台", "nav_here": "front-desk", "queue": desk.queue(include_called=True),
            "appointments": desk.appointments(), "covering": desk.covering_today(), "names": staff_names(),
            "complaints": desk.cases(CaseKind.COMPLAINT, viewer=staff.actor, open_only=True),
            "petitions": desk.cases(CaseKind.PETITION, viewer=staff.actor, open_only=True),
            "counts": desk.counts(), "is_director": staff.role is Role.DIRECTOR,
        })

    @web.post("/front-desk/queue")
    async def take_ticket(request: Request, staff: ConsoleSession = Depends(require_role(*HANDLERS))) -> Response:
        form = await form_of(request)
        try:
            ticket = await run_in_threadpool(lambda: desk.take_ticket(
                applicant_name=text(form, "applicant_name"), elderly_or_disabled=form.get("elderly_or_disabled") == "yes"))
        except HandlingError as exc:
            return back("/front-desk", str(exc))
        return back("/front-desk", f"已取号：{ticket.number} 号（{ticket.applicant_name}）")

    @web.post("/front-desk/queue/next")
    async def call_next(request: Request, staff: ConsoleSession = Depends(require_role(*HANDLERS))) -> Response:
        ticket = await run_in_threadpool(lambda: desk.call_next(actor=staff.actor))
        if ticket is None:
            return back("/front-desk", "目前没有等候的群众")
        return back("/front-desk", f"请 {ticket.number} 号 {ticket.applicant_name} 到窗口办理")

    # ------------------------------------------------------------------ walk-in registration

    def walk_in_context(code: str, form: dict[str, Any] | None = None) -> dict[str, Any]:
        item = catalog().item(code) if code in catalog() else None
        return {"title": "窗口现场登记", "nav_here": "front-desk", "items": list(catalog()), "item": item, "code": code,
                "form": form or {}, "brought": set(form.get("brought", [])) if form else set(),
                "not_applicable": set(form.get("not_applicable", [])) if form else set()}

    @web.get("/front-desk/walk-in", response_class=HTMLResponse)
    def walk_in_page(request: Request, code: str = "", staff: ConsoleSession = Depends(require_role(*HANDLERS))) -> HTMLResponse:
        return render(request, "walk_in.html", walk_in_context(code))

    @web.post("/front-desk/walk-in", response_class=HTMLResponse)
    async def walk_in(request: Request, staff: ConsoleSession = Depends(require_role(*HANDLERS))) -> Response:
        raw = await request.form()
        fields = {k: v for k, v in raw.items() if isinstance(v, str) and k != "csrf_token"}
        brought = [str(v) for v in raw.getlist("brought")]
        not_applicable = [str(v) for v in raw.getlist("not_applicable")]
        photo = b""
        upload = raw.get("authorization_photo")
        if upload is not None and not isinstance(upload, str):
            photo = await upload.read(MAX_UPLOAD + 1)
        code = fields.get("catalog_code", "")
        commitments = {k[len("commit:"):]: v for k, v in fields.items() if k.startswith("commit:")}
        form = WalkInForm(
            applicant_name=fields.get("applicant_name", ""), id_number=fields.get("id_number", ""),
            phone=fields.get("phone", ""), address=fields.get("address", ""), catalog_code=code,
            materials_brought=brought, not_applicable=not_applicable, commitments=commitments,
            elderly_or_disabled=fields.get("elderly_or_disabled") == "yes", on_behalf=fields.get("on_behalf") == "yes",
            representative_name=fields.get("representative_name", ""),
            representative_relation=fields.get("representative_relation", ""), authorization_photo=photo,
            signature_png=_data_url_png(fields.get("signature", "")), note=fields.get("note", ""))
        try:
            receipt = await run_in_threadpool(lambda: desk.window.register(
                form, operator=staff.actor, operator_name=staff.display_name))
        except HandlingError as exc:
            # Everything typed stays on the page (except the ID number and the drawings, asked again).
            kept = {k: v for k, v in fields.items() if k not in ("id_number", "signature")}
            ctx = walk_in_context(code, {**kept, "brought": brought, "not_applicable": not_applicable})
            ctx["error"] = str(exc)
            return render(request, "walk_in.html", ctx, status_code=400)
        # The lookup code is shown on this receipt only (the township keeps its hash), like the village's.
        return render(request, "walk_in_receipt.html", {"title": "窗口受理回执", "nav_here": "front-desk", "r": receipt,
                                                        "operator": staff.display_name,
                                                        "notice_lines": receipt.notice.splitlines()})

    @web.get("/front-desk/walk-ins/{matter_id}/sign-off", response_class=HTMLResponse)
    def sign_off_page(request: Request, matter_id: str, staff: ConsoleSession = Depends(require_role(*HANDLERS))) -> HTMLResponse:
        try:
            page = desk.handling.page(matter_id)
        except HandlingError as exc:
            return render(request, "message.html", {"message": str(exc), "status_code": 404}, status_code=404)
        return render(request, "walk_in_sign_off.html", {"title": "窗口交付签收", "nav_here": "front-desk", "p": page,
                                                         "walk_in": desk.window.is_walk_in(matter_id)})

    @web.post("/front-desk/walk-ins/{matter_id}/sign-off", response_class=HTMLResponse)
    async def sign_off(request: Request, matter_id: str, staff: ConsoleSession = Depends(require_role(*HANDLERS))) -> Response:
        form = await form_of(request)
        try:
            await run_in_threadpool(lambda: desk.window.sign_off(
                matter_id, signature_png=_data_url_png(text(form, "signature")), comment=text(form, "comment"),
                actor=staff.actor))
        except HandlingError as exc:
            return back(f"/front-desk/walk-ins/{matter_id}/sign-off", str(exc))
        return back(f"/front-desk/walk-ins/{matter_id}/slip",
                    "申请人已签收确认，本件办结；请打印交付签收单交给申请人，由申请人扫描二维码评价")

    @web.get("/front-desk/walk-ins/{matter_id}/slip", response_class=HTMLResponse)
    def hand_over_slip(request: Request, matter_id: str, staff: ConsoleSession = Depends(require_role(*HANDLERS))) -> HTMLResponse:
        """The walk-in's 交付签收单 with the evaluation QR code: the applicant rates through the public page
        exactly as a villager does with a relayed matter's slip (docs/evaluation.md). Each print issues a
        fresh token, which replaces the one printed before."""
        evaluations = getattr(request.app.state, "evaluations", None)
        try:
            if not desk.window.is_walk_in(matter_id):
                raise FrontDeskError("本件由村代办员报送，交付签收单由代办员打印")
            page = desk.handling.page(matter_id)
            if evaluations is None:
                raise FrontDeskError("本中心未启用好差评，无法生成评价二维码")
            link = evaluations.evaluation_link(matter_id, by=staff.staff_id)
        except (HandlingError, EvaluationError, TownCenterError) as exc:
            return render(request, "message.html", {"message": str(exc), "status_code": 409}, status_code=409)
        return render(request, "walk_in_slip.html", {"title": "交付签收单", "nav_here": "front-desk", "p": page,
                                                     "link": link, "operator": staff.display_name,
                                                     "printed_at": desk.clock.now()})

    # ------------------------------------------------------------------ the register

    @web.get("/front-desk/cases", response_class=HTMLResponse)
    def cases(request: Request, kind: str = "complaint", matter: str = "",
              staff: ConsoleSession = Depends(require_role(*HANDLERS, Role.ADMINISTRATOR))) -> HTMLResponse:
        case_kind = CaseKind(kind) if kind in {k.value for k in CaseKind} else CaseKind.COMPLAINT
        return render(request, "desk_cases.html", {
            "title": f"{case_kind.label_zh}登记", "nav_here": "front-desk", "kind": case_kind, "kinds": list(CaseKind),
            "rows": desk.cases(case_kind, viewer=staff.actor), "channels": list(Channel), "colleagues": colleagues(),
            "names": staff_names(), "items": list(catalog()), "linked_matter": matter,
            "complexities": [Complexity.SIMPLE, Complexity.COMPLEX] if case_kind is CaseKind.COMPLAINT
            else [Complexity.SIMPLE, Complexity.LEADER],
            "sees_identity": may_see_identity(staff.role)})

    @web.post("/front-desk/cases")
    async def register_case(request: Request, staff: ConsoleSession = Depends(require_role(*HANDLERS))) -> Response:
        form = await form_of(request)
        try:
            kind = CaseKind(text(form, "kind"))
            channel = Channel(text(form, "channel") or "visit")
            complexity = Complexity(text(form, "complexity") or "simple")
        except ValueError:
            return back("/front-desk/cases", "请选择登记类别、来源渠道和复杂程度")
        try:
            view = await run_in_threadpool(lambda: desk.register_case(
                kind, actor=staff.actor, channel=channel, subject=text(form, "subject"), content=text(form, "content"),
                complexity=complexity, anonymous=text(form, "anonymous") == "yes", person_name=text(form, "person_name"),
                person_contact=text(form, "person_contact"), handler=text(form, "handler"),
                linked_matter_id=text(form, "linked_matter_id"), linked_staff_id=text(form, "linked_staff_id"),
                catalog_code=text(form, "catalog_code"), answer=text(form, "answer")))
        except HandlingError as exc:
            return back(f"/front-desk/cases?kind={kind.value}", str(exc))
        return back(f"/front-desk/cases/{view.case_id}", f"已登记 {view.register_no}")

    @web.get("/front-desk/cases/{case_id}", response_class=HTMLResponse)
    def case_page(request: Request, case_id: str,
                  staff: ConsoleSession = Depends(require_role(*HANDLERS, Role.ADMINISTRATOR))) -> HTMLResponse:
        try:
            view = desk.case(case_id, viewer=staff.actor)
        except UnknownEntry as exc:
            return render(request, "message.html", {"message": str(exc), "status_code": 404}, status_code=404)
        item = catalog().item(view.catalog_code) if view.catalog_code in catalog() else None
        return render(request, "desk_case.html", {
            "title": view.register_no, "nav_here": "front-desk", "c": view, "names": staff_names(), "item": item,
            "feedbacks": list(Feedback), "can_answer": view.stage is CaseStage.OPEN and (
                staff.role is Role.DIRECTOR or staff.staff_id == view.handler),
            "can_feedback": view.stage is CaseStage.ANSWERED and staff.role in HANDLERS,
            # The entry's numbered, signed documents; accounts staff (administrator) do not print them.
            "documents": desk.documents(case_id) if staff.role in HANDLERS else []})

    @web.post("/front-desk/cases/{case_id}/{action}")
    async def case_action(request: Request, case_id: str, action: str,
                          staff: ConsoleSession = Depends(require_role(*HANDLERS))) -> Response:
        form = await form_of(request)
        try:
            version = int(text(form, "expected_version") or 0) or None
            if action == "answer":
                await run_in_threadpool(lambda: desk.answer_case(case_id, text(form, "answer"), actor=staff.actor,
                                                                 expected_version=version))
                notice = "已登记答复，请回访并登记反馈"
            elif action == "feedback":
                feedback = Feedback(text(form, "feedback"))
                await run_in_threadpool(lambda: desk.record_feedback(case_id, feedback, text(form, "note"),
                                                                     actor=staff.actor, expected_version=version))
                notice = "已登记反馈，本件办结"
            else:
                return back(f"/front-desk/cases/{case_id}", "未知的操作")
        except HandlingError as exc:
            return back(f"/front-desk/cases/{case_id}", str(exc))
        except ValueError:
            return back(f"/front-desk/cases/{case_id}", "请选择反馈结果")
        return back(f"/front-desk/cases/{case_id}", notice)

    @web.get("/front-desk/cases/{case_id}/print/{document}", response_class=HTMLResponse)
    def case_print(request: Request, case_id: str, document: str,
                   staff: ConsoleSession = Depends(require_role(*HANDLERS))) -> Response:
        """A consultation's one-time notification, a petition's 交办单 and 告知书, a written complaint's
        答复书: the document issued with the entry, its stored print view (a reprint is the first print)."""
        kind = _PRINTABLE.get(document)
        try:
            desk.case(case_id, viewer=staff.actor)
        except UnknownEntry as exc:
            return render(request, "message.html", {"message": str(exc), "status_code": 404}, status_code=404)
        found = [d for d in desk.documents(case_id) if kind is not None and d.title == kind.title_zh]
        if not found:
            return render(request, "message.html", {"message": "该登记没有这份文书", "status_code": 404}, status_code=404)
        return RedirectResponse(f"{request.scope.get('root_path', '')}{document_url(found[-1].number)}", status_code=303)

    # ------------------------------------------------------------------ appointments

    @web.get("/front-desk/appointments", response_class=HTMLResponse)
    def appointments(request: Request, staff: ConsoleSession = Depends(require_role(*HANDLERS, Role.ADMINISTRATOR))) -> HTMLResponse:
        return render(request, "desk_appointments.html", {
            "title": "窗口预约", "nav_here": "front-desk", "rows": desk.upcoming_appointments(), "items": list(catalog()),
            "colleagues": colleagues(), "names": staff_names(), "confirmed": AppointmentState.CONFIRMED,
            "arrived": AppointmentState.ARRIVED, "forfeited": AppointmentState.FORFEITED})

    @web.post("/front-desk/appointments")
    async def book(request: Request, staff: ConsoleSession = Depends(require_role(*HANDLERS))) -> Response:
        form = await form_of(request)
        try:
            at = _when(text(form, "date"), text(form, "time"))
            view = await run_in_threadpool(lambda: desk.book(
                actor=staff.actor, applicant_name=text(form, "applicant_name"), phone=text(form, "phone"),
                catalog_code=text(form, "catalog_code"), scheduled_at=at,
                elderly_or_disabled=text(form, "elderly_or_disabled") == "yes"))
        except HandlingError as exc:
            return back("/front-desk/appointments", str(exc))
        return back("/front-desk/appointments", f"已确认预约：{view.applicant_name} {bj(view.scheduled_at)}")

    @web.post("/front-desk/appointments/{appointment_id}/{action}")
    async def appointment_action(request: Request, appointment_id: str, action: str,
                                 staff: ConsoleSession = Depends(require_role(*HANDLERS))) -> Response:
        form = await form_of(request)
        actor = staff.actor
        try:
            version = int(text(form, "expected_version") or 0) or None
            if action == "contact":
                await run_in_threadpool(lambda: desk.contact_attempt(appointment_id, reached=text(form, "reached") == "yes",
                                                                     note=text(form, "note"), actor=actor, expected_version=version))
                notice = "已登记联系情况"
            elif action == "forfeit":
                await run_in_threadpool(lambda: desk.forfeit(appointment_id, actor=actor, expected_version=version))
                notice = "已登记为视为放弃预约"
            elif action == "arrived":
                await run_in_threadpool(lambda: desk.arrived(appointment_id, late_reason=text(form, "late_reason"),
                                                             actor=actor, expected_version=version))
                notice = "已登记到场，已排入今日等候队列"
            elif action in ("change", "cancel"):
                new_at = _when(text(form, "date"), text(form, "time")) if action == "change" else None
                await run_in_threadpool(lambda: desk.change_appointment(
                    appointment_id, new_at=new_at, reason=text(form, "reason"), approved_by=text(form, "approved_by"),
                    applicant_told=text(form, "applicant_told") == "yes", actor=actor, expected_version=version))
                notice = "已改约" if action == "change" else "已取消预约"
            else:
                notice = "未知的操作"
        except HandlingError as exc:
            return back("/front-desk/appointments", str(exc))
        except ValueError:
            return back("/front-desk/appointments", "填写有误，请核对后重试")
        return back("/front-desk/appointments", notice)

    # ------------------------------------------------------------------ AB posts and 顶岗

    @web.get("/front-desk/posts", response_class=HTMLResponse)
    def posts(request: Request, staff: ConsoleSession = Depends(require_role(*HANDLERS, Role.ADMINISTRATOR))) -> HTMLResponse:
        desk.start_due_absences()
        return render(request, "desk_posts.html", {
            "title": "AB 岗与顶岗", "nav_here": "front-desk", "posts": desk.posts(), "absences": desk.absences(),
            "covering": desk.covering_today(), "colleagues": colleagues(), "names": staff_names(),
            "is_director": staff.role is Role.DIRECTOR, "today": desk.today().isoformat()})

    @web.post("/front-desk/posts")
    async def add_post(request: Request, staff: ConsoleSession = Depends(require_role(Role.DIRECTOR))) -> Response:
        form = await form_of(request)
        try:
            await run_in_threadpool(lambda: desk.add_post(text(form, "name"), text(form, "a_staff"), text(form, "b_staff"),
                                                          actor=staff.actor))
        except HandlingError as exc:
            return back("/front-desk/posts", str(exc))
        return back("/front-desk/posts", "已设置 AB 岗")

    @web.post("/front-desk/absences")
    async def register_absence(request: Request, staff: ConsoleSession = Depends(require_role(*HANDLERS))) -> Response:
        form = await form_of(request)
        try:
            start, end = _date(text(form, "from_date"), "离岗开始日期"), _date(text(form, "to_date"), "离岗结束日期")
            view = await run_in_threadpool(lambda: desk.register_absence(
                text(form, "staff_id"), from_date=start, to_date=end, reason=text(form, "reason"),
                covered_by=text(form, "covered_by"), actor=staff.actor))
        except HandlingError as exc:
            return back("/front-desk/posts", str(exc))
        return back("/front-desk/posts", f"已登记离岗，{len(view.handover)} 项工作已移交顶岗人")

    @web.post("/front-desk/absences/{absence_id}/return")
    async def absence_return(request: Request, absence_id: int,
                             staff: ConsoleSession = Depends(require_role(*HANDLERS))) -> Response:
        try:
            view = await run_in_threadpool(lambda: desk.returned(absence_id, actor=staff.actor))
        except HandlingError as exc:
            return back("/front-desk/posts", str(exc))
        return back("/front-desk/posts", f"已登记返岗，顶岗期间的 {len(view.handover)} 项工作已交回")
