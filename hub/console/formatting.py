"""Display helpers for the county board: Beijing time, and Chinese labels for what arrives from the
townships as wire enums (the tracked matters keep the township's status record as received)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from shared.calendar import YearSource
from shared.clock import from_unix_ms
from shared.domain.catalog import CatalogItem, Tier
from shared.domain.deadlines import ClockState, ClockStatus
from shared.wire.v1 import records_pb2

__all__ = ["BEIJING", "STATE_CLASS", "YEAR_SOURCE_ZH", "HopRow", "bj", "ms_bj", "wire_stage_zh", "township_hop",
           "county_hop", "hop_from_wire", "limit_basis_zh"]

BEIJING = dt.timezone(dt.timedelta(hours=8))
STATE_CLASS = {ClockState.ON_TIME: "on-time", ClockState.WARNING: "warning", ClockState.OVERDUE: "overdue",
               ClockState.SUPERVISE: "supervise"}
YEAR_SOURCE_ZH = {
    YearSource.LIBRARY: "已确认（国务院办公厅通知，系统内置）",
    YearSource.OVERRIDE_CONFIRMED: "已确认（县级工作日历文件）",
    YearSource.OVERRIDE_DRAFT: "未确认（县级发布的草案）",
    YearSource.WEEKENDS_ONLY: "未确认（尚未录入，暂按周末双休推算）",
}
_WIRE_STAGE_ZH: dict[int, str] = {
    records_pb2.STAGE_RECEIVED: "待分类", records_pb2.STAGE_CLASSIFIED: "已分类",
    records_pb2.STAGE_WAITING_FOR_MATERIALS: "待补齐材料", records_pb2.STAGE_IN_PROGRESS: "办理中",
    records_pb2.STAGE_SUSPENDED: "中止计时", records_pb2.STAGE_ESCALATED: "已上报县级",
    records_pb2.STAGE_DECIDED: "已决定", records_pb2.STAGE_RESULT_READY: "结果待交付",
    records_pb2.STAGE_HANDED_OVER: "已交付待签收", records_pb2.STAGE_SIGNED_OFF: "已签收办结",
    records_pb2.STAGE_RETURNED: "已退回", records_pb2.STAGE_WITHDRAWN: "已撤回",
}
# (label, colour class) of a hop's clock state as the township reported it.
_WIRE_STATE: dict[int, tuple[str, str]] = {
    records_pb2.CLOCK_STATE_ON_TIME: ("正常", "on-time"), records_pb2.CLOCK_STATE_WARNING: ("临期预警", "warning"),
    records_pb2.CLOCK_STATE_OVERDUE: ("已超期", "overdue"), records_pb2.CLOCK_STATE_SUPERVISED: ("超期督办", "supervise"),
    records_pb2.CLOCK_STATE_SUSPENDED: ("中止计时", "none"), records_pb2.CLOCK_STATE_STOPPED: ("已停止", "none"),
}


def bj(value: dt.datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """Beijing time, whatever the server's own zone: every office reads deadlines in it."""
    return "—" if value is None else value.astimezone(BEIJING).strftime(fmt)


def ms_bj(value: int | None) -> str:
    return bj(from_unix_ms(int(value))) if value else "—"


def wire_stage_zh(stage: int) -> str:
    return _WIRE_STAGE_ZH.get(stage, "状态未知")


@dataclass(frozen=True)
class HopRow:
    """One hop's clock as a board row shows it; `css` is the colour class (on-time/warning/overdue/supervise/none)."""

    received_at: dt.datetime | None
    due_at: dt.datetime | None
    stopped_at: dt.datetime | None
    label: str
    css: str


def hop_from_wire(hop: dict[str, int] | None, received_at: dt.datetime | None = None) -> HopRow | None:
    """A hop from a township status record (`*_ms` keys, wire state)."""
    if not hop:
        return None
    due = from_unix_ms(hop["due_at_ms"]) if hop.get("due_at_ms") else None
    stopped = from_unix_ms(hop["stopped_at_ms"]) if hop.get("stopped_at_ms") else None
    started = from_unix_ms(hop["started_at_ms"]) if hop.get("started_at_ms") else None
    label, css = _WIRE_STATE.get(hop.get("state", 0), ("未计时", "none"))
    if stopped is not None and due is not None:
        # A stopped clock says nothing about lateness on the wire; the two instants do.
        label, css = ("已停止（超过时限）", "overdue") if stopped > due else ("已停止（未超时限）", "on-time")
    return HopRow(received_at or started, due, stopped, label, css)


def township_hop(hop: dict[str, int] | None, township_received_at: dt.datetime) -> HopRow | None:
    return hop_from_wire(hop, township_received_at)


def county_hop(received_at: dt.datetime, due_at: dt.datetime | None, state: ClockState | None,
               status: ClockStatus | None, stopped_at: dt.datetime | None = None) -> HopRow:
    if status is ClockStatus.RUNNING and state is not None:
        label, css = state.label_zh, STATE_CLASS[state]
    elif status is not None:
        label, css = status.label_zh, "none"
        if state in (ClockState.OVERDUE, ClockState.SUPERVISE):
            label, css = f"{status.label_zh}（{state.label_zh}）", STATE_CLASS[state]
    else:
        label, css = "未计时", "none"
    return HopRow(received_at, due_at, stopped_at, label, css)


def limit_basis_zh(item: CatalogItem | None, tier: Tier, *, with_limit: bool = True) -> str:
    """Where a hop's limit comes from, as every county page says it: 法定时限 only when the catalogue
    marks the hop's statutory figure as fixed by statute, otherwise 本县规定时限 (the county's own)."""
    if item is None or tier not in item.limits:
        return "本县规定时限" if not with_limit else "本县规定时限（目录中无此环节）"
    hop = item.hop(tier)
    label = hop.statutory_source.label_zh
    return f"{label} {hop.statutory.describe_zh()}" if with_limit else label
