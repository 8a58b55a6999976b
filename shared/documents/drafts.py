"""What each township and county notice says, built from the facts of the matter as its signed
records hold them (never retyped). Pure: the tiers gather `NoticeFacts` inside the transaction of
the action that issues the notice, and the archive numbers, signs and stores the draft.

Wording follows the source rules (docs/ARCHITECTURE.md, Where the rules come from): 受理 / 承诺件 /
补办件 (一次性告知) / 退回件 / 联办件 / 上报件 notices, the 延期告知书 (限时办结制度 第七条), and the
不予（行政）许可决定书 with the reason and the applicant's remedies (政务服务中心管理制度).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from shared.documents.content import RECONSIDERATION_RIGHTS, Line
from shared.documents.kinds import DocumentKind

__all__ = ["DocumentDraft", "NoticeFacts", "STATUTORY_NOT_COUNTED", "acceptance_draft", "upper_acceptance_draft",
           "supplement_draft",
           "returned_draft", "extension_draft", "refusal_draft", "supervision_draft", "refusal_title"]

# 003 第八条: the only periods not counted without a further legal basis; the 受理通知书 must state them.
STATUTORY_NOT_COUNTED = (
    "依法需要听证、招标、拍卖、检验、检测、检疫、鉴定和专家评审的，所需时间不计入办理时限，本中心将书面告知所需时间",
    "申请人补正材料的时间不计入办理时限",
)
SITE_INSPECTION_NOTE = "需要现场勘查（踏勘）的，在承诺时限内进行，不另行延长时限。"


@dataclass(frozen=True)
class DocumentDraft:
    """What a tier's action says a document contains; the archive adds the number and the issuer."""

    kind: DocumentKind
    matter_id: str
    addressee: str
    opening: str = ""
    lines: tuple[Line, ...] = ()
    list_heading: str = ""
    items: tuple[str, ...] = ()
    paragraphs: tuple[str, ...] = ()
    rights: str = ""
    signatures: tuple[Line, ...] = ()
    footer_note: str = ""
    title: str = ""


@dataclass(frozen=True)
class NoticeFacts:
    """The matter as the issuing tier's records say it, in words a villager reads."""

    matter_id: str
    applicant_name: str            # "" when the sealed details cannot be opened here
    matter_name: str               # the catalogue item's name
    received_on: str               # 2026年12月1日 09:30 (this tier's receipt)
    via: str                       # 经村代办员王芳报送 / 经青石镇便民服务中心上报
    handler: str                   # 承办人's name
    fee: str = ""
    legal_basis: str = ""
    category: str = ""
    extra_not_counted: tuple[str, ...] = field(default_factory=tuple)   # the item's own, each with its basis

    @property
    def addressee(self) -> str:
        return self.applicant_name or "申请人"

    def common_lines(self) -> tuple[Line, ...]:
        lines = [Line("申请事项", self.matter_name), Line("申请人", self.addressee), Line("收件时间", self.received_on)]
        if self.handler:
            lines.append(Line("承办人", self.handler))
        return tuple(lines)


def _you(f: NoticeFacts) -> str:
    return f"你于{f.received_on}{f.via}的“{f.matter_name}”申请"


def acceptance_draft(f: NoticeFacts, kind: DocumentKind, *, limit_zh: str = "", statutory_zh: str = "",
                     due_on: str = "", written_promise: str = "", lead_window: str = "",
                     departments: tuple[str, ...] = (), report_limit_zh: str = "", report_due_on: str = "",
                     county_limit_zh: str = "") -> DocumentDraft:
    """受理通知书 (即办件), 承诺件受理通知书, 联办件通知书, 上报件通知书: accepted, with the due date and
    the periods the rules do not count."""
    lines = list(f.common_lines())
    not_counted: tuple[str, ...] = ()
    paragraphs: list[str] = []
    if kind is DocumentKind.ACCEPTANCE:
        opening = f"{_you(f)}，材料齐全，符合法定形式，本中心决定予以受理，作为即办件当场办理。"
        lines.append(Line("办件类型", "即办件"))
        if limit_zh:
            lines.append(Line("办理时限", limit_zh))
    elif kind is DocumentKind.REPORTED:
        opening = (f"{_you(f)}，须由县级审批。本中心决定予以受理，作为上报件办理：本中心在承诺时限内上报县政务服务中心，"
                   f"全程跟踪并代为办理，县级作出决定后由本中心转交结果。")
        lines += [Line("办件类型", "上报件"), Line("乡镇上报时限", report_limit_zh or limit_zh)]
        if report_due_on or due_on:
            lines.append(Line("最迟上报日期", report_due_on or due_on))
        if county_limit_zh:
            lines.append(Line("县级承诺办理时限", f"{county_limit_zh}（自县级收件之日起计算）"))
        not_counted = STATUTORY_NOT_COUNTED + f.extra_not_counted
    else:
        if kind is DocumentKind.JOINT:
            opening = (f"{_you(f)}，需由多个部门联合办理。本中心决定予以受理，作为联办件办理，由{lead_window}牵头，"
                       f"{'、'.join(departments)}参与，实行一个时限承诺。")
            lines += [Line("办件类型", "联办件"), Line("牵头窗口", lead_window), Line("参与部门", "、".join(departments))]
        else:
            opening = f"{_you(f)}，材料齐全，本中心决定予以受理，作为承诺件办理。"
            lines.append(Line("办件类型", "承诺件"))
        lines += [Line("承诺办理时限", limit_zh), Line("法定办理时限", statutory_zh)]
        if due_on:
            lines.append(Line("承诺办结日期", due_on))
        if written_promise:
            paragraphs.append(f"本中心书面承诺：{written_promise}")
        not_counted = STATUTORY_NOT_COUNTED + f.extra_not_counted
        paragraphs.append(SITE_INSPECTION_NOTE)
    if f.fee:
        lines.append(Line("收费", f.fee))
    if f.legal_basis:
        lines.append(Line("办理依据", f.legal_basis))
    return DocumentDraft(kind, f.matter_id, f.addressee, opening=opening, lines=tuple(lines),
                         list_heading="下列时间不计入办理时限：" if not_counted else "", items=not_counted,
                         paragraphs=tuple(paragraphs) + ("办理进度可凭代办收件回执上的查询码查询，或向村代办员询问。",))


def upper_acceptance_draft(f: NoticeFacts, *, accepted_on: str, limit_zh: str, statutory_zh: str,
                           due_on: str) -> DocumentDraft:
    """受理通知书 of the deciding tier (the county taking in a 上报件): its own limit, due date and the
    periods not counted; the township hands it on to the applicant."""
    lines = list(f.common_lines()) + [Line("县级受理时间", accepted_on), Line("承诺办理时限", limit_zh),
                                      Line("法定办理时限", statutory_zh)]
    if due_on:
        lines.append(Line("承诺办结日期", due_on))
    if f.legal_basis:
        lines.append(Line("办理依据", f.legal_basis))
    return DocumentDraft(DocumentKind.ACCEPTANCE, f.matter_id, f.addressee,
                         opening=f"{_you(f)}，县政务服务中心已于{accepted_on}受理，将在承诺时限内作出决定，"
                                 "决定由乡镇便民服务中心转交。",
                         lines=tuple(lines), list_heading="下列时间不计入办理时限：",
                         items=STATUTORY_NOT_COUNTED + f.extra_not_counted, paragraphs=(SITE_INSPECTION_NOTE,))


def supplement_draft(f: NoticeFacts, missing: tuple[str, ...], *, during_handling: bool) -> DocumentDraft:
    """补办件通知书: everything missing, told once and in writing (一次性告知)."""
    if during_handling:
        opening = f"{_you(f)}正在办理中。经审查，尚需补正下列材料，现一次性书面告知。补正期间不计入办理时限，材料补齐后恢复计时。"
    else:
        opening = (f"{_you(f)}，主要材料齐全，尚缺下列材料，本中心作为补办件受理，现一次性书面告知。"
                   f"办理时限自材料补齐之日起计算。")
    return DocumentDraft(DocumentKind.SUPPLEMENT, f.matter_id, f.addressee, opening=opening, lines=f.common_lines(),
                         list_heading="需补齐的材料（一次性告知，此外不再要求其他材料）：", items=missing,
                         paragraphs=("请将上述材料交村代办员代为报送，或送本中心窗口。",))


def returned_draft(f: NoticeFacts, reason: str, *, approved_by: str = "") -> DocumentDraft:
    """退回件通知书: not accepted, with the reason (registered for audit, 否定报备)."""
    lines = list(f.common_lines()) + [Line("退回理由", reason)]
    if approved_by:
        lines.append(Line("审批", f"经中心主任{approved_by}批准"))
    return DocumentDraft(DocumentKind.RETURNED, f.matter_id, f.addressee,
                         opening=f"{_you(f)}，经审查，本中心决定不予受理，予以退回。理由如下。", lines=tuple(lines),
                         paragraphs=("申请人补齐主要材料或情况发生变化后，可以重新申请。对本通知有异议的，可以向本中心或县政务服务中心反映。",),
                         rights=RECONSIDERATION_RIGHTS)


def extension_draft(f: NoticeFacts, *, reason: str, old_zh: str, new_zh: str, statutory_zh: str, due_on: str,
                    approved_by: str, tier_zh: str = "") -> DocumentDraft:
    """延期告知书 (003 第七条): approved, within the statutory limit, told in writing."""
    lines = list(f.common_lines()) + [Line("延期理由", reason), Line("原办理时限", old_zh), Line("延长后办理时限", new_zh),
                                      Line("法定办理时限", statutory_zh)]
    if due_on:
        lines.append(Line("延长后办结日期", due_on))
    if approved_by:
        lines.append(Line("批准人", approved_by))
    return DocumentDraft(DocumentKind.EXTENSION, f.matter_id, f.addressee,
                         opening=f"{_you(f)}，因{reason}，经批准，{tier_zh}办理时限由{old_zh}延长至{new_zh}，"
                                 f"仍在法定时限以内。特此书面告知。", lines=tuple(lines))


def refusal_title(f: NoticeFacts) -> str:
    """不予行政许可决定书 for an administrative licence; 不予许可决定书 for other matters."""
    licence = "许可" in f.legal_basis or "许可" in f.category or "许可" in f.matter_name
    return "不予行政许可决定书" if licence else "不予许可决定书"


def refusal_draft(f: NoticeFacts, reason: str, *, decided_by: str, approved_by: str = "") -> DocumentDraft:
    """不予（行政）许可决定书 (000): the reason and the applicant's right to reconsideration or litigation."""
    lines = list(f.common_lines()) + [Line("不予许可的理由", reason)]
    if f.legal_basis:
        lines.append(Line("依据", f.legal_basis))
    if decided_by:
        lines.append(Line("决定人", decided_by))
    if approved_by and approved_by != decided_by:
        lines.append(Line("审批", f"经中心主任{approved_by}批准"))
    return DocumentDraft(DocumentKind.REFUSAL, f.matter_id, f.addressee, title=refusal_title(f),
                         opening=f"{_you(f)}，经依法审查，决定不予许可。", lines=tuple(lines),
                         rights=RECONSIDERATION_RIGHTS)


def supervision_draft(matter_id: str, *, township_name: str, matter_name: str, message: str, hop_zh: str,
                      overdue_working_days: int, issued_by: str) -> DocumentDraft:
    """督办通知 (000 项目审批督促检查制度): to the township responsible for the hop."""
    lines = [Line("督办事项", matter_name), Line("督办环节", hop_zh)]
    if overdue_working_days:
        lines.append(Line("已超时", f"{overdue_working_days}个工作日"))
    lines += [Line("督办意见", message), Line("督办人", issued_by)]
    return DocumentDraft(DocumentKind.SUPERVISION, matter_id, township_name or "乡镇便民服务中心",
                         opening="下列办件已超出办理时限，现予督办。请即查明原因，说明情况，抓紧办结，并与申请人联系。",
                         lines=tuple(lines),
                         paragraphs=("连续延误三个工作日的，将按规定处理。",))
