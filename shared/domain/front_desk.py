"""The township's front desk, as rules: complaints 投诉, petitions 信访 and consultations 咨询件 with
their answer limits; appointments 预约 at the window; AB posts 主岗/协岗 and absences with 顶岗; the
order of the window's queue of the day. Pure: no database, no clock (every instant is passed in).

Where the limits come from (see the domain rules, 004 投诉制度 / 信访接待制度, 003 预约服务制度 and
主岗协岗制度):

* a simple complaint is answered "当日或次日": the same or the next working day, i.e. by close of
  office on the next working day (`Limit.working_days(1)`: the receipt day is not counted);
* a complex complaint, or one that needs two or more units, "在一周之内": 7 natural days;
* a petition is answered "三日内": 3 working days; one taken to a leader's reception "一般一周内": 7
  natural days;
* an appointment is forfeited only when the applicant is 30 minutes late AND a contact attempt
  failed ("超过约定时间30分钟而未到场，经联系仍无法到场的"); changing or cancelling it needs the hall's
  approval and the applicant told first ("必须报经大厅批准，并提前告知服务对象").

Each answer runs as a `HopClock` whose promised and statutory limit are the same rule, so the
deadline engine warns, marks overdue and raises 督办 exactly as for a matter's hop.
"""
from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from shared.domain.catalog import CatalogItem, Tier
from shared.domain.deadlines import HopClock, StopReason
from shared.domain.limits import Limit
from shared.domain.personal_data import personal_data_problem
from shared.errors import HandlingError

__all__ = [
    "CaseKind", "Complexity", "Channel", "CaseStage", "answer_limit", "answer_clock", "answered_clock",
    "register_no", "hop_name", "AppointmentState", "FORFEIT_AFTER", "forfeit_problem",
    "change_problem", "is_late", "arrival_problem", "Absence", "absence_problem", "covering", "QueueEntry",
    "queue_order", "consultation_notice_lines", "Feedback", "WINDOW_VILLAGE_CODE", "staff_text_problem",
]

FORFEIT_AFTER = dt.timedelta(minutes=30)   # 003 预约服务制度 第七条
# Walk-ins registered at the township window are filed under this "village" (its own signing key).
WINDOW_VILLAGE_CODE = "乡镇窗口"


class CaseKind(str, enum.Enum):
    COMPLAINT = "complaint"          # 投诉（含匿名举报）
    PETITION = "petition"            # 信访
    CONSULTATION = "consultation"    # 咨询件

    @property
    def label_zh(self) -> str:
        return {"complaint": "投诉", "petition": "信访", "consultation": "咨询"}[self.value]

    @property
    def prefix_zh(self) -> str:
        """The register's name in a register number: 投诉〔2026〕7号."""
        return {"complaint": "投诉", "petition": "信访", "consultation": "咨询"}[self.value]


class Complexity(str, enum.Enum):
    SIMPLE = "simple"              # 一般投诉：当日或次日答复
    COMPLEX = "complex"            # 比较复杂或涉及两个以上单位：一周之内答复
    LEADER = "leader"              # 信访：领导接待，一般一周内答复

    @property
    def label_zh(self) -> str:
        return {"simple": "一般（当日或次日答复）", "complex": "复杂或涉及两个以上单位（一周内答复）",
                "leader": "领导接待（一般一周内答复）"}[self.value]


class Channel(str, enum.Enum):
    VISIT = "visit"
    PHONE = "phone"
    LETTER = "letter"
    ONLINE = "online"
    BOX = "box"

    @property
    def label_zh(self) -> str:
        return {"visit": "来访", "phone": "来电", "letter": "来信", "online": "网上", "box": "意见箱"}[self.value]


class CaseStage(str, enum.Enum):
    OPEN = "open"              # 待答复
    ANSWERED = "answered"      # 已答复，待反馈
    CLOSED = "closed"          # 已反馈，办结

    @property
    def label_zh(self) -> str:
        return {"open": "待答复", "answered": "已答复，待回访反馈", "closed": "已办结"}[self.value]


class Feedback(str, enum.Enum):
    SATISFIED = "satisfied"
    BASICALLY = "basically"
    UNSATISFIED = "unsatisfied"
    UNREACHABLE = "unreachable"    # anonymous or not reached: recorded as such, never invented

    @property
    def label_zh(self) -> str:
        return {"satisfied": "满意", "basically": "基本满意", "unsatisfied": "不满意",
                "unreachable": "无法联系（匿名或未接通）"}[self.value]


def answer_limit(kind: CaseKind, complexity: Complexity) -> Limit | None:
    """How long the answer may take; None for a consultation (answered on the spot, no clock)."""
    if kind is CaseKind.CONSULTATION:
        return None
    if kind is CaseKind.COMPLAINT:
        if complexity is Complexity.LEADER:
            raise HandlingError("投诉只分一般与复杂两类")
        return Limit.working_days(1) if complexity is Complexity.SIMPLE else Limit.natural_days(7)
    if complexity is Complexity.COMPLEX:
        raise HandlingError("信访分当场答复不了须三日内答复的一般来访，与领导接待两类")
    return Limit.working_days(3) if complexity is Complexity.SIMPLE else Limit.natural_days(7)


def hop_name(kind: CaseKind) -> str:
    """The deadline engine's hop name for an answer clock: it appears in staff notices, so Chinese."""
    return f"{kind.label_zh}答复"


def answer_clock(kind: CaseKind, complexity: Complexity, received_at: dt.datetime) -> HopClock | None:
    limit = answer_limit(kind, complexity)
    return None if limit is None else HopClock.received(received_at, limit, limit)


def answered_clock(clock: HopClock, at: dt.datetime) -> HopClock:
    """The answer stops the clock (a clock that fired overdue stays recorded as overdue)."""
    return clock.stop(max(at, clock.last_event_at), StopReason.DONE)


def staff_text_problem(label: str, text: str) -> str | None:
    """Staff's notes in a register (subjects, answers, reasons) are shown to colleagues: an ID or mobile
    number in them is refused, as in the handling domain."""
    return personal_data_problem(text, label)


def register_no(kind: CaseKind, year: int, serial: int) -> str:
    return f"{kind.prefix_zh}〔{year}〕{serial}号"


# ------------------------------------------------------------------------------ appointments


class AppointmentState(str, enum.Enum):
    CONFIRMED = "confirmed"
    ARRIVED = "arrived"
    SERVED = "served"
    FORFEITED = "forfeited"
    CANCELLED = "cancelled"

    @property
    def label_zh(self) -> str:
        return {"confirmed": "已确认", "arrived": "已到场", "served": "已办理", "forfeited": "视为放弃",
                "cancelled": "已取消"}[self.value]

    @property
    def is_open(self) -> bool:
        return self in (AppointmentState.CONFIRMED, AppointmentState.ARRIVED)


def is_late(scheduled_at: dt.datetime, at: dt.datetime) -> bool:
    return at > scheduled_at + FORFEIT_AFTER


def forfeit_problem(state: AppointmentState, scheduled_at: dt.datetime, now: dt.datetime,
                    contact_failed_at: dt.datetime | None) -> str | None:
    """Why the appointment may not be forfeited now (None: it may). Both conditions of 003 第七条."""
    if state is not AppointmentState.CONFIRMED:
        return f"该预约当前为“{state.label_zh}”，不能视为放弃"
    if not is_late(scheduled_at, now):
        return "超过约定时间 30 分钟仍未到场，才能视为放弃预约"
    if contact_failed_at is None or contact_failed_at < scheduled_at:
        return "须先联系申请人；经联系仍无法到场的，才能视为放弃预约（请先登记联系情况）"
    return None


def change_problem(state: AppointmentState, approved_by: str, applicant_told: bool, reason: str) -> str | None:
    """Changing or cancelling needs the hall's approval and the applicant told first (003 第六条)."""
    if not state.is_open:
        return f"该预约当前为“{state.label_zh}”，不能再变更或取消"
    if not reason.strip():
        return "请写明变更或取消的原因"
    if not approved_by.strip():
        return "变更或取消预约须报经大厅（中心主任）批准"
    if not applicant_told:
        return "变更或取消预约须提前告知申请人，请告知后勾选确认"
    return None


def arrival_problem(state: AppointmentState, scheduled_at: dt.datetime, at: dt.datetime, late_reason: str) -> str | None:
    """An arrival is always recorded, a late one (or one after the forfeit) with its reason."""
    if state in (AppointmentState.SERVED, AppointmentState.CANCELLED, AppointmentState.ARRIVED):
        return f"该预约当前为“{state.label_zh}”，不能再登记到场"
    if (state is AppointmentState.FORFEITED or is_late(scheduled_at, at)) and not late_reason.strip():
        return "申请人迟到超过 30 分钟（或预约已视为放弃），仍可登记到场办理，但须写明原因"
    return None


# ------------------------------------------------------------------------------ AB posts 顶岗


@dataclass(frozen=True)
class Absence:
    staff_id: str          # A 岗
    covered_by: str        # B 岗, who 顶岗
    from_date: dt.date
    to_date: dt.date
    reason: str
    returned_on: dt.date | None = None

    def covers(self, day: dt.date) -> bool:
        end = self.to_date if self.returned_on is None else min(self.to_date, self.returned_on - dt.timedelta(days=1))
        return self.from_date <= day <= end


def absence_problem(absence: Absence, others: Iterable[Absence], *, active: Sequence[str], today: dt.date) -> str | None:
    """Why an absence cannot be registered (None: it can)."""
    if not absence.reason.strip():
        return "请写明离岗原因（如：休假、外出学习、病假）"
    if absence.to_date < absence.from_date:
        return "离岗结束日期不能早于开始日期"
    if absence.to_date < today:
        return "离岗已经结束，无须登记顶岗"
    if absence.covered_by == absence.staff_id:
        return "顶岗人不能是离岗人本人"
    if absence.covered_by not in active:
        return "顶岗人须是本中心在岗的工作人员"
    for other in others:
        if other.returned_on is not None:
            continue
        overlap = other.from_date <= absence.to_date and absence.from_date <= other.to_date
        if overlap and other.staff_id == absence.staff_id:
            return "该工作人员在这段时间已登记离岗"
        if overlap and other.staff_id == absence.covered_by:
            return "顶岗人在这段时间本人也离岗，请另选顶岗人"
    return None


def covering(absences: Iterable[Absence], day: dt.date) -> list[Absence]:
    """Who covers whom on `day`."""
    return sorted((a for a in absences if a.covers(day)), key=lambda a: (a.staff_id, a.from_date))


# ------------------------------------------------------------------------------ the queue of the day


@dataclass(frozen=True)
class QueueEntry:
    ticket: str
    arrived_at: dt.datetime
    elderly_or_disabled: bool = False
    appointment_at: dt.datetime | None = None


def queue_order(entries: Iterable[QueueEntry]) -> list[QueueEntry]:
    """Elderly and disabled applicants first (爱心通道); then by appointment time for those who booked,
    by arrival for walk-ins, merged on one time line (an appointment holder who came early waits for
    their time, one who came late takes their turn from when they came); ties by arrival."""
    def when(e: QueueEntry) -> dt.datetime:
        return max(e.appointment_at, e.arrived_at) if e.appointment_at is not None else e.arrived_at

    return sorted(entries, key=lambda e: (not e.elderly_or_disabled, when(e), e.arrived_at, e.ticket))


# ------------------------------------------------------------------------------ consultations


def consultation_notice_lines(item: CatalogItem) -> list[str]:
    """The written one-time notification for a matter asked about (002: 咨询件 get it on the spot):
    every material, the procedure with each tier's promised limit, the fee and the legal basis."""
    lines = [f"事项：{item.name}", f"主管部门：{item.department}", "所需全部材料（请一次备齐）："]
    n = 0
    for m in item.main_materials:
        n += 1
        lines.append(f"  {n}. {m.name}（主要材料{'，' + m.condition + '时提供' if m.condition else ''}）")
    for m in item.auxiliary_materials:
        n += 1
        tolerance = "，可容缺受理" if m.tolerated_missing else ""
        lines.append(f"  {n}. {m.name}（辅助材料{tolerance}{'，' + m.condition + '时提供' if m.condition else ''}）")
    place = {Tier.VILLAGE: "村便民服务室", Tier.TOWNSHIP: "乡镇便民服务中心", Tier.COUNTY: "县政务服务中心"}
    lines.append(f"办理程序（由{place[item.decided_by]}决定）：")
    for step, tier in enumerate(item.tiers, start=1):
        hop = item.limits[tier]
        lines.append(f"  {step}. {place[tier]}：承诺 {hop.promised.describe_zh()}"
                     f"（{hop.statutory_source.label_zh} {hop.statutory.describe_zh()}）")
    lines.append("时限按工作日计算，法定节假日不计；补正材料、听证、招标、检验检测、鉴定、专家评审时间不计入。")
    if item.door_to_door:
        lines.append("老弱病残等行动不便的申请人，可预约代办员上门服务。")
    lines.append(f"收费标准：{item.fee}")
    lines.append(f"办理依据：{item.legal_basis}")
    return lines
