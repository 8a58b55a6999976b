"""The matter page (`/matters/{id}`): the clocks (acceptance, delivery, the village's hop and the
county's replica), the materials, the applicant (not for the administrator), the actions the role
may take (`HandlingService.actions_for`, the API's rule too), the signature image, and the action
forms posted to `/matters/{id}/{action}` (`matter_actions.run_action`)."""
from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from shared.console import ConsoleSession, require_role
from shared.console.errors import ForbiddenError
from shared.domain.catalog import MatterKind
from shared.domain.deadlines import ClockStatus, SuspensionReason
from shared.domain.handling import Role, Stage
from shared.domain.limits import LimitUnit
from shared.errors import HandlingError
from town_center.console.matter_actions import ACTIONS, TYPED_ACTIONS, run_action
from town_center.console.pages import HANDLERS, STAFF, Pages, read_form
from town_center.errors import ConcurrentEditError, UnknownMatter
from town_center.handling import COUNTY_HOP

__all__ = ["router"]


def router(pages: Pages) -> APIRouter:
    app = pages.app
    handling = app.handling
    render = pages.render
    routes = APIRouter()

    def matter_context(matter_id: str, staff: ConsoleSession, form: dict[str, str] | None = None,
                       failed_action: str = "") -> dict[str, Any]:
        page = handling.page(matter_id)
        m = page.matter
        clock = m.clock
        due = remaining = None
        if clock is not None and clock.start_at is not None:
            due = clock.due_at(app.deadlines.calendar)
            rem = clock.remaining_at(pages.now(), app.deadlines.calendar)
            remaining = rem.describe_zh() if rem is not None else None
        item = page.item
        brought = set(page.materials_brought)
        materials: list[dict[str, Any]] = []
        if item is not None:
            for mat in item.main_materials:
                materials.append({"name": mat.name, "main": True, "brought": mat.id in brought,
                                  "tolerated": mat.id in page.tolerated_missing})
            for mat in item.auxiliary_materials:
                materials.append({"name": mat.name, "main": False, "brought": mat.id in brought,
                                  "tolerated": mat.id in page.tolerated_missing})
        missing_default = "\n".join(x["name"] for x in materials if not x["brought"])
        applicant = None
        if staff.role is not Role.ADMINISTRATOR:   # confidentiality: the administrator runs accounts, not cases
            try:
                applicant = handling.applicant(matter_id)
            except UnknownMatter:
                applicant = None
        stage = m.stage
        # A refused classification re-renders its form (below) with the fields it had, so nothing typed is lost.
        kinds = handling.allowed_kinds(m) if stage is Stage.RECEIVED or failed_action == "classify" else []
        major = item is not None and item.major
        # The API offers the same list (`HandlingService.actions_for`): one rule for both faces.
        allowed = set(handling.actions_for(m, staff.role))
        if staff.role is not Role.ADMINISTRATOR and failed_action in TYPED_ACTIONS:
            # The matter moved on under the operator (or the action was refused): the form stays on
            # screen with what was typed, so nothing is lost; the page says why it was not saved.
            allowed.add(failed_action)
        return {
            "title": f"办件 {page.summary.catalog_name}", "nav_here": "inbox", "p": page, "m": m, "s": page.summary,
            "clock": clock, "due": due, "remaining": remaining, "materials": materials, "applicant": applicant,
            "allowed": allowed, "kinds": kinds, "reasons": list(SuspensionReason.not_counted_steps()),
            "major": major, "hop_limits": _hop_limits(item, m.tier), "colleagues": colleagues(staff, m.owner),
            "acceptance_clock": m.acceptance_clock, "acceptance_due": _due(m.acceptance_clock),
            "delivery_clock": m.delivery_clock, "delivery_due": _due(m.delivery_clock),
            "village_clock": page.village_clock, "village_due": _due(page.village_clock),
            "village_state": page.village_clock.state_at(pages.now(), app.deadlines.calendar, app.deadlines.thresholds)
            if page.village_clock is not None else None,
            "promise_default": item.hop(m.tier).promised if item is not None and item.decided_by is m.tier else None,
            "units": [LimitUnit.WORKING_DAYS, LimitUnit.NATURAL_DAYS, LimitUnit.OFFICE_MINUTES],
            "form": form or {"missing_materials": missing_default}, "failed_action": failed_action,
            # The rating beside the applicant's details: only for those who may see who rated (docs/evaluation.md).
            "version": m.version, "rating": page.rating if staff.role in (Role.DIRECTOR, Role.SUPERVISOR) else 0,
            "kind_default": item.typical_kind.value if item and item.typical_kind in kinds else "",
            "linked": app.county_link is not None,
            "first_asked": app.front_desk.window.first_asked(matter_id) if app.front_desk is not None else None,
            **county_hop(matter_id, m.kind),
        }

    def _due(clock: Any) -> dt.datetime | None:
        return clock.due_at(app.deadlines.calendar) if clock is not None and clock.start_at is not None else None

    def colleagues(staff: ConsoleSession, owner: str) -> list[tuple[str, str]]:
        """Active colleagues a matter can be handed over to, by name."""
        return [(a.staff_id, a.display_name) for a in pages.auth.list_staff(include_disabled=False)
                if a.role is not Role.ADMINISTRATOR and a.staff_id != owner]

    def county_hop(matter_id: str, kind: MatterKind | None) -> dict[str, Any]:
        """The township's replica of the county hop (上报件 only): what the county's clock says, kept here."""
        clock = app.deadlines.load_clock(matter_id, COUNTY_HOP) if kind is MatterKind.REPORTED else None
        started = clock is not None and clock.start_at is not None
        return {
            "county_clock": clock,
            "county_due": clock.due_at(app.deadlines.calendar) if clock is not None and started else None,
            "county_state": clock.state_at(pages.now(), app.deadlines.calendar, app.deadlines.thresholds)
            if clock is not None and started and clock.status is ClockStatus.RUNNING else None,
        }

    @routes.get("/matters/{matter_id}", response_class=HTMLResponse)
    def matter_page(request: Request, matter_id: str, staff: ConsoleSession = Depends(require_role(*STAFF))) -> HTMLResponse:
        try:
            ctx = matter_context(matter_id, staff)
        except UnknownMatter as exc:
            return pages.message(request, str(exc))
        return render(request, "matter.html", ctx)

    @routes.get("/matters/{matter_id}/authorization.png")
    def authorization_image(matter_id: str, staff: ConsoleSession = Depends(require_role(*HANDLERS))) -> Response:
        """The villager's signature or signed form; the administrator runs accounts, not cases."""
        try:
            image = handling.authorization_image(matter_id)
        except UnknownMatter:
            image = None
        if image is None:
            return Response("没有可显示的签名图片", status_code=404, media_type="text/plain; charset=utf-8")
        media = "image/png" if image[:4] == b"\x89PNG" else "image/jpeg"
        return Response(image, media_type=media, headers={"Cache-Control": "no-store"})

    @routes.post("/matters/{matter_id}/{action}", response_class=HTMLResponse)
    async def matter_action(request: Request, matter_id: str, action: str,
                            staff: ConsoleSession = Depends(require_role(*HANDLERS))) -> Response:
        if action not in ACTIONS:
            return pages.message(request, "未知的操作")
        if action == "decide_refusal" and staff.role is not Role.DIRECTOR:
            raise ForbiddenError("您没有权限执行此操作：不予受理/不予批准的审批仅限中心主任，"
                                 f"您当前的身份是{staff.role.label_zh}。")
        if action == "decide_extension" and staff.role is not Role.DIRECTOR:
            raise ForbiddenError("您没有权限执行此操作：延期审批仅限中心主任，"
                                 f"您当前的身份是{staff.role.label_zh}。")
        form = await read_form(request)
        try:
            notice = await run_in_threadpool(run_action, app, action, matter_id, form, staff)
        except UnknownMatter as exc:
            return pages.message(request, str(exc))
        except (HandlingError, ConcurrentEditError) as exc:
            status = 409 if isinstance(exc, ConcurrentEditError) else 400
            ctx = await run_in_threadpool(matter_context, matter_id, staff, form, action)
            ctx["error"] = str(exc)
            return render(request, "matter.html", ctx, status_code=status)
        return pages.back(f"/matters/{matter_id}", notice)

    return routes


def _hop_limits(item: Any, tier: Any) -> dict[str, Any] | None:
    """The catalogue's limits for this hop with where the statutory one comes from (法定 or 本县规定)."""
    if item is None or tier not in item.limits:
        return None
    hop = item.hop(tier)
    return {"promised": hop.promised, "statutory": hop.statutory, "source_zh": hop.statutory_source.label_zh,
            "note": hop.note}
