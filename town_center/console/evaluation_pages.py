"""The township console's 好差评 pages: the public rating page (`/evaluate`, no sign-in, behind the
same Host/Origin/security-header middleware and a rate limit), the director's and supervisor's list
with the evaluator, every staff member's own figures and 整改 tasks, the 差评 page (整改, 办结, 复核)
and the 回访 list with its five findings. Installed by `create_console_app`."""
from __future__ import annotations

import datetime as dt
import urllib.parse
from collections.abc import Callable
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from shared.console import ConsoleAuth, ConsoleSession, RateLimiter, rate_limit, require_role
from shared.console.errors import ForbiddenError
from shared.domain.evaluation import BadReason, Channel, EvaluationError, FollowUpFindings, Level, rating_from_form
from shared.domain.figures import bar_chart_svg
from shared.domain.handling import Role
from shared.errors import HandlingError
from town_center.assessment import COLUMNS, DIMENSIONS, Assessment, parse_period, report_xlsx
from town_center.evaluation import CONFIDENTIAL_ROLES, Evaluations
from town_center.store.evaluation_tables import evaluation, follow_up_finding
from town_center.store.matter_tables import follow_up_call, town_matter
from town_center.supervision import Cause, Oversight

__all__ = ["install_evaluation_pages", "EVALUATION_STAFF", "PUBLIC_EVALUATE_PATH"]

PUBLIC_EVALUATE_PATH = "/evaluate"
EVALUATION_STAFF = (Role.OPERATOR, Role.DIRECTOR, Role.SUPERVISOR)
FINDING_CHECKS = (("attitude", "服务态度"), ("efficiency", "办事效率"), ("rules", "按章办事"), ("integrity", "廉洁自律"))

Render = Callable[..., HTMLResponse]
Back = Callable[[str, str], RedirectResponse]


BEIJING = dt.timezone(dt.timedelta(hours=8))
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def month_bounds(month: str, now: dt.datetime) -> tuple[str, dt.datetime, dt.datetime]:
    """A calendar month in Beijing time ("2026-11"), the current one when not given or malformed."""
    try:
        year, mon = (int(x) for x in month.split("-"))
        start = dt.datetime(year, mon, 1, tzinfo=BEIJING)
    except ValueError:
        local = now.astimezone(BEIJING)
        start = dt.datetime(local.year, local.month, 1, tzinfo=BEIJING)
    end = dt.datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=BEIJING)
    return start.strftime("%Y-%m"), start, end


def install_evaluation_pages(web: FastAPI, evaluations: Evaluations, auth: ConsoleAuth, *, render: Render,
                             render_public: Render, back: Back, limiter: RateLimiter) -> None:
    app_store = evaluations.store

    def staff_name(staff_id: str) -> str:
        if not staff_id:
            return "—"
        try:
            return auth.get_staff(staff_id).display_name
        except Exception:  # noqa: BLE001 - a removed account still shows as a colleague, not an id
            return "（已停用的工作人员）"

    def common() -> dict[str, Any]:
        return {"nav_here": "evaluations", "levels": list(Level), "staff_name": staff_name,
                "village_name": lambda code: code or "—"}

    # ------------------------------------------------------------------ public page

    def public_form(t: str = "", c: str = "", **rest: str) -> dict[str, str]:
        return {"t": t[:20], "c": c[:20], "level": rest.get("level", ""), "reason": rest.get("reason", ""),
                "comment": rest.get("comment", "")[:300]}

    def public_ctx(**extra: Any) -> dict[str, Any]:
        return {"title": "服务评价", "levels": list(Level), "reasons": list(BadReason), **extra}

    @web.get(PUBLIC_EVALUATE_PATH, response_class=HTMLResponse)
    def evaluate_form(request: Request, t: str = "", c: str = "") -> HTMLResponse:
        return render_public(request, "evaluate.html", public_ctx(form=public_form(t, c)),
                             headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})

    @web.post(PUBLIC_EVALUATE_PATH, response_class=HTMLResponse, dependencies=[Depends(rate_limit(limiter))])
    async def evaluate(request: Request) -> HTMLResponse:
        raw = await request.form()
        form = public_form(**{k: str(v) for k, v in raw.items()})
        try:
            rating = rating_from_form(form["level"], form["reason"], form["comment"])
            rated = await run_in_threadpool(evaluations.rate_with_token, form["t"], rating, channel=Channel.QR,
                                            raw_code=form["c"])
        except EvaluationError as exc:
            # Everything typed stays on the page; only the reason it was not taken is added.
            return render_public(request, "evaluate.html", public_ctx(form=form, error=str(exc)), status_code=400,
                                 headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})
        return render_public(request, "evaluate.html", public_ctx(form=form, rated=rated),
                             headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})

    # ------------------------------------------------------------------ staff pages

    def colleagues() -> list[tuple[str, str]]:
        return [(a.staff_id, a.display_name) for a in auth.list_staff(include_disabled=False)
                if a.role in (Role.OPERATOR, Role.DIRECTOR)]

    @web.get("/evaluations", response_class=HTMLResponse)
    def evaluations_page(request: Request, month: str = "", bad: str = "",
                         staff: ConsoleSession = Depends(require_role(*EVALUATION_STAFF))) -> HTMLResponse:
        confidential = staff.role in CONFIDENTIAL_ROLES
        rows: list[Any] = []
        month, since, until = month_bounds(month, evaluations.clock.now())
        if confidential:
            rows = evaluations.views(role=staff.role, since=since, until=until, bad_only=bool(bad))
        return render(request, "evaluations.html", {
            **common(), "title": "好差评", "confidential": confidential, "rows": rows, "month": month, "bad": bool(bad),
            "own": evaluations.own_figures(staff.staff_id)})

    @web.get("/evaluations/follow-ups", response_class=HTMLResponse)
    def follow_up_page(request: Request, staff: ConsoleSession = Depends(require_role(*EVALUATION_STAFF))) -> HTMLResponse:
        with app_store.engine.connect() as conn:
            rows = conn.execute(select(follow_up_call, town_matter.c.catalog_code, town_matter.c.village_code)
                                .join(town_matter, town_matter.c.matter_id == follow_up_call.c.matter_id)
                                .order_by(follow_up_call.c.week_start.desc(), follow_up_call.c.matter_id)).all()
            bad = set(conn.execute(select(evaluation.c.matter_id).where(evaluation.c.level >= 4,
                                                                        evaluation.c.by_villager.is_(True))).scalars())
            found = {r.matter_id: r for r in conn.execute(select(follow_up_finding))}
        catalog = evaluations.handling.catalog
        items = []
        for r in rows:
            own = staff.staff_id in evaluations.handled_by(r.matter_id)
            who = ""
            if not own and r.called_at_ms is None:
                details = evaluations.handling.applicant(r.matter_id)
                who = f"{details.name} {details.phone}" if details is not None else "（无法读取申请人信息）"
            done = ""
            if r.called_at_ms is not None:
                f = found.get(r.matter_id)
                done = f"{staff_name(r.caller_id)}：{'已接通' if r.reached else '未接通'} {r.outcome}"
                if f is not None and not f.reached:
                    done = f"{staff_name(r.caller_id)}：未接通"
            items.append({"matter_id": r.matter_id, "week": r.week_start, "village": r.village_code,
                          "name": catalog.item(r.catalog_code).name if r.catalog_code in catalog else "服务事项",
                          "bad": r.matter_id in bad, "own": own, "who": who, "done": done})
        return render(request, "evaluation_follow_ups.html", {
            **common(), "nav_here": "follow-ups", "title": "回访登记", "items": items, "checks": FINDING_CHECKS,
            "can_draw": staff.role in CONFIDENTIAL_ROLES})

    @web.post("/evaluations/follow-ups/draw")
    async def draw(request: Request, staff: ConsoleSession = Depends(require_role(Role.DIRECTOR, Role.SUPERVISOR))) -> Response:
        count, week = await run_in_threadpool(evaluations.draw_follow_ups)
        if not count:
            return back("/evaluations/follow-ups", f"本周（{week} 起）没有新的回访办件，或已经抽取过")
        return back("/evaluations/follow-ups", f"已抽取本周（{week} 起）回访办件 {count} 件")

    @web.post("/evaluations/follow-ups/{matter_id}")
    async def follow_up(request: Request, matter_id: str,
                        staff: ConsoleSession = Depends(require_role(*EVALUATION_STAFF))) -> Response:
        raw = await request.form()
        reached = raw.get("reached") == "yes"
        try:
            level = str(raw.get("satisfaction", "")).strip()
            findings = FollowUpFindings(
                reached=reached, attitude_ok=raw.get("attitude") != "problem",
                efficiency_ok=raw.get("efficiency") != "problem", by_the_rules_ok=raw.get("rules") != "problem",
                integrity_ok=raw.get("integrity") != "problem",
                satisfaction=Level(int(level)) if level.isdigit() and 1 <= int(level) <= 5 else None,
                suggestion=str(raw.get("suggestion", "")).strip())
            await run_in_threadpool(evaluations.record_follow_up, matter_id, findings, actor=staff.actor)
        except (EvaluationError, HandlingError) as exc:
            return back("/evaluations/follow-ups", str(exc))
        return back("/evaluations/follow-ups", "已登记回访")

    # ------------------------------------------------------------------ assessment 考核

    assessment = Assessment(evaluations)

    def report_for(period: str, by: str) -> Any:
        today = evaluations.clock.now().astimezone(BEIJING).date()
        return assessment.report(parse_period(period, today), by)

    def chart_of(report: Any) -> str:
        return bar_chart_svg([(r.label, r.score or 0) for r in report.rows], title=f"考核得分（{DIMENSIONS[report.by]}）",
                             unit="分")

    @web.get("/assessment", response_class=HTMLResponse)
    def assessment_page(request: Request, period: str = "", by: str = "village",
                        staff: ConsoleSession = Depends(require_role(*EVALUATION_STAFF))) -> HTMLResponse:
        try:
            report = report_for(period, by)
        except EvaluationError as exc:
            report = report_for("", by)
            return render(request, "assessment.html", {
                **common(), "nav_here": "assessment", "title": "考核统计", "report": report, "chart": chart_of(report),
                "columns": COLUMNS, "dimensions": DIMENSIONS, "period_text": period, "error": str(exc)}, status_code=400)
        return render(request, "assessment.html", {
            **common(), "nav_here": "assessment", "title": "考核统计", "report": report, "chart": chart_of(report),
            "columns": COLUMNS, "dimensions": DIMENSIONS, "period_text": report.period.label_key})

    @web.get("/assessment/print", response_class=HTMLResponse)
    def assessment_print(request: Request, period: str = "", by: str = "village",
                         staff: ConsoleSession = Depends(require_role(*EVALUATION_STAFF))) -> HTMLResponse:
        try:
            report = report_for(period, by)
        except EvaluationError as exc:
            return render(request, "message.html", {"message": str(exc), "status_code": 400}, status_code=400)
        return render(request, "assessment_print.html", {"title": report.title, "report": report,
                                                         "chart": chart_of(report), "columns": COLUMNS})

    @web.get("/assessment.xlsx")
    def assessment_xlsx(period: str = "", by: str = "village",
                        staff: ConsoleSession = Depends(require_role(*EVALUATION_STAFF))) -> Response:
        try:
            report = report_for(period, by)
        except EvaluationError as exc:
            return Response(str(exc), status_code=400, media_type="text/plain; charset=utf-8")
        name = urllib.parse.quote(f"{report.title}.xlsx")
        return Response(report_xlsx(report), media_type=XLSX_TYPE, headers={
            "content-disposition": f"attachment; filename=assessment-{report.by}.xlsx; filename*=UTF-8''{name}"})

    # ------------------------------------------------------------------ 督查: the daily overdue list

    oversight = Oversight(evaluations.handling)

    @web.get("/oversight", response_class=HTMLResponse)
    def oversight_page(request: Request, staff: ConsoleSession = Depends(require_role(*EVALUATION_STAFF))) -> HTMLResponse:
        items = oversight.daily()
        can_contact = staff.role in CONFIDENTIAL_ROLES
        applicants: dict[str, str] = {}
        if can_contact:   # the supervisor calls the applicant: name and number, for the ones to call
            for it in items:
                if it.needs_contact:
                    details = evaluations.handling.applicant(it.matter_id)
                    applicants[it.matter_id] = f"{details.name} {details.phone}" if details is not None else ""
        return render(request, "oversight.html", {
            **common(), "nav_here": "oversight", "title": "督查", "items": items, "causes": list(Cause),
            "notices": oversight.notices_for(staff.actor), "is_supervisor": staff.role is Role.SUPERVISOR,
            "can_contact": can_contact, "applicants": applicants})

    @web.post("/oversight/notices/{notice_id}/read")
    async def oversight_read(request: Request, notice_id: str,
                             staff: ConsoleSession = Depends(require_role(*EVALUATION_STAFF))) -> Response:
        try:
            await run_in_threadpool(lambda: oversight.mark_read(notice_id, actor=staff.actor))
        except EvaluationError as exc:
            return back("/oversight", str(exc))
        return back("/oversight", "已阅")

    @web.post("/oversight/{hop}/{matter_id}/{what}")
    async def oversight_record(request: Request, hop: str, matter_id: str, what: str,
                               staff: ConsoleSession = Depends(require_role(*EVALUATION_STAFF))) -> Response:
        raw = await request.form()
        try:
            if what == "cause":
                await run_in_threadpool(lambda: oversight.record_cause(
                    matter_id, str(raw.get("cause", "")), str(raw.get("solution", "")), actor=staff.actor, hop=hop))
                notice = "已登记超期原因和解决方案"
            elif what == "contact":
                await run_in_threadpool(lambda: oversight.record_contact(
                    matter_id, reached=raw.get("reached") == "yes", outcome=str(raw.get("outcome", "")),
                    actor=staff.actor, hop=hop))
                notice = "已登记联系申请人的情况"
            else:
                return render(request, "message.html", {"message": "未知的操作", "status_code": 404}, status_code=404)
        except EvaluationError as exc:
            return back("/oversight", str(exc))
        return back("/oversight", notice)

    @web.get("/evaluations/{evaluation_id}", response_class=HTMLResponse)
    def evaluation_page(request: Request, evaluation_id: str,
                        staff: ConsoleSession = Depends(require_role(Role.DIRECTOR, Role.SUPERVISOR))) -> HTMLResponse:
        try:
            v = evaluations.view(evaluation_id, role=staff.role)
        except EvaluationError as exc:
            return render(request, "message.html", {"message": str(exc), "status_code": 404}, status_code=404)
        return render(request, "evaluation.html", {
            **common(), "title": "差评处理", "v": v, "colleagues": colleagues(),
            "rectify_days": evaluations.settings().rectify_working_days, "can_review": staff.role is Role.DIRECTOR})

    @web.post("/evaluations/{evaluation_id}/{action}")
    async def evaluation_action(request: Request, evaluation_id: str, action: str,
                                staff: ConsoleSession = Depends(require_role(*EVALUATION_STAFF))) -> Response:
        raw = await request.form()
        here = f"/evaluations/{evaluation_id}" if staff.role in CONFIDENTIAL_ROLES else "/evaluations"
        actor = staff.actor
        try:
            if action == "assign":
                await run_in_threadpool(lambda: evaluations.assign_rectification(
                    evaluation_id, str(raw.get("owner", "")), actor=actor))
                notice = "已指定整改责任人"
            elif action == "fix":
                await run_in_threadpool(lambda: evaluations.record_fix(evaluation_id, str(raw.get("text", "")), actor=actor))
                return back("/evaluations", "已登记整改情况，等待回访评价人")
            elif action == "close":
                await run_in_threadpool(lambda: evaluations.close(evaluation_id, actor=actor))
                notice = "差评已办结"
            elif action == "invalidate":
                if staff.role is not Role.DIRECTOR:
                    raise ForbiddenError("您没有权限执行此操作：复核认定无效评价须由中心主任决定，"
                                         f"您当前的身份是{staff.role.label_zh}。")
                await run_in_threadpool(lambda: evaluations.invalidate(evaluation_id, str(raw.get("reason", "")),
                                                                       actor=actor))
                notice = "已复核认定为无效评价，理由已记录"
            else:
                return render(request, "message.html", {"message": "未知的操作", "status_code": 404}, status_code=404)
        except EvaluationError as exc:
            return back(here, str(exc))
        return back(here, notice)
