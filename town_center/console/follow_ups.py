"""回访 (`/follow-ups`): the week's drawn sample (the director draws it) and the call's outcome as
recorded by a handler who did not handle the matter himself (003 服务回访制度)."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import literal, select
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from shared.clock import from_unix_ms
from shared.console import ConsoleSession, require_role
from shared.domain.evaluation import EvaluationError, may_record_follow_up
from shared.domain.handling import Role
from shared.errors import HandlingError
from town_center.console.pages import HANDLERS, STAFF, Pages
from town_center.errors import UnknownMatter
from town_center.evaluation import Evaluations
from town_center.store.matter_tables import follow_up_call, town_matter

__all__ = ["router"]


def router(pages: Pages, evaluations: Evaluations) -> APIRouter:
    app = pages.app
    handling = app.handling
    back = pages.back
    routes = APIRouter()

    @routes.get("/follow-ups", response_class=HTMLResponse)
    def follow_ups(request: Request, staff: ConsoleSession = Depends(require_role(*STAFF))) -> HTMLResponse:
        # The applicant's rating is shown only to those who may see who rated (docs/evaluation.md).
        rating = town_matter.c.rating if staff.role in (Role.DIRECTOR, Role.SUPERVISOR) else literal(0)
        with app.store.engine.connect() as conn:
            rows = conn.execute(select(follow_up_call, town_matter.c.catalog_code, town_matter.c.village_code,
                                       rating.label("matter_rating"))
                                .join(town_matter, town_matter.c.matter_id == follow_up_call.c.matter_id)
                                .order_by(follow_up_call.c.week_start.desc(), follow_up_call.c.matter_id)).all()
        catalog = handling.catalog
        items = [{"r": r, "name": catalog.item(r.catalog_code).name if r.catalog_code in catalog else r.catalog_code,
                  "called_at": from_unix_ms(int(r.called_at_ms)) if r.called_at_ms else None} for r in rows]
        return pages.render(request, "follow_ups.html", {"title": "回访", "nav_here": "follow-ups", "items": items,
                                                         "can_draw": staff.role is Role.DIRECTOR})

    @routes.post("/follow-ups/draw")
    async def follow_up_draw(request: Request, staff: ConsoleSession = Depends(require_role(Role.DIRECTOR))) -> Response:
        try:
            # The one draw (sample plus every 差评), whichever 回访 page asks for it.
            count, week = await run_in_threadpool(evaluations.draw_follow_ups)
        except IntegrityError:
            return back("/follow-ups", "本周样本正在由他人抽取，请刷新页面查看")
        if not count:
            return back("/follow-ups", f"本周（{week} 起）没有可抽取的已办结办件，或已经抽取过")
        return back("/follow-ups", f"已抽取本周（{week} 起）回访样本 {count} 件")

    @routes.post("/follow-ups/{matter_id}")
    async def follow_up(request: Request, matter_id: str,
                        staff: ConsoleSession = Depends(require_role(*HANDLERS))) -> Response:
        raw = await request.form()
        try:
            # Nobody calls back about his own case (003 服务回访制度); the same rule as the 回访登记 page.
            may_record_follow_up(staff.staff_id, await run_in_threadpool(evaluations.handled_by, matter_id))
            rating = int(str(raw.get("rating", "0")) or 0)
            await run_in_threadpool(lambda: handling.record_follow_up(
                matter_id, actor=staff.actor, reached=raw.get("reached") == "yes", rating=rating,
                outcome=str(raw.get("outcome", ""))))
        except (HandlingError, ValueError, UnknownMatter) as exc:
            known = isinstance(exc, (HandlingError, EvaluationError, UnknownMatter))
            return back("/follow-ups", str(exc) if known else "回访评价填写有误")
        return back("/follow-ups", "已记录回访结果")

    return routes
