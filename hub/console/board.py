"""上报件看板 (`/`) and the matter page (`/matters/{id}`): both hops' clocks, the history, the
applicant (opened only here), the county's decision and 督办."""
from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from shared.console import ConsoleSession, require_role
from shared.deadlines import ClockState, ClockStatus
from shared.domain.handling import Role, Stage
from shared.errors import DeadlineError, HandlingError, SharedError
from hub.console.app import HANDLERS, STAFF, Pages, read_form
from hub.console.formatting import county_hop, township_hop
from hub.errors import ConcurrentEditError, UnknownMatter
from hub.handling import CountyMatterView, Outcome

__all__ = ["add_routes", "split_lines", "actor_zh"]

log = logging.getLogger("hub.console.board")

_DECIDABLE = frozenset({Stage.IN_PROGRESS})


def split_lines(text: str) -> list[str]:
    """A typed list (one per line, or separated by 、，；) as items."""
    return [x.strip() for x in re.split(r"[\n\r、，,；;]+", text or "") if x.strip()]


def actor_zh(actor: str, names: dict[str, str], townships: dict[str, str]) -> str:
    """Who a history line names, in words: staff by name, townships and villages by tier."""
    if actor.startswith("township:"):
        code = actor.split(":", 1)[1]
        return f"乡镇（{' '.join(x for x in (code, townships.get(code, '')) if x)}）"
    if actor == "village":
        return "村代办员"
    if actor == "county-system":
        return "县政务服务中心（系统）"
    return f"{names[actor]}（{actor}）" if actor in names else actor


def _row(v: CountyMatterView) -> dict[str, Any]:
    return {"v": v, "township_hop": township_hop(v.township_hop, v.township_received_at),
            "county_hop": county_hop(v.received_at, v.due_at, v.state, v.clock_status)}


def add_routes(web: FastAPI, pages: Pages) -> None:
    app = pages.app
    handling = app.handling

    @web.get("/", response_class=HTMLResponse)
    def board(request: Request, township: str = "", open_only: str = Query("", alias="open"),
              staff: ConsoleSession = Depends(require_role(*STAFF))) -> HTMLResponse:
        names = pages.township_names()
        views = handling.escalated(township_code=township or None, open_only=bool(open_only))
        for v in views:
            names.setdefault(v.township_code, v.township_name)
        running = [v for v in views if v.clock_status is ClockStatus.RUNNING]
        totals = {"all": len(views), "running": len(running),
                  "warning": sum(1 for v in running if v.state is ClockState.WARNING),
                  "overdue": sum(1 for v in running if v.state in (ClockState.OVERDUE, ClockState.SUPERVISE))}
        return pages.render(request, "board.html", {
            "title": "上报件看板", "nav_here": "board", "rows": [_row(v) for v in views], "townships": names,
            "township": township, "open": bool(open_only), "totals": totals, "outcomes": Outcome.LABELS_ZH,
        })

    def matter_context(matter_id: str, staff: ConsoleSession, form: dict[str, str] | None = None,
                       failed_action: str = "") -> dict[str, Any]:
        h = handling.history(matter_id)
        v, m = h.view, h.matter
        clock = m.clock
        remaining = None
        if clock is not None and clock.start_at is not None and clock.status is ClockStatus.RUNNING:
            rem = clock.remaining_at(pages.now(), app.deadlines.calendar)
            remaining = rem.describe_zh() if rem is not None else None
        applicant = None
        applicant_problem = ""
        if staff.role is not Role.ADMINISTRATOR:   # confidentiality: the administrator runs accounts, not cases
            try:
                applicant = handling.applicant(matter_id)
            except SharedError as exc:   # sealed to another key: say so, do not break the page
                log.warning("applicant of %s not opened: %s", matter_id, exc.__class__.__name__)
                applicant_problem = "申请人信息无法打开（密封数据不是发给本县密钥的）。"
        allowed: set[str] = set()
        if staff.role in HANDLERS:
            if m.stage in _DECIDABLE:
                allowed.add("decide")
            if not m.is_final:
                allowed.add("supervise")
            if failed_action in ("decide", "supervise"):
                # Refused or overtaken: the form stays on screen with what was typed, so nothing is lost.
                allowed.add(failed_action)
        staff_names = {a.staff_id: a.display_name for a in pages.console.auth.list_staff()}
        townships = pages.township_names()
        events = [{"at": at, "who": actor_zh(actor, staff_names, townships), "action": action, "text": text}
                  for at, actor, action, text in h.events]
        materials = []
        if h.item is not None:
            materials = [x.name for x in (*h.item.main_materials, *h.item.auxiliary_materials)]
        return {
            "title": f"上报件 {v.catalog_name}", "nav_here": "board", "v": v, "m": m, "clock": clock, "item": h.item,
            "remaining": remaining, "township_hop": township_hop(v.township_hop, v.township_received_at),
            "county_hop": county_hop(v.received_at, v.due_at, v.state, v.clock_status, clock.stop_at if clock else None),
            "applicant": applicant, "applicant_problem": applicant_problem, "events": events, "allowed": allowed,
            "form": form or {}, "failed_action": failed_action, "version": m.version, "outcomes": Outcome.LABELS_ZH,
            "materials": materials,
        }

    @web.get("/matters/{matter_id}", response_class=HTMLResponse)
    def matter_page(request: Request, matter_id: str, staff: ConsoleSession = Depends(require_role(*STAFF))) -> HTMLResponse:
        try:
            ctx = matter_context(matter_id, staff)
        except UnknownMatter as exc:
            return pages.message(request, str(exc))
        return pages.render(request, "matter.html", ctx)

    def run_action(action: str, matter_id: str, form: dict[str, str], staff: ConsoleSession) -> str:
        if action == "decide":
            try:
                version = int(form.get("expected_version", ""))
            except ValueError:
                raise HandlingError("页面缺少版本信息，请刷新页面后重做") from None
            outcome = form.get("outcome", "")
            handling.decide(matter_id, outcome, actor=staff.actor, reason=form.get("reason", ""),
                            missing=split_lines(form.get("missing", "")) if outcome == Outcome.NEEDS_MATERIALS else (),
                            expected_version=version)
            return f"已作出县级决定：{Outcome.LABELS_ZH[outcome]}，已签名下发乡镇"
        handling.issue_supervision(matter_id, form.get("message", ""), actor=staff.actor)
        return "已签发督办通知，乡镇下次同步时送达"

    @web.post("/matters/{matter_id}/{action}", response_class=HTMLResponse)
    async def matter_action(request: Request, matter_id: str, action: str,
                            staff: ConsoleSession = Depends(require_role(*HANDLERS))) -> Response:
        if action not in ("decide", "supervise"):
            return pages.message(request, "未知的操作")
        form = await read_form(request)
        try:
            notice = await run_in_threadpool(run_action, action, matter_id, form, staff)
        except UnknownMatter as exc:
            return pages.message(request, str(exc))
        except (HandlingError, DeadlineError, ConcurrentEditError) as exc:
            status = 409 if isinstance(exc, ConcurrentEditError) else 400
            ctx = await run_in_threadpool(matter_context, matter_id, staff, form, action)
            ctx["error"] = str(exc)
            return pages.render(request, "matter.html", ctx, status_code=status)
        return pages.back(f"/matters/{matter_id}", notice)
