"""超期统计 (`/overdue`: counts by township and by kind, the overdue matters with a 督办 form each)
and 督办通知 (`/notices`: every notice and how far it got: 已签发 → 已送达 → 已回复)."""
from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from hub.console.app import HANDLERS, STAFF, Pages, read_form
from hub.console.formatting import limit_basis_zh, wire_stage_zh
from hub.errors import UnknownMatter
from hub.handling import notice_status
from shared.clock import from_unix_ms
from shared.console import ConsoleSession, require_role
from shared.domain.catalog import Tier
from shared.domain.handling import Role
from shared.errors import HandlingError

__all__ = ["add_routes", "notice_status"]

# Who issues 督办 from the overdue list: case staff and the county's 督查.
SUPERVISING = (*HANDLERS, Role.SUPERVISOR)
# Overdue matters listed with a 督办 form (earliest township due date first); a county of a million
# matters may have hundreds of thousands overdue, and a page of them all would not load.
OVERDUE_LIST_LIMIT = 200
DEFAULT_MESSAGE = "该办件已超过乡镇办结时限，请说明超期原因并尽快办结，同时告知申请人办理进度。"


def add_routes(web: FastAPI, pages: Pages) -> None:
    app = pages.app
    handling = app.handling

    overdue_days = handling.overdue_working_days

    def overdue_context(drafts: dict[str, str] | None = None) -> dict[str, Any]:
        by_township, by_kind = handling.overdue_counts()
        names = pages.township_names()
        catalog = handling.catalog
        issued: dict[str, list[dict[str, Any]]] = {}
        for n in handling.notices():
            issued.setdefault(n["matter_id"], []).append(n)
        rows: list[dict[str, Any]] = []
        # The most overdue first, at most OVERDUE_LIST_LIMIT of them: the counts above cover every one.
        for t in handling.tracked(overdue_only=True, limit=OVERDUE_LIST_LIMIT):
            item = catalog.item(t.catalog_code) if t.catalog_code in catalog else None
            rows.append({"t": t, "catalog_name": item.name if item is not None else "（目录中无此事项）",
                         "basis": limit_basis_zh(item, Tier.TOWNSHIP), "stage": wire_stage_zh(t.stage),
                         "days": overdue_days(t), "notices": issued.get(t.matter_id, []),
                         "township_name": names.get(t.township_code) or "未登记名称的乡镇"})
        rows.sort(key=lambda r: -r["days"])
        return {"title": "超期统计", "nav_here": "overdue", "by_township": by_township, "by_kind": by_kind,
                "names": names, "rows": rows, "drafts": drafts or {}, "default_message": DEFAULT_MESSAGE}

    @web.get("/overdue", response_class=HTMLResponse)
    def overdue(request: Request, staff: ConsoleSession = Depends(require_role(*STAFF))) -> HTMLResponse:
        return pages.render(request, "overdue.html", {**overdue_context(), "can_supervise": staff.role in SUPERVISING})

    def supervise(matter_id: str, message: str, staff: ConsoleSession) -> str:
        handling.supervise_overdue(matter_id, message, actor=staff.actor)
        return "已签发督办通知，乡镇下次同步时送达"

    @web.post("/overdue/{matter_id}/supervise", response_class=HTMLResponse)
    async def supervise_overdue(request: Request, matter_id: str,
                                staff: ConsoleSession = Depends(require_role(*SUPERVISING))) -> Response:
        form = await read_form(request)
        message = form.get("message", "")
        try:
            notice = await run_in_threadpool(supervise, matter_id, message, staff)
        except (HandlingError, UnknownMatter) as exc:
            # The list is rebuilt with the typed text kept in that matter's form.
            ctx = await run_in_threadpool(overdue_context, {matter_id: message})
            ctx.update(error=str(exc), can_supervise=True)
            return pages.render(request, "overdue.html", ctx, status_code=400)
        return pages.back("/overdue", notice)

    @web.get("/notices", response_class=HTMLResponse)
    def notices(request: Request, staff: ConsoleSession = Depends(require_role(*STAFF))) -> HTMLResponse:
        names = pages.township_names()
        staff_labels = pages.staff_labels()
        catalog = handling.catalog
        rows = []
        for n in handling.notice_rows():
            status, label = notice_status(n)
            # The matter by title (and a short reference), never by id: an escalated matter links to its page.
            view = n["view"]
            code = n["catalog_code"]
            title = catalog.item(code).name if code in catalog else "（目录中无此事项）"
            rows.append({**n, "status": status, "status_zh": label, "linked": view is not None, "title": title,
                         "reference": view.reference_zh if view is not None else "",
                         "issued_at": from_unix_ms(int(n["issued_at_ms"])),
                         "issued_by_zh": pages.staff_label(n["issued_by"], staff_labels),
                         "township_name": names.get(n["township_code"]) or "未登记名称的乡镇"})
        counts = {s: sum(1 for r in rows if r["status"] == s) for s in ("issued", "received", "acknowledged")}
        return pages.render(request, "notices.html", {"title": "督办通知", "nav_here": "notices", "rows": rows,
                                                      "counts": counts})
