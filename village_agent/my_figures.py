"""我的评价: the agent's own 好差评 figures as the township last signed them down (`AgentFigures`,
addressed to this laptop's key; `docs/evaluation.md`). Counts per month, satisfaction, each 差评's
reason category and 整改 status — never who rated, never which matter: the township sends none of it.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select

from shared.clock import from_unix_ms
from shared.domain.catalog import Catalog
from shared.domain.evaluation import BadReason, Level, RectificationState
from shared.wire.v1 import envelope_pb2, records_pb2
from village_agent.store import AgentStore, down_record

__all__ = ["MonthFigures", "BadReviewLine", "MyFigures", "my_figures"]

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
_PENDING_ZH = "待指定整改责任人"


@dataclass(frozen=True)
class MonthFigures:
    month_zh: str
    by_level: list[int]          # 非常满意 … 非常不满意
    rated: int
    agent_entered: int
    satisfaction_text: str       # 0–100, one decimal; "" when nobody rated


@dataclass(frozen=True)
class BadReviewLine:
    month_zh: str
    service: str
    reason_zh: str
    state_zh: str
    due_zh: str


@dataclass(frozen=True)
class MyFigures:
    computed_at: dt.datetime
    months: list[MonthFigures]
    bad_reviews: list[BadReviewLine]

    @property
    def level_names(self) -> list[str]:
        return [lv.label_zh for lv in Level]


def _month_zh(month: str) -> str:
    year, _, mo = month.partition("-")
    return f"{year}年{int(mo)}月" if mo.isdigit() else month


def my_figures(store: AgentStore, catalog: Catalog) -> MyFigures | None:
    """The latest `AgentFigures` the township sent this laptop, for the page; None before the first."""
    with store.engine.connect() as conn:
        env = conn.execute(select(down_record.c.envelope).where(down_record.c.body_kind == "agent_figures")
                           .order_by(down_record.c.applied_order.desc()).limit(1)).scalar()
    if env is None:
        return None
    body = records_pb2.Record.FromString(envelope_pb2.Envelope.FromString(bytes(env)).payload).agent_figures
    months = []
    for m in body.months:
        counts = (list(m.level_counts) + [0] * 5)[:5]
        rated = sum(counts)
        months.append(MonthFigures(_month_zh(m.month), counts, rated, int(m.agent_entered),
                                   f"{m.satisfaction_points / rated:.1f}" if rated else ""))
    lines = []
    for b in body.bad_reviews:
        try:
            reason = BadReason(b.reason).short_zh
        except ValueError:
            reason = "其他"
        try:
            state = RectificationState(b.rectification).label_zh
        except ValueError:
            state = _PENDING_ZH
        due = f"{from_unix_ms(b.due_at_ms).astimezone(SHANGHAI):%Y-%m-%d}" if b.due_at_ms else ""
        service = catalog.item(b.catalog_code).name if b.catalog_code in catalog else "服务事项"
        lines.append(BadReviewLine(_month_zh(b.month), service, reason, state, due))
    return MyFigures(from_unix_ms(body.computed_at_ms).astimezone(SHANGHAI), months, lines)
