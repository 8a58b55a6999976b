"""How a tier handles a matter: the six kinds, first-asked responsibility, AB-post handover,
suspension, extension on a director's approval, escalation, results and the villager's sign-off.

Pure: every transition takes the instant and the actor and returns a new `HandledMatter`, or
raises `HandlingError` with a Chinese message. The services turn each transition into a signed
record and store the new value with an optimistic `version` check, so two operators editing the
same matter never silently overwrite each other.
"""
from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from shared.calendar import WorkingCalendar
from shared.domain.authority import allowed_kinds, authority_refusal_zh, may_decide, tracks_only
from shared.domain.catalog import CatalogItem, MatterKind, Tier
from shared.domain.deadlines import HopClock, StopReason, SuspensionReason, format_instant_zh
from shared.domain.limits import Limit, LimitUnit
from shared.domain.personal_data import refuse_personal_data
from shared.errors import DeadlineError, HandlingError

IMMEDIATE_LIMIT = Limit.minutes(30)  # 即办件: handled on the spot, normally within 30 minutes (004, 002)
MIN_JOINT_DEPARTMENTS = 2            # 000 says 2+, 004 says 3+; the county may require more
# 待受理: the one-time notification (or acceptance) is due within 5 working days of receipt (000).
ACCEPTANCE_LIMIT = Limit.working_days(5)
# 承诺件: a written promise of at least one working day (000).
MIN_PROMISE = Limit.working_days(1)


def _refuse_personal_data(*fields: tuple[str, str]) -> None:
    """Staff's free text is signed and stored in plain text at every tier: (label, text) carrying an ID or
    mobile number is refused; the applicant's own numbers travel only sealed."""
    refuse_personal_data(*fields)


class Role(str, enum.Enum):
    OPERATOR = "operator"        # 窗口工作人员
    DIRECTOR = "director"        # 中心主任
    ADMINISTRATOR = "administrator"
    APPROVER = "approver"        # 受委托审批人: a county staff member the director delegated decisions to
    SUPERVISOR = "supervisor"    # 督查: checks overdue matters daily, sees who rated whom, calls villagers back

    @property
    def label_zh(self) -> str:
        return {"operator": "窗口工作人员", "director": "中心主任", "administrator": "系统管理员",
                "approver": "受委托审批人", "supervisor": "督查"}[self.value]


@dataclass(frozen=True)
class Actor:
    staff_id: str
    role: Role


class Stage(str, enum.Enum):
    RECEIVED = "received"                    # 已接收，待受理（一次性告知 within 5 working days）
    VILLAGE_OWN = "village_own"              # 村级自办事项：乡镇只跟踪，不分类
    WAITING_MATERIALS = "waiting_materials"  # 补办件：等待补齐材料，未计时
    IN_PROGRESS = "in_progress"              # 办理中（即办/承诺/联办）
    ESCALATING = "escalating"                # 上报件：待上报县级
    ESCALATED = "escalated"                  # 已上报县级，等待决定
    RESULT_READY = "result_ready"            # 结果待交付
    HANDED_OVER = "handed_over"              # 已交付，待签收
    SIGNED_OFF = "signed_off"                # 已签收评价（办结）
    RETURNED = "returned"                    # 退回件
    WITHDRAWN = "withdrawn"                  # 申请人撤回

    @property
    def label_zh(self) -> str:
        return _STAGE_ZH[self]


_STAGE_ZH = {
    Stage.RECEIVED: "待受理", Stage.VILLAGE_OWN: "村级办理（乡镇跟踪）", Stage.WAITING_MATERIALS: "待补齐材料", Stage.IN_PROGRESS: "办理中",
    Stage.ESCALATING: "待上报县级", Stage.ESCALATED: "已上报县级", Stage.RESULT_READY: "结果待交付",
    Stage.HANDED_OVER: "已交付待签收", Stage.SIGNED_OFF: "已签收办结", Stage.RETURNED: "已退回",
    Stage.WITHDRAWN: "已撤回",
}
_FINAL = frozenset({Stage.SIGNED_OFF, Stage.RETURNED, Stage.WITHDRAWN})
_WORKING = frozenset({Stage.IN_PROGRESS, Stage.WAITING_MATERIALS, Stage.ESCALATING})


@dataclass(frozen=True)
class Handover:
    """AB post 主岗/协岗: ownership passed on with time and reason; the previous owner keeps watching."""

    from_staff: str
    to_staff: str
    at: dt.datetime
    reason: str


class RefusalKind(str, enum.Enum):
    """The two refusals the 否定报备 register holds (004 篇6)."""

    NOT_ACCEPTED = "not_accepted"   # 不予受理 (a 退回件)
    NOT_APPROVED = "not_approved"   # 不予批准

    @property
    def label_zh(self) -> str:
        return {"not_accepted": "不予受理", "not_approved": "不予批准"}[self.value]


@dataclass(frozen=True)
class RefusalRequest:
    """A refusal of a major or difficult matter waiting for the director's approval (004 篇6)."""

    kind: RefusalKind
    requested_by: str
    requested_at: dt.datetime
    reason: str


@dataclass(frozen=True)
class ExtensionRequest:
    requested_by: str
    requested_at: dt.datetime
    new_limit: Limit
    reason: str


@dataclass(frozen=True)
class HandledMatter:
    matter_id: str
    catalog_code: str
    tier: Tier
    received_at: dt.datetime          # this tier's receipt time: starts its hop clock
    stage: Stage = Stage.RECEIVED
    kind: MatterKind | None = None
    owner: str = ""                   # the handling operator 承办人 (首办); the 首问责任人 is who received it first
    watchers: tuple[str, ...] = ()    # earlier owners keep watching until the end
    clock: HopClock | None = None
    missing_materials: tuple[str, ...] = ()
    return_reason: str = ""
    written_promise: str = ""
    lead_window: str = ""
    departments: tuple[str, ...] = ()
    pending_extension: ExtensionRequest | None = None
    result_summary: str = ""
    approved: bool | None = None
    handovers: tuple[Handover, ...] = ()
    # 上报: when the township signed its escalation to the county (its own hop runs until the county's receipt).
    escalation_sent_at: dt.datetime | None = None
    # The upper tier asked for materials: this tier's clock stays stopped; the upper tier's waits.
    upper_tier_waiting: bool = False
    # 待受理: the clock on the one-time notification, from receipt until the matter is classified.
    acceptance_clock: HopClock | None = None
    # 送达: from the result until the villager's sign-off.
    delivery_clock: HopClock | None = None
    pending_refusal: RefusalRequest | None = None
    refusal: RefusalKind | None = None
    refusal_approved_by: str = ""
    escalation_opinion: str = ""      # 初审意见 sent up with a 上报
    version: int = 0

    @classmethod
    def received(cls, matter_id: str, catalog_code: str, tier: Tier, received_at: dt.datetime,
                 item: CatalogItem | None = None) -> HandledMatter:
        """A matter as this tier receives it. With its catalogue item: a lower tier's own matter is
        only tracked; any other waits to be accepted, on a clock (the one-time notification is due
        within 5 working days of receipt, 000). Without the item (a code the catalogue does not
        hold) it waits with no clock until the catalogue is updated."""
        if received_at.tzinfo is None:
            raise HandlingError("收件时刻必须带时区")
        if item is not None and item.code != catalog_code:
            raise HandlingError("收件所用的目录事项与本件不符")
        if item is not None and tracks_only(item, tier):
            return cls(matter_id=matter_id, catalog_code=catalog_code, tier=tier, received_at=received_at,
                       stage=Stage.VILLAGE_OWN)
        acceptance = HopClock.received(received_at, ACCEPTANCE_LIMIT, ACCEPTANCE_LIMIT) if item is not None else None
        return cls(matter_id=matter_id, catalog_code=catalog_code, tier=tier, received_at=received_at,
                   acceptance_clock=acceptance)

    @classmethod
    def accepted_from_below(cls, matter_id: str, catalog_code: str, tier: Tier, received_at: dt.datetime,
                            item: CatalogItem) -> HandledMatter:
        """A 上报件 as the deciding tier receives it: its own hop clock starts at its receipt time."""
        if item.code != catalog_code:
            raise HandlingError("上报件所用的目录事项与本件不符")
        if item.decided_by is not tier:
            raise HandlingError(f"该事项由{item.decided_by.label_zh}决定，不应上报到{tier.label_zh}")
        hop = item.hop(tier)
        try:
            clock = HopClock.received(received_at, hop.promised, hop.statutory)
        except DeadlineError as exc:
            raise HandlingError(str(exc)) from exc
        return cls(matter_id=matter_id, catalog_code=catalog_code, tier=tier, received_at=received_at,
                   stage=Stage.IN_PROGRESS, kind=MatterKind.REPORTED, clock=clock)

    @property
    def is_final(self) -> bool:
        return self.stage in _FINAL

    def _next(self, **changes: Any) -> HandledMatter:
        return replace(self, version=self.version + 1, **changes)

    # ------------------------------------------------------------ who may act

    def _require_responsible(self, actor: Actor, what: str) -> None:
        if actor.role is Role.DIRECTOR or actor.staff_id == self.owner:
            return
        owner = self.owner or "（尚无）"
        raise HandlingError(f"{what}须由本件的首问责任人（{owner}）或中心主任办理；如需接手，请先办理 AB 岗交接")

    def _require_stage(self, allowed: frozenset[Stage] | set[Stage], what: str) -> None:
        if self.stage not in allowed:
            raise HandlingError(f"本件当前为“{self.stage.label_zh}”，不能{what}")

    # ------------------------------------------------------------ classification 六件

    def classify(
        self,
        kind: MatterKind,
        *,
        actor: Actor,
        at: dt.datetime,
        item: CatalogItem,
        missing_materials: tuple[str, ...] = (),
        return_reason: str = "",
        promised_limit: Limit | None = None,
        calendar: WorkingCalendar | None = None,
        lead_window: str = "",
        departments: tuple[str, ...] = (),
        refusal_approved_by: str = "",
    ) -> HandledMatter:
        """Accept and classify a received matter. The classifying operator becomes its owner.

        Only the kinds the tier's authority allows (`shared.domain.authority`). A 承诺件's written
        promise is generated from its clock (`promised_limit`, within the catalogue's, at least one
        working day; the catalogue's by default), so it can never disagree with the clock. A 退回
        of a major matter needs the director (`refusal_approved_by` names the approving director
        when the director approves an operator's request)."""
        if self.stage is Stage.VILLAGE_OWN:
            raise HandlingError(authority_refusal_zh(item, self.tier, kind))
        self._require_stage({Stage.RECEIVED}, "再次分类")
        if item.code != self.catalog_code:
            raise HandlingError("分类所用的目录事项与本件不符")
        if kind not in allowed_kinds(item, self.tier):
            raise HandlingError(authority_refusal_zh(item, self.tier, kind))
        _refuse_personal_data(("退回理由", return_reason), ("牵头窗口", lead_window),
                              *(("所缺材料", m) for m in missing_materials), *(("参与部门", d) for d in departments))
        hop = item.hop(self.tier)
        owner = self.owner or actor.staff_id
        changes: dict[str, object] = {"kind": kind, "owner": owner, "pending_refusal": None}
        if self.acceptance_clock is not None and self.acceptance_clock.is_open:
            changes["acceptance_clock"] = self._stopped(self.acceptance_clock, at, StopReason.DONE)
        try:
            if kind is MatterKind.IMMEDIATE:
                clock = HopClock.received(self.received_at, IMMEDIATE_LIMIT, _at_least(hop.statutory, IMMEDIATE_LIMIT))
                changes.update(stage=Stage.IN_PROGRESS, clock=clock)
            elif kind is MatterKind.PROMISED:
                if calendar is None:
                    raise HandlingError("承诺件须按工作日历生成书面承诺")
                limit = check_promise(promised_limit or hop.promised, hop.promised)
                clock = HopClock.received(self.received_at, limit, hop.statutory)
                changes.update(stage=Stage.IN_PROGRESS, clock=clock,
                               written_promise=promise_text_zh(clock, calendar))
            elif kind is MatterKind.SUPPLEMENT:
                if not missing_materials:
                    raise HandlingError("补办件须一次性书面告知所缺的全部材料")
                changes.update(stage=Stage.WAITING_MATERIALS, missing_materials=tuple(missing_materials),
                               clock=HopClock.received(self.received_at, hop.promised, hop.statutory, materials_complete=False))
            elif kind is MatterKind.RETURNED:
                if not return_reason.strip():
                    raise HandlingError("退回件须书面说明退回理由")
                approver = self._refusal_approver(actor, item, refusal_approved_by, "不予受理")
                changes.update(stage=Stage.RETURNED, return_reason=return_reason.strip(),
                               refusal=RefusalKind.NOT_ACCEPTED, refusal_approved_by=approver)
            elif kind is MatterKind.JOINT:
                unique = tuple(dict.fromkeys(d.strip() for d in departments if d.strip()))
                if not lead_window.strip():
                    raise HandlingError("联办件须指定牵头窗口")
                if len(unique) < MIN_JOINT_DEPARTMENTS:
                    raise HandlingError(f"联办件须至少有 {MIN_JOINT_DEPARTMENTS} 个参与部门")
                changes.update(stage=Stage.IN_PROGRESS, lead_window=lead_window.strip(), departments=unique,
                               clock=HopClock.received(self.received_at, hop.promised, hop.statutory))
            elif kind is MatterKind.REPORTED:
                if item.decided_by.rank <= self.tier.rank:
                    raise HandlingError(f"该事项由{item.decided_by.label_zh}决定，无需上报")
                changes.update(stage=Stage.ESCALATING,
                               clock=HopClock.received(self.received_at, hop.promised, hop.statutory))
        except DeadlineError as exc:
            raise HandlingError(str(exc)) from exc
        return self._next(**changes)

    @staticmethod
    def _stopped(clock: HopClock, at: dt.datetime, reason: StopReason) -> HopClock:
        try:
            return clock.stop(max(at, clock.last_event_at), reason)
        except DeadlineError as exc:
            raise HandlingError(str(exc)) from exc

    # ------------------------------------------------------------ refusals 否定报备

    def _refusal_approver(self, actor: Actor, item: CatalogItem, approved_by: str, what: str) -> str:
        """Who approved a refusal of a major or difficult matter: the director acting, or the
        director who approved an operator's request; refused otherwise (004 篇6)."""
        if not item.major:
            return approved_by or (actor.staff_id if actor.role is Role.DIRECTOR else "")
        if actor.role is Role.DIRECTOR:
            return approved_by or actor.staff_id
        if approved_by:
            return approved_by
        raise HandlingError(f"“{item.name}”属重大疑难事项，{what}须先经中心主任批准：请提交主任审批")

    def request_refusal(self, *, actor: Actor, at: dt.datetime, item: CatalogItem, kind: RefusalKind,
                        reason: str) -> HandledMatter:
        """An operator asks the director to approve refusing a major or difficult matter."""
        if not item.major:
            raise HandlingError("本事项不属重大疑难事项，可直接办理，无需主任审批")
        if self.pending_refusal is not None:
            raise HandlingError("已有一项不予受理/不予批准申请等待主任审批")
        if not reason.strip():
            raise HandlingError(f"{kind.label_zh}须写明理由")
        _refuse_personal_data(("理由", reason))
        if kind is RefusalKind.NOT_ACCEPTED:
            self._require_stage({Stage.RECEIVED}, "申请不予受理")
            if MatterKind.RETURNED not in allowed_kinds(item, self.tier):
                raise HandlingError(authority_refusal_zh(item, self.tier, MatterKind.RETURNED))
        else:
            self._require_stage({Stage.IN_PROGRESS}, "申请不予批准")
            self._require_responsible(actor, "申请不予批准")
            if not may_decide(item, self.tier):
                raise HandlingError(f"“{item.name}”由{item.decided_by.label_zh}审批，{self.tier.label_zh}无权作出决定")
        return self._next(pending_refusal=RefusalRequest(kind, actor.staff_id, at, reason.strip()))

    def refusal_request_declined(self, *, actor: Actor) -> HandledMatter:
        if actor.role is not Role.DIRECTOR:
            raise HandlingError("不予受理/不予批准申请须由中心主任审批")
        if self.pending_refusal is None:
            raise HandlingError("没有待审批的不予受理/不予批准申请")
        return self._next(pending_refusal=None)

    # ------------------------------------------------------------ 补办: materials complete

    def materials_completed(self, *, actor: Actor, at: dt.datetime) -> HandledMatter:
        """The applicant came back with everything: the clock starts now (004: counts from completion)."""
        self._require_stage({Stage.WAITING_MATERIALS}, "登记材料补齐")
        self._require_responsible(actor, "登记材料补齐")
        assert self.clock is not None
        if self.upper_tier_waiting:
            # Passed on to the county, which resumes its own clock when it receives the materials.
            return self._next(stage=Stage.ESCALATED, missing_materials=(), upper_tier_waiting=False)
        try:
            clock = self.clock.start(at) if self.clock.status.value == "waiting" else self.clock.resume(at)
        except DeadlineError as exc:
            raise HandlingError(str(exc)) from exc
        reports_up = self.kind is MatterKind.REPORTED and self.tier.rank < Tier.COUNTY.rank
        next_stage = Stage.ESCALATING if reports_up else Stage.IN_PROGRESS
        return self._next(stage=next_stage, clock=clock, missing_materials=())

    def materials_requested(self, *, actor: Actor, at: dt.datetime, missing_materials: tuple[str, ...]) -> HandledMatter:
        """More materials turned out to be needed mid-way (or the county asked): the clock is suspended.
        Below the county only the matter's 首问责任人 or the director may ask, as for every other act on
        it; at the county asking is a decision (需补正), and `hub.acts` says who may take it."""
        self._require_stage({Stage.IN_PROGRESS, Stage.ESCALATING, Stage.ESCALATED}, "要求补正材料")
        if self.tier is not Tier.COUNTY:
            self._require_responsible(actor, "要求补正材料")
        _refuse_personal_data(*(("补正材料", m) for m in missing_materials))
        if not missing_materials:
            raise HandlingError("须一次性书面告知所缺的全部材料")
        clock = self._clock_op(lambda c: c.suspend(at, SuspensionReason.AWAITING_MATERIALS, "等待补正材料"))
        return self._next(stage=Stage.WAITING_MATERIALS, clock=clock, missing_materials=tuple(missing_materials))

    # ------------------------------------------------------------ suspension and extension

    def _clock_op(self, op: Callable[[HopClock], HopClock]) -> HopClock:
        if self.clock is None:
            raise HandlingError("本件没有计时")
        try:
            return op(self.clock)
        except DeadlineError as exc:
            raise HandlingError(str(exc)) from exc

    def suspend(self, *, actor: Actor, at: dt.datetime, reason: SuspensionReason, note: str = "") -> HandledMatter:
        self._require_stage({Stage.IN_PROGRESS, Stage.ESCALATING}, "中止计时")
        self._require_responsible(actor, "中止计时")
        _refuse_personal_data(("中止说明", note))
        return self._next(clock=self._clock_op(lambda c: c.suspend(at, reason, note)))

    def resume(self, *, actor: Actor, at: dt.datetime) -> HandledMatter:
        self._require_stage({Stage.IN_PROGRESS, Stage.ESCALATING}, "恢复计时")
        self._require_responsible(actor, "恢复计时")
        return self._next(clock=self._clock_op(lambda c: c.resume(at)))

    def request_extension(self, *, actor: Actor, at: dt.datetime, new_limit: Limit, reason: str) -> HandledMatter:
        self._require_stage(_WORKING, "申请延期")
        self._require_responsible(actor, "申请延期")
        if self.pending_extension is not None:
            raise HandlingError("已有一项延期申请等待主任审批")
        if not reason.strip():
            raise HandlingError("申请延期须写明理由")
        _refuse_personal_data(("延期理由", reason))
        assert self.clock is not None
        if not new_limit.fits_within(self.clock.statutory):
            raise HandlingError(f"延期后的时限（{new_limit.describe_zh()}）超过法定时限（{self.clock.statutory.describe_zh()}）")
        return self._next(pending_extension=ExtensionRequest(actor.staff_id, at, new_limit, reason.strip()))

    def decide_extension(self, *, actor: Actor, at: dt.datetime, approve: bool, calendar: WorkingCalendar) -> HandledMatter:
        """Only a director approves (003 第七条); the applicant must then be told in writing."""
        if actor.role is not Role.DIRECTOR:
            raise HandlingError("延期须经中心主任批准")
        request = self.pending_extension
        if request is None:
            raise HandlingError("没有待审批的延期申请")
        if not approve:
            return self._next(pending_extension=None)
        clock = self._clock_op(lambda c: c.extend(at, request.new_limit, approver=actor.staff_id,
                                                  reason=request.reason, calendar=calendar))
        return self._next(pending_extension=None, clock=clock)

    def applicant_notified_of_extension(self, *, at: dt.datetime) -> HandledMatter:
        return self._next(clock=self._clock_op(lambda c: c.note_applicant_notified(at)))

    # ------------------------------------------------------------ AB posts

    def hand_over_to(self, *, actor: Actor, at: dt.datetime, to_staff: str, reason: str) -> HandledMatter:
        """主岗 absent: the backup 协岗 takes the matter over; the handover is recorded."""
        if self.is_final:
            raise HandlingError(f"本件已{self.stage.label_zh}，无需交接")
        self._require_responsible(actor, "AB 岗交接")
        if not to_staff.strip() or to_staff == self.owner:
            raise HandlingError("请指定接手的其他工作人员")
        if not reason.strip():
            raise HandlingError("AB 岗交接须写明原因（如：请假、外出）")
        _refuse_personal_data(("交接原因", reason))
        watchers = tuple(dict.fromkeys([*self.watchers, self.owner])) if self.owner else self.watchers
        return self._next(owner=to_staff, watchers=watchers,
                          handovers=self.handovers + (Handover(self.owner, to_staff, at, reason.strip()),))

    # ------------------------------------------------------------ escalation and results

    def send_escalation(self, *, actor: Actor, at: dt.datetime, opinion: str) -> HandledMatter:
        """The responsible operator signs the 上报 to the county with the township's 初审意见; this hop
        runs on until the county's receipt."""
        self._require_stage({Stage.ESCALATING}, "上报")
        self._require_responsible(actor, "上报")
        if self.escalation_sent_at is not None:
            raise HandlingError("本件已上报，正在等待县级签收")
        if not opinion.strip():
            raise HandlingError("上报须填写乡镇初审意见")
        _refuse_personal_data(("初审意见", opinion))
        return self._next(escalation_sent_at=at, escalation_opinion=opinion.strip())

    def escalated(self, *, at: dt.datetime) -> HandledMatter:
        """The upper tier's receipt came back: this hop is passed on and its clock stops."""
        self._require_stage({Stage.ESCALATING}, "上报")
        return self._next(stage=Stage.ESCALATED, clock=self._clock_op(lambda c: c.stop(at, StopReason.PASSED_ON)))

    def escalation_not_taken_in(self, *, at: dt.datetime) -> HandledMatter:
        """The upper tier receipted the 上报 but could not take it in (a signature or vouching check
        failed, a catalogue mismatch): the matter is back with this tier, waiting to be escalated
        again or handled otherwise, and this hop's clock runs on from where it was."""
        self._require_stage({Stage.ESCALATED}, "接收县级未受理通知")
        return self._next(stage=Stage.ESCALATING, escalation_sent_at=None,
                          clock=self._clock_op(lambda c: c.reopen(at)))

    def record_result(self, *, actor: Actor, at: dt.datetime, approved: bool, summary: str, item: CatalogItem,
                      delivery_limit: Limit | None = None, refusal_approved_by: str = "") -> HandledMatter:
        """准予 or 不予批准, by the deciding tier only; a refusal of a major matter needs the director.
        The 送达 clock starts with the result (`delivery_limit`, the catalogue's)."""
        self._require_stage({Stage.IN_PROGRESS}, "登记办理结果")
        self._require_responsible(actor, "登记办理结果")
        if item.code != self.catalog_code:
            raise HandlingError("登记结果所用的目录事项与本件不符")
        if not may_decide(item, self.tier):
            raise HandlingError(f"“{item.name}”由{item.decided_by.label_zh}审批，{self.tier.label_zh}无权作出准予或不予批准的决定")
        if not summary.strip():
            raise HandlingError("请填写办理结果")
        _refuse_personal_data(("办理结果", summary))
        changes: dict[str, object] = {}
        if not approved:
            changes.update(refusal=RefusalKind.NOT_APPROVED, pending_refusal=None,
                           refusal_approved_by=self._refusal_approver(actor, item, refusal_approved_by, "不予批准"))
        return self._next(stage=Stage.RESULT_READY, approved=approved, result_summary=summary.strip(),
                          clock=self._clock_op(lambda c: c.stop(at, StopReason.DONE)),
                          delivery_clock=_delivery_clock(at, delivery_limit), **changes)

    def upper_tier_decided(self, *, approved: bool, summary: str, at: dt.datetime | None = None,
                           delivery_limit: Limit | None = None) -> HandledMatter:
        """The county's decision came down for an escalated matter; 送达 starts here."""
        if not (self.stage is Stage.ESCALATED or (self.stage is Stage.WAITING_MATERIALS and self.upper_tier_waiting)):
            raise HandlingError(f"本件当前为“{self.stage.label_zh}”，不能接收县级决定")
        delivery = _delivery_clock(at, delivery_limit) if at is not None else None
        return self._next(stage=Stage.RESULT_READY, approved=approved, result_summary=summary.strip(),
                          upper_tier_waiting=False, missing_materials=(), delivery_clock=delivery)

    def upper_tier_needs_materials(self, *, missing_materials: tuple[str, ...]) -> HandledMatter:
        """The county asked for more materials: the applicant is told through the village agent."""
        self._require_stage({Stage.ESCALATED}, "接收县级补正通知")
        if not missing_materials:
            raise HandlingError("县级补正通知须列明所缺材料")
        return self._next(stage=Stage.WAITING_MATERIALS, missing_materials=tuple(missing_materials),
                          upper_tier_waiting=True)

    # ------------------------------------------------------------ the village's records

    def handed_over(self) -> HandledMatter:
        if self.stage is Stage.VILLAGE_OWN:
            return self._next()   # the village's own matter: the hand-over is a line in its history
        self._require_stage({Stage.RESULT_READY}, "交付结果")
        return self._next(stage=Stage.HANDED_OVER)

    def signed_off(self, *, at: dt.datetime | None = None) -> HandledMatter:
        self._require_stage({Stage.HANDED_OVER, Stage.RESULT_READY, Stage.VILLAGE_OWN}, "签收办结")
        delivery = self.delivery_clock
        if delivery is not None and delivery.is_open and at is not None:
            delivery = self._stopped(delivery, at, StopReason.DONE)
        return self._next(stage=Stage.SIGNED_OFF, delivery_clock=delivery)

    def withdrawn(self, *, at: dt.datetime) -> HandledMatter:
        if self.is_final or self.stage in (Stage.HANDED_OVER,):
            raise HandlingError(f"本件已{self.stage.label_zh}，不能撤回")
        clock = self.clock
        if clock is not None and clock.is_open:
            clock = self._clock_op(lambda c: c.stop(at, StopReason.RETURNED))
        acceptance = self.acceptance_clock
        if acceptance is not None and acceptance.is_open:
            acceptance = self._stopped(acceptance, at, StopReason.RETURNED)
        return self._next(stage=Stage.WITHDRAWN, clock=clock, acceptance_clock=acceptance, pending_refusal=None)


def check_promise(limit: Limit, catalogue_promise: Limit) -> Limit:
    """A 承诺件's promised limit: at least one working day (000), within the catalogue's promise
    (itself within the statutory limit, 003 第五条)."""
    if limit.unit is LimitUnit.OFFICE_MINUTES or not MIN_PROMISE.fits_within(limit):
        raise HandlingError("承诺件的承诺时限至少为1个工作日；当场能办结的请按即办件办理")
    if not limit.fits_within(catalogue_promise):
        raise HandlingError(f"承诺时限（{limit.describe_zh()}）不能超过服务事项目录的承诺时限（{catalogue_promise.describe_zh()}）")
    return limit


def promise_text_zh(clock: HopClock, calendar: WorkingCalendar) -> str:
    """The written promise 书面承诺 of a 承诺件, generated from its clock."""
    due = clock.due_at(calendar)
    due_text = format_instant_zh(due) if due is not None else "材料补齐后计算"
    return (f"承诺自{format_instant_zh(clock.received_at)}受理起{clock.limit.describe_zh()}内办结，"
            f"即{due_text}前办结；依法需要听证、招标、拍卖、检验、检测、检疫、鉴定、专家评审的时间和等待申请人补正材料的时间不计入。")


def _delivery_clock(at: dt.datetime, limit: Limit | None) -> HopClock | None:
    if limit is None:
        return None
    try:
        return HopClock.received(at, limit, limit)
    except DeadlineError as exc:
        raise HandlingError(str(exc)) from exc


def _at_least(statutory: Limit, floor: Limit) -> Limit:
    return statutory if floor.fits_within(statutory) else floor


# ---------------------------------------------------------------- serialization
# A store keeps a matter as this JSON in one column, so the value (not a pile of columns) is the
# unit an optimistic version check protects.

_FORMAT = 1


def _us(at: dt.datetime) -> int:
    return round(at.timestamp() * 1_000_000)


def _from_us(us: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(us / 1_000_000, dt.UTC)


def matter_to_json_dict(m: HandledMatter) -> dict[str, object]:
    ext = m.pending_extension
    return {
        "v": _FORMAT, "matter_id": m.matter_id, "catalog_code": m.catalog_code, "tier": m.tier.value,
        "received_us": _us(m.received_at), "stage": m.stage.value, "kind": m.kind.value if m.kind else None,
        "owner": m.owner, "watchers": list(m.watchers), "clock": m.clock.to_json_dict() if m.clock else None,
        "missing": list(m.missing_materials), "return_reason": m.return_reason, "promise": m.written_promise,
        "lead_window": m.lead_window, "departments": list(m.departments),
        "extension": None if ext is None else {"by": ext.requested_by, "at_us": _us(ext.requested_at),
                                               "limit": ext.new_limit.to_text(), "reason": ext.reason},
        "result": m.result_summary, "approved": m.approved,
        "handovers": [{"from": h.from_staff, "to": h.to_staff, "at_us": _us(h.at), "reason": h.reason}
                      for h in m.handovers],
        "escalation_sent_us": _us(m.escalation_sent_at) if m.escalation_sent_at else None,
        "upper_waiting": m.upper_tier_waiting,
        "acceptance_clock": m.acceptance_clock.to_json_dict() if m.acceptance_clock else None,
        "delivery_clock": m.delivery_clock.to_json_dict() if m.delivery_clock else None,
        "pending_refusal": None if m.pending_refusal is None else {
            "kind": m.pending_refusal.kind.value, "by": m.pending_refusal.requested_by,
            "at_us": _us(m.pending_refusal.requested_at), "reason": m.pending_refusal.reason},
        "refusal": m.refusal.value if m.refusal else None,
        "refusal_approved_by": m.refusal_approved_by,
        "escalation_opinion": m.escalation_opinion,
        "version": m.version,
    }


def matter_from_json_dict(data: dict[str, Any]) -> HandledMatter:
    # `data` is parsed JSON: its values are whatever the text held, so each is converted (and a
    # wrong shape raises TypeError/ValueError below) rather than trusted to have a type.
    if data.get("v") != _FORMAT:
        raise HandlingError(f"不支持的办件记录版本：{data.get('v')!r}")
    try:
        ext = data.get("extension")
        clock = data.get("clock")
        return HandledMatter(
            matter_id=str(data["matter_id"]), catalog_code=str(data["catalog_code"]), tier=Tier(data["tier"]),
            received_at=_from_us(int(data["received_us"])),
            stage=Stage(data["stage"]), kind=MatterKind(data["kind"]) if data.get("kind") else None,
            owner=str(data.get("owner", "")), watchers=tuple(data.get("watchers", ())),
            clock=HopClock.from_json_dict(clock) if isinstance(clock, dict) else None,
            missing_materials=tuple(data.get("missing", ())),
            return_reason=str(data.get("return_reason", "")), written_promise=str(data.get("promise", "")),
            lead_window=str(data.get("lead_window", "")), departments=tuple(data.get("departments", ())),
            pending_extension=None if not isinstance(ext, dict) else ExtensionRequest(
                ext["by"], _from_us(ext["at_us"]), Limit.parse(ext["limit"]), ext["reason"]),
            result_summary=str(data.get("result", "")),
            approved=data.get("approved") if isinstance(data.get("approved"), bool) else None,
            handovers=tuple(Handover(h["from"], h["to"], _from_us(h["at_us"]), h["reason"])
                            for h in data.get("handovers", ())),
            escalation_sent_at=_from_us(int(data["escalation_sent_us"])) if data.get("escalation_sent_us") else None,
            upper_tier_waiting=bool(data.get("upper_waiting", False)),
            acceptance_clock=_clock_or_none(data.get("acceptance_clock")),
            delivery_clock=_clock_or_none(data.get("delivery_clock")),
            pending_refusal=_refusal_request_or_none(data.get("pending_refusal")),
            refusal=RefusalKind(data["refusal"]) if data.get("refusal") else None,
            refusal_approved_by=str(data.get("refusal_approved_by", "")),
            escalation_opinion=str(data.get("escalation_opinion", "")),
            version=int(data.get("version", 0)),
        )
    except (KeyError, TypeError, ValueError, DeadlineError) as exc:
        raise HandlingError(f"办件记录损坏：{exc.__class__.__name__}") from exc


def _clock_or_none(data: object) -> HopClock | None:
    return HopClock.from_json_dict(data) if isinstance(data, dict) else None


def _refusal_request_or_none(data: object) -> RefusalRequest | None:
    if not isinstance(data, dict):
        return None
    return RefusalRequest(RefusalKind(data["kind"]), str(data["by"]), _from_us(int(data["at_us"])), str(data["reason"]))
