"""The matter page's forms as handling commands: each action named in the URL reads its fields,
checks what only the form can get wrong (a missing choice, a number that is not one), calls the
handling service with the page's expected version, and says in Chinese what was done.

The same commands back the extensions page's 审批 (`decide_extension`); the JSON API calls the
service directly (`town_center.api`).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from shared.console import ConsoleSession
from shared.domain.catalog import MatterKind
from shared.domain.deadlines import SuspensionReason
from shared.domain.handling import RefusalKind
from shared.domain.limits import Limit, LimitUnit
from shared.errors import HandlingError
from town_center.bootstrap import TownApp
from town_center.console.pages import lines

__all__ = ["run_action", "ACTIONS", "TYPED_ACTIONS"]

_T = TypeVar("_T")

# Actions whose form has typed fields: a refused one is shown again with what was typed.
TYPED_ACTIONS = frozenset({"classify", "request_materials", "suspend", "request_extension", "hand_over", "record_result",
                           "escalate", "request_refusal"})
ACTIONS = ("classify", "materials_completed", "request_materials", "suspend", "resume", "request_extension",
           "decide_extension", "extension_notified", "hand_over", "record_result", "escalate", "request_refusal",
           "decide_refusal")


def _read(parse: Callable[[], _T], refusal_zh: str) -> _T:
    """A typed field as its value; a malformed or missing one is the form's own Chinese refusal."""
    try:
        return parse()
    except ValueError:
        raise HandlingError(refusal_zh) from None


def run_action(app: TownApp, action: str, matter_id: str, form: dict[str, str], staff: ConsoleSession) -> str:
    """Do `action` on the matter as `staff`; the notice to show, or `HandlingError` with the reason."""
    handling = app.handling
    actor = staff.actor
    version: int | None = _read(lambda: int(form.get("expected_version", "")), "页面缺少版本信息，请刷新页面后重做")
    if action == "classify":
        kind = _read(lambda: MatterKind(form.get("kind", "")), "请选择办件类型（即办/承诺/补办/退回/联办/上报）")
        promised: Limit | None = None
        if kind is MatterKind.PROMISED and form.get("promise_amount", "").strip():
            promised = _read(lambda: Limit(int(form.get("promise_amount", "")), LimitUnit(form.get("promise_unit", ""))),
                             "请填写承诺时限（正整数）并选择单位")
        handling.classify(matter_id, kind, actor=actor, expected_version=version,
                          missing_materials=lines(form.get("missing_materials", "")),
                          return_reason=form.get("return_reason", ""), promised_limit=promised,
                          lead_window=form.get("lead_window", ""), departments=lines(form.get("departments", "")))
        return f"已受理，按{kind.label_zh}办理" if kind is not MatterKind.RETURNED else "已按退回件办理，并登记否定报备"
    if action == "request_refusal":
        refusal = _read(lambda: RefusalKind(form.get("refusal_kind", "")), "请选择：不予受理或不予批准")
        handling.request_refusal(matter_id, refusal, form.get("reason", ""), actor=actor, expected_version=version)
        return f"{refusal.label_zh}申请已提交，等待中心主任审批"
    if action == "decide_refusal":
        approve = form.get("decision") == "approve"
        handling.decide_refusal(matter_id, approve=approve, actor=actor, expected_version=version)
        return "已批准，并登记否定报备" if approve else "未批准，本件继续办理"
    if action == "materials_completed":
        handling.materials_completed(matter_id, actor=actor, expected_version=version)
        return "已登记材料补齐，开始计时"
    if action == "request_materials":
        missing = lines(form.get("missing_materials", ""))
        if not missing:
            raise HandlingError("须一次性书面告知所缺的全部材料")
        handling.request_materials(matter_id, missing, actor=actor, expected_version=version)
        return "已一次性告知需补正的材料，补正期间不计时"
    if action == "suspend":
        reason = _read(lambda: SuspensionReason(form.get("reason", "")), "请选择中止计时的原因")
        handling.suspend(matter_id, reason, form.get("note", ""), actor=actor, expected_version=version)
        return "已中止计时"
    if action == "resume":
        handling.resume(matter_id, actor=actor, expected_version=version)
        return "已恢复计时"
    if action == "request_extension":
        limit = _read(lambda: Limit(int(form.get("amount", "")), LimitUnit(form.get("unit", ""))),
                      "请填写延期后的时限（正整数）并选择单位")
        handling.request_extension(matter_id, limit, form.get("reason", ""), actor=actor, expected_version=version)
        return "延期申请已提交，等待主任审批"
    if action == "decide_extension":
        approve = form.get("decision") == "approve"
        handling.decide_extension(matter_id, approve=approve, actor=actor, expected_version=version)
        return "已批准延期，请书面告知申请人" if approve else "已不予批准延期"
    if action == "extension_notified":
        handling.applicant_notified_of_extension(matter_id, actor=actor, expected_version=version)
        return "已登记书面告知申请人延期"
    if action == "hand_over":
        handling.hand_over(matter_id, form.get("to_staff", ""), form.get("reason", ""), actor=actor,
                           expected_version=version)
        return "已完成 AB 岗交接"
    if action == "record_result":
        decision = form.get("approved", "")
        if decision not in ("yes", "no"):
            raise HandlingError("请选择办理结果：准予或不予批准")
        handling.record_result(matter_id, approved=decision == "yes", summary=form.get("summary", ""),
                               actor=actor, expected_version=version)
        return "已登记办理结果"
    if action == "escalate":
        if not form.get("summary", "").strip():
            raise HandlingError("上报须填写乡镇初审意见")
        if form.get("confirm") != "yes":
            raise HandlingError("请核对材料与初审意见后勾选确认，再签名上报")
        handling.escalate(matter_id, form.get("summary", ""), actor=actor, expected_version=version)
        if app.county_link is not None:
            app.county_link.wake()
        return "已签名上报县政务服务中心，等待县级签收"
    raise HandlingError("未知的操作")
