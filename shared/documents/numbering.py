"""Document numbers 文号: the issuer's short name, the year in 〔〕, the kind's word and a sequence
that runs from 1 each year per kind with no gaps (the allocation happens in the transaction of the
record that issues the document, so a rolled-back action leaves no hole)."""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from shared.documents.errors import DocumentInvalid
from shared.documents.kinds import DocumentKind

__all__ = ["DocumentNumber", "format_number", "parse_number", "numbering_year"]

SHANGHAI = ZoneInfo("Asia/Shanghai")
_NUMBER = re.compile(r"^(?P<prefix>.{1,40})〔(?P<year>\d{4})〕(?P<word>[^〔〕\d]{1,4})字第(?P<seq>\d{1,9})号$")


@dataclass(frozen=True)
class DocumentNumber:
    prefix: str
    year: int
    word: str
    seq: int

    @property
    def text(self) -> str:
        return f"{self.prefix}〔{self.year}〕{self.word}字第{self.seq}号"


def numbering_year(at: dt.datetime) -> int:
    """Numbers restart each calendar year in Beijing time (a notice issued at 00:30 on 1 January
    Beijing time belongs to the new year although it is still the old year in UTC)."""
    return at.astimezone(SHANGHAI).year


def format_number(prefix: str, year: int, kind: DocumentKind, seq: int) -> str:
    if seq < 1:
        raise ValueError("document sequence numbers start at 1")
    return DocumentNumber(prefix, year, kind.word_zh, seq).text


def parse_number(typed: str) -> DocumentNumber:
    """A number as a person typed it (ASCII brackets and full-width digits accepted)."""
    text = typed.strip().translate(str.maketrans("[]()（）【】０１２３４５６７８９", "〔〕〔〕〔〕〔〕0123456789")).replace(" ", "")
    m = _NUMBER.match(text)
    if m is None:
        raise DocumentInvalid("文书编号格式不对，应如：青石镇便民中心〔2026〕受字第12号")
    return DocumentNumber(m["prefix"], int(m["year"]), m["word"], int(m["seq"]))
