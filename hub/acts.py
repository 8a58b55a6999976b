"""Which county acts a staff member may take on a matter, and why not (the county's side of
`shared.domain.authority`).

A county decision (批准 / 不予批准 / 需补正) is the director's act, or an approver's the director
delegated it to (`Role.APPROVER`, `county-hub staff delegate`), and only on a matter whose catalogue
entry the county decides (`may_decide`). Refusing a major or difficult matter (`item.major`) is the
director's alone: a delegated approver asks for it and the director approves or declines the request
(004 篇6). Suspending the county hop for a step 003 第八条 does not count, resuming it and asking for an
extension go with deciding; approving an extension is the director's (003 第七条). A county operator
reads every matter and issues 督办; the administrator runs accounts, not cases.

The console offers `offered(...)`; the service refuses the rest with `refusal_zh(...)`, so a crafted
POST meets the same rule as the page. Pure: no I/O.
"""
from __future__ import annotations

import enum

from shared.domain.authority import may_decide
from shared.domain.catalog import CatalogItem, Tier
from shared.domain.deadlines import ClockStatus, SuspensionReason
from shared.domain.handling import HandledMatter, Role, Stage

__all__ = ["Act", "DECIDERS", "CASE_STAFF", "DECISIONS", "permission_zh", "state_zh", "offered"]


class Act(str, enum.Enum):
    APPROVE = "approve"                      # 批准
    REFUSE = "refuse"                        # 不予批准
    NEEDS_MATERIALS = "needs_materials"      # 需补正材料
    REQUEST_REFUSAL = "request_refusal"      # 受委托审批人申请不予批准（重大疑难事项）
    APPROVE_REFUSAL = "approve_refusal"      # 主任批准该申请
    DECLINE_REFUSAL = "decline_refusal"      # 主任不同意该申请
    SUSPEND = "suspend"                      # 中止计时（鉴定、专家评审等）
    RESUME = "resume"
    REQUEST_EXTENSION = "request_extension"  # 受委托审批人申请延期
    EXTEND = "extend"                        # 主任直接批准延期
    APPROVE_EXTENSION = "approve_extension"
    DECLINE_EXTENSION = "decline_extension"
    EXTENSION_NOTIFIED = "extension_notified"  # 已书面告知申请人延期
    SUPERVISE = "supervise"                  # 督办

    @property
    def label_zh(self) -> str:
        return _LABELS[self]


_LABELS = {
    Act.APPROVE: "批准", Act.REFUSE: "不予批准", Act.NEEDS_MATERIALS: "需补正材料",
    Act.REQUEST_REFUSAL: "申请不予批准（报中心主任审批）", Act.APPROVE_REFUSAL: "批准不予批准申请",
    Act.DECLINE_REFUSAL: "不同意不予批准申请", Act.SUSPEND: "中止计时", Act.RESUME: "恢复计时",
    Act.REQUEST_EXTENSION: "申请延期", Act.EXTEND: "批准延期", Act.APPROVE_EXTENSION: "批准延期申请",
    Act.DECLINE_EXTENSION: "不批准延期申请", Act.EXTENSION_NOTIFIED: "登记已书面告知申请人延期",
    Act.SUPERVISE: "督办",
}

DECIDERS = frozenset({Role.DIRECTOR, Role.APPROVER})
CASE_STAFF = frozenset({Role.OPERATOR, Role.DIRECTOR, Role.APPROVER})
DECISIONS = (Act.APPROVE, Act.REFUSE, Act.NEEDS_MATERIALS)
_AUTHORITY_ACTS = frozenset({*DECISIONS, Act.REQUEST_REFUSAL, Act.APPROVE_REFUSAL})
_DIRECTOR_ONLY = frozenset({Act.APPROVE_REFUSAL, Act.DECLINE_REFUSAL, Act.EXTEND, Act.APPROVE_EXTENSION,
                            Act.DECLINE_EXTENSION})


def permission_zh(act: Act, role: Role, item: CatalogItem | None) -> str:
    """Why `role` may not take `act` on a matter of `item` ("" when it may): who the staff member is,
    and what the county's authority under the catalogue allows."""
    if role is Role.ADMINISTRATOR:
        return "系统管理员负责账号和密钥，不办理办件"
    if act is Act.SUPERVISE:
        # The county's 督查 tracks every township: 督办 is its work (000 项目审批督促检查制度).
        return "" if role in CASE_STAFF or role is Role.SUPERVISOR else f"{role.label_zh}不能签发督办"
    if act in _AUTHORITY_ACTS:
        if item is None:
            return "服务事项目录中已没有该事项，县级无法作出决定，请先更新服务事项目录"
        if not may_decide(item, Tier.COUNTY):
            return f"“{item.name}”由{item.decided_by.label_zh}审批，县级无权作出决定"
    if act in _DIRECTOR_ONLY:
        if role is not Role.DIRECTOR:
            what = "不予批准申请" if act in (Act.APPROVE_REFUSAL, Act.DECLINE_REFUSAL) else "延期"
            return f"{what}须由中心主任审批，{role.label_zh}不能办理"
        return ""
    if role not in DECIDERS:
        if act in DECISIONS or act is Act.REQUEST_REFUSAL:
            return (f"县级决定须由中心主任或经主任委托的审批人作出，{role.label_zh}不能作出批准、"
                    "不予批准或要求补正的决定")
        return f"中止、恢复计时和延期由中心主任或经主任委托的审批人办理，{role.label_zh}不能办理"
    if act is Act.REFUSE and role is Role.APPROVER and item is not None and item.major:
        return (f"“{item.name}”属重大疑难事项，不予批准须由中心主任决定；"
                "受委托审批人可提出不予批准申请，报中心主任审批")
    if act is Act.REQUEST_REFUSAL:
        if role is Role.DIRECTOR:
            return "中心主任可直接作出不予批准决定，无需申请"
        if item is not None and not item.major:
            return "本事项不属重大疑难事项，受委托审批人可直接作出不予批准决定"
    if act is Act.REQUEST_EXTENSION and role is Role.DIRECTOR:
        return "中心主任可直接批准延期，无需申请"
    return ""


def state_zh(act: Act, matter: HandledMatter, *, past_due: bool = False) -> str:
    """Why the matter's present state does not allow `act` ("" when it does). `past_due`: the county
    hop's limit has already run out (no extension can then be approved, 003 第七条)."""
    clock = matter.clock
    status = clock.status if clock is not None else None
    if act is Act.SUPERVISE:
        return f"本件已{matter.stage.label_zh}，无需督办" if matter.is_final else ""
    if act is Act.EXTENSION_NOTIFIED:
        return "" if clock is not None and clock.unnotified_extensions else "没有尚未告知申请人的延期"
    if act in (Act.APPROVE_EXTENSION, Act.DECLINE_EXTENSION):
        return "" if matter.pending_extension is not None else "没有待审批的延期申请"
    if act in (Act.APPROVE_REFUSAL, Act.DECLINE_REFUSAL):
        return "" if matter.pending_refusal is not None else "没有待审批的不予批准申请"
    if matter.stage is not Stage.IN_PROGRESS:
        return f"本件当前为“{matter.stage.label_zh}”，不能{act.label_zh}"
    if act in (Act.REQUEST_EXTENSION, Act.EXTEND):
        if matter.pending_extension is not None:
            return "已有一项延期申请等待中心主任审批"
        if past_due:
            return "县级办理期限已届满，不能再延期；超期须说明原因"
        if clock is not None and clock.limit.unit is clock.statutory.unit and clock.limit.amount >= clock.statutory.amount:
            return f"县级时限已达上限（{clock.statutory.describe_zh()}），不能再延期"
        return "" if status in (ClockStatus.RUNNING, ClockStatus.SUSPENDED) else "县级环节没有在计时，不能延期"
    if act is Act.RESUME:
        if status is not ClockStatus.SUSPENDED:
            return "县级环节没有中止计时"
        assert clock is not None
        if clock.suspensions[-1].reason is SuspensionReason.AWAITING_MATERIALS:
            return "等待补正材料的中止由乡镇报来补正材料时恢复"
        return ""
    if status is ClockStatus.SUSPENDED:
        return "县级环节正在中止计时，请先恢复计时"
    if status is not ClockStatus.RUNNING:
        return "县级环节没有在计时"
    if matter.pending_refusal is not None and act is not Act.SUSPEND:
        return "已有一项不予批准申请等待中心主任审批，请主任先审批该申请"
    return ""


def offered(matter: HandledMatter, item: CatalogItem | None, role: Role, *, past_due: bool = False) -> frozenset[Act]:
    """The acts the console offers this staff member on this matter now."""
    return frozenset(a for a in Act
                     if not permission_zh(a, role, item) and not state_zh(a, matter, past_due=past_due))
