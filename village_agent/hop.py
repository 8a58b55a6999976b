"""The village's own hop clock 环节时限, as the laptop shows it.

For a matter the township or county decides, the village hop is the 报送: from the villager's
request (its filing on this laptop) to the township's receipt of it, limited by the catalogue's
`limits.village.promised`. The laptop learns the receipt time from the township's signed relay
receipt for the filing record (verified before it is stored, see `village_agent.outbox`), so the
clock stops at the township's own time. For a matter the village decides itself (e.g. RS-003)
there is no 报送: the village hop is the handling clock, stopped at the hand-over.

The start is the laptop's clock at filing: it is the only clock present when the villager asks,
and the township keeps its own view of this hop from its receipt. Pure: every instant comes in.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from shared.calendar import SHANGHAI, WorkingCalendar
from shared.clock import from_unix_ms
from shared.domain.catalog import CatalogItem, HopLimits, StatutorySource, Tier
from shared.domain.deadlines import ClockState, HopClock, StopReason
from shared.errors import SharedError
from village_agent.domain import MatterState

SHORT = "%Y-%m-%d %H:%M"


@dataclass(frozen=True)
class VillageHop:
    title_zh: str        # 报送时限 / 办理时限
    limit_zh: str        # 承诺 1个工作日（本县规定时限 2个工作日）
    source_zh: str       # 本县规定时限 / 法定时限
    css: str             # on-time / warning / overdue / untimed, or done / overdue-done once stopped
    state_zh: str        # 待乡镇收到 / 临期预警 / 已超期 / 按时报送 / 超时报送 / …
    due_zh: str          # local due instant, or "—"
    stopped_zh: str = ""  # what stopped the clock, and when


def source_label_zh(hop: HopLimits) -> str:
    """法定时限 only where the catalogue says the statute fixes the figure; otherwise the county's own."""
    return "法定时限" if hop.statutory_source is StatutorySource.STATUTE else "本县规定时限"


def limit_text_zh(hop: HopLimits) -> str:
    return f"承诺 {hop.promised.describe_zh()}（{source_label_zh(hop)} {hop.statutory.describe_zh()}）"


def decided_in_village(item: CatalogItem) -> bool:
    return item.decided_by is Tier.VILLAGE


def hop_due(item: CatalogItem, filed_at: dt.datetime, calendar: WorkingCalendar) -> dt.datetime | None:
    """When the village hop of a request filed at `filed_at` is due; None if it cannot be counted."""
    try:
        hop = item.hop(Tier.VILLAGE)
        return HopClock.received(filed_at, hop.promised, hop.statutory).due_at(calendar)
    except SharedError:
        return None


def _local(at: dt.datetime) -> str:
    return f"{at.astimezone(SHANGHAI):{SHORT}}"


def village_hop(item: CatalogItem, state: MatterState, *, received_ms: int | None, now_ms: int,
                calendar: WorkingCalendar) -> VillageHop | None:
    """The village hop of one matter at `now_ms`; None when the catalogue gives no village hop.

    `received_ms` is the township's receipt time of the filing record, or None while it has not
    been confirmed to this laptop.
    """
    try:
        hop = item.hop(Tier.VILLAGE)
    except SharedError:
        return None
    here = decided_in_village(item)
    title = "办理时限" if here else "报送时限"
    source = source_label_zh(hop)
    limit = limit_text_zh(hop)
    filed_at = from_unix_ms(state.filed_claimed_ms)
    if state.returned_at_intake:
        # Returned by the village at filing (a main material missing): nothing goes on to be handled.
        return VillageHop(title, limit, source, "untimed", "已退回，不计时", "—")
    stop_ms, stopped_what = 0, ""
    if here:
        if state.handed_over_ms:
            stop_ms, stopped_what = state.handed_over_ms, "已交付办理结果"
    elif received_ms:
        stop_ms, stopped_what = received_ms, "乡镇已收到"
    if not stop_ms and state.withdrawn_ms:
        stop_ms, stopped_what = state.withdrawn_ms, "已撤回"
    try:
        clock = HopClock.received(filed_at, hop.promised, hop.statutory)
        judged_at = from_unix_ms(now_ms)
        if stop_ms:
            # A laptop clock ahead of the township's must not make the receipt look earlier than
            # the filing: the hop then took no time at all.
            judged_at = max(from_unix_ms(stop_ms), filed_at)
            clock = clock.stop(judged_at, StopReason.PASSED_ON)
        due = clock.due_at(calendar)
        # A stopped hop is judged at its stop (on time or late), whatever this laptop's clock says now.
        level = clock.state_at(judged_at, calendar)
    except SharedError:
        return VillageHop(title, limit, source, "untimed", "无法计算时限", "—")
    due_zh = _local(due) if due is not None else "—"
    if stop_ms:
        late = level in (ClockState.OVERDUE, ClockState.SUPERVISE)
        if stopped_what == "已撤回":
            verdict = "已撤回，停止计时"
        elif here:
            verdict = "超时办结" if late else "按时办结"
        else:
            verdict = "超时报送" if late else "按时报送"
        return VillageHop(title, limit, source, "overdue-done" if late else "done", verdict, due_zh,
                          f"{stopped_what}（{_local(from_unix_ms(stop_ms))}）")
    css, label = {
        ClockState.ON_TIME: ("on-time", "办理中" if here else "待乡镇收到"),
        ClockState.WARNING: ("warning", "临期预警"),
        ClockState.OVERDUE: ("overdue", "已超期"),
        ClockState.SUPERVISE: ("overdue", "已超期"),
    }[level]
    return VillageHop(title, limit, source, css, label, due_zh)
