"""JSON shapes both tiers' APIs use: who is calling, limits, device and link keys, a done action."""
from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from shared.api.errors import Unprocessable
from shared.api.tokens import ApiCaller
from shared.clock import from_unix_ms
from shared.domain.figures import Figures
from shared.domain.handling import Role
from shared.domain.limits import Limit, LimitUnit
from shared.domain.personal_data import personal_data_problem
from shared.relay.ports import AgentKey, KeyState

__all__ = ["Me", "LimitIn", "LimitOut", "KeyOut", "RevokeIn", "FiguresOut", "KEY_STATE_ZH"]

KEY_STATE_ZH = {KeyState.PENDING: "待批准", KeyState.APPROVED: "已批准", KeyState.REVOKED: "已吊销",
                KeyState.QUARANTINED: "已隔离（记录有冲突，待核查）"}


class Me(BaseModel):
    """令牌所属的工作人员。"""

    staff_id: str = Field(description="登录名")
    display_name: str = Field(description="姓名")
    role: Role = Field(description="身份")
    role_zh: str = Field(description="身份（中文）")

    @classmethod
    def of(cls, who: ApiCaller) -> Me:
        return cls(staff_id=who.staff_id, display_name=who.display_name, role=who.role, role_zh=who.role.label_zh)


class LimitIn(BaseModel):
    """时限：数量与单位。"""

    amount: int = Field(gt=0, le=100_000, description="数量（正整数）")
    unit: LimitUnit = Field(description="单位：office_minutes 办公分钟、working_days 工作日、natural_days 自然日")

    def limit(self) -> Limit:
        return Limit(self.amount, self.unit)


class LimitOut(BaseModel):
    amount: int
    unit: LimitUnit
    text_zh: str = Field(description="中文表述，如“5个工作日”")

    @classmethod
    def of(cls, limit: Limit) -> LimitOut:
        return cls(amount=limit.amount, unit=limit.unit, text_zh=limit.describe_zh())


class KeyOut(BaseModel):
    """一把设备（代办员笔记本）或接入（乡镇）密钥。"""

    key_id: str = Field(description="密钥标识（供程序使用）")
    holder_name: str = Field(description="持有人或乡镇名称")
    village_code: str
    township_code: str
    fingerprint: str = Field(description="登记指纹，批准前须与设备上显示的核对一致")
    state: KeyState
    state_zh: str
    enrolled_at: dt.datetime | None
    last_received_at: dt.datetime | None = Field(description="最近一次收到其记录的时间")
    status_reason: str = Field(description="吊销等状态变更的原因")

    @classmethod
    def of(cls, key: AgentKey) -> KeyOut:
        return cls(key_id=key.key_id, holder_name=key.info.holder_name, village_code=key.info.village_code,
                   township_code=key.info.township_code, fingerprint=key.info.fingerprint, state=key.state,
                   state_zh=KEY_STATE_ZH.get(key.state, key.state.value),
                   enrolled_at=from_unix_ms(key.enrolled_at_ms) if key.enrolled_at_ms else None,
                   last_received_at=from_unix_ms(key.last_receipt_ms) if key.last_receipt_ms else None,
                   status_reason=key.status_reason)


class RevokeIn(BaseModel):
    reason: str = Field(min_length=1, max_length=200,
                        description="吊销原因（必填），如：笔记本丢失、服务器失窃；不得含身份证号、手机号")

    def checked_reason(self) -> str:
        """The reason, stripped; `Unprocessable` when it is blank or carries an ID or mobile number (it is
        kept and signed in clear)."""
        reason = self.reason.strip()
        if not reason:
            raise Unprocessable("refused", "吊销密钥须写明原因")
        problem = personal_data_problem(reason, "吊销原因")
        if problem:
            raise Unprocessable("personal_data", problem)
        return reason


class FiguresOut(BaseModel):
    """一组统计（一个村、一名代办员或一名工作人员）。"""

    key: str = Field(description="分组（村代码、代办员、工作人员登录名）")
    label: str = Field(description="分组的中文名称")
    received: int = Field(description="受理件数")
    completed: int = Field(description="办结件数")
    completed_on_time: int = Field(description="按时办结件数")
    overdue: int = Field(description="超期件数")
    returned: int = Field(description="退回件数")
    average_working_hours: float | None = Field(description="平均用时（工作小时）")
    on_time_rate: float | None = Field(description="按时办结率（0–1）")
    rated: int = Field(description="已评价件数")
    satisfaction: float | None = Field(description="满意度（百分制）")
    bad_reviews: int = Field(description="差评件数")
    bad_reviews_followed_up: int = Field(description="差评已回访件数")

    @classmethod
    def of(cls, f: Figures, label: str) -> FiguresOut:
        return cls(key=f.key, label=label, received=f.received, completed=f.completed,
                   completed_on_time=f.completed_on_time, overdue=f.overdue, returned=f.returned,
                   average_working_hours=f.average_hours, on_time_rate=f.on_time_rate, rated=f.rated,
                   satisfaction=f.satisfaction, bad_reviews=f.bad_reviews,
                   bad_reviews_followed_up=f.bad_reviews_followed_up)
