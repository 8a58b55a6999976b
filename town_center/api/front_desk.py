"""The front desk through the JSON API (窗口前台): the day's queue, complaints, petitions and
consultations, appointments, AB posts and absences — each route calls the same `FrontDesk` method as
the console page (`town_center.front_desk.console`), under the same role rule. A complainant's or
petitioner's identity is in an answer only for the director and the supervision role: `FrontDesk`
leaves it out for everyone else (`may_see_identity`), here as on the pages."""
from __future__ import annotations

import base64
import binascii
import datetime as dt
from enum import Enum
from typing import Any

from fastapi import Depends, FastAPI, Query
from pydantic import BaseModel, Field

from shared.api import ApiCaller, NotFound, Unprocessable, require
from shared.domain.front_desk import CaseKind, Channel, Complexity, Feedback
from shared.domain.handling import Role
from town_center.front_desk.service import AbsenceView, AppointmentView, CaseView, FrontDesk, TicketView
from town_center.front_desk.window import WalkInForm

__all__ = ["add_front_desk_routes", "FRONT_DESK_TAG"]

FRONT_DESK_TAG = {"name": "窗口前台", "description": "等候队列、投诉/信访/咨询登记、窗口预约、AB 岗与顶岗（与网页“窗口前台”相同）"}
_TAG: list[str | Enum] = [FRONT_DESK_TAG["name"]]   # the type FastAPI's `tags` parameter takes
HANDLERS = (Role.OPERATOR, Role.DIRECTOR)
VIEWERS = (Role.OPERATOR, Role.DIRECTOR, Role.ADMINISTRATOR)


class OverviewOut(BaseModel):
    """窗口前台概况。"""

    queue: list[TicketView] = Field(description="今日等候队列（含已叫号）")
    appointments: list[AppointmentView] = Field(description="今日预约")
    counts: dict[str, int] = Field(description="登记件数（按类别）")


class TicketIn(BaseModel):
    applicant_name: str = Field(max_length=50, description="取号群众的姓名")
    elderly_or_disabled: bool = Field(default=False, description="老年人、残疾人等优先办理")


class CaseIn(BaseModel):
    kind: CaseKind = Field(description="complaint 投诉、petition 信访、consultation 咨询")
    channel: Channel = Field(default=Channel.VISIT, description="来源渠道")
    complexity: Complexity = Field(default=Complexity.SIMPLE, description="复杂程度")
    subject: str = Field(max_length=200, description="事由")
    content: str = Field(max_length=5000, description="内容")
    anonymous: bool = Field(default=False, description="匿名")
    person_name: str = Field(default="", max_length=50, description="投诉人/信访人姓名（加密保存，仅中心主任和督查可见）")
    person_contact: str = Field(default="", max_length=100, description="联系方式（加密保存，仅中心主任和督查可见）")
    handler: str = Field(default="", max_length=64, description="承办人登录名")
    linked_matter_id: str = Field(default="", max_length=64, description="相关办件")
    linked_staff_id: str = Field(default="", max_length=64, description="被投诉的工作人员登录名")
    catalog_code: str = Field(default="", max_length=32, description="咨询的服务事项代码")
    answer: str = Field(default="", max_length=5000, description="当场答复（咨询）")


class AnswerIn(BaseModel):
    answer: str = Field(max_length=5000, description="答复内容")
    expected_version: int | None = Field(default=None, ge=1, description="读取时的版本号；已被他人修改时拒绝")


class FeedbackIn(BaseModel):
    feedback: Feedback = Field(description="回访反馈结果")
    note: str = Field(default="", max_length=1000, description="反馈说明")
    expected_version: int | None = Field(default=None, ge=1, description="读取时的版本号")


class BookIn(BaseModel):
    applicant_name: str = Field(max_length=50, description="预约人姓名")
    phone: str = Field(max_length=20, description="预约人手机号（加密保存，只用于改约、取消时发短信告知）")
    catalog_code: str = Field(max_length=32, description="服务事项代码")
    scheduled_at: dt.datetime = Field(description="预约时间（须带时区，如 2026-12-01T09:30:00+08:00）")
    elderly_or_disabled: bool = Field(default=False, description="老年人、残疾人等优先办理")


class ContactIn(BaseModel):
    reached: bool = Field(description="是否联系上")
    note: str = Field(default="", max_length=500, description="联系情况")
    expected_version: int | None = Field(default=None, ge=1)


class ArrivedIn(BaseModel):
    late_reason: str = Field(default="", max_length=300, description="迟到原因（迟到时填写）")
    expected_version: int | None = Field(default=None, ge=1)


class VersionIn(BaseModel):
    expected_version: int | None = Field(default=None, ge=1)


class ChangeIn(BaseModel):
    new_at: dt.datetime | None = Field(default=None, description="改约后的时间（取消时不填）")
    reason: str = Field(max_length=300, description="改约或取消的原因")
    approved_by: str = Field(default="", max_length=64, description="批准人登录名（规则要求时）")
    applicant_told: bool = Field(default=False, description="已告知预约人")
    expected_version: int | None = Field(default=None, ge=1)


class PostIn(BaseModel):
    name: str = Field(max_length=50, description="岗位名称")
    a_staff: str = Field(max_length=64, description="A 岗登录名")
    b_staff: str = Field(max_length=64, description="B 岗登录名")


class AbsenceIn(BaseModel):
    staff_id: str = Field(max_length=64, description="离岗人登录名")
    from_date: dt.date = Field(description="离岗开始日期")
    to_date: dt.date = Field(description="离岗结束日期")
    reason: str = Field(max_length=300, description="离岗事由")
    covered_by: str = Field(default="", max_length=64, description="顶岗人登录名（不填则为其 B 岗）")


class Done(BaseModel):
    message: str = Field(description="中文结果说明（与网页控制台的提示相同）")


class WalkInIn(BaseModel):
    """窗口现场登记（与网页“窗口现场登记”表单相同）。"""

    applicant_name: str = Field(max_length=50, description="申请人姓名")
    id_number: str = Field(max_length=30, description="申请人身份证号（加密保存）")
    phone: str = Field(default="", max_length=20, description="申请人手机号（加密保存）")
    address: str = Field(default="", max_length=200, description="住址")
    catalog_code: str = Field(max_length=32, description="服务事项代码")
    materials_brought: list[str] = Field(default=[], max_length=100, description="已提交的材料（材料代码）")
    not_applicable: list[str] = Field(default=[], max_length=100, description="不适用的材料（材料代码）")
    commitments: dict[str, str] = Field(default={}, description="容缺承诺：材料代码 → 承诺补交日期（年-月-日）")
    elderly_or_disabled: bool = Field(default=False, description="老年人、残疾人等优先办理")
    on_behalf: bool = Field(default=False, description="代他人办理")
    representative_name: str = Field(default="", max_length=50, description="代办人姓名（代办时）")
    representative_relation: str = Field(default="", max_length=50, description="代办人与申请人的关系（代办时）")
    authorization_photo_base64: str = Field(default="", max_length=5_000_000,
                                            description="申请人签字的委托书照片（代办时，base64）")
    signature_png_base64: str = Field(max_length=5_000_000, description="窗口签字板上的签名（PNG，base64）")
    note: str = Field(default="", max_length=1000, description="备注（不得含身份证号、手机号）")


class WalkInOut(BaseModel):
    """窗口受理回执：查询码只在此处给出一次（本中心只保存其摘要）。"""

    message: str
    matter_id: str
    lookup_code: str = Field(description="查询码，请交给申请人")
    title: str = Field(description="事项名称")
    outcome_zh: str
    notice: str = Field(description="一次性告知内容")
    registered_at: dt.datetime


class SignOffIn(BaseModel):
    signature_png_base64: str = Field(max_length=5_000_000, description="申请人在签字板上的签收签名（PNG，base64）")
    comment: str = Field(default="", max_length=500, description="申请人意见（不得含身份证号、手机号）")


class CaseDone(Done):
    case: CaseView


class AppointmentDone(Done):
    appointment: AppointmentView


class AbsenceDone(Done):
    absence: AbsenceView


def _base64(text: str, label: str) -> bytes:
    if not text:
        return b""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise Unprocessable("invalid_request", f"{label}应为 base64 编码的图片") from None


def add_front_desk_routes(api: FastAPI, desk: FrontDesk) -> None:
    handlers = Depends(require(*HANDLERS))
    viewers = Depends(require(*VIEWERS))

    @api.get("/front-desk", tags=_TAG, summary="窗口前台概况：今日等候队列、今日预约、登记件数", response_model=OverviewOut)
    def overview(who: ApiCaller = viewers) -> OverviewOut:
        desk.start_due_absences()
        return OverviewOut(queue=desk.queue(include_called=True), appointments=desk.appointments(), counts=desk.counts())

    @api.post("/front-desk/queue", tags=_TAG, summary="取号", response_model=TicketView)
    def take_ticket(body: TicketIn, who: ApiCaller = handlers) -> TicketView:
        return desk.take_ticket(applicant_name=body.applicant_name, elderly_or_disabled=body.elderly_or_disabled)

    @api.post("/front-desk/queue/next", tags=_TAG, summary="叫号：请下一位到窗口", response_model=TicketView,
              description="没有等候的群众时返回 404。")
    def call_next(who: ApiCaller = handlers) -> TicketView:
        ticket = desk.call_next(actor=who.actor)
        if ticket is None:
            raise NotFound("queue_empty", "目前没有等候的群众")
        return ticket

    # ------------------------------------------------------------------ walk-ins

    @api.post("/front-desk/walk-ins", tags=_TAG, summary="窗口现场登记（签名受理，与村代办员报送的办件一并办理）",
              response_model=WalkInOut, description="材料核对、签名或委托书与网页表单的规则相同；不合规时逐项说明，什么也不保存。")
    def walk_in(body: WalkInIn, who: ApiCaller = handlers) -> WalkInOut:
        form = WalkInForm(
            applicant_name=body.applicant_name, id_number=body.id_number, phone=body.phone, address=body.address,
            catalog_code=body.catalog_code, materials_brought=list(body.materials_brought),
            not_applicable=list(body.not_applicable), commitments=dict(body.commitments),
            elderly_or_disabled=body.elderly_or_disabled, on_behalf=body.on_behalf,
            representative_name=body.representative_name, representative_relation=body.representative_relation,
            authorization_photo=_base64(body.authorization_photo_base64, "委托书照片"),
            signature_png=_base64(body.signature_png_base64, "签名"), note=body.note)
        receipt = desk.window.register(form, operator=who.actor, operator_name=who.display_name)
        return WalkInOut(message="已受理，请把查询码交给申请人", matter_id=receipt.matter_id, lookup_code=receipt.lookup_code,
                         title=receipt.catalog_name, outcome_zh=receipt.outcome_zh, notice=receipt.notice,
                         registered_at=receipt.registered_at)

    @api.post("/front-desk/walk-ins/{matter_id}/sign-off", tags=_TAG, summary="窗口交付签收（本件办结）",
              response_model=Done)
    def sign_off(matter_id: str, body: SignOffIn, who: ApiCaller = handlers) -> Done:
        desk.window.sign_off(matter_id, signature_png=_base64(body.signature_png_base64, "签名"), comment=body.comment,
                             actor=who.actor)
        return Done(message="申请人已签收确认，本件办结；请打印交付签收单交给申请人，由申请人扫描二维码评价")

    # ------------------------------------------------------------------ the register

    @api.get("/front-desk/cases", tags=_TAG, summary="投诉、信访、咨询登记簿", response_model=list[CaseView],
             description="投诉人、信访人的身份仅中心主任和督查可见（其他身份 `person` 为空、`identity_hidden` 为 true）。")
    def cases(kind: CaseKind = Query(CaseKind.COMPLAINT, description="登记类别"),
              open_only: bool = Query(False, description="只列未办结的"), who: ApiCaller = viewers) -> list[CaseView]:
        return desk.cases(kind, viewer=who.actor, open_only=open_only)

    @api.post("/front-desk/cases", tags=_TAG, summary="登记投诉、信访或咨询", response_model=CaseDone)
    def register_case(body: CaseIn, who: ApiCaller = handlers) -> CaseDone:
        view = desk.register_case(
            body.kind, actor=who.actor, channel=body.channel, subject=body.subject, content=body.content,
            complexity=body.complexity, anonymous=body.anonymous, person_name=body.person_name,
            person_contact=body.person_contact, handler=body.handler, linked_matter_id=body.linked_matter_id,
            linked_staff_id=body.linked_staff_id, catalog_code=body.catalog_code, answer=body.answer)
        return CaseDone(message=f"已登记 {view.register_no}", case=desk.case(view.case_id, viewer=who.actor))

    @api.get("/front-desk/cases/{case_id}", tags=_TAG, summary="一条登记及其办理记录", response_model=CaseView)
    def case(case_id: str, who: ApiCaller = viewers) -> CaseView:
        return desk.case(case_id, viewer=who.actor)

    @api.post("/front-desk/cases/{case_id}/answer", tags=_TAG, summary="登记答复", response_model=CaseDone,
              description="承办人或中心主任答复；书面投诉同时出具答复书。")
    def answer_case(case_id: str, body: AnswerIn, who: ApiCaller = handlers) -> CaseDone:
        desk.answer_case(case_id, body.answer, actor=who.actor, expected_version=body.expected_version)
        return CaseDone(message="已登记答复，请回访并登记反馈", case=desk.case(case_id, viewer=who.actor))

    @api.post("/front-desk/cases/{case_id}/feedback", tags=_TAG, summary="登记回访反馈（办结）", response_model=CaseDone)
    def feedback(case_id: str, body: FeedbackIn, who: ApiCaller = handlers) -> CaseDone:
        desk.record_feedback(case_id, body.feedback, body.note, actor=who.actor, expected_version=body.expected_version)
        return CaseDone(message="已登记反馈，本件办结", case=desk.case(case_id, viewer=who.actor))

    # ------------------------------------------------------------------ appointments

    @api.get("/front-desk/appointments", tags=_TAG, summary="窗口预约（今日起）", response_model=list[AppointmentView])
    def appointments(who: ApiCaller = viewers) -> list[AppointmentView]:
        return desk.upcoming_appointments()

    @api.post("/front-desk/appointments", tags=_TAG, summary="登记预约", response_model=AppointmentDone)
    def book(body: BookIn, who: ApiCaller = handlers) -> AppointmentDone:
        if body.scheduled_at.tzinfo is None:
            raise Unprocessable("refused", "预约时间须带时区，如 2026-12-01T09:30:00+08:00")
        view = desk.book(actor=who.actor, applicant_name=body.applicant_name, phone=body.phone,
                         catalog_code=body.catalog_code, scheduled_at=body.scheduled_at,
                         elderly_or_disabled=body.elderly_or_disabled)
        return AppointmentDone(message=f"已确认预约：{view.applicant_name}", appointment=view)

    def _appointment_done(appointment_id: str, message: str) -> AppointmentDone:
        return AppointmentDone(message=message, appointment=desk.appointment(appointment_id))

    @api.post("/front-desk/appointments/{appointment_id}/contact", tags=_TAG, summary="登记联系预约人的情况",
              response_model=AppointmentDone)
    def contact(appointment_id: str, body: ContactIn, who: ApiCaller = handlers) -> AppointmentDone:
        desk.contact_attempt(appointment_id, reached=body.reached, note=body.note, actor=who.actor,
                             expected_version=body.expected_version)
        return _appointment_done(appointment_id, "已登记联系情况")

    @api.post("/front-desk/appointments/{appointment_id}/forfeit", tags=_TAG, summary="登记为视为放弃预约",
              response_model=AppointmentDone)
    def forfeit(appointment_id: str, body: VersionIn, who: ApiCaller = handlers) -> AppointmentDone:
        desk.forfeit(appointment_id, actor=who.actor, expected_version=body.expected_version)
        return _appointment_done(appointment_id, "已登记为视为放弃预约")

    @api.post("/front-desk/appointments/{appointment_id}/arrived", tags=_TAG, summary="登记到场（排入今日等候队列）",
              response_model=AppointmentDone)
    def arrived(appointment_id: str, body: ArrivedIn, who: ApiCaller = handlers) -> AppointmentDone:
        desk.arrived(appointment_id, late_reason=body.late_reason, actor=who.actor, expected_version=body.expected_version)
        return _appointment_done(appointment_id, "已登记到场，已排入今日等候队列")

    @api.post("/front-desk/appointments/{appointment_id}/change", tags=_TAG, summary="改约或取消预约",
              response_model=AppointmentDone, description="`new_at` 为空即取消；改约、取消都以短信告知预约人。")
    def change(appointment_id: str, body: ChangeIn, who: ApiCaller = handlers) -> AppointmentDone:
        if body.new_at is not None and body.new_at.tzinfo is None:
            raise Unprocessable("refused", "改约时间须带时区，如 2026-12-01T09:30:00+08:00")
        desk.change_appointment(appointment_id, new_at=body.new_at, reason=body.reason, approved_by=body.approved_by,
                                applicant_told=body.applicant_told, actor=who.actor,
                                expected_version=body.expected_version)
        return _appointment_done(appointment_id, "已改约" if body.new_at is not None else "已取消预约")

    # ------------------------------------------------------------------ AB posts and 顶岗

    @api.get("/front-desk/posts", tags=_TAG, summary="AB 岗设置", response_model=list[dict[str, Any]])
    def posts(who: ApiCaller = viewers) -> list[dict[str, Any]]:
        return desk.posts()

    @api.post("/front-desk/posts", tags=_TAG, summary="设置 AB 岗（仅中心主任）", response_model=Done)
    def add_post(body: PostIn, who: ApiCaller = Depends(require(Role.DIRECTOR))) -> Done:
        desk.add_post(body.name, body.a_staff, body.b_staff, actor=who.actor)
        return Done(message="已设置 AB 岗")

    @api.get("/front-desk/absences", tags=_TAG, summary="离岗与顶岗登记", response_model=list[AbsenceView])
    def absences(who: ApiCaller = viewers) -> list[AbsenceView]:
        desk.start_due_absences()
        return desk.absences()

    @api.post("/front-desk/absences", tags=_TAG, summary="登记离岗（工作移交顶岗人）", response_model=AbsenceDone)
    def register_absence(body: AbsenceIn, who: ApiCaller = handlers) -> AbsenceDone:
        view = desk.register_absence(body.staff_id, from_date=body.from_date, to_date=body.to_date, reason=body.reason,
                                     covered_by=body.covered_by, actor=who.actor)
        return AbsenceDone(message=f"已登记离岗，{len(view.handover)} 项工作已移交顶岗人", absence=view)

    @api.post("/front-desk/absences/{absence_id}/return", tags=_TAG, summary="登记返岗（顶岗期间的工作交回）",
              response_model=AbsenceDone)
    def absence_return(absence_id: int, who: ApiCaller = handlers) -> AbsenceDone:
        view = desk.returned(absence_id, actor=who.actor)
        return AbsenceDone(message=f"已登记返岗，顶岗期间的 {len(view.handover)} 项工作已交回", absence=view)
