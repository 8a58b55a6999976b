"""The lists a director and the 督查 watch: 否定报备 (`/refusals`), 督办清单 (`/supervision`, the
township's overdue matters and the county hop's), 县级督办 (`/county-notices`, answered here) and
延期审批 (`/extensions`, decided by the director)."""
from __future__ import annotations

from typing import cast

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from shared.clock import from_unix_ms
from shared.console import ConsoleSession, require_role
from shared.domain.handling import RefusalKind, Role
from shared.errors import HandlingError
from town_center.console.matter_actions import run_action
from town_center.console.pages import HANDLERS, STAFF, Pages, read_form
from town_center.errors import ConcurrentEditError, UnknownMatter

__all__ = ["router"]


def router(pages: Pages) -> APIRouter:
    app = pages.app
    handling = app.handling
    render, back = pages.render, pages.back
    routes = APIRouter()

    @routes.get("/refusals", response_class=HTMLResponse)
    def refusals(request: Request, staff: ConsoleSession = Depends(require_role(*STAFF))) -> HTMLResponse:
        names = {i.code: i.name for i in handling.catalog}
        rows = [dict(r, catalog_name=names.get(r["catalog_code"], r["catalog_code"]), at=from_unix_ms(int(r["at_ms"])),
                     kind_zh=RefusalKind(r["refusal_kind"]).label_zh if r.get("refusal_kind") else "不予受理")
                for r in handling.refusals()]
        return render(request, "refusals.html", {"title": "否定报备", "nav_here": "refusals", "rows": rows})

    @routes.get("/supervision", response_class=HTMLResponse)
    def supervision(request: Request, staff: ConsoleSession = Depends(require_role(*STAFF))) -> HTMLResponse:
        return render(request, "supervision.html", {"title": "督办清单", "nav_here": "supervision",
                                                    "items": handling.supervision_list(),
                                                    "county_items": handling.county_overdue()})

    @routes.get("/county-notices", response_class=HTMLResponse)
    def county_notices(request: Request, staff: ConsoleSession = Depends(require_role(*STAFF))) -> HTMLResponse:
        link = app.county_link
        # The notice rows come back untyped (`dict[str, object]`); both times are integer columns.
        rows = [dict(r, issued_at=from_unix_ms(cast(int, r["issued_at_ms"])),
                     acknowledged_at=from_unix_ms(cast(int, r["acknowledged_at_ms"])) if r["acknowledged_at_ms"] else None)
                for r in (link.open_notices() if link is not None else [])]
        return render(request, "county_notices.html", {
            "title": "县级督办", "nav_here": "county-notices", "rows": rows, "linked": link is not None,
            "status": link.status() if link is not None else None, "can_answer": staff.role in HANDLERS})

    @routes.post("/county-notices/{notice_id}", response_class=HTMLResponse)
    async def answer_county_notice(request: Request, notice_id: str,
                                   staff: ConsoleSession = Depends(require_role(*HANDLERS))) -> Response:
        raw = await request.form()
        link = app.county_link
        if link is None:
            return back("/county-notices", "本乡镇尚未接入县政务服务中心")
        try:
            await run_in_threadpool(link.acknowledge, notice_id, str(raw.get("explanation", "")), by=staff.staff_id)
        except HandlingError as exc:
            return back("/county-notices", str(exc))
        return back("/county-notices", "已回复县级督办")

    @routes.get("/extensions", response_class=HTMLResponse)
    def extensions(request: Request, staff: ConsoleSession = Depends(require_role(*STAFF))) -> HTMLResponse:
        rows = []
        for s in handling.pending_extensions():
            page = handling.page(s.matter_id)
            rows.append({"s": s, "request": page.matter.pending_extension, "clock": page.matter.clock})
        return render(request, "extensions.html", {"title": "延期审批", "nav_here": "extensions", "rows": rows,
                                                   "can_decide": staff.role is Role.DIRECTOR})

    @routes.post("/extensions/{matter_id}", response_class=HTMLResponse)
    async def decide(request: Request, matter_id: str,
                     staff: ConsoleSession = Depends(require_role(Role.DIRECTOR))) -> Response:
        form = await read_form(request)
        try:
            notice = await run_in_threadpool(run_action, app, "decide_extension", matter_id, form, staff)
        except (HandlingError, ConcurrentEditError, UnknownMatter) as exc:
            return back("/extensions", str(exc))
        return back("/extensions", notice)

    return routes
