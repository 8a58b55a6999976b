"""The written one-time notification 一次性告知书 the village hands the villager at filing.

Written once, at filing, from what was recorded there (each material: brought, 不适用, tolerated
with its commitment date, to be supplied, or missing), and kept in the signed `RequestFiled`
record (`intake_notice`): a reprint prints those lines again, never a notice recomputed from a
catalogue that may have changed since. No personal data goes in: the record travels to the township.

The wording is the village's: it collects 收件 on the villager's behalf and 报送 to the township;
only for a matter the village decides itself does it 受理.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from shared.calendar import SHANGHAI
from shared.domain.catalog import CatalogItem, IntakeOutcome, Material, MaterialsAssessment, MatterKind, Tier
from village_agent.hop import decided_in_village, limit_text_zh, source_label_zh

# 003 第八条: the only steps whose time is not counted; the notice must say so.
NOT_COUNTED_ZH = "依法需要听证、招标、拍卖、检验、检测、检疫、鉴定和专家评审的，所需时间不计算在承诺办结时限内。"


def outcome_zh(outcome: IntakeOutcome, *, village_decides: bool, township_name: str) -> str:
    """收件意见 in the village's words."""
    if village_decides:
        return {
            IntakeOutcome.ACCEPT: "材料齐全，予以受理",
            IntakeOutcome.ACCEPT_WITH_TOLERANCE: "主要材料齐全，部分辅助材料暂缺，先行受理（容缺/补办）",
            IntakeOutcome.RETURN: "缺少主要材料，不予受理，予以退回",
        }[outcome]
    to = f"{township_name}便民服务中心" if township_name else "乡镇便民服务中心"
    return {
        IntakeOutcome.ACCEPT: f"材料齐全，代为收件，报送{to}",
        IntakeOutcome.ACCEPT_WITH_TOLERANCE: f"主要材料齐全，部分辅助材料暂缺，先行代为收件（容缺/补办），报送{to}",
        IntakeOutcome.RETURN: "缺少主要材料，不予收件，予以退回",
    }[outcome]


def date_zh(day: dt.date) -> str:
    return f"{day.year}年{day.month:02d}月{day.day:02d}日"


def instant_zh(at: dt.datetime) -> str:
    local = at.astimezone(SHANGHAI)
    return f"{local.year}年{local.month:02d}月{local.day:02d}日 {local:%H:%M}"


def _kind_tag(m: Material, item: CatalogItem) -> str:
    if item.is_main(m.id):
        tag = "主要材料"
    else:
        tag = "辅助材料，可容缺" if m.tolerated_missing else "辅助材料"
    return f"{tag}；仅{m.condition}需要" if m.condition else tag


def material_lines(assessment: MaterialsAssessment, commitments: Mapping[str, str]) -> list[str]:
    """Every material of the item with what was recorded for it, in the catalogue's order."""
    item = assessment.item
    brought = {m.id for m in assessment.brought}
    not_applicable = {m.id for m in assessment.not_applicable}
    missing_main = {m.id for m in assessment.missing_main}
    tolerating = assessment.outcome is IntakeOutcome.ACCEPT_WITH_TOLERANCE
    lines = []
    for n, m in enumerate(item.materials, start=1):
        if m.id in brought:
            status = "已提交"
        elif m.id in not_applicable:
            status = "不适用"
        elif m.id in missing_main:
            status = "缺少，必须提交"
        elif tolerating and commitments.get(m.id):
            day = dt.date.fromisoformat(commitments[m.id])
            if m.tolerated_missing:
                status = f"暂缺，申请人已签署容缺承诺，于{date_zh(day)}前补交"
            else:
                status = f"暂缺，须补齐（申请人承诺于{date_zh(day)}前补交；办理时限自补齐之日起计算）"
        elif m.tolerated_missing:
            status = "暂缺，可容缺后补"
        else:
            status = "暂缺，须补齐"
        lines.append(f"  {n}. {m.name}（{_kind_tag(m, item)}）：{status}")
    return lines


def _role_zh(item: CatalogItem, tier: Tier) -> str:
    if tier is item.decided_by:
        return "受理并办结" if tier is Tier.VILLAGE else "审核、决定并办结"
    if tier is Tier.VILLAGE:
        return "代办员收件、初审并报送乡镇"
    return "受理、审核并上报县级部门（全程代办）"


def _place_zh(item: CatalogItem, tier: Tier) -> str:
    return item.department if tier is Tier.COUNTY else tier.label_zh


def intake_notice_lines(assessment: MaterialsAssessment, commitments: Mapping[str, str], *, township_name: str,
                        village_due: dt.datetime | None) -> tuple[str, ...]:
    """The 一次性告知书 as printed at filing: the materials as recorded, the procedure with each
    tier's limit and where it comes from, the village hop's due time, fee and legal basis."""
    item = assessment.item
    here = decided_in_village(item)
    returned = assessment.outcome is IntakeOutcome.RETURN
    if returned:
        kind_zh = MatterKind.RETURNED.label_zh
    elif here:
        kind_zh = assessment.suggested_kind.label_zh
    else:
        kind_zh = f"拟按{assessment.suggested_kind.label_zh}报送，以乡镇受理为准"
    lines = [
        "一次性告知书",
        f"事项：{item.name}（编码 {item.code}）",
        f"主管部门：{item.department}",
        f"收件意见：{outcome_zh(assessment.outcome, village_decides=here, township_name=township_name)}（{kind_zh}）",
    ]
    if returned and assessment.return_reason_zh:
        lines.append(f"退回原因：{assessment.return_reason_zh}")
    lines.append("材料核对（登记时逐项核对）：")
    lines.extend(material_lines(assessment, commitments))
    if assessment.missing:
        lines.append(f"尚缺材料（以下为全部所缺材料，请一次补齐）：{'、'.join(m.name for m in assessment.missing)}")
    else:
        lines.append("尚缺材料：无。")
    if not returned and assessment.tolerated:
        lines.append("容缺材料请按承诺日期补交，办理时限照常计算。")
    if assessment.clock_waits_for_materials:
        lines.append(f"本件为补办件，办理时限自材料（{'、'.join(m.name for m in assessment.to_supplement)}）补齐之日起计算。")
    if returned:
        lines.append("补齐主要材料后可重新申请，代办员可协助准备。")
    lines.append(f"办理程序及时限（由{_place_zh(item, item.decided_by)}决定）：")
    for step, tier in enumerate(item.tiers, start=1):
        hop = item.limits[tier]
        lines.append(f"  {step}. {_place_zh(item, tier)}{_role_zh(item, tier)}：{limit_text_zh(hop)}")
    if not returned and village_due is not None:
        hop = item.limits[Tier.VILLAGE]
        if here:
            lines.append(f"办理时限：{instant_zh(village_due)}前办结（{source_label_zh(hop)}）。")
        else:
            to = f"{township_name}便民服务中心" if township_name else "乡镇便民服务中心"
            lines.append(f"报送时限：{instant_zh(village_due)}前报送{to}（{source_label_zh(hop)}）。")
    if item.typical_kind is MatterKind.JOINT and item.departments:
        lines.append(f"联办部门：{'、'.join(item.departments)}（{item.departments[0]}牵头）。")
    lines.append(NOT_COUNTED_ZH)
    for period in getattr(item, "not_counted", ()):
        lines.append(f"本事项{period.what}所需时间不计入办理时限（依据：{period.basis}）。")
    if item.note:
        lines.append(f"说明：{item.note}")
    if item.door_to_door:
        lines.append("老弱病残等行动不便的申请人，可预约代办员上门服务。")
    lines.append(f"收费标准：{item.fee}")
    lines.append(f"办理依据：{item.legal_basis}")
    return tuple(lines)


# What the villager authorizes (代理服务委托书, 004 全程代理): the same words are shown before signing
# and printed on the numbered 委托书, so the villager signs exactly what is printed.
AUTHORIZED_POWERS_ZH = ("代为填写申请、核对并提交申请材料、报送乡镇便民服务中心（需县级审批的由乡镇上报县政务服务中心）、"
                        "按一次性告知代为补正材料、查询并告知办理进度、领取办理结果并交付委托人")


def authorization_text(*, applicant_name: str, matter_name: str, agent_name: str, village_name: str,
                       from_date_zh: str) -> str:
    """The authorization the villager agrees to: the matter, the powers given, the period, the agent."""
    who = applicant_name or "委托人"
    return (f"本人{who}委托{village_name}便民服务室代办员{agent_name}，代为办理“{matter_name}”。"
            f"委托权限：{AUTHORIZED_POWERS_ZH}。委托期限：自{from_date_zh}起，至该事项办结、办理结果交付本人并签收之日止。"
            "代办员不得超越上述权限，不收取任何费用；本人可随时撤回委托。")
