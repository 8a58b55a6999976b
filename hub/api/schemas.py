"""The county API's JSON shapes: escalated matters as the board and the matter page show them, the
bodies of the county's acts, the overdue list, notices and the refusal register."""
from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field

from hub.acts import Act
from hub.handling import CountyMatterView
from shared.domain.deadlines import ClockState, ClockStatus, SuspensionReason
from shared.domain.handling import Role, Stage

__all__ = ["CountyMatterOut", "CountyDetailOut", "CountyEventOut", "CountyActionDone", "Versioned", "DecideIn",
           "ReasonIn", "SuspendIn", "NewLimitIn", "NotifiedIn", "SuperviseIn", "OverdueOut", "OverdueRowOut",
           "CountOut", "NoticeOut", "CountyRefusalOut", "NoticeIssued"]


class CountyMatterOut(BaseModel):
    """上报件看板上的一件。"""

    matter_id: str = Field(description="办件标识（供程序使用）")
    title: str = Field(description="事项名称")
    catalog_code: str
    township_code: str
    township_name: str
    village_code: str
    reference_zh: str = Field(description="供人识别的简称：乡镇与收件时间")
    stage: Stage
    stage_zh: str
    township_received_at: dt.datetime
    received_at: dt.datetime = Field(description="县级签收时间")
    due_at: dt.datetime | None = Field(description="县级办结期限")
    clock_state: ClockState | None
    clock_state_zh: str
    clock_status: ClockStatus | None
    outcome: str = Field(description="县级决定：approve 批准、refuse 不予批准、needs_materials 需补正材料；未决定为空")
    elderly_or_disabled: bool
    door_to_door: bool
    signed_off_at: dt.datetime | None = Field(description="村民签收时间")
    version: int = Field(description="版本号：操作时作为 expected_version 提交")

    @classmethod
    def fields_of(cls, v: CountyMatterView) -> dict[str, Any]:
        return dict(matter_id=v.matter_id, title=v.catalog_name, catalog_code=v.catalog_code,
                    township_code=v.township_code, township_name=v.township_name or "未登记名称的乡镇",
                    village_code=v.village_code, reference_zh=v.reference_zh, stage=v.stage, stage_zh=v.stage.label_zh,
                    township_received_at=v.township_received_at, received_at=v.received_at, due_at=v.due_at,
                    clock_state=v.state, clock_state_zh=v.state.label_zh if v.state else "未计时",
                    clock_status=v.clock_status, outcome=v.outcome, elderly_or_disabled=v.elderly_or_disabled,
                    door_to_door=v.door_to_door, signed_off_at=v.signed_off_at, version=v.version)

    @classmethod
    def of(cls, v: CountyMatterView) -> CountyMatterOut:
        return cls(**cls.fields_of(v))


class CountyEventOut(BaseModel):
    at: dt.datetime
    actor: str = Field(description="谁做的：工作人员姓名与身份、乡镇名称或系统")
    action: str
    text: str


class CountyDetailOut(CountyMatterOut):
    """上报件详情：决定所依据的内容与办理记录（不含申请人个人信息）。"""

    summary: str = Field(description="乡镇初审意见")
    limit_zh: str | None = Field(description="县级时限")
    remaining_zh: str | None = Field(description="剩余时间（计时中时）")
    major: bool = Field(description="重大疑难事项：不予批准须由中心主任决定")
    materials: list[str] = Field(description="目录要求的材料")
    pending_extension_zh: str | None
    pending_refusal_zh: str | None
    allowed_acts: list[Act] = Field(description="此刻您可以执行的操作；approve/refuse/needs_materials 经 `POST /matters/{id}/decide` 提交")
    decision_refusal_zh: str = Field(description="您不能作出县级决定时的原因（身份或县级权限）")
    events: list[CountyEventOut]


class CountyActionDone(BaseModel):
    message: str = Field(description="中文结果说明（与网页控制台的提示相同）")
    matter: CountyDetailOut


class Versioned(BaseModel):
    expected_version: int = Field(ge=0, description="读取办件时的版本号；办件已被他人修改时返回 409")


class DecideIn(Versioned):
    outcome: Literal["approve", "refuse", "needs_materials"] = Field(
        description="approve 批准、refuse 不予批准、needs_materials 需补正材料")
    reason: str = Field(default="", max_length=1000, description="理由（不予批准须写明）")
    missing: list[str] = Field(default=[], max_length=100, description="需补正的材料（needs_materials 时）")


class ReasonIn(Versioned):
    reason: str = Field(max_length=1000, description="理由")


class SuspendIn(Versioned):
    reason: SuspensionReason = Field(description="事由：hearing 听证、tendering 招标、testing 检验检测检疫、appraisal 鉴定、"
                                                 "expert_review 专家评审（现场勘查、等待补正材料不能中止县级计时）")
    note: str = Field(max_length=300, description="具体事项和预计所需时间（须告知申请人）")


class NewLimitIn(Versioned):
    new_limit: int = Field(gt=0, le=100_000, description="延期后的县级时限（数量，单位同现时限）")
    reason: str = Field(max_length=500, description="延期理由")


class NotifiedIn(Versioned):
    how: str = Field(max_length=300, description="书面告知的方式，如：延期告知书经乡镇转交申请人签收")


class SuperviseIn(BaseModel):
    message: str = Field(max_length=1000, description="督办内容")


class NoticeIssued(BaseModel):
    message: str
    notice_id: str = Field(description="督办通知标识（供程序使用）")


class OverdueRowOut(BaseModel):
    matter_id: str
    title: str
    township_code: str
    township_name: str
    village_code: str
    township_due_at: dt.datetime | None
    overdue_working_days: int
    message: str = Field(description="乡镇报来的最新状态")


class CountOut(BaseModel):
    key: str = Field(description="乡镇代码或办件类型")
    open: int = Field(description="计时中的件数")
    overdue: int = Field(description="超期件数")


class OverdueOut(BaseModel):
    by_township: list[CountOut]
    by_kind: list[CountOut]
    matters: list[OverdueRowOut] = Field(description="超期的乡镇环节，超期最久的在前")


class NoticeOut(BaseModel):
    notice_id: str
    matter_id: str
    township_code: str
    message: str
    status: Literal["issued", "received", "acknowledged"]
    status_zh: str
    issued_at: dt.datetime
    issued_by: str
    overdue_working_days: int


class CountyRefusalOut(BaseModel):
    refused_at: dt.datetime
    matter_id: str
    title: str
    township_code: str
    township_name: str
    reason: str
    decided_by: str
    decided_by_role: Role | None
    approved_by: str
    major: bool
