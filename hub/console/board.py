"""上报件看板 (`/`) and the matter page (`/matters/{id}`): both hops' clocks with where their limits
come from, what the decision maker decides on (the authorization, the materials by name, the agent's
note, the township's 初审意见, the elderly/disabled flag), the history, the applicant (opened only
here), and the acts the signed-in staff member may take (`hub.acts`): the county's decision, a
refusal request and its approval, the county clock (中止/恢复计时, 延期 and its written notice), 督办."""
from __future__ import annotations

import logging
import re
import urllib.parse
from collections.abc import Callable
from typing import Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from hub.acts import DECISIONS, Act, permission_zh
from hub.console.app import HANDLERS, STAFF, Pages, read_form
from hub.console.formatting import county_hop, limit_basis_zh, township_hop
from hub.errors import ConcurrentEditError, NotPermitted, UnknownMatter
from hub.handling import CountyHandling, CountyMatterView, Outcome
from shared.console import ConsoleSession, require_role
from shared.domain.catalog import Tier
from shared.domain.deadlines import ClockStatus, SuspensionReason
from shared.domain.handling import Role
from shared.errors import DeadlineError, HandlingError, SharedError

__all__ = ["add_routes", "split_lines", "actor_zh", "ACTIONS", "BOARD_PAGE_SIZE"]

log = logging.getLogger("hub.console.board")

# Matters per board page: the page reads only these (keyset paging, see CountyHandling.escalated_page).
BOARD_PAGE_SIZE = 100


def split_lines(text: str) -> list[str]:
    """A typed list (one per line, or separated by 、，；) as items."""
    return [x.strip() for x in re.split(r"[\n\r、，,；;]+", text or "") if x.strip()]


def actor_zh(actor: str, names: dict[str, str], townships: dict[str, str]) -> str:
    """Who a history line names, in words: staff by name and role, townships by name."""
    if actor.startswith("township:"):
        code = actor.split(":", 1)[1]
        return f"乡镇（{townships.get(code) or code}）"
    if actor == "village":
        return "村代办员"
    if actor == "county-system":
        return "县政务服务中心（系统）"
    return names.get(actor, actor)


def _row(v: CountyMatterView, handling: CountyHandling) -> dict[str, Any]:
    item = handling.catalog.item(v.catalog_code) if v.catalog_code in handling.catalog else None
    return {"v": v, "township_hop": township_hop(v.township_hop, v.township_received_at),
            "county_hop": county_hop(v.received_at, v.due_at, v.state, v.clock_status),
            "basis_township": limit_basis_zh(item, Tier.TOWNSHIP), "basis_county": limit_basis_zh(item, Tier.COUNTY)}


def _version(form: dict[str, str]) -> int:
    try:
        return int(form.get("expected_version", ""))
    except ValueError:
        raise HandlingError("页面缺少版本信息，请刷新页面后重做") from None


# The forms of the matter page: the action in the URL → what it does and the notice it leaves.
Action = Callable[[CountyHandling, str, dict[str, str], ConsoleSession], str]


def _decide(h: CountyHandling, matter_id: str, form: dict[str, str], staff: ConsoleSession) -> str:
    outcome = form.get("outcome", "")
    h.decide(matter_id, outcome, actor=staff.actor, reason=form.get("reason", ""),
             missing=split_lines(form.get("missing", "")) if outcome == Outcome.NEEDS_MATERIALS else (),
             expected_version=_version(form))
    return f"已作出县级决定：{Outcome.LABELS_ZH[outcome]}，已签名下发乡镇"


def _request_refusal(h: CountyHandling, matter_id: str, form: dict[str, str], staff: ConsoleSession) -> str:
    h.request_refusal(matter_id, form.get("reason", ""), actor=staff.actor, expected_version=_version(form))
    return "已提出不予批准申请，等待中心主任审批"


def _refusal_request(approve: bool) -> Action:
    def act(h: CountyHandling, matter_id: str, form: dict[str, str], staff: ConsoleSession) -> str:
        h.decide_refusal_request(matter_id, approve=approve, actor=staff.actor, expected_version=_version(form))
        return ("已批准不予批准申请：县级不予批准，已签名下发乡镇并记入否定报备" if approve
                else "已不同意不予批准申请，本件继续审批")
    return act


def _suspend(h: CountyHandling, matter_id: str, form: dict[str, str], staff: ConsoleSession) -> str:
    after = h.suspend(matter_id, form.get("reason", ""), form.get("note", ""), actor=staff.actor,
                      expected_version=_version(form))
    assert after.clock is not None
    return f"县级已中止计时（{after.clock.suspensions[-1].reason.label_zh}），已签名告知乡镇"


def _resume(h: CountyHandling, matter_id: str, form: dict[str, str], staff: ConsoleSession) -> str:
    h.resume(matter_id, actor=staff.actor, expected_version=_version(form))
    return "县级已恢复计时，已签名告知乡镇"


def _request_extension(h: CountyHandling, matter_id: str, form: dict[str, str], staff: ConsoleSession) -> str:
    h.request_extension(matter_id, form.get("new_limit", ""), form.get("reason", ""), actor=staff.actor,
                        expected_version=_version(form))
    return "已提出延期申请，等待中心主任批准"


def _extend(h: CountyHandling, matter_id: str, form: dict[str, str], staff: ConsoleSession) -> str:
    after = h.extend(matter_id, form.get("new_limit", ""), form.get("reason", ""), actor=staff.actor,
                     expected_version=_version(form))
    assert after.clock is not None
    return f"已批准延期至{after.clock.limit.describe_zh()}，已签名告知乡镇；请书面告知申请人后登记"


def _extension_decision(approve: bool) -> Action:
    def act(h: CountyHandling, matter_id: str, form: dict[str, str], staff: ConsoleSession) -> str:
        after = h.decide_extension(matter_id, approve=approve, actor=staff.actor, expected_version=_version(form))
        if not approve:
            return "已不批准延期申请"
        assert after.clock is not None
        return f"已批准延期至{after.clock.limit.describe_zh()}，已签名告知乡镇；请书面告知申请人后登记"
    return act


def _extension_notified(h: CountyHandling, matter_id: str, form: dict[str, str], staff: ConsoleSession) -> str:
    h.extension_notified(matter_id, form.get("how", ""), actor=staff.actor, expected_version=_version(form))
    return "已登记书面告知申请人延期"


def _supervise(h: CountyHandling, matter_id: str, form: dict[str, str], staff: ConsoleSession) -> str:
    h.issue_supervision(matter_id, form.get("message", ""), actor=staff.actor)
    return "已签发督办通知，乡镇下次同步时送达"


ACTIONS: dict[str, tuple[Action, tuple[Act, ...]]] = {
    "decide": (_decide, DECISIONS),
    "request_refusal": (_request_refusal, (Act.REQUEST_REFUSAL,)),
    "approve_refusal": (_refusal_request(True), (Act.APPROVE_REFUSAL,)),
    "decline_refusal": (_refusal_request(False), (Act.DECLINE_REFUSAL,)),
    "suspend": (_suspend, (Act.SUSPEND,)),
    "resume": (_resume, (Act.RESUME,)),
    "request_extension": (_request_extension, (Act.REQUEST_EXTENSION,)),
    "extend": (_extend, (Act.EXTEND,)),
    "approve_extension": (_extension_decision(True), (Act.APPROVE_EXTENSION,)),
    "decline_extension": (_extension_decision(False), (Act.DECLINE_EXTENSION,)),
    "extension_notified": (_extension_notified, (Act.EXTENSION_NOTIFIED,)),
    "supervise": (_supervise, (Act.SUPERVISE,)),
}


def add_routes(web: FastAPI, pages: Pages) -> None:
    app = pages.app
    handling = app.handling

    @web.get("/", response_class=HTMLResponse)
    def board(request: Request, township: str = "", open_only: str = Query("", alias="open"), after: str = "",
              staff: ConsoleSession = Depends(require_role(*STAFF))) -> HTMLResponse:
        names = pages.township_names()
        page = handling.escalated_page(township_code=township or None, open_only=bool(open_only), after=after,
                                       page_size=BOARD_PAGE_SIZE)
        for v in page.views:
            names.setdefault(v.township_code, v.township_name)
        query = {k: v for k, v in (("township", township), ("open", "1" if open_only else "")) if v}
        return pages.render(request, "board.html", {
            "title": "上报件看板", "nav_here": "board", "rows": [_row(v, handling) for v in page.views], "townships": names,
            "township": township, "open": bool(open_only), "totals": page.totals, "outcomes": Outcome.LABELS_ZH,
            "paged": bool(after), "first_url": "?" + urllib.parse.urlencode(query),
            "next_url": "?" + urllib.parse.urlencode({**query, "after": page.next_after}) if page.next_after else "",
        })

    def matter_context(matter_id: str, staff: ConsoleSession, form: dict[str, str] | None = None,
                       failed_action: str = "") -> dict[str, Any]:
        h = handling.history(matter_id)
        v, m, item = h.view, h.matter, h.item
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
        offered = set(handling.offered(h, staff.role))
        if failed_action in ACTIONS:
            # Refused or overtaken: the form stays on screen with what was typed, so nothing is lost —
            # but only a form the staff member's role may use at all.
            offered |= {a for a in ACTIONS[failed_action][1] if not permission_zh(a, staff.role, item)}
        outcomes = {a.value: a.label_zh for a in DECISIONS if a in offered}
        # Why no decision is offered, when it is the staff member's role (or the county's authority) that
        # stands in the way: said on the page rather than leaving the panel mysteriously empty.
        decision_refusal = "" if outcomes else permission_zh(Act.APPROVE, staff.role, item)
        labels = pages.staff_labels()
        townships = pages.township_names()
        events = [{"at": at, "who": actor_zh(actor, labels, townships), "action": action, "text": text}
                  for at, actor, action, text in h.events]
        materials = [x.name for x in item.materials] if item is not None else []
        return {
            "title": f"上报件 {v.catalog_name}", "nav_here": "board", "v": v, "m": m, "clock": clock, "item": item,
            "remaining": remaining, "township_hop": township_hop(v.township_hop, v.township_received_at),
            "county_hop": county_hop(v.received_at, v.due_at, v.state, v.clock_status, clock.stop_at if clock else None),
            "basis_township": limit_basis_zh(item, Tier.TOWNSHIP), "basis_county": limit_basis_zh(item, Tier.COUNTY),
            "source_county": limit_basis_zh(item, Tier.COUNTY, with_limit=False),
            "applicant": applicant, "applicant_problem": applicant_problem, "events": events,
            "allowed": {a.value for a in offered}, "outcomes": outcomes, "decision_refusal": decision_refusal,
            "form": form or {}, "failed_action": failed_action, "version": m.version, "all_outcomes": Outcome.LABELS_ZH,
            "materials": materials, "dossier": h.dossier, "suspension_reasons": SuspensionReason.not_counted_steps(),
            "staff_label": lambda sid: pages.staff_label(sid, labels),
            "major_note": bool(item is not None and item.major),
        }

    @web.get("/matters/{matter_id}", response_class=HTMLResponse)
    def matter_page(request: Request, matter_id: str, staff: ConsoleSession = Depends(require_role(*STAFF))) -> HTMLResponse:
        try:
            ctx = matter_context(matter_id, staff)
        except UnknownMatter as exc:
            return pages.message(request, str(exc))
        return pages.render(request, "matter.html", ctx)

    @web.get("/matters/{matter_id}/authorization")
    def authorization(request: Request, matter_id: str,
                      staff: ConsoleSession = Depends(require_role(*HANDLERS))) -> Response:
        """The villager's signature or the photo of the signed 委托书 (case staff only, never cached)."""
        try:
            found = handling.authorization_image(matter_id)
        except UnknownMatter as exc:
            return pages.message(request, str(exc))
        if found is None:
            return pages.message(request, "本件没有县级可查看的委托凭证图片。")
        data, media_type = found
        return Response(data, media_type=media_type, headers={"cache-control": "no-store",
                                                               "x-content-type-options": "nosniff"})

    @web.post("/matters/{matter_id}/{action}", response_class=HTMLResponse)
    async def matter_action(request: Request, matter_id: str, action: str,
                            staff: ConsoleSession = Depends(require_role(*HANDLERS, Role.SUPERVISOR))) -> Response:
        # 督查 may post only 督办; every act is checked again against the role (hub.acts.permission_zh).
        if action not in ACTIONS:
            return pages.message(request, "未知的操作")
        form = await read_form(request)
        run = ACTIONS[action][0]
        try:
            notice = await run_in_threadpool(run, handling, matter_id, form, staff)
        except UnknownMatter as exc:
            return pages.message(request, str(exc))
        except (HandlingError, DeadlineError, ConcurrentEditError) as exc:
            status = 403 if isinstance(exc, NotPermitted) else 409 if isinstance(exc, ConcurrentEditError) else 400
            ctx = await run_in_threadpool(matter_context, matter_id, staff, form, action)
            ctx["error"] = str(exc)
            return pages.render(request, "matter.html", ctx, status_code=status)
        return pages.back(f"/matters/{matter_id}", notice)
