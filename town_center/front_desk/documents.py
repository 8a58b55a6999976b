"""The front desk's written documents (docs/front-desk.md "Documents"): what each says, built from the
register entry as it is saved, and issued by the township's document archive in the transaction that
writes the entry, so the number has no gap and the paper says exactly what the register holds.

* a petition 信访 when registered: the 交办单 to the responsible person and the 告知书 to the petitioner
  (004 信访接待制度 第四条: "及时填写事项交办单和告知书，分别交有关部门和来访群众");
* a consultation 咨询件 about a catalogue matter when registered: the written one-time notification
  (一次性告知书, 002), printed on the spot;
* a written complaint (letter, online, suggestion box) when answered: the 投诉答复书 (004 投诉制度 第七条:
  "书面投诉必须书面答复"); a complaint made in person or by phone is answered by word of mouth.

Neither paper names the complainant or petitioner: their identity is sealed to the township and seen by
the director and 督查 only (004: "为群众的控告、检举保守秘密"), while a document's HTML is stored as printed
and any colleague may reprint it. The register number ties the paper to the entry. The documents belong to
the entry (`matter_id` is its case id, never printed), so `documents_of(case_id)` lists them.
"""
from __future__ import annotations

from dataclasses import dataclass

from shared.documents.content import Line
from shared.documents.drafts import DocumentDraft
from shared.documents.kinds import DocumentKind
from shared.domain.catalog import CatalogItem
from shared.domain.front_desk import CaseKind, Channel, Complexity, consultation_notice_lines

__all__ = ["RegisterFacts", "petition_assignment_draft", "petition_notice_draft", "consultation_notice_draft",
           "complaint_answer_draft", "WRITTEN_CHANNELS"]

# 书面投诉: what came in writing is answered in writing.
WRITTEN_CHANNELS = frozenset({Channel.LETTER, Channel.ONLINE, Channel.BOX})

@dataclass(frozen=True)
class RegisterFacts:
    """A register entry as people read it on paper (times already in Beijing words)."""

    case_id: str
    kind: CaseKind
    register_no: str
    received_on: str          # 2026年11月23日 10:00
    channel: Channel
    complexity: Complexity
    subject: str
    content: str
    handler: str              # the 承办人's name
    registered_by: str        # who registered it, by name
    due_on: str = ""          # the answer's due time in words; "" for a consultation


def petition_assignment_draft(f: RegisterFacts) -> DocumentDraft:
    """信访事项交办单: to the responsible person, with the limit and what the petitioner raised."""
    leader = f.complexity is Complexity.LEADER
    return DocumentDraft(
        kind=DocumentKind.PETITION_ASSIGNMENT, matter_id=f.case_id, addressee=f.handler or "承办人",
        opening=f"现将下列信访事项交你办理，请于{f.due_on}前答复来访人，并将处理结果报本中心。",
        lines=(Line("信访编号", f.register_no), Line("来访时间", f.received_on), Line("来访方式", f.channel.label_zh),
               Line("反映问题", f.subject), Line("主要内容", f.content),
               Line("办理方式", "领导接待，一般一周内答复" if leader else "三日内答复"), Line("答复期限", f.due_on)),
        paragraphs=("来访人身份依《信访条例》保密，由中心主任掌握；办理中需要联系来访人的，请经中心主任安排。",
                    "超过期限未答复的，系统将提醒、督办，并记入督查清单。"),
        signatures=(Line("交办人", f.registered_by), Line("承办人签收", "")),
    )


def petition_notice_draft(f: RegisterFacts) -> DocumentDraft:
    """信访事项告知书: to the petitioner, saying it is registered, who handles it and by when it is answered."""
    leader = f.complexity is Complexity.LEADER
    return DocumentDraft(
        kind=DocumentKind.PETITION_NOTICE, matter_id=f.case_id, addressee="来访人",
        opening=(f"你于{f.received_on}以{f.channel.label_zh}方式反映的“{f.subject}”已登记，"
                 f"登记编号为{f.register_no}。本中心已交{f.handler}办理，"
                 f"将于{f.due_on}前给予答复" + ("（领导接待事项）" if leader else "") + "。"),
        lines=(Line("登记编号", f.register_no), Line("登记时间", f.received_on), Line("承办人", f.handler),
               Line("答复期限", f.due_on)),
        paragraphs=("查询办理情况时，请报登记编号。你的姓名和联系方式本中心依法保密。",
                    "对答复意见不服的，可以自收到答复之日起 30 日内请求上一级行政机关复查。"),
    )


def consultation_notice_draft(f: RegisterFacts, item: CatalogItem, answer: str) -> DocumentDraft:
    """一次性告知书 for a 咨询件: every material, the procedure and limits, the fee and the basis (002)."""
    lines = consultation_notice_lines(item)
    return DocumentDraft(
        kind=DocumentKind.ONE_TIME_NOTICE, matter_id=f.case_id, addressee="咨询人",
        opening=f"你于{f.received_on}咨询的“{item.name}”，所需材料、办理程序、时限、收费和依据一次性告知如下：",
        lines=(Line("咨询编号", f.register_no), Line("咨询事项", item.name), Line("答复人", f.registered_by)),
        list_heading="一次性告知内容", items=tuple(line.strip() for line in lines),
        paragraphs=(f"当场答复：{answer}",) if answer else (),
    )


def complaint_answer_draft(f: RegisterFacts, answer: str, answered_by: str) -> DocumentDraft:
    """投诉答复书: a written complaint's written answer (004 投诉制度 第七条)."""
    return DocumentDraft(
        kind=DocumentKind.COMPLAINT_ANSWER, matter_id=f.case_id, addressee="投诉人",
        opening=(f"你于{f.received_on}以{f.channel.label_zh}方式反映的“{f.subject}”（登记编号{f.register_no}），"
                 "经调查核实，现答复如下："),
        lines=(Line("登记编号", f.register_no), Line("答复人", answered_by)),
        paragraphs=(answer, "如对答复不满意，可向本中心或上级纪检监察部门反映。"),
    )
