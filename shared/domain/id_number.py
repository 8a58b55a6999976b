"""China's 18-character citizen ID number (GB 11643-1999): validation, masking, normalisation.

Pure functions. A full ID number is personal data: callers keep only the masked form, a keyed
hash, and a copy sealed to the township; never log or store the plain value.
"""
from __future__ import annotations

import datetime as dt
import re

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"
_SHAPE = re.compile(r"^\d{17}[\dX]$")
# A candidate anywhere in a text blob (used by privacy scans): 17 digits then a digit or X.
CANDIDATE_PATTERN = re.compile(rb"(?<!\d)\d{17}[\dXx](?![\dXx])")


def normalize(raw: str) -> str:
    """Strip spaces and turn a lower-case or full-width check character into 'X'."""
    return raw.strip().replace(" ", "").replace("ｘ", "X").replace("Ｘ", "X").replace("x", "X")


def check_char(first17: str) -> str:
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


def problem(raw: str) -> str | None:
    """None when `raw` is a valid ID number; otherwise the reason in Chinese (no echo of the value)."""
    value = normalize(raw)
    if not value:
        return "请填写身份证号码"
    if len(value) != 18:
        return f"身份证号码应为 18 位，现为 {len(value)} 位"
    if not _SHAPE.match(value):
        return "身份证号码前 17 位应为数字，最后一位为数字或 X"
    try:
        born = dt.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return "身份证号码中的出生日期无效"
    if born.year < 1900:
        return "身份证号码中的出生日期无效"
    if value[17] != check_char(value[:17]):
        return "身份证号码校验位不正确，请核对"
    return None


def is_valid(raw: str) -> bool:
    return problem(raw) is None


def mask(raw: str) -> str:
    """Keep the first 4 and last 4 characters: enough to tell people apart at a glance."""
    value = normalize(raw)
    return value[:4] + "*" * (len(value) - 8) + value[-4:]


def birth_date(raw: str) -> dt.date:
    value = normalize(raw)
    return dt.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))


def with_check_char(first17: str) -> str:
    """Complete 17 digits into a valid number (test data and demos)."""
    return first17 + check_char(first17)
