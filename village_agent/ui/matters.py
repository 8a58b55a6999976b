"""我的事项 (`/`, with the lookup-code box), 登记代办 (`/matters/new`, the live checklist at
`/api/assess`), one matter's page with its acts (补充材料, 交付结果, 撤回) and the receipt.

A matter's row and page show the deadline colour (`deadline_badge`: the township's clock) beside the
village's own hop (`village_agent.hop`), each material's state, and the history in the agent's words.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from shared.domain.catalog import IntakeOutcome, MaterialsAssessment, Tier
from shared.errors import SharedError
from shared.wire.v1 import records_pb2
from village_agent import domain
from village_agent.domain import RATING_ZH, MatterState, MatterStatus
from village_agent.errors import AgentError, FieldProblem, FormError, TransitionError, UnknownMatterError
from village_agent.hop import VillageHop, village_hop
from village_agent.receipt import build_receipt, format_due
from village_agent.services import SHANGHAI, AgentService, RequestForm
from village_agent.ui.pages import Pages, errors_by_field, evidence, request_values, uuid_or_none

__all__ = ["router", "DeadlineBadge", "deadline_badge", "KIND_ZH"]

PAGE_SIZE = 50
WARNING_WINDOW_MS = 24 * 3600 * 1000  # amber in the last day before the deadline, if the township has not said so already
AUTH_METHOD_ZH = {"drawn_signature": "现场手写签名", "photo_of_form": "拍摄或上传已签字的委托书",
                  "fingerprint": "按手印（拍摄按了手印的委托书）", "witness": "见证人证明"}
# Record kinds as the agent reads them in a matter's history; unknown kinds still show in Chinese.
KIND_ZH = {
    "request_filed": "登记代办申请", "materials_added": "补充材料", "appointment_made": "预约",
    "appointment_forfeited": "预约失约", "visit_recorded": "上门服务", "withdrawn": "撤回",
    "result_handed_over": "交付办理结果", "signed_off": "群众签收评价", "follow_up_called": "回访",
    "matter_classified": "乡镇受理分类", "status_update": "乡镇进度更新", "hop_clock_changed": "计时变更",
    "result_ready": "办理结果已出", "decision": "审批决定", "supervision_notice": "督办通知",
    "escalation": "上报县级", "document_issued": "签发文书",
}
CONFIRM_ZH_BY_ENUM = {
    records_pb2.AUTHORIZATION_METHOD_DRAWN_SIGNATURE: "群众签名",
    records_pb2.AUTHORIZATION_METHOD_PHOTO_OF_FORM: "签收单照片",
    records_pb2.AUTHORIZATION_METHOD_FINGERPRINT: "按手印",
    records_pb2.AUTHORIZATION_METHOD_WITNESS: "见证人证明",
}


# ---------------------------------------------------------------------------- deadline colour


@dataclass(frozen=True)
class DeadlineBadge:
    css: str      # on-time / warning / overdue / untimed
    label: str    # Chinese
    due: str


def deadline_badge(state: MatterState, now_ms: int) -> DeadlineBadge:
    """Green on time, amber close to the limit, red overdue, grey when no clock runs."""
    due = format_due(state.due_at_ms) if state.due_at_ms else "—"
    if state.closed or state.status is MatterStatus.HANDED_OVER:
        return DeadlineBadge("untimed", "已办结" if state.status is not MatterStatus.RETURNED else "已退回", due)
    if state.clock_state == records_pb2.CLOCK_STATE_SUSPENDED or state.status is MatterStatus.SUSPENDED:
        return DeadlineBadge("untimed", "暂停计时", due)
    if state.clock_state == records_pb2.CLOCK_STATE_STOPPED:
        return DeadlineBadge("untimed", "停止计时", due)
    if not state.due_at_ms:
        return DeadlineBadge("untimed", "未计时", "乡镇受理后开始计时")
    if state.clock_state == records_pb2.CLOCK_STATE_SUPERVISED:
        return DeadlineBadge("overdue", "超期督办", due)
    if state.clock_state == records_pb2.CLOCK_STATE_OVERDUE or now_ms > state.due_at_ms:
        return DeadlineBadge("overdue", "已超期", due)
    if state.clock_state == records_pb2.CLOCK_STATE_WARNING or state.due_at_ms - now_ms <= WARNING_WINDOW_MS:
        return DeadlineBadge("warning", "临期预警", due)
    return DeadlineBadge("on-time", "按时办理中", due)


# ---------------------------------------------------------------------------- the pages


def router(pages: Pages) -> APIRouter:
    service = pages.service
    render = pages.render
    routes = APIRouter()

    @routes.get("/", response_class=HTMLResponse)
    async def matters(request: Request, page: int = 1, status: str = "", code: str = "") -> Response:
        if code.strip():
            # The agent types the lookup code from a villager's receipt: straight to that matter.
            try:
                matter_id = service.resolve_matter(code[:40])
            except UnknownMatterError:
                return pages.not_found(request, f"本机没有查询码为 {_code_shown(code)} 的事项，请核对回执上的查询码。")
            return RedirectResponse(f"/matters/{matter_id}", status_code=303)
        page = max(1, min(page, 10_000))
        status = status if status in {s.value for s in MatterStatus} else ""
        states = service.store.list_matters(limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE, status=status or None)
        more = len(states) > PAGE_SIZE
        now = pages.now_ms()
        shown = states[:PAGE_SIZE]
        received = service.store.receipt_times([s.filed_seq for s in shown])
        rows = [_matter_row(service, s, now, received.get(s.filed_seq)) for s in shown]
        return render(request, "matters.html", rows=rows, page=page, more=more, status=status,
                      statuses=[(s.value, s.label_zh) for s in MatterStatus], total=service.store.count_matters())

    # ------------------------------------------------------------ new request

    @routes.get("/matters/new", response_class=HTMLResponse)
    async def new_request(request: Request) -> Response:
        return _render_new(request, values={}, problems=[])

    def _render_new(request: Request, *, values: dict[str, Any], problems: list[FieldProblem],
                    status_code: int = 200) -> HTMLResponse:
        values = {"request_id": str(uuid.uuid4()), **{k: v for k, v in values.items() if v or k != "request_id"}}
        return render(request, "new_request.html", status_code=status_code, items=list(service.catalog), values=values,
                      problems=problems, errors=errors_by_field(problems), auth_methods=AUTH_METHOD_ZH,
                      brought=set(values.get("materials", [])), not_applicable=set(values.get("not_applicable", [])),
                      commitments=values.get("commitments", {}), today=service.clock.now().astimezone(SHANGHAI).date().isoformat())

    @routes.post("/matters")
    async def file_request(request: Request) -> Response:
        form = await pages.read_form(request)
        values = request_values(form)
        try:
            signed = await evidence(form, values["authorization"])
            filed = service.file_request(RequestForm(
                applicant_name=values["name"], id_number=values["id_number"], phone=values["phone"],
                address=values["address"], catalog_code=values["matter"], materials_brought=values["materials"],
                commitments=values["commitments"], not_applicable=values["not_applicable"],
                authorization_method=values["authorization"], authorization_evidence=signed,
                witness_name=values["witness_name"], witness_statement=values["witness_statement"],
                elderly_or_disabled=values["elderly_or_disabled"], door_to_door=values["door_to_door"],
                note=values["note"]), matter_id=uuid_or_none(values["request_id"]))
        except FormError as exc:
            # The drawn signature is not sent back: a re-signed page is cheaper than echoing an image.
            return _render_new(request, values=values, problems=exc.problems, status_code=422)
        return RedirectResponse(f"/matters/{filed.matter_id}/receipt", status_code=303)

    @routes.get("/api/assess")
    async def assess(matter: str = "", m: Annotated[list[str], Query()] = [],  # noqa: B006 (FastAPI copies defaults)
                     na: Annotated[list[str], Query()] = []) -> Response:  # noqa: B006 (as above)
        """The live checklist. Takes only the matter code and material ids: no personal data in the URL."""
        try:
            result = service.assess(matter, list(m or []), list(na or []))
        except FormError as exc:
            return JSONResponse({"ok": False, "error": exc.problems[0].message}, status_code=200)
        except (SharedError, TypeError) as exc:
            return JSONResponse({"ok": False, "error": str(exc)}, status_code=200)
        return JSONResponse({"ok": True, **_assessment_json(result)})

    # ------------------------------------------------------------ one matter

    @routes.get("/matters/{matter_ref}", response_class=HTMLResponse)
    async def matter_page(request: Request, matter_ref: str) -> Response:
        return _render_matter(request, service.resolve_matter(matter_ref), problems=[], values={})

    def _render_matter(request: Request, matter_id: str, *, problems: list[FieldProblem], values: dict[str, Any],
                       status_code: int = 200) -> HTMLResponse:
        state = service.store.matter_state(matter_id)
        item = service.catalog.item(state.catalog_code) if state.catalog_code in service.catalog else None
        applicant = service.applicant(matter_id)
        history = [_history_row(r, item) for r in service.store.ledger_records_for(matter_id)]
        # 不适用 materials are not missing: never ask the villager for them again.
        missing = [m for m in item.materials if m.id not in state.materials and m.id not in state.not_applicable] if item else []
        received = service.store.receipt_times([state.filed_seq]).get(state.filed_seq)
        hop = village_hop(item, state, received_ms=received, now_ms=pages.now_ms(), calendar=service.calendar) if item else None
        return render(request, "matter.html", status_code=status_code, state=state, item=item, applicant=applicant,
                      history=history, missing=missing, badge=deadline_badge(state, pages.now_ms()), hop=hop,
                      materials=_material_rows(service, matter_id, state, item),
                      lookup_code=service.store.lookup_code_of(matter_id), errors=errors_by_field(problems),
                      problems=problems, values=values,
                      material_names={m.id: m.name for m in item.materials} if item else {},
                      can=_allowed_actions(service, state))

    @routes.post("/matters/{matter_ref}/materials")
    async def add_materials(request: Request, matter_ref: str) -> Response:
        form = await pages.read_form(request)
        matter_id = service.resolve_matter(matter_ref)
        ids = [str(v) for v in form.getlist("material_ids")]
        note = str(form.get("note", ""))
        try:
            service.add_materials(matter_id, ids, note)
        except FormError as exc:
            return _render_matter(request, matter_id, problems=exc.problems, values={"note": note}, status_code=422)
        return RedirectResponse(f"/matters/{matter_id}?done=materials", status_code=303)

    @routes.post("/matters/{matter_ref}/handover")
    async def hand_over(request: Request, matter_ref: str) -> Response:
        form = await pages.read_form(request)
        matter_id = service.resolve_matter(matter_ref)
        summary = str(form.get("result_summary", ""))
        try:
            service.hand_over(matter_id, summary, [str(v) for v in form.getlist("materials_returned")])
        except FormError as exc:
            return _render_matter(request, matter_id, problems=exc.problems, values={"result_summary": summary},
                                  status_code=422)
        return RedirectResponse(f"/matters/{matter_id}/signoff?done=handover", status_code=303)

    @routes.post("/matters/{matter_ref}/withdraw")
    async def withdraw(request: Request, matter_ref: str) -> Response:
        form = await pages.read_form(request)
        matter_id = service.resolve_matter(matter_ref)
        reason = str(form.get("reason", ""))
        try:
            service.withdraw(matter_id, reason)
        except FormError as exc:
            return _render_matter(request, matter_id, problems=exc.problems, values={"reason": reason}, status_code=422)
        return RedirectResponse(f"/matters/{matter_id}?done=withdraw", status_code=303)

    @routes.get("/matters/{matter_ref}/receipt", response_class=HTMLResponse)
    async def receipt(request: Request, matter_ref: str) -> Response:
        matter_id = service.resolve_matter(matter_ref)
        view = build_receipt(service, matter_id)
        state = service.store.matter_state(matter_id)
        return render(request, "receipt.html", r=view, state=state)

    return routes


# ---------------------------------------------------------------------------- what the pages show


def _assessment_json(a: MaterialsAssessment) -> dict[str, Any]:
    return {
        "outcome": a.outcome.value, "outcome_zh": a.outcome.label_zh, "kind_zh": a.suggested_kind.label_zh,
        "missing": [{"id": m.id, "name": m.name, "main": m in a.missing_main, "tolerated": m.tolerated_missing}
                    for m in a.missing],
        "commit_ids": [m.id for m in a.missing_auxiliary] if a.outcome is IntakeOutcome.ACCEPT_WITH_TOLERANCE else [],
        "return_reason": a.return_reason_zh or "",
        "clock_waits": a.clock_waits_for_materials,
    }


def _matter_row(service: AgentService, state: MatterState, now_ms: int, received_ms: int | None) -> dict[str, Any]:
    item = service.catalog.item(state.catalog_code) if state.catalog_code in service.catalog else None
    try:
        applicant = service.applicant(state.matter_id)
    except AgentError:
        applicant = None
    hop = village_hop(item, state, received_ms=received_ms, now_ms=now_ms, calendar=service.calendar) if item else None
    return {"id": state.matter_id, "matter_name": item.name if item else "（目录中已无此事项）",
            "status_zh": state.status.label_zh, "status": state.status.value,
            "applicant": applicant.name if applicant else "—", "id_masked": state.id_masked,
            "code": service.store.lookup_code_of(state.matter_id),
            "filed": state.filed_claimed_ms, "badge": deadline_badge(state, now_ms), "supervised": state.supervised,
            "hop": hop, "row_css": _row_css(deadline_badge(state, now_ms), hop)}


def _row_css(badge: DeadlineBadge, hop: VillageHop | None) -> str:
    """The row's colour: the worse of the township's clock and the village's own hop."""
    order = ["untimed", "done", "on-time", "warning", "overdue"]
    hop_css = "overdue" if hop is not None and hop.css == "overdue" else (hop.css if hop is not None else "untimed")
    hop_css = hop_css if hop_css in order else "untimed"
    worst = max((badge.css, hop_css), key=order.index)
    return "untimed" if worst == "done" else worst


def _material_rows(service: AgentService, matter_id: str, state: MatterState, item: Any) -> list[dict[str, str]]:
    """Each material with what is recorded for it now: brought, 不适用, promised by a date, or missing."""
    if item is None:
        return []
    dates = {t.material_id: t.supply_by_date for t in service.store.filing_record(matter_id).request_filed.tolerated_missing}
    rows = []
    for m in item.materials:
        main = item.is_main(m.id)
        kind = "主要材料" if main else ("辅助材料，可容缺" if m.tolerated_missing else "辅助材料")
        if m.id in state.materials:
            status, css = "已提交", "ok"
        elif m.id in state.not_applicable:
            status, css = "不适用", "na"
        elif m.id in dates and m.id in state.tolerated_missing:
            status, css = f"暂缺，承诺于 {dates[m.id]} 前补交", "warn"
        elif main:
            status, css = "缺少（主要材料）", "bad"
        else:
            status, css = "暂缺", "warn"
        rows.append({"name": m.name, "kind": kind, "condition": m.condition, "status": status, "css": css})
    return rows


def _history_row(record: records_pb2.Record, item: Any = None) -> dict[str, Any]:
    kind = record.WhichOneof("body") or ""
    names = {m.id: m.name for m in item.materials} if item is not None else {}
    detail = ""
    if kind == "materials_added":
        added = [names.get(m, "") for m in record.materials_added.material_ids]
        detail = "、".join(n for n in added if n) or f"{len(added)} 份材料"
    elif kind == "withdrawn":
        detail = record.withdrawn.reason
    elif kind == "result_handed_over":
        detail = record.result_handed_over.result_summary
    elif kind == "signed_off":
        how = CONFIRM_ZH_BY_ENUM.get(record.signed_off.confirmation_method,
                                     "群众签名" if record.signed_off.sealed_signature else "")
        detail = "，".join(x for x in (RATING_ZH.get(record.signed_off.rating, ""), how) if x)
    elif kind == "result_ready":
        detail = record.result_ready.result_summary
    elif kind == "status_update":
        detail = record.status_update.message
    elif kind == "supervision_notice":
        detail = record.supervision_notice.message
    elif kind == "document_issued":
        from shared.documents.kinds import DocumentKind

        known = {k.value: k.title_zh for k in DocumentKind}
        detail = f"{known.get(record.document_issued.kind, '文书')} {record.document_issued.number}"
    return {"at": record.header.claimed_time_ms, "kind_zh": KIND_ZH.get(kind, "其他记录"), "detail": detail,
            "from_township": kind not in ("request_filed", "materials_added", "withdrawn", "result_handed_over",
                                          "signed_off", "follow_up_called", "appointment_made", "visit_recorded",
                                          "appointment_forfeited", "document_issued")}


def _code_shown(code: str) -> str:
    """What the agent typed as a lookup code, fit to show back (letters, digits and the dash only)."""
    return "".join(ch for ch in code.strip().upper()[:12] if ch.isalnum() or ch == "-") or "（空）"


def _allowed_actions(service: AgentService, state: MatterState) -> dict[str, bool]:
    def ok(check: Callable[[], None]) -> bool:
        try:
            check()
        except TransitionError:
            return False
        return True

    decided_here = state.catalog_code in service.catalog and service.catalog.item(state.catalog_code).decided_by is Tier.VILLAGE
    return {
        "materials": ok(lambda: domain.check_can_add_materials(state)),
        "withdraw": ok(lambda: domain.check_can_withdraw(state)),
        "handover": ok(lambda: domain.check_can_hand_over(state, decided_here)),
        "signoff": ok(lambda: domain.check_can_sign_off(state)),
    }
