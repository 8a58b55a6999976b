"""The printable acceptance receipt 受理回执 and one-time notification 一次性告知单, as plain data.

Both the CLI (text) and the web UI (HTML) render from `ReceiptView`, so they never disagree.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from shared.catalog import IntakeOutcome, assess_materials
from shared.clock import from_unix_ms
from village_agent.services import AgentService

SHANGHAI = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class ReceiptView:
    matter_id: str
    lookup_code: str
    matter_name: str
    catalog_code: str
    applicant_name: str
    id_masked: str
    village_name: str
    agent_name: str
    township_name: str
    filed_at: str
    outcome_zh: str
    accepted: bool
    notice_lines: tuple[str, ...]
    status_zh: str


def build_receipt(service: AgentService, matter_id: str) -> ReceiptView:
    state = service.store.matter_state(matter_id)
    item = service.catalog.item(state.catalog_code)
    assessment = assess_materials(item, list(state.materials))
    applicant = service.applicant(matter_id)
    filed_at = from_unix_ms(state.filed_claimed_ms).astimezone(SHANGHAI)
    return ReceiptView(
        matter_id=matter_id,
        lookup_code=service.store.lookup_code_of(matter_id),
        matter_name=item.name,
        catalog_code=item.code,
        applicant_name=applicant.name if applicant else "",
        id_masked=state.id_masked,
        village_name=service.config.village_name,
        agent_name=service.config.agent_name,
        township_name=service.config.township_name,
        filed_at=f"{filed_at:%Y年%m月%d日 %H:%M}",
        outcome_zh=assessment.outcome.label_zh,
        accepted=assessment.outcome is not IntakeOutcome.RETURN,
        notice_lines=tuple(assessment.notice_zh().splitlines()),
        status_zh=state.status.label_zh,
    )


def receipt_text(view: ReceiptView) -> str:
    title = "受理回执" if view.accepted else "退回告知书"
    lines = [
        f"{view.village_name}便民服务室  {title}",
        f"查询码：{view.lookup_code}    （凭此码可在乡镇政务公开页面查询办理进度）",
        f"事项：{view.matter_name}（{view.catalog_code}）",
        f"申请人：{view.applicant_name}    身份证：{view.id_masked}",
        f"受理时间：{view.filed_at}    代办员：{view.agent_name}",
        f"转办：{view.township_name}便民服务中心",
        f"受理意见：{view.outcome_zh}",
        "",
        *view.notice_lines,
    ]
    return "\n".join(lines)


def format_due(due_at_ms: int) -> str:
    if not due_at_ms:
        return "未计时"
    return f"{from_unix_ms(due_at_ms).astimezone(SHANGHAI):%Y-%m-%d %H:%M}"


def now_local(service: AgentService) -> dt.datetime:
    return service.clock.now().astimezone(SHANGHAI)
