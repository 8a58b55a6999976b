"""Translations between the pure handling domain and the wire contract's enums and messages."""
from __future__ import annotations

import datetime as dt

from shared.calendar import WorkingCalendar
from shared.clock import to_unix_ms
from shared.domain.catalog import MatterKind, Tier
from shared.domain.deadlines import ClockState, ClockStatus, HopClock, SuspensionReason, Thresholds
from shared.domain.handling import HandledMatter, Stage
from shared.domain.limits import Limit, LimitUnit
from shared.wire.v1 import records_pb2

__all__ = ["KIND_TO_WIRE", "KIND_FROM_WIRE", "TIER_TO_WIRE", "limit_to_wire", "stage_to_wire", "clock_state_to_wire",
           "suspension_to_wire", "hop_view", "due_ms", "rating_to_wire", "key_role_to_wire"]

KIND_TO_WIRE = {
    MatterKind.IMMEDIATE: records_pb2.MATTER_KIND_IMMEDIATE, MatterKind.PROMISED: records_pb2.MATTER_KIND_PROMISED,
    MatterKind.SUPPLEMENT: records_pb2.MATTER_KIND_SUPPLEMENT, MatterKind.RETURNED: records_pb2.MATTER_KIND_RETURNED,
    MatterKind.JOINT: records_pb2.MATTER_KIND_JOINT, MatterKind.REPORTED: records_pb2.MATTER_KIND_REPORTED,
}
KIND_FROM_WIRE = {v: k for k, v in KIND_TO_WIRE.items()}
TIER_TO_WIRE = {Tier.VILLAGE: records_pb2.TIER_VILLAGE, Tier.TOWNSHIP: records_pb2.TIER_TOWNSHIP,
                Tier.COUNTY: records_pb2.TIER_COUNTY}
_UNIT = {LimitUnit.OFFICE_MINUTES: records_pb2.LIMIT_UNIT_OFFICE_MINUTES,
         LimitUnit.WORKING_DAYS: records_pb2.LIMIT_UNIT_WORKING_DAYS,
         LimitUnit.NATURAL_DAYS: records_pb2.LIMIT_UNIT_NATURAL_DAYS}
_STAGE = {
    Stage.RECEIVED: records_pb2.STAGE_RECEIVED, Stage.WAITING_MATERIALS: records_pb2.STAGE_WAITING_FOR_MATERIALS,
    Stage.IN_PROGRESS: records_pb2.STAGE_IN_PROGRESS, Stage.ESCALATING: records_pb2.STAGE_CLASSIFIED,
    Stage.ESCALATED: records_pb2.STAGE_ESCALATED, Stage.RESULT_READY: records_pb2.STAGE_RESULT_READY,
    Stage.HANDED_OVER: records_pb2.STAGE_HANDED_OVER, Stage.SIGNED_OFF: records_pb2.STAGE_SIGNED_OFF,
    Stage.RETURNED: records_pb2.STAGE_RETURNED, Stage.WITHDRAWN: records_pb2.STAGE_WITHDRAWN,
}
_CLOCK_STATE = {ClockState.ON_TIME: records_pb2.CLOCK_STATE_ON_TIME, ClockState.WARNING: records_pb2.CLOCK_STATE_WARNING,
                ClockState.OVERDUE: records_pb2.CLOCK_STATE_OVERDUE, ClockState.SUPERVISE: records_pb2.CLOCK_STATE_SUPERVISED}
_SUSPENSION = {
    SuspensionReason.AWAITING_MATERIALS: records_pb2.SUSPENSION_REASON_WAITING_FOR_MATERIALS,
    SuspensionReason.SITE_INSPECTION: records_pb2.SUSPENSION_REASON_SITE_INSPECTION,
    SuspensionReason.HEARING: records_pb2.SUSPENSION_REASON_HEARING,
    SuspensionReason.TESTING: records_pb2.SUSPENSION_REASON_TESTING,
    SuspensionReason.EXPERT_REVIEW: records_pb2.SUSPENSION_REASON_EXPERT_REVIEW,
    SuspensionReason.TENDERING: records_pb2.SUSPENSION_REASON_TENDERING,
    SuspensionReason.APPRAISAL: records_pb2.SUSPENSION_REASON_APPRAISAL,
}
_SUSPENSION_FROM_WIRE: dict[int, SuspensionReason] = {wire: reason for reason, wire in _SUSPENSION.items()}
# A stored rating (0 none, 1 非常满意 … 5 非常不满意) and a key's stored role are the wire's own numbers
# (proto/quancheng/v1/records.proto); these give them the wire's enum types.
_RATING: dict[int, records_pb2.Rating] = {int(r): r for r in (
    records_pb2.RATING_UNSPECIFIED, records_pb2.RATING_VERY_SATISFIED, records_pb2.RATING_SATISFIED,
    records_pb2.RATING_BASICALLY_SATISFIED, records_pb2.RATING_DISSATISFIED, records_pb2.RATING_VERY_DISSATISFIED)}
_KEY_ROLE: dict[int, records_pb2.KeyRole] = {int(r): r for r in (
    records_pb2.KEY_ROLE_UNSPECIFIED, records_pb2.KEY_ROLE_VILLAGE_AGENT, records_pb2.KEY_ROLE_TOWNSHIP,
    records_pb2.KEY_ROLE_COUNTY)}


def rating_to_wire(rating: int) -> records_pb2.Rating:
    """KeyError for a number outside 0-5 (the callers check the rating before they record it)."""
    return _RATING[rating]


def key_role_to_wire(role: int) -> records_pb2.KeyRole:
    return _KEY_ROLE[role]


def limit_to_wire(limit: Limit) -> records_pb2.Limit:
    return records_pb2.Limit(amount=limit.amount, unit=_UNIT[limit.unit])


def stage_to_wire(matter: HandledMatter) -> records_pb2.Stage:
    if matter.stage is Stage.IN_PROGRESS and matter.clock is not None and matter.clock.status is ClockStatus.SUSPENDED:
        return records_pb2.STAGE_SUSPENDED
    return _STAGE[matter.stage]


def suspension_to_wire(reason: SuspensionReason) -> records_pb2.SuspensionReason:
    return _SUSPENSION[reason]


def suspension_from_wire(value: int) -> SuspensionReason:
    """The reason a peer's clock stopped counting. An unspecified value (a sender older than the reason
    enum) is read as waiting for the applicant's 补正, the only pause those senders could make."""
    return _SUSPENSION_FROM_WIRE.get(value, SuspensionReason.AWAITING_MATERIALS)


def due_ms(clock: HopClock | None, calendar: WorkingCalendar) -> int:
    due = clock.due_at(calendar) if clock is not None else None
    return to_unix_ms(due) if due is not None else 0


def clock_state_to_wire(clock: HopClock, now: dt.datetime, calendar: WorkingCalendar,
                        thresholds: Thresholds) -> records_pb2.ClockState:
    if clock.status is ClockStatus.STOPPED:
        return records_pb2.CLOCK_STATE_STOPPED
    if clock.status is ClockStatus.SUSPENDED:
        return records_pb2.CLOCK_STATE_SUSPENDED
    return _CLOCK_STATE[clock.state_at(now, calendar, thresholds)]


def hop_view(tier: Tier, clock: HopClock, now: dt.datetime, calendar: WorkingCalendar,
             thresholds: Thresholds) -> records_pb2.HopView:
    return records_pb2.HopView(
        tier=TIER_TO_WIRE[tier],
        started_at_ms=to_unix_ms(clock.start_at) if clock.start_at else 0,
        due_at_ms=due_ms(clock, calendar),
        stopped_at_ms=to_unix_ms(clock.stop_at) if clock.stop_at else 0,
        state=clock_state_to_wire(clock, now, calendar, thresholds),
    )
