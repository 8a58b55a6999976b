"""The village's view of a matter, derived from signed records. Pure: no I/O, no clock.

`apply` folds one record (the agent's own, or a verified one from the township) into a
`MatterState`; replaying the ledger in the order things happened on this laptop rebuilds every
matter. The `check_*` functions say, in Chinese, why an action does not fit a matter's status.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace

from shared.wire.v1 import records_pb2
from village_agent.errors import TransitionError

APPOINTMENT_GRACE_MS = 30 * 60 * 1000  # 预约服务制度: forfeited 30 minutes after the agreed time


class MatterStatus(str, enum.Enum):
    RECORDED = "recorded"
    RETURNED = "returned"
    IN_PROGRESS = "in_progress"
    WAITING_MATERIALS = "waiting_materials"
    SUSPENDED = "suspended"
    ESCALATED = "escalated"
    RESULT_READY = "result_ready"
    HANDED_OVER = "handed_over"
    SIGNED_OFF = "signed_off"
    WITHDRAWN = "withdrawn"

    @property
    def label_zh(self) -> str:
        return _STATUS_ZH[self]


_STATUS_ZH = {
    MatterStatus.RECORDED: "已登记",
    MatterStatus.RETURNED: "已退回",
    MatterStatus.IN_PROGRESS: "办理中",
    MatterStatus.WAITING_MATERIALS: "待补材料",
    MatterStatus.SUSPENDED: "暂停计时",
    MatterStatus.ESCALATED: "已上报县级",
    MatterStatus.RESULT_READY: "结果待领取",
    MatterStatus.HANDED_OVER: "已交付待签收",
    MatterStatus.SIGNED_OFF: "已签收评价",
    MatterStatus.WITHDRAWN: "已撤回",
}

# Only the agent's own records move a matter out of these: a late township status update must
# not undo a hand-over the villager already confirmed.
_VILLAGE_OWNED = frozenset({MatterStatus.HANDED_OVER, MatterStatus.SIGNED_OFF, MatterStatus.WITHDRAWN})
_CLOSED = frozenset({MatterStatus.SIGNED_OFF, MatterStatus.WITHDRAWN, MatterStatus.RETURNED})

RATING_ZH: dict[int, str] = {
    records_pb2.RATING_VERY_SATISFIED: "非常满意",
    records_pb2.RATING_SATISFIED: "满意",
    records_pb2.RATING_BASICALLY_SATISFIED: "基本满意",
    records_pb2.RATING_DISSATISFIED: "不满意",
    records_pb2.RATING_VERY_DISSATISFIED: "非常不满意",
}

_KIND_TO_STATUS = {
    records_pb2.MATTER_KIND_IMMEDIATE: MatterStatus.IN_PROGRESS,
    records_pb2.MATTER_KIND_PROMISED: MatterStatus.IN_PROGRESS,
    records_pb2.MATTER_KIND_JOINT: MatterStatus.IN_PROGRESS,
    records_pb2.MATTER_KIND_SUPPLEMENT: MatterStatus.WAITING_MATERIALS,
    records_pb2.MATTER_KIND_RETURNED: MatterStatus.RETURNED,
    records_pb2.MATTER_KIND_REPORTED: MatterStatus.ESCALATED,
}

_STAGE_TO_STATUS = {
    records_pb2.STAGE_RECEIVED: MatterStatus.IN_PROGRESS,
    records_pb2.STAGE_CLASSIFIED: MatterStatus.IN_PROGRESS,
    records_pb2.STAGE_IN_PROGRESS: MatterStatus.IN_PROGRESS,
    records_pb2.STAGE_WAITING_FOR_MATERIALS: MatterStatus.WAITING_MATERIALS,
    records_pb2.STAGE_SUSPENDED: MatterStatus.SUSPENDED,
    records_pb2.STAGE_ESCALATED: MatterStatus.ESCALATED,
    records_pb2.STAGE_DECIDED: MatterStatus.IN_PROGRESS,
    records_pb2.STAGE_RESULT_READY: MatterStatus.RESULT_READY,
    records_pb2.STAGE_RETURNED: MatterStatus.RETURNED,
}


@dataclass(frozen=True)
class MatterState:
    matter_id: str
    catalog_code: str
    status: MatterStatus
    filed_seq: int
    filed_claimed_ms: int
    id_masked: str = ""
    door_to_door: bool = False
    materials: tuple[str, ...] = ()
    tolerated_missing: tuple[str, ...] = ()
    kind: int = records_pb2.MATTER_KIND_UNSPECIFIED
    due_at_ms: int = 0
    clock_state: int = records_pb2.CLOCK_STATE_UNSPECIFIED
    supervised: bool = False
    rating: int = records_pb2.RATING_UNSPECIFIED
    followed_up: bool = False
    message: str = ""
    last_seq: int = 0
    notes: tuple[str, ...] = field(default=())
    # Conditional materials marked 不适用 at filing: not missing, never to be asked for.
    not_applicable: tuple[str, ...] = ()
    # The village returned it at filing (a main material missing): it is not 报送 for handling.
    returned_at_intake: bool = False
    # Stops of the village hop clock (`village_agent.hop`), on this laptop's clock.
    handed_over_ms: int = 0
    withdrawn_ms: int = 0

    @property
    def closed(self) -> bool:
        return self.status in _CLOSED


def _merge(existing: tuple[str, ...], added: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*existing, *added]))


def filed_state(record: records_pb2.Record) -> MatterState:
    body = record.request_filed
    status = MatterStatus.RETURNED if body.intake_outcome == records_pb2.INTAKE_OUTCOME_RETURN else MatterStatus.RECORDED
    return MatterState(
        matter_id=body.matter_id,
        catalog_code=body.catalog_code,
        status=status,
        filed_seq=record.header.seq,
        filed_claimed_ms=record.header.claimed_time_ms,
        id_masked=body.applicant.id_number_masked,
        door_to_door=body.door_to_door,
        materials=tuple(body.materials_brought),
        tolerated_missing=tuple(t.material_id for t in body.tolerated_missing),
        message=body.return_reason,
        last_seq=record.header.seq,
        not_applicable=tuple(body.materials_not_applicable),
        returned_at_intake=status is MatterStatus.RETURNED,
    )


def apply(state: MatterState | None, record: records_pb2.Record) -> MatterState | None:
    """Fold one record into a matter's state. Records for unknown matters (other than a filing) are ignored."""
    kind = record.WhichOneof("body")
    if kind == "request_filed":
        return state if state is not None else filed_state(record)
    if state is None:
        return None
    own = record.header.author_key_id != "" and kind in _VILLAGE_BODIES
    if own:
        state = replace(state, last_seq=max(state.last_seq, record.header.seq))
    if kind == "materials_added":
        return replace(state, materials=_merge(state.materials, record.materials_added.material_ids),
                       tolerated_missing=tuple(m for m in state.tolerated_missing if m not in record.materials_added.material_ids))
    if kind == "withdrawn":
        return replace(state, status=MatterStatus.WITHDRAWN, message=record.withdrawn.reason,
                       withdrawn_ms=record.header.claimed_time_ms)
    if kind == "result_handed_over":
        body = record.result_handed_over
        return replace(state, status=MatterStatus.HANDED_OVER, message=body.result_summary,
                       handed_over_ms=body.handed_over_at_ms or record.header.claimed_time_ms)
    if kind == "signed_off":
        return replace(state, status=MatterStatus.SIGNED_OFF, rating=record.signed_off.rating)
    if kind == "follow_up_called":
        return replace(state, followed_up=state.followed_up or record.follow_up_called.reached)
    return _apply_down(state, record, kind)


_VILLAGE_BODIES = frozenset({
    "request_filed", "materials_added", "appointment_made", "appointment_forfeited", "visit_recorded",
    "withdrawn", "result_handed_over", "signed_off", "follow_up_called",
})


def _apply_down(state: MatterState, record: records_pb2.Record, kind: str | None) -> MatterState:
    if kind == "supervision_notice":
        return replace(state, supervised=True, message=record.supervision_notice.message or state.message)
    if state.status in _VILLAGE_OWNED:
        return state
    if kind == "matter_classified":
        body = record.matter_classified
        status = _KIND_TO_STATUS.get(body.kind, state.status)
        message = body.return_reason or body.written_promise or (
            "需补充材料：" + "、".join(body.missing_materials) if body.missing_materials else state.message)
        return replace(state, kind=body.kind, status=status, due_at_ms=body.due_at_ms or state.due_at_ms, message=message)
    if kind == "status_update":
        body = record.status_update
        due, clock = state.due_at_ms, state.clock_state
        open_hops = [h for h in body.hops if h.stopped_at_ms == 0]
        if open_hops:
            due, clock = open_hops[-1].due_at_ms, open_hops[-1].state
        status = _STAGE_TO_STATUS.get(body.stage, state.status)
        # Once a result is ready its summary (the decision, a refusal's reason) is what the agent reads
        # out to the villager; later clock notes for that matter must not replace it.
        keep_result = state.status is MatterStatus.RESULT_READY and status is MatterStatus.RESULT_READY
        return replace(state, status=status, kind=body.kind or state.kind, due_at_ms=due, clock_state=clock,
                       message=state.message if keep_result else body.message or state.message)
    if kind == "hop_clock_changed":
        body = record.hop_clock_changed
        status = MatterStatus.SUSPENDED if body.change == records_pb2.CLOCK_CHANGE_SUSPENDED else (
            MatterStatus.IN_PROGRESS if state.status is MatterStatus.SUSPENDED else state.status)
        return replace(state, status=status, due_at_ms=body.due_at_ms or state.due_at_ms)
    if kind == "result_ready":
        return replace(state, status=MatterStatus.RESULT_READY, message=record.result_ready.result_summary)
    if kind == "decision" and record.decision.outcome == records_pb2.DECISION_OUTCOME_NEEDS_MATERIALS:
        return replace(state, status=MatterStatus.WAITING_MATERIALS,
                       message="需补充材料：" + "、".join(record.decision.missing_materials))
    return state


# ---------------------------------------------------------------- what the agent may do


def check_can_add_materials(state: MatterState) -> None:
    if state.status in _VILLAGE_OWNED or state.status is MatterStatus.RETURNED:
        raise TransitionError(f"该事项{state.status.label_zh}，不能再补充材料")


def check_can_withdraw(state: MatterState) -> None:
    if state.status in _VILLAGE_OWNED:
        raise TransitionError(f"该事项{state.status.label_zh}，不能撤回")


def check_can_hand_over(state: MatterState, decided_in_village: bool) -> None:
    if state.status is MatterStatus.RESULT_READY:
        return
    if decided_in_village and state.status in (MatterStatus.RECORDED, MatterStatus.IN_PROGRESS):
        return
    raise TransitionError(f"该事项当前为“{state.status.label_zh}”，办理结果尚未送达，不能交付")


def check_can_sign_off(state: MatterState) -> None:
    if state.status is not MatterStatus.HANDED_OVER:
        raise TransitionError(f"该事项当前为“{state.status.label_zh}”，须先交付办理结果，再请群众签收评价")


def check_can_follow_up(state: MatterState) -> None:
    if state.status is not MatterStatus.SIGNED_OFF:
        raise TransitionError("只有已签收评价的事项才能回访")


# ---------------------------------------------------------------- appointments


class AppointmentStatus(str, enum.Enum):
    SCHEDULED = "scheduled"
    KEPT = "kept"
    FORFEITED = "forfeited"

    @property
    def label_zh(self) -> str:
        return {"scheduled": "已预约", "kept": "已履约", "forfeited": "已失约（需联系改约）"}[self.value]


# How the agent tried to reach the villager (the key travels in the signed forfeit; the label is shown).
CONTACT_METHODS = {"phone": "电话", "home_visit": "上门寻找", "via_relative": "托亲友、邻居转告", "message": "短信或微信留言"}


def forfeits_at_ms(scheduled_at_ms: int) -> int:
    return scheduled_at_ms + APPOINTMENT_GRACE_MS


def is_late(scheduled_at_ms: int, now_ms: int) -> bool:
    """More than the 30-minute grace past the agreed time."""
    return now_ms > forfeits_at_ms(scheduled_at_ms)


def forfeit_problem(status: AppointmentStatus, scheduled_at_ms: int, now_ms: int, *, contact_at_ms: int | None,
                    method: str, outcome: str) -> str | None:
    """Why the appointment may not be forfeited now (None: it may). 预约服务制度 第七条 needs both: 30
    minutes past the time AND a contact attempt after the time that failed ("经联系仍无法到场"), told by
    when, how and what came of it. The same rule as the township window's (`shared.domain.front_desk`)."""
    if status is not AppointmentStatus.SCHEDULED:
        return f"该预约{status.label_zh}，不能再标记失约"
    if not is_late(scheduled_at_ms, now_ms):
        return "超过约定时间 30 分钟仍未到场，才能标记失约"
    if contact_at_ms is None:
        return "请填写联系群众的时间：须先联系群众，经联系仍无法到场的，才能标记失约"
    if contact_at_ms < scheduled_at_ms:
        return "联系时间须在约定时间之后：约定时间过后仍未到场，再联系群众"
    if contact_at_ms > now_ms + 60_000:
        return "联系时间不能晚于现在"
    if method not in CONTACT_METHODS:
        return "请选择联系方式：电话、上门寻找、托亲友邻居转告或短信微信留言"
    if not outcome.strip():
        return "请写明联系结果（如：电话无人接听、外出务工今天回不来）"
    return None


def visit_problem(status: AppointmentStatus, scheduled_at_ms: int, now_ms: int, late_reason: str) -> str | None:
    """A visit or late arrival is always recorded: one more than 30 minutes late, or after the
    appointment was forfeited, only with its reason. Only a kept appointment takes no second visit."""
    if status is AppointmentStatus.KEPT:
        return f"该预约{status.label_zh}，不能再登记上门"
    if (status is AppointmentStatus.FORFEITED or is_late(scheduled_at_ms, now_ms)) and not late_reason.strip():
        return "已超过约定时间 30 分钟（或预约已标记失约），仍可登记服务，但须写明原因"
    return None
