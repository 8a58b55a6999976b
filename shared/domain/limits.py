"""Time limits as the rules state them: a number of office minutes (即办), working days or
natural days. A hop carries a statutory limit (法定时限) and a promised one (承诺时限) that must not
exceed it. Pure values; the arithmetic that turns them into instants lives in `shared.domain.deadlines`."""
from __future__ import annotations

import enum
from dataclasses import dataclass


class LimitUnit(str, enum.Enum):
    OFFICE_MINUTES = "office_minutes"
    WORKING_DAYS = "working_days"
    NATURAL_DAYS = "natural_days"

    @property
    def label_zh(self) -> str:
        return {
            LimitUnit.OFFICE_MINUTES: "分钟",
            LimitUnit.WORKING_DAYS: "个工作日",
            LimitUnit.NATURAL_DAYS: "个自然日",
        }[self]


# A rough common measure so limits in different units can be compared (promised <= statutory).
# One working day holds 7 office hours by default; a natural day is counted as 5/7 working day.
_OFFICE_MINUTES_PER_WORKING_DAY = 420


@dataclass(frozen=True, order=False)
class Limit:
    amount: int
    unit: LimitUnit

    def __post_init__(self) -> None:
        if not isinstance(self.amount, int) or isinstance(self.amount, bool) or self.amount <= 0:
            raise ValueError(f"a limit must be a positive whole number, got {self.amount!r}")

    @classmethod
    def minutes(cls, n: int) -> Limit:
        return cls(n, LimitUnit.OFFICE_MINUTES)

    @classmethod
    def working_days(cls, n: int) -> Limit:
        return cls(n, LimitUnit.WORKING_DAYS)

    @classmethod
    def natural_days(cls, n: int) -> Limit:
        return cls(n, LimitUnit.NATURAL_DAYS)

    def approx_office_minutes(self) -> float:
        """An approximate size for comparing limits of different units; never used for deadlines."""
        if self.unit is LimitUnit.OFFICE_MINUTES:
            return float(self.amount)
        if self.unit is LimitUnit.WORKING_DAYS:
            return float(self.amount * _OFFICE_MINUTES_PER_WORKING_DAY)
        return self.amount * _OFFICE_MINUTES_PER_WORKING_DAY * 5 / 7

    def fits_within(self, other: Limit) -> bool:
        """True when this limit is no longer than `other` (exactly when units agree)."""
        if self.unit is other.unit:
            return self.amount <= other.amount
        return self.approx_office_minutes() <= other.approx_office_minutes()

    def describe_zh(self) -> str:
        return f"{self.amount}{self.unit.label_zh}"

    def to_text(self) -> str:
        """Compact form used in data files: '30m', '5wd', '60nd'."""
        suffix = {LimitUnit.OFFICE_MINUTES: "m", LimitUnit.WORKING_DAYS: "wd", LimitUnit.NATURAL_DAYS: "nd"}
        return f"{self.amount}{suffix[self.unit]}"

    @classmethod
    def parse(cls, text: str) -> Limit:
        """Parse '30m', '5wd' or '60nd'. Raises ValueError with the reason."""
        t = text.strip().lower()
        for suffix, unit in (("wd", LimitUnit.WORKING_DAYS), ("nd", LimitUnit.NATURAL_DAYS), ("m", LimitUnit.OFFICE_MINUTES)):
            if t.endswith(suffix):
                digits = t[: -len(suffix)]
                if digits.isdigit():
                    return cls(int(digits), unit)
                break
        raise ValueError(f"时限格式应为 '30m'（办公分钟）、'5wd'（工作日）或 '60nd'（自然日），实际为 {text!r}")
