"""The township API's JSON shapes: matters as the inbox and the matter page show them, and the bodies
of the staff actions (one per form on the matter page)."""
from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from shared.api.models import LimitIn, LimitOut
from shared.calendar import WorkingCalendar
from shared.domain.catalog import MatterKind
from shared.domain.deadlines import ClockState, ClockStatus, HopClock, SuspensionReason, Thresholds
from shared.domain.handling import RefusalKind, Stage
from town_center.handling import MatterSummary

__all__ = ["MatterOut", "InboxOut", "ClockOut", "EventOut", "MaterialOut", "MatterDetailOut", "ActionDone",
           "Versioned", "ClassifyIn", "RefusalRequestIn", "DecisionIn", "MaterialsRequestIn", "SuspendIn",
           "ExtensionRequestIn", "HandOverIn", "ResultIn", "EscalateIn", "NoticeAnswerIn", "CountyNoticeOut",
           "SupervisionOut", "RefusalOut"]


class MatterOut(BaseModel):
    """收件箱、督办清单中的一件。"""

    matter_id: str = Field(description="办件标识（供程序使用，勿展示给群众）")
    title: str = Field(description="事项名称")
    catalog_code: str
    village_code: str
    stage: Stage
    stage_zh: str
    kind: MatterKind | None
    kind_zh: str
    owner: str = Field(description="承办人登录名（未分类时为空）")
    owner_name: str = Field(description="承办人姓名")
    received_at: dt.datetime
    due_at: dt.datetime | None
    clock_state: ClockState | None = Field(description="计时状态：正常、预警、超期、督办；未计时为空")
    clock_state_zh: str
    clock_status: ClockStatus | None
    elderly_or_disabled: bool = Field(description="老年人、残疾人等优先办理")
    door_to_door: bool = Field(description="上门办理")
    pending_extension: bool
    pending_refusal: bool
    version: int = Field(description="版本号：操作时作为 expected_version 提交")

    @classmethod
    def of(cls, s: MatterSummary, names: dict[str, str]) -> MatterOut:
        return cls(matter_id=s.matter_id, title=s.catalog_name, catalog_code=s.catalog_code, village_code=s.village_code,
                   stage=s.stage, stage_zh=s.stage.label_zh, kind=s.kind, kind_zh=s.kind.label_zh if s.kind else "待分类",
                   owner=s.owner, owner_name=names.get(s.owner, s.owner), received_at=s.received_at, due_at=s.due_at,
                   clock_state=s.state, clock_state_zh=s.state.label_zh if s.state else "未计时",
                   clock_status=s.clock_status, elderly_or_disabled=s.elderly_or_disabled, door_to_door=s.door_to_door,
                   pending_extension=s.pending_extension, pending_refusal=s.pending_refusal, version=s.version)


class InboxOut(BaseModel):
    items: list[MatterOut]
    total: int
    page: int
    pages: int
    page_size: int


class ClockOut(BaseModel):
    """一个环节的计时。"""

    status: ClockStatus
    status_zh: str
    limit: LimitOut
    started_at: dt.datetime | None
    due_at: dt.datetime | None
    state: ClockState | None
    state_zh: str
    remaining_zh: str | None = Field(description="剩余时间的中文表述（计时中时）")

    @classmethod
    def of(cls, clock: HopClock, now: dt.datetime, calendar: WorkingCalendar, thresholds: Thresholds) -> ClockOut:
        started = clock.start_at is not None
        due = clock.due_at(calendar) if started else None
        state = clock.state_at(now, calendar, thresholds) if started else None
        remaining = clock.remaining_at(now, calendar) if started and clock.status is ClockStatus.RUNNING else None
        return cls(status=clock.status, status_zh=clock.status.label_zh, limit=LimitOut.of(clock.limit),
                   started_at=clock.start_at, due_at=due, state=state, state_zh=state.label_zh if state else "未计时",
                   remaining_zh=remaining.describe_zh() if remaining is not None else None)


class EventOut(BaseModel):
    at: dt.datetime
    actor: str = Field(description="谁做的：工作人员姓名，或“村代办员”“县政务服务中心”")
    action: str = Field(description="操作代码")
    text: str = Field(description="办理记录（中文）")


class MaterialOut(BaseModel):
    name: str
    main: bool = Field(description="主要材料（否则为辅助材料）")
    brought: bool = Field(description="已提交")


class PendingOut(BaseModel):
    what_zh: str = Field(description="待审批的申请（中文）")
    reason: str


class MatterDetailOut(MatterOut):
    """办件详情：办件页面所示内容（不含申请人个人信息）。"""

    township_clock: ClockOut | None = Field(description="乡镇办理环节的计时")
    county_clock: ClockOut | None = Field(description="上报件在县级环节的计时（本乡镇保存的副本）")
    major: bool = Field(description="重大疑难事项（不予受理/不予批准须中心主任审批）")
    materials: list[MaterialOut]
    missing_materials: list[str] = Field(description="一次性告知需补正的材料")
    written_promise: str = Field(description="承诺件的书面承诺")
    result_summary: str
    pending_extension_request: PendingOut | None
    pending_refusal_request: PendingOut | None
    allowed_actions: list[str] = Field(description="此刻您可以执行的操作，即 `POST /matters/{ref}/{操作}` 中的操作名")
    allowed_kinds: list[MatterKind] = Field(description="本乡镇可以受理为的办件类型")
    events: list[EventOut]


class ActionDone(BaseModel):
    message: str = Field(description="中文结果说明（与网页控制台的提示相同）")
    matter: MatterDetailOut


class Versioned(BaseModel):
    expected_version: int = Field(ge=0, description="读取办件时的版本号；办件已被他人修改时返回 409")


class ClassifyIn(Versioned):
    kind: MatterKind = Field(description="办件类型：immediate 即办、promised 承诺、supplement 补办、"
                                         "returned 退回、joint 联办、reported 上报")
    missing_materials: list[str] = Field(default=[], max_length=100, description="补办件：一次性告知所缺的全部材料")
    return_reason: str = Field(default="", max_length=1000, description="退回件：退回理由")
    promise: LimitIn | None = Field(default=None, description="承诺件：承诺时限（不填则按目录）")
    lead_window: str = Field(default="", max_length=100, description="联办件：牵头窗口")
    departments: list[str] = Field(default=[], max_length=50, description="联办件：参与部门")


class RefusalRequestIn(Versioned):
    refusal_kind: RefusalKind = Field(description="not_accepted 不予受理，not_approved 不予批准")
    reason: str = Field(max_length=1000, description="理由")


class DecisionIn(Versioned):
    approve: bool = Field(description="true 批准，false 不予批准")


class MaterialsRequestIn(Versioned):
    missing_materials: list[str] = Field(min_length=1, max_length=100, description="一次性书面告知所缺的全部材料")


class SuspendIn(Versioned):
    reason: SuspensionReason = Field(description="中止计时的事由（听证、招标、拍卖、检验检测检疫、鉴定、专家评审等）")
    note: str = Field(default="", max_length=300, description="具体事项与预计所需时间")


class ExtensionRequestIn(Versioned):
    new_limit: LimitIn = Field(description="延期后的时限")
    reason: str = Field(max_length=500, description="延期理由")


class HandOverIn(Versioned):
    to_staff: str = Field(max_length=64, description="接手的工作人员登录名（本中心在岗账号）")
    reason: str = Field(max_length=300, description="交接原因，如请假、外出")


class ResultIn(Versioned):
    approved: bool = Field(description="true 准予，false 不予批准")
    summary: str = Field(max_length=1000, description="办理结果")


class EscalateIn(Versioned):
    opinion: str = Field(max_length=500, description="乡镇初审意见")
    confirm: bool = Field(description="须为 true：已核对材料与初审意见，确认签名上报（与网页上的确认勾选相同）")


class NoticeAnswerIn(BaseModel):
    explanation: str = Field(max_length=1000, description="情况说明")


class CountyNoticeOut(BaseModel):
    """县级督办通知。"""

    notice_id: str = Field(description="通知标识（供程序使用）")
    matter_id: str
    title: str = Field(description="所督办办件的事项名称")
    message: str
    overdue_working_days: int
    issued_at: dt.datetime
    acknowledged_at: dt.datetime | None
    explanation: str | None


class SupervisionOut(BaseModel):
    overdue: list[MatterOut] = Field(description="乡镇环节超期、进入督办的办件")
    county_overdue: list[MatterOut] = Field(description="县级环节超期的上报件（到期时间与状态为县级环节的）")


class RefusalOut(BaseModel):
    """否定报备的一条。"""

    matter_id: str
    title: str
    refusal_kind: RefusalKind
    refusal_kind_zh: str
    reason: str
    at: dt.datetime
    by: str = Field(description="作出决定的工作人员登录名")
    approved_by: str = Field(description="批准的中心主任登录名（重大疑难事项）")
