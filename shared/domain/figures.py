"""Figures per village, agent and operator, and the weekly follow-up sample. Pure.

The township console and the county board both feed these functions plain `MatterFacts` read
from their stores; nothing here touches a database or the clock.
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from shared.domain.deadlines import ClockState

BAD_RATINGS = frozenset({4, 5})   # 不满意, 非常不满意 (records.proto Rating values)
RATING_SCORE = {1: 100, 2: 80, 3: 60, 4: 30, 5: 0}  # for an average satisfaction figure


@dataclass(frozen=True)
class MatterFacts:
    """What the figures need to know about one matter at one tier."""

    matter_id: str
    village_code: str
    agent_key_id: str
    operator_id: str
    received_at: dt.datetime
    completed_at: dt.datetime | None = None       # result ready (this tier's work done)
    due_at: dt.datetime | None = None
    state: ClockState = ClockState.ON_TIME          # worst state the hop reached
    rating: int = 0                                 # records.proto Rating; 0 = not yet rated
    followed_up: bool = False
    returned: bool = False
    # Office time from receipt to completion (working hours, holidays and nights out), computed by the
    # caller on its calendar; the natural hours stand in only when it is not given.
    working_hours: float | None = None


@dataclass
class Figures:
    key: str
    received: int = 0
    completed: int = 0
    completed_on_time: int = 0
    overdue: int = 0
    returned: int = 0
    rated: int = 0
    bad_reviews: int = 0
    bad_reviews_followed_up: int = 0
    _hours: list[float] = field(default_factory=list, repr=False)
    _scores: list[int] = field(default_factory=list, repr=False)

    @property
    def average_hours(self) -> float | None:
        return sum(self._hours) / len(self._hours) if self._hours else None

    @property
    def on_time_rate(self) -> float | None:
        return self.completed_on_time / self.completed if self.completed else None

    @property
    def satisfaction(self) -> float | None:
        """Average of the ratings on a 0–100 scale (非常满意 100 … 非常不满意 0)."""
        return sum(self._scores) / len(self._scores) if self._scores else None

    def add(self, m: MatterFacts) -> None:
        self.received += 1
        self.returned += m.returned
        if m.completed_at is not None:
            self.completed += 1
            natural = (m.completed_at - m.received_at).total_seconds() / 3600
            self._hours.append(m.working_hours if m.working_hours is not None else natural)
            if m.due_at is None or m.completed_at <= m.due_at:
                self.completed_on_time += 1
        if m.state.rank >= ClockState.OVERDUE.rank:
            self.overdue += 1
        if m.rating:
            self.rated += 1
            self._scores.append(RATING_SCORE.get(m.rating, 0))
            if m.rating in BAD_RATINGS:
                self.bad_reviews += 1
                self.bad_reviews_followed_up += m.followed_up


def figures_by(matters: Iterable[MatterFacts], key: Callable[[MatterFacts], str]) -> list[Figures]:
    table: dict[str, Figures] = {}
    for m in matters:
        k = key(m)
        table.setdefault(k, Figures(k)).add(m)
    return [table[k] for k in sorted(table)]


CSV_HEADER = ("对象", "受理件数", "办结件数", "按时办结", "超期件数", "退回件数", "平均用时（小时）",
              "按时办结率", "已评价", "满意度（百分制）", "差评件数", "差评已回访")


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}%"


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


# A cell starting with one of these is a formula to Excel, WPS and LibreOffice (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formula(cell: object) -> object:
    """A text cell that a spreadsheet would run as a formula, written as text: prefixed with an
    apostrophe, which spreadsheets show as plain text. Numbers are left alone. Every CSV/xlsx export
    writes its cells through this (a village code or a name comes from a device or a person)."""
    if isinstance(cell, str) and cell.startswith(FORMULA_PREFIXES):
        return "'" + cell
    return cell


def to_csv(rows: Sequence[Figures], label: Callable[[str], str] = str) -> str:
    """CSV with a UTF-8 BOM so Excel on a township PC opens the Chinese headers correctly."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    for f in rows:
        cells = [label(f.key), f.received, f.completed, f.completed_on_time, f.overdue, f.returned,
                 _num(f.average_hours), _pct(f.on_time_rate), f.rated, _num(f.satisfaction),
                 f.bad_reviews, f.bad_reviews_followed_up]
        writer.writerow([neutralise_formula(cell) for cell in cells])
    return out.getvalue()


def bar_chart_svg(rows: Sequence[tuple[str, float]], *, title: str, unit: str = "", width: int = 560) -> str:
    """A small horizontal bar chart as inline SVG: no script, no network, prints cleanly."""
    from html import escape

    bar_h, gap, label_w = 22, 8, 140
    height = 30 + len(rows) * (bar_h + gap)
    peak = max((v for _, v in rows), default=0) or 1
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" aria-label="{escape(title)}">',
             f'<text x="0" y="18" font-size="15" font-weight="bold">{escape(title)}</text>']
    for i, (name, value) in enumerate(rows):
        y = 30 + i * (bar_h + gap)
        w = int((width - label_w - 70) * value / peak)
        parts.append(f'<text x="0" y="{y + 16}" font-size="13">{escape(name)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{max(w, 1)}" height="{bar_h}" fill="#2f6fb0"/>')
        parts.append(f'<text x="{label_w + w + 6}" y="{y + 16}" font-size="13">{value:g}{escape(unit)}</text>')
    parts.append("</svg>")
    return "".join(parts)


# ---------------------------------------------------------------- weekly follow-up sample 回访


def week_seed(week_start: dt.date, secret: bytes) -> int:
    """Operators must not be able to predict which of their matters will be called; the seed is
    keyed by a tier secret, and stable for the week so a restart draws the same sample."""
    return int.from_bytes(hashlib.sha256(secret + week_start.isoformat().encode()).digest()[:8], "big")


def draw_follow_up_sample(
    completed: Sequence[MatterFacts], *, week_start: dt.date, secret: bytes, fraction: float = 0.1, minimum: int = 3,
) -> list[MatterFacts]:
    """Every bad review is called back; of the rest, a random `fraction` (at least `minimum`)."""
    if not 0 < fraction <= 1:
        raise ValueError("回访抽样比例应在 0 到 1 之间")
    must = [m for m in completed if m.rating in BAD_RATINGS and not m.followed_up]
    rest = sorted((m for m in completed if m not in must and not m.followed_up), key=lambda m: m.matter_id)
    count = min(len(rest), max(minimum, round(len(rest) * fraction)))
    sample = random.Random(week_seed(week_start, secret)).sample(rest, count)
    return must + sorted(sample, key=lambda m: m.matter_id)
