"""The printed receipt and one-time notification, as plain data.

The village collects 收件 a township or county matter on the villager's behalf, so its receipt is a
代办收件回执 (a 受理回执 only for a matter the village decides itself; a 退回告知书 for a returned
request). Everything on it comes from the signed filing record, never from today's catalogue: the
notice lines are the ones written at filing (`RequestFiled.intake_notice`), so a reprint says what
the villager was told the first time. Records filed before the notice was kept get it rebuilt from
what the record holds (materials brought, tolerated with their dates), marked as rebuilt.

Both the CLI (text) and the web UI (HTML) render from `ReceiptView`, so they never disagree.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from shared.catalog import CatalogError, IntakeOutcome, Tier, assess_materials
from shared.clock import from_unix_ms
from shared.wire.v1 import records_pb2
from village_agent.hop import hop_due
from village_agent.notice import intake_notice_lines
from village_agent.services import AgentService

SHANGHAI = ZoneInfo("Asia/Shanghai")
REBUILT_ZH = "（本告知书登记时未单独保存，据登记记录和现行服务事项目录重新生成）"


@dataclass(frozen=True)
class ReceiptView:
    matter_id: str
    lookup_code: str
    title: str
    matter_name: str
    catalog_code: str
    applicant_name: str
    id_masked: str
    village_name: str
    agent_name: str
    township_name: str
    filed_at: str
    accepted: bool
    notice_lines: tuple[str, ...]
    status_zh: str
    lookup_hint: str
    route_zh: str          # 报送：青石镇便民服务中心, or 办理：本村便民服务室
    rebuilt: bool = False


def receipt_title(outcome: int, village_decides: bool) -> str:
    if outcome == records_pb2.INTAKE_OUTCOME_RETURN:
        return "退回告知书"
    return "受理回执" if village_decides else "代办收件回执"


def build_receipt(service: AgentService, matter_id: str) -> ReceiptView:
    state = service.store.matter_state(matter_id)
    body = service.store.filing_record(matter_id).request_filed
    item = service.catalog.item(body.catalog_code) if body.catalog_code in service.catalog else None
    village_decides = item is not None and item.decided_by is Tier.VILLAGE
    notice = tuple(body.intake_notice.splitlines()) if body.intake_notice else ()
    rebuilt = not notice
    if rebuilt:
        notice = _rebuilt_notice(service, body, state.filed_claimed_ms)
    applicant = service.applicant(matter_id)
    filed_at = from_unix_ms(state.filed_claimed_ms).astimezone(SHANGHAI)
    code = service.store.lookup_code_of(matter_id)
    township = service.config.township_name
    return ReceiptView(
        matter_id=matter_id,
        lookup_code=code or "（本机无此件查询码：请以首次打印的回执为准）",
        title=receipt_title(body.intake_outcome, village_decides),
        matter_name=body.catalog_item_name or (item.name if item else body.catalog_code),
        catalog_code=body.catalog_code,
        applicant_name=applicant.name if applicant else "",
        id_masked=state.id_masked,
        village_name=service.config.village_name,
        agent_name=service.config.agent_name,
        township_name=township,
        filed_at=f"{filed_at:%Y年%m月%d日 %H:%M}",
        accepted=body.intake_outcome != records_pb2.INTAKE_OUTCOME_RETURN,
        notice_lines=notice,
        status_zh=state.status.label_zh,
        lookup_hint=(f"凭查询码可在{township}便民服务中心“办件进度查询”页面（政务公开）或到中心窗口查询办理进度，"
                     f"也可请本村代办员{service.config.agent_name}代为查询。"),
        route_zh=_route_zh(body.intake_outcome, village_decides, service.config.village_name, township),
        rebuilt=rebuilt,
    )


def _route_zh(outcome: int, village_decides: bool, village: str, township: str) -> str:
    if outcome == records_pb2.INTAKE_OUTCOME_RETURN:
        # Not passed on for handling; the township only registers the refusal (否定报备).
        return f"备案：{township}便民服务中心（退回件登记，不报送办理）"
    return f"办理：{village}便民服务室" if village_decides else f"报送：{township}便民服务中心"


def _rebuilt_notice(service: AgentService, body: records_pb2.RequestFiled, filed_ms: int) -> tuple[str, ...]:
    """For records from before the notice was kept: rebuilt from the record's own materials and dates."""
    if body.catalog_code not in service.catalog:
        return ("一次性告知书", f"事项编码 {body.catalog_code}：现行服务事项目录中已无此事项，无法重新生成告知内容。", REBUILT_ZH)
    item = service.catalog.item(body.catalog_code)
    try:
        assessment = assess_materials(item, list(body.materials_brought), not_applicable=list(body.materials_not_applicable))
    except CatalogError:
        return ("一次性告知书", "登记时的材料与现行服务事项目录不一致，无法重新生成告知内容。", REBUILT_ZH)
    commitments = {t.material_id: t.supply_by_date for t in body.tolerated_missing if _is_date(t.supply_by_date)}
    if assessment.outcome is IntakeOutcome.ACCEPT_WITH_TOLERANCE and set(commitments) != {m.id for m in assessment.missing_auxiliary}:
        commitments = {}
    lines = intake_notice_lines(assessment, commitments, township_name=service.config.township_name,
                                village_due=hop_due(item, from_unix_ms(filed_ms), service.calendar))
    return (*lines, REBUILT_ZH)


def _is_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def receipt_text(view: ReceiptView) -> str:
    lines = [
        f"{view.village_name}便民服务室  {view.title}",
        f"查询码：{view.lookup_code}",
        view.lookup_hint,
        f"事项：{view.matter_name}",
        f"申请人：{view.applicant_name}    身份证：{view.id_masked}",
        f"收件时间：{view.filed_at}    代办员：{view.agent_name}",
        view.route_zh,
        "",
        *view.notice_lines,
        "",
        "代办员签字：            申请人签字（或按手印）：            日期：",
    ]
    return "\n".join(lines)


def format_due(due_at_ms: int) -> str:
    if not due_at_ms:
        return "未计时"
    return f"{from_unix_ms(due_at_ms).astimezone(SHANGHAI):%Y-%m-%d %H:%M}"


def now_local(service: AgentService) -> dt.datetime:
    return service.clock.now().astimezone(SHANGHAI)
