"""The township operator console: inbox, matter page with every action, 督办 list, extensions,
agents, figures, follow-up calls and the public status page (政务公开).

Everything here reads and acts through `TownApp` (the handling service, the agent services and
the deadline calendar); the only direct table read is the public lookup by code hash and the
figures, which need every matter row.
"""
from __future__ import annotations

import datetime as dt
import logging
import re
import urllib.parse
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import literal, select
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from shared.clock import from_unix_ms
from shared.console import (
    ConsoleAuth,
    ConsoleSession,
    RateLimiter,
    create_console_tables,
    install_console,
    rate_limit,
    require_role,
)
from shared.console.errors import ForbiddenError
from shared.console.serve import ConsoleServer, start_console_server
from shared.documents.adapters.web import install_document_routes
from shared.domain import lookup_code
from shared.domain.catalog import MatterKind
from shared.domain.deadlines import ClockState, ClockStatus, SuspensionReason
from shared.domain.evaluation import EvaluationError, may_record_follow_up
from shared.domain.figures import bar_chart_svg, figures_by, to_csv
from shared.domain.handling import RefusalKind, Role, Stage
from shared.domain.limits import Limit, LimitUnit
from shared.errors import HandlingError
from town_center.api import create_town_api
from town_center.bootstrap import TownApp
from town_center.console.evaluation_pages import PUBLIC_EVALUATE_PATH, install_evaluation_pages
from town_center.errors import ConcurrentEditError, UnknownMatter
from town_center.evaluation import Evaluations
from town_center.front_desk.console import install_front_desk
from town_center.handling import COUNTY_HOP
from town_center.store.matter_tables import follow_up_call, town_matter

__all__ = ["create_console_app", "open_console_auth", "start_console_server", "ConsoleServer", "SESSION_COOKIE"]


log = logging.getLogger("town_center.console")

HERE = Path(__file__).parent
BEIJING = dt.timezone(dt.timedelta(hours=8))
SESSION_COOKIE = "qc_town_session"
STATIC_PATH = "/town-static"
API_PATH = "/api"
# 督查 reads matters (to check the overdue ones and call applicants) but takes no action on them.
STAFF = (Role.OPERATOR, Role.DIRECTOR, Role.ADMINISTRATOR, Role.SUPERVISOR)
HANDLERS = (Role.OPERATOR, Role.DIRECTOR)
PUBLIC_NOT_FOUND = "未查到与该查询码对应的办件。请核对回执上的查询码（10 位字母数字，如 AB3CD-EF4GH）后重试。"
RATING_ZH = {1: "非常满意", 2: "满意", 3: "基本满意", 4: "不满意", 5: "非常不满意"}
STATE_CLASS = {ClockState.ON_TIME: "on-time", ClockState.WARNING: "warning", ClockState.OVERDUE: "overdue",
               ClockState.SUPERVISE: "supervise"}
TYPED_ACTIONS = frozenset({"classify", "request_materials", "suspend", "request_extension", "hand_over", "record_result",
                           "escalate", "request_refusal"})
ACTIONS = ("classify", "materials_completed", "request_materials", "suspend", "resume", "request_extension",
           "decide_extension", "extension_notified", "hand_over", "record_result", "escalate", "request_refusal",
           "decide_refusal")
INBOX_PAGE_SIZE = 100


class _ConsoleStaff:
    """The console's accounts as the handling service's staff directory (AB handover checks)."""

    def __init__(self, auth: ConsoleAuth) -> None:
        self._auth = auth

    def active_name(self, staff_id: str) -> str | None:
        try:
            account = self._auth.get_staff(staff_id)
        except Exception:  # noqa: BLE001 - unknown or malformed id: not a colleague
            return None
        return None if account.disabled or account.role is Role.ADMINISTRATOR else account.display_name


def bj(value: dt.datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return "—" if value is None else value.astimezone(BEIJING).strftime(fmt)


def open_console_auth(app: TownApp) -> ConsoleAuth:
    """Staff accounts live in the township database beside the matters."""
    create_console_tables(app.store.engine)
    return ConsoleAuth(app.store.engine, app.clock)


def _lines(text: str) -> list[str]:
    return [x.strip() for x in re.split(r"[\n\r、，,；;]+", text or "") if x.strip()]


def _normalise_code(raw: str) -> str | None:
    return lookup_code.normalise(raw)


def _lookup_hash(code: str) -> bytes:
    return lookup_code.lookup_code_hash(code)


def create_console_app(app: TownApp, auth: ConsoleAuth, *, secure_cookies: bool = False,
                       console_name: str = "乡镇便民服务中心", public_limiter: RateLimiter | None = None,
                       trusted_origins: tuple[str, ...] = ()) -> FastAPI:
    web = FastAPI(title=console_name, docs_url=None, redoc_url=None, openapi_url=None)
    console = install_console(web, auth, templates_dir=HERE / "templates", console_name=console_name,
                              public_paths=("/public", STATIC_PATH, API_PATH, PUBLIC_EVALUATE_PATH), session_cookie=SESSION_COOKIE,
                              secure_cookies=secure_cookies, trusted_origins=trusted_origins)
    web.mount(STATIC_PATH, StaticFiles(directory=str(HERE / "static")), name="town_static")
    env = console.templates.env
    env.filters["bj"] = bj
    env.globals.update(town_static=STATIC_PATH, state_class=STATE_CLASS, rating_zh=RATING_ZH)
    handling = app.handling
    handling.staff = _ConsoleStaff(auth)
    # The JSON API beside the pages: bearer tokens only (the middleware lets it through unsigned-in,
    # the API checks its own token), the same services and role rule; see README "JSON 接口".
    web.mount(API_PATH, create_town_api(app, auth))
    limiter = public_limiter if public_limiter is not None else RateLimiter(capacity=10, refill_per_second=1 / 30, clock=app.clock)

    def now() -> dt.datetime:
        return app.clock.now()

    def render(request: Request, name: str, context: dict[str, Any], *, status_code: int = 200) -> HTMLResponse:
        today = now().astimezone(BEIJING).date()
        try:
            warning = app.deadlines.calendar.warning_zh(today, today + dt.timedelta(days=60))
        except Exception:
            log.exception("calendar warning failed")
            warning = "工作日历无法读取，请联系系统管理员核对节假日安排。"
        ctx = {"calendar_warning": warning, "now": now(), "notice": console.take_flash(request), **context}
        return console.render(request, name, ctx, status_code=status_code)

    def back(url: str, notice: str) -> RedirectResponse:
        """Post/redirect/get; the notice waits server-side for the next page (never in the URL)."""
        console.flash(notice)
        return RedirectResponse(url, status_code=303)

    # ------------------------------------------------------------------ inbox

    @web.get("/", response_class=HTMLResponse)
    def inbox(request: Request, village: str = "", stage: str = "", mine: str = "", page: str = "1", after: str = "",
              staff: ConsoleSession = Depends(require_role(*STAFF))) -> HTMLResponse:
        stages = [Stage(stage)] if stage in {s.value for s in Stage} else None
        number = int(page) if page.isdigit() and int(page) > 0 else 1
        # "下一页" carries the keyset cursor (cheap however deep); other page links count from the top.
        box = handling.inbox_page(village_code=village or None, stages=stages, owner=staff.staff_id if mine else None,
                                  page=number, page_size=INBOX_PAGE_SIZE, after=after[:120])
        query = {k: v for k, v in (("village", village), ("stage", stage), ("mine", mine)) if v}
        return render(request, "inbox.html", {
            "title": "收件箱", "nav_here": "inbox", "items": box.items, "box": box, "villages": handling.villages(),
            "stages": list(Stage), "village": village, "stage": stage, "mine": bool(mine),
            "page_url": lambda n: "?" + urllib.parse.urlencode({**query, "page": n}),
            "next_url": "?" + urllib.parse.urlencode({**query, "page": number + 1, "after": box.next_after})
            if box.next_after else "",
        })

    # ------------------------------------------------------------------ matter page

    def matter_context(matter_id: str, staff: ConsoleSession, form: dict[str, str] | None = None,
                       failed_action: str = "") -> dict[str, Any]:
        page = handling.page(matter_id)
        m = page.matter
        clock = m.clock
        due = remaining = None
        if clock is not None and clock.start_at is not None:
            due = clock.due_at(app.deadlines.calendar)
            rem = clock.remaining_at(now(), app.deadlines.calendar)
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
            "village_state": page.village_clock.state_at(now(), app.deadlines.calendar, app.deadlines.thresholds)
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
        return [(a.staff_id, a.display_name) for a in auth.list_staff(include_disabled=False)
                if a.role is not Role.ADMINISTRATOR and a.staff_id != owner]

    def county_hop(matter_id: str, kind: MatterKind | None) -> dict[str, Any]:
        """The township's replica of the county hop (上报件 only): what the county's clock says, kept here."""
        clock = app.deadlines.load_clock(matter_id, COUNTY_HOP) if kind is MatterKind.REPORTED else None
        started = clock is not None and clock.start_at is not None
        return {
            "county_clock": clock,
            "county_due": clock.due_at(app.deadlines.calendar) if clock is not None and started else None,
            "county_state": clock.state_at(now(), app.deadlines.calendar, app.deadlines.thresholds)
            if clock is not None and started and clock.status is ClockStatus.RUNNING else None,
        }

    @web.get("/matters/{matter_id}", response_class=HTMLResponse)
    def matter_page(request: Request, matter_id: str, staff: ConsoleSession = Depends(require_role(*STAFF))) -> HTMLResponse:
        try:
            ctx = matter_context(matter_id, staff)
        except UnknownMatter as exc:
            return render(request, "message.html", {"message": str(exc), "status_code": 404}, status_code=404)
        return render(request, "matter.html", ctx)

    @web.get("/matters/{matter_id}/authorization.png")
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

    def run_action(action: str, matter_id: str, form: dict[str, str], staff: ConsoleSession) -> str:
        actor = staff.actor
        try:
            version: int | None = int(form.get("expected_version", ""))
        except ValueError:
            raise HandlingError("页面缺少版本信息，请刷新页面后重做") from None
        if action == "classify":
            try:
                kind = MatterKind(form.get("kind", ""))
            except ValueError:
                raise HandlingError("请选择办件类型（即办/承诺/补办/退回/联办/上报）") from None
            promised: Limit | None = None
            if kind is MatterKind.PROMISED and form.get("promise_amount", "").strip():
                try:
                    promised = Limit(int(form.get("promise_amount", "")), LimitUnit(form.get("promise_unit", "")))
                except ValueError:
                    raise HandlingError("请填写承诺时限（正整数）并选择单位") from None
            handling.classify(matter_id, kind, actor=actor, expected_version=version,
                              missing_materials=_lines(form.get("missing_materials", "")),
                              return_reason=form.get("return_reason", ""), promised_limit=promised,
                              lead_window=form.get("lead_window", ""), departments=_lines(form.get("departments", "")))
            return f"已受理，按{kind.label_zh}办理" if kind is not MatterKind.RETURNED else "已按退回件办理，并登记否定报备"
        if action == "request_refusal":
            try:
                refusal = RefusalKind(form.get("refusal_kind", ""))
            except ValueError:
                raise HandlingError("请选择：不予受理或不予批准") from None
            handling.request_refusal(matter_id, refusal, form.get("reason", ""), actor=actor, expected_version=version)
            return f"{refusal.label_zh}申请已提交，等待中心主任审批"
        if action == "decide_refusal":
            approve = form.get("decision") == "approve"
            handling.decide_refusal(matter_id, approve=approve, actor=actor, expected_version=version)
            return "已批准，并登记否定报备" if approve else "未批准，本件继续办理"
        if action == "materials_completed":
            handling.materials_completed(matter_id, actor=actor, expected_version=version)
            return "已登记材料补齐，开始计时"
        if action == "request_materials":
            missing = _lines(form.get("missing_materials", ""))
            if not missing:
                raise HandlingError("须一次性书面告知所缺的全部材料")
            handling.request_materials(matter_id, missing, actor=actor, expected_version=version)
            return "已一次性告知需补正的材料，补正期间不计时"
        if action == "suspend":
            try:
                reason = SuspensionReason(form.get("reason", ""))
            except ValueError:
                raise HandlingError("请选择中止计时的原因") from None
            handling.suspend(matter_id, reason, form.get("note", ""), actor=actor, expected_version=version)
            return "已中止计时"
        if action == "resume":
            handling.resume(matter_id, actor=actor, expected_version=version)
            return "已恢复计时"
        if action == "request_extension":
            try:
                limit = Limit(int(form.get("amount", "")), LimitUnit(form.get("unit", "")))
            except ValueError:
                raise HandlingError("请填写延期后的时限（正整数）并选择单位") from None
            handling.request_extension(matter_id, limit, form.get("reason", ""), actor=actor, expected_version=version)
            return "延期申请已提交，等待主任审批"
        if action == "decide_extension":
            approve = form.get("decision") == "approve"
            handling.decide_extension(matter_id, approve=approve, actor=actor, expected_version=version)
            return "已批准延期，请书面告知申请人" if approve else "已不予批准延期"
        if action == "extension_notified":
            handling.applicant_notified_of_extension(matter_id, actor=actor, expected_version=version)
            return "已登记书面告知申请人延期"
        if action == "hand_over":
            handling.hand_over(matter_id, form.get("to_staff", ""), form.get("reason", ""), actor=actor,
                               expected_version=version)
            return "已完成 AB 岗交接"
        if action == "record_result":
            decision = form.get("approved", "")
            if decision not in ("yes", "no"):
                raise HandlingError("请选择办理结果：准予或不予批准")
            handling.record_result(matter_id, approved=decision == "yes", summary=form.get("summary", ""),
                                   actor=actor, expected_version=version)
            return "已登记办理结果"
        if action == "escalate":
            if not form.get("summary", "").strip():
                raise HandlingError("上报须填写乡镇初审意见")
            if form.get("confirm") != "yes":
                raise HandlingError("请核对材料与初审意见后勾选确认，再签名上报")
            handling.escalate(matter_id, form.get("summary", ""), actor=actor, expected_version=version)
            if app.county_link is not None:
                app.county_link.wake()
            return "已签名上报县政务服务中心，等待县级签收"
        raise HandlingError("未知的操作")

    @web.post("/matters/{matter_id}/{action}", response_class=HTMLResponse)
    async def matter_action(request: Request, matter_id: str, action: str,
                            staff: ConsoleSession = Depends(require_role(*HANDLERS))) -> Response:
        if action not in ACTIONS:
            return render(request, "message.html", {"message": "未知的操作", "status_code": 404}, status_code=404)
        if action == "decide_refusal" and staff.role is not Role.DIRECTOR:
            raise ForbiddenError("您没有权限执行此操作：不予受理/不予批准的审批仅限中心主任，"
                                 f"您当前的身份是{staff.role.label_zh}。")
        if action == "decide_extension" and staff.role is not Role.DIRECTOR:
            raise ForbiddenError("您没有权限执行此操作：延期审批仅限中心主任，"
                                 f"您当前的身份是{staff.role.label_zh}。")
        raw = await request.form()
        form = {k: str(v) for k, v in raw.items() if k != "csrf_token"}
        try:
            notice = await run_in_threadpool(run_action, action, matter_id, form, staff)
        except UnknownMatter as exc:
            return render(request, "message.html", {"message": str(exc), "status_code": 404}, status_code=404)
        except (HandlingError, ConcurrentEditError) as exc:
            status = 409 if isinstance(exc, ConcurrentEditError) else 400
            ctx = await run_in_threadpool(matter_context, matter_id, staff, form, action)
            ctx["error"] = str(exc)
            return render(request, "matter.html", ctx, status_code=status)
        return back(f"/matters/{matter_id}", notice)

    # ------------------------------------------------------------------ 督办, extensions

    @web.get("/refusals", response_class=HTMLResponse)
    def refusals(request: Request, staff: ConsoleSession = Depends(require_role(*STAFF))) -> HTMLResponse:
        names = {i.code: i.name for i in handling.catalog}
        rows = [dict(r, catalog_name=names.get(r["catalog_code"], r["catalog_code"]), at=from_unix_ms(int(r["at_ms"])),
                     kind_zh=RefusalKind(r["refusal_kind"]).label_zh if r.get("refusal_kind") else "不予受理")
                for r in handling.refusals()]
        return render(request, "refusals.html", {"title": "否定报备", "nav_here": "refusals", "rows": rows})

    @web.get("/supervision", response_class=HTMLResponse)
    def supervision(request: Request, staff: ConsoleSession = Depends(require_role(*STAFF))) -> HTMLResponse:
        return render(request, "supervision.html", {"title": "督办清单", "nav_here": "supervision",
                                                    "items": handling.supervision_list(),
                                                    "county_items": handling.county_overdue()})

    @web.get("/county-notices", response_class=HTMLResponse)
    def county_notices(request: Request, staff: ConsoleSession = Depends(require_role(*STAFF))) -> HTMLResponse:
        link = app.county_link
        rows = [dict(r, issued_at=from_unix_ms(int(r["issued_at_ms"])),
                     acknowledged_at=from_unix_ms(int(r["acknowledged_at_ms"])) if r["acknowledged_at_ms"] else None)
                for r in (link.open_notices() if link is not None else [])]
        return render(request, "county_notices.html", {
            "title": "县级督办", "nav_here": "county-notices", "rows": rows, "linked": link is not None,
            "status": link.status() if link is not None else None, "can_answer": staff.role in HANDLERS})

    @web.post("/county-notices/{notice_id}", response_class=HTMLResponse)
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

    @web.get("/extensions", response_class=HTMLResponse)
    def extensions(request: Request, staff: ConsoleSession = Depends(require_role(*STAFF))) -> HTMLResponse:
        rows = []
        for s in handling.pending_extensions():
            page = handling.page(s.matter_id)
            rows.append({"s": s, "request": page.matter.pending_extension, "clock": page.matter.clock})
        return render(request, "extensions.html", {"title": "延期审批", "nav_here": "extensions", "rows": rows,
                                                   "can_decide": staff.role is Role.DIRECTOR})

    @web.post("/extensions/{matter_id}", response_class=HTMLResponse)
    async def decide(request: Request, matter_id: str,
                     staff: ConsoleSession = Depends(require_role(Role.DIRECTOR))) -> Response:
        raw = await request.form()
        form = {k: str(v) for k, v in raw.items()}
        try:
            notice = await run_in_threadpool(run_action, "decide_extension", matter_id, form, staff)
        except (HandlingError, ConcurrentEditError, UnknownMatter) as exc:
            return back("/extensions", str(exc))
        return back("/extensions", notice)

    # ------------------------------------------------------------------ agents

    @web.get("/agents", response_class=HTMLResponse)
    def agents(request: Request, staff: ConsoleSession = Depends(require_role(*STAFF))) -> HTMLResponse:
        from shared.clock import to_unix_ms

        # Stale pending enrollments leave the page as well as the bound (docs/wire-v1.md §3).
        app.store.expire_pending(now_ms=to_unix_ms(app.clock.now()), expire_after_ms=app.core.limits.enrollment.expire_after_ms)
        listed = app.services.list_agents()
        # A village code held by more than one pending or approved key: a look-alike enrollment, or a
        # second laptop, either way an operator must look before approving (issue 15).
        live = [a.info.village_code for a in listed if a.info.village_code and a.state.value in ("pending", "approved")]
        return render(request, "agents.html", {
            "title": "代办员设备", "nav_here": "agents", "agents": listed,
            "clashes": {code for code in live if live.count(code) > 1},
            "pending_days": app.core.limits.enrollment.expire_after_ms // 86_400_000,
            "can_manage": staff.role in (Role.ADMINISTRATOR, Role.DIRECTOR), "ms": lambda v: bj(from_unix_ms(v)) if v else "—",
        })

    @web.post("/agents/{key_id}/{what}")
    async def agent_action(request: Request, key_id: str, what: str,
                           staff: ConsoleSession = Depends(require_role(Role.ADMINISTRATOR, Role.DIRECTOR))) -> Response:
        raw = await request.form()
        try:
            if what == "approve":
                # The operator types the fingerprint's last group as read out by the agent: a look-alike
                # name cannot be approved by a click.
                typed = str(raw.get("fingerprint_check", "")).strip()
                target = next((a for a in app.services.list_agents() if a.key_id == key_id), None)
                if target is None or not typed or target.info.fingerprint.split()[-1:] != [typed]:
                    return back("/agents", "指纹核对不符：请与代办员电话逐组核对，输入指纹最后一组五位数字后再批准")
                agent = await run_in_threadpool(lambda: app.services.approve(key_id, by=staff.staff_id))
                notice = f"已批准 {agent.info.village_code} {agent.info.holder_name} 的设备密钥"
            elif what == "revoke":
                reason = str(raw.get("reason", "")).strip()
                if not reason:
                    return back("/agents", "吊销设备密钥须写明原因（如：笔记本丢失）")
                agent = await run_in_threadpool(lambda: app.services.revoke(key_id, by=staff.staff_id, reason=reason))
                notice = f"已吊销 {agent.info.village_code} {agent.info.holder_name} 的设备密钥，此后收到的记录一律拒收"
            else:
                return back("/agents", "未知的操作")
        except Exception as exc:  # noqa: BLE001 - the services raise Chinese messages (unknown key, wrong state)
            log.info("agent %s %s refused: %s", key_id, what, exc)
            return back("/agents", str(exc) or "操作未成功")
        return back("/agents", notice)

    # ------------------------------------------------------------------ figures

    facts = handling.matter_facts

    GROUPS = {"village": ("按村", lambda m: m.village_code), "agent": ("按代办员", lambda m: m.agent_key_id),
              "operator": ("按窗口工作人员", lambda m: m.operator_id)}

    def grouped(by: str) -> tuple[str, list[Any], Any]:
        if by not in GROUPS:
            by = "village"
        title, key = GROUPS[by]
        names = {a.key_id: f"{a.info.village_code} {a.info.holder_name}" for a in app.services.list_agents()}
        label = (lambda k: names.get(k, k[:8])) if by == "agent" else str
        return by, figures_by(facts(), key), label

    @web.get("/figures", response_class=HTMLResponse)
    def figures(request: Request, by: str = "village", staff: ConsoleSession = Depends(require_role(*STAFF))) -> HTMLResponse:
        by, rows, label = grouped(by)
        chart = bar_chart_svg([(label(f.key), f.received) for f in rows], title=f"受理件数（{GROUPS[by][0]}）", unit="件")
        return render(request, "figures.html", {"title": "统计", "nav_here": "figures", "rows": rows, "by": by,
                                                "groups": GROUPS, "label": label, "chart": chart})

    @web.get("/figures.csv")
    def figures_csv(by: str = "village", staff: ConsoleSession = Depends(require_role(*STAFF))) -> Response:
        by, rows, label = grouped(by)
        name = urllib.parse.quote(f"统计-{GROUPS[by][0]}.csv")
        return Response(to_csv(rows, label), media_type="text/csv; charset=utf-8",
                        headers={"content-disposition": f"attachment; filename=figures-{by}.csv; filename*=UTF-8''{name}"})

    # ------------------------------------------------------------------ follow-ups 回访

    @web.get("/follow-ups", response_class=HTMLResponse)
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
        return render(request, "follow_ups.html", {"title": "回访", "nav_here": "follow-ups", "items": items,
                                                   "can_draw": staff.role is Role.DIRECTOR})

    @web.post("/follow-ups/draw")
    async def follow_up_draw(request: Request, staff: ConsoleSession = Depends(require_role(Role.DIRECTOR))) -> Response:
        try:
            # The one draw (sample plus every 差评), whichever 回访 page asks for it.
            count, week = await run_in_threadpool(evaluations.draw_follow_ups)
        except IntegrityError:
            return back("/follow-ups", "本周样本正在由他人抽取，请刷新页面查看")
        if not count:
            return back("/follow-ups", f"本周（{week} 起）没有可抽取的已办结办件，或已经抽取过")
        return back("/follow-ups", f"已抽取本周（{week} 起）回访样本 {count} 件")

    @web.post("/follow-ups/{matter_id}")
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

    if app.front_desk is not None:   # the front desk's pages: window intake, registers, appointments, AB posts
        install_front_desk(web, app.front_desk, render=render, back=back, auth=auth, bj=bj)

    # ------------------------------------------------------------------ 好差评 (pages in evaluation_pages.py)

    evaluations = Evaluations(handling)
    web.state.evaluations = evaluations
    install_evaluation_pages(web, evaluations, auth, render=render, render_public=console.render, back=back,
                             limiter=limiter)
    from town_center.sms_hook import add_sms_hook_route
    add_sms_hook_route(web, evaluations, app.clock)   # the SMS gateway's replies (docs/evaluation.md)

    # ------------------------------------------------------------------ 政务公开

    @web.get("/public", response_class=HTMLResponse)
    def public_form(request: Request) -> HTMLResponse:
        return console.render(request, "public.html", {"title": "办件进度查询"})

    def lookup(code: str) -> dict[str, Any] | None:
        with app.store.engine.connect() as conn:
            row = conn.execute(select(town_matter.c.matter_id, town_matter.c.catalog_code, town_matter.c.stage,
                                      town_matter.c.kind, town_matter.c.due_at_ms, town_matter.c.received_at_ms)
                               .where(town_matter.c.lookup_code_hash == _lookup_hash(code))).first()
        if row is None:
            return None
        catalog = handling.catalog
        return {"name": catalog.item(row.catalog_code).name if row.catalog_code in catalog else row.catalog_code,
                "stage": Stage(row.stage).label_zh, "kind": MatterKind(row.kind).label_zh if row.kind else "待分类",
                "received_at": from_unix_ms(int(row.received_at_ms)),
                "due_at": from_unix_ms(int(row.due_at_ms)) if row.due_at_ms else None}

    @web.post("/public", response_class=HTMLResponse, dependencies=[Depends(rate_limit(limiter))])
    async def public_lookup(request: Request) -> HTMLResponse:
        raw = await request.form()
        code = _normalise_code(str(raw.get("code", ""))[:40])
        found = await run_in_threadpool(lookup, code) if code else None
        if found is None:
            return console.render(request, "public.html", {"title": "办件进度查询", "error": PUBLIC_NOT_FOUND},
                                  status_code=404)
        return console.render(request, "public.html", {"title": "办件进度查询", "found": found})

    # ------------------------------------------------------------------ written documents (print, PDF, public verify)

    if handling.documents is not None:
        install_document_routes(web, console, handling.documents, staff_roles=HANDLERS, limiter=limiter)

    return web


def _hop_limits(item: Any, tier: Any) -> dict[str, Any] | None:
    """The catalogue's limits for this hop with where the statutory one comes from (法定 or 本县规定)."""
    if item is None or tier not in item.limits:
        return None
    hop = item.hop(tier)
    return {"promised": hop.promised, "statutory": hop.statutory, "source_zh": hop.statutory_source.label_zh,
            "note": hop.note}
