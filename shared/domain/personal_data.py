"""Personal data typed into free text: citizen ID numbers and mainland mobile numbers.

Pure functions. The applicant's ID number and phone travel only sealed to the township key (see
`shared.sealing`); a free-text field (a note, a reason, a purpose, an opinion) is signed and stored in
plain text at every tier, in exports and in backups, so text that carries either is refused at entry
with a Chinese message that never echoes the number back.

What counts:
* an 18-character ID number (GB 11643) whose birth date and check character are right, typed
  together or in groups separated by spaces or hyphens;
* a 15-digit ID number of the old kind (area code, YYMMDD birth date in the 1900s, sequence);
* a mainland mobile number 1[3-9]xxxxxxxxx, together or as 3-4-4 groups, with or without +86 / 0086 / 86.
Full-width digits count the same as ASCII ones (the text is NFKC-normalised first).
"""
from __future__ import annotations

import datetime as dt
import enum
import re
import unicodedata
from dataclasses import dataclass

from shared.domain import id_number
from shared.errors import HandlingError

__all__ = ["PersonalDataKind", "Found", "find_personal_data", "contains_personal_data", "personal_data_problem",
           "refuse_personal_data"]


class PersonalDataKind(enum.Enum):
    ID_NUMBER = "id_number"
    MOBILE = "mobile"

    @property
    def label_zh(self) -> str:
        return {"id_number": "身份证号码", "mobile": "手机号码"}[self.value]


@dataclass(frozen=True)
class Found:
    kind: PersonalDataKind
    start: int      # offsets in the NFKC-normalised text
    end: int


_SEP = r"[ \t\-.·]?"
# 17 digits and a check character, any of them possibly separated by one space or hyphen.
_ID18 = re.compile(rf"(?<![0-9A-Za-z])[0-9](?:{_SEP}[0-9]){{16}}{_SEP}[0-9Xx](?![0-9A-Za-z])")
_ID15 = re.compile(r"(?<![0-9A-Za-z])[0-9]{15}(?![0-9A-Za-z])")
_MOBILE = re.compile(r"(?<![0-9A-Za-z+])(?:(?:\+|00)?86[ \t\-]?)?(1[3-9][0-9])[ \t\-]?([0-9]{4})[ \t\-]?([0-9]{4})(?![0-9])")
_NOT_DIGIT = re.compile(r"[^0-9Xx]")


def _old_id_valid(digits: str) -> bool:
    if digits[0] not in "12345678":      # area codes begin 1–8
        return False
    try:
        dt.date(1900 + int(digits[6:8]), int(digits[8:10]), int(digits[10:12]))
    except ValueError:
        return False
    return True


def find_personal_data(text: str) -> list[Found]:
    """Every ID number and mobile number in `text`, in order."""
    normal = unicodedata.normalize("NFKC", text)
    found: list[Found] = []
    for m in _ID18.finditer(normal):
        if id_number.is_valid(_NOT_DIGIT.sub("", m.group()).upper()):
            found.append(Found(PersonalDataKind.ID_NUMBER, m.start(), m.end()))
    for m in _ID15.finditer(normal):
        if _old_id_valid(m.group()):
            found.append(Found(PersonalDataKind.ID_NUMBER, m.start(), m.end()))
    taken = [(f.start, f.end) for f in found]
    for m in _MOBILE.finditer(normal):
        if not any(s <= m.start() < e for s, e in taken):
            found.append(Found(PersonalDataKind.MOBILE, m.start(), m.end()))
    return sorted(found, key=lambda f: f.start)


def contains_personal_data(text: str) -> bool:
    return bool(find_personal_data(text))


def personal_data_problem(text: str, field_zh: str) -> str | None:
    """None when `text` carries no ID or mobile number; otherwise why it is refused, in Chinese,
    without repeating the number."""
    kinds = list(dict.fromkeys(f.kind for f in find_personal_data(text)))
    if not kinds:
        return None
    what = "和".join(k.label_zh for k in kinds)
    return (f"“{field_zh}”中不能填写{what}：这段文字会以明文签名保存并上报，"
            "申请人的证件号码和联系电话已在申请人信息中加密保存，请删去后再提交")


def refuse_personal_data(*fields: tuple[str, str]) -> None:
    """Raise `HandlingError` (the message of `personal_data_problem`) for the first (label, text) that
    carries an ID or mobile number: staff's reasons, opinions and notes at the township and county."""
    for label, text in fields:
        problem = personal_data_problem(text, label)
        if problem:
            raise HandlingError(problem)
