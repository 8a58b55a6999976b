"""The written documents the rules name (004, 003, 000), with the word each
one's number carries (文号: 〔year〕 then the kind's word 字 and the sequence)."""
from __future__ import annotations

import enum

__all__ = ["DocumentKind", "IssuingTier"]


class IssuingTier(str, enum.Enum):
    """Who issues (and numbers) a document: each tier keeps its own sequences."""

    VILLAGE = "village"
    TOWNSHIP = "township"
    COUNTY = "county"


class DocumentKind(str, enum.Enum):
    # village: the laptop prints these from its browser
    APPLICATION_FORM = "application_form"
    AUTHORIZATION = "authorization"
    COLLECTION_RECEIPT = "collection_receipt"
    ONE_TIME_NOTICE = "one_time_notice"
    HANDOVER = "handover"
    # township and county
    ACCEPTANCE = "acceptance"
    PROMISED_ACCEPTANCE = "promised_acceptance"
    SUPPLEMENT = "supplement"
    RETURNED = "returned"
    JOINT = "joint"
    REPORTED = "reported"
    EXTENSION = "extension"
    REFUSAL = "refusal"
    SUPERVISION = "supervision"
    # township front desk (town_center.front_desk.documents); ONE_TIME_NOTICE also for a 咨询件
    PETITION_ASSIGNMENT = "petition_assignment"
    PETITION_NOTICE = "petition_notice"
    COMPLAINT_ANSWER = "complaint_answer"

    @property
    def title_zh(self) -> str:
        return _TITLES[self][0]

    @property
    def word_zh(self) -> str:
        """The word in the number: 青石镇便民中心〔2026〕诺字第3号."""
        return _TITLES[self][1]

    @property
    def code(self) -> str:
        """Short stable key for the numbering table (never shown to a person)."""
        return self.value[:24]


_TITLES: dict[DocumentKind, tuple[str, str]] = {
    DocumentKind.APPLICATION_FORM: ("代办服务申请表", "申"),
    DocumentKind.AUTHORIZATION: ("代理服务委托书", "委"),
    DocumentKind.COLLECTION_RECEIPT: ("代办收件回执", "收"),
    DocumentKind.ONE_TIME_NOTICE: ("一次性告知书", "告"),
    DocumentKind.HANDOVER: ("交付签收单", "签"),
    DocumentKind.ACCEPTANCE: ("受理通知书", "受"),
    DocumentKind.PROMISED_ACCEPTANCE: ("承诺件受理通知书", "诺"),
    DocumentKind.SUPPLEMENT: ("补办件通知书", "补"),
    DocumentKind.RETURNED: ("退回件通知书", "退"),
    DocumentKind.JOINT: ("联办件通知书", "联"),
    DocumentKind.REPORTED: ("上报件通知书", "报"),
    DocumentKind.EXTENSION: ("延期告知书", "延"),
    DocumentKind.REFUSAL: ("不予行政许可决定书", "不许"),
    DocumentKind.SUPERVISION: ("督办通知", "督"),
    DocumentKind.PETITION_ASSIGNMENT: ("信访事项交办单", "访交"),
    DocumentKind.PETITION_NOTICE: ("信访事项告知书", "访告"),
    DocumentKind.COMPLAINT_ANSWER: ("投诉答复书", "诉复"),
}
