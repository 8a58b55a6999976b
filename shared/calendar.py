"""The working-day calendar that deadlines are counted on: working days, office hours, and the
county's override file for years the holiday table does not yet know.

Where a day's status comes from, per year (`YearSource`):

* ``LIBRARY`` — the `chinese-calendar` table (State Council notices: public holidays and 调休
  make-up workdays). Authoritative: an override section for such a year is ignored and reported in
  `WorkingCalendar.ignored_override_years`, so a county file cannot silently rewrite a published year.
* ``OVERRIDE_CONFIRMED`` — a county override file with ``confirmed = true`` for the year.
* ``OVERRIDE_DRAFT`` — a county override file with ``confirmed = false`` (a draft, e.g. copied from
  a State Council notice before it was checked). Used for counting, but still unconfirmed.
* ``WEEKENDS_ONLY`` — nothing known: Monday–Friday are working days. Unconfirmed.

While any year in a range is unconfirmed, `calendar_warning_zh` returns the warning text that every
console shows.

The override file (TOML, UTF-8; the format is ours and documented here). One file may carry several
years; several files may be loaded, but one year must come from one file only::

    format = 1                              # required; the only version so far
    issued_by = "某某县政务服务中心"           # optional, shown to operators
    note = "依据国务院办公厅2026年11月通知"     # optional

    [year_2027]
    confirmed = false                       # required: true only once checked against the notice
    holidays = [                            # days off (放假), besides ordinary weekends
      { name = "元旦", from = 2027-01-01, to = 2027-01-03 },   # an inclusive range
      { name = "清明节", date = 2027-04-05 },                  # one day
      2027-05-01,                                              # a bare date (or "2027-05-01")
    ]
    workdays = [                            # 调休: weekend days that are working days
      { name = "春节调休", date = 2027-02-20 },
      2027-02-21,
    ]

Every date must lie in the section's year, a date cannot be both a holiday and a workday, and unknown
keys are errors (a misspelt ``holiday`` must not silently do nothing). Errors raise
`CalendarOverrideError` naming the file and the entry.

Instants are timezone-aware; office hours and working days are always reckoned in Asia/Shanghai,
whatever the server's own timezone. Nothing here reads the clock; only `load_override_file` /
`load_override_dir` touch the file system, and parsing (`parse_override_toml`) is pure.
"""
from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import json
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from importlib import metadata
from pathlib import Path
from zoneinfo import ZoneInfo

import chinese_calendar
from chinese_calendar import constants as _cc_constants

from shared.errors import CalendarError, CalendarOverrideError

__all__ = [
    "SHANGHAI",
    "DEFAULT_OFFICE_HOURS",
    "OfficeHours",
    "YearSource",
    "YearOverride",
    "WorkingCalendar",
    "parse_override_toml",
    "load_override_file",
    "load_override_dir",
    "calendar_warning_zh",
]

UTC = dt.UTC
SHANGHAI = ZoneInfo("Asia/Shanghai")
_ONE_DAY = dt.timedelta(days=1)
_MIN_YEAR, _MAX_YEAR = 1901, 9998  # keeps every lookup away from date.min / date.max


# --------------------------------------------------------------------------------------------
# Office hours
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OfficeHours:
    """The office's sessions on a working day, in local (Shanghai) wall-clock time.

    Default 08:30–12:00 and 14:00–17:30: 7 office hours a day, the figure `shared.domain.limits`
    assumes when comparing units.
    """

    sessions: tuple[tuple[dt.time, dt.time], ...] = (
        (dt.time(8, 30), dt.time(12, 0)),
        (dt.time(14, 0), dt.time(17, 30)),
    )

    def __post_init__(self) -> None:
        if not self.sessions:
            raise CalendarError("办公时间至少需要一个时段")
        previous_end: dt.time | None = None
        for start, end in self.sessions:
            if start.tzinfo is not None or end.tzinfo is not None:
                raise CalendarError("办公时间应为本地钟点（不带时区）")
            if not start < end:
                raise CalendarError(f"办公时段 {start:%H:%M}–{end:%H:%M} 的开始应早于结束")
            if previous_end is not None and start < previous_end:
                raise CalendarError("办公时段应按时间先后排列且互不重叠")
            previous_end = end

    @classmethod
    def parse(cls, text: str) -> OfficeHours:
        """Parse ``"08:30-12:00,14:00-17:30"`` (the form used in configuration files)."""
        sessions = []
        try:
            for part in text.split(","):
                start_text, end_text = part.strip().split("-")
                sessions.append((dt.time.fromisoformat(start_text.strip()), dt.time.fromisoformat(end_text.strip())))
        except ValueError as exc:
            raise CalendarError(f"办公时间格式应为 '08:30-12:00,14:00-17:30'，实际为 {text!r}") from exc
        return cls(tuple(sessions))

    @property
    def open_time(self) -> dt.time:
        return self.sessions[0][0]

    @property
    def close_time(self) -> dt.time:
        return self.sessions[-1][1]

    @property
    def minutes_per_day(self) -> int:
        total = 0
        for start, end in self.sessions:
            total += (end.hour * 60 + end.minute) - (start.hour * 60 + start.minute)
        return total

    def to_text(self) -> str:
        return ",".join(f"{s:%H:%M}-{e:%H:%M}" for s, e in self.sessions)


DEFAULT_OFFICE_HOURS = OfficeHours()


# --------------------------------------------------------------------------------------------
# Override files
# --------------------------------------------------------------------------------------------


class YearSource(str, Enum):
    LIBRARY = "library"
    OVERRIDE_CONFIRMED = "override_confirmed"
    OVERRIDE_DRAFT = "override_draft"
    WEEKENDS_ONLY = "weekends_only"

    @property
    def confirmed(self) -> bool:
        return self in (YearSource.LIBRARY, YearSource.OVERRIDE_CONFIRMED)


@dataclass(frozen=True)
class YearOverride:
    """One year of a county override file."""

    year: int
    confirmed: bool
    holidays: frozenset[dt.date] = frozenset()
    workdays: frozenset[dt.date] = frozenset()
    # Display names per date (节日名称); informative only.
    names: tuple[tuple[dt.date, str], ...] = ()
    source: str = ""
    issued_by: str = ""

    def __post_init__(self) -> None:
        where = self.source or "覆盖文件"
        for day in self.holidays | self.workdays:
            if day.year != self.year:
                raise CalendarOverrideError(f"{where}：[year_{self.year}] 中的日期 {day} 不在 {self.year} 年")
        both = self.holidays & self.workdays
        if both:
            raise CalendarOverrideError(
                f"{where}：[year_{self.year}] 中 {min(both)} 同时列为放假日和调休上班日"
            )


_TOP_KEYS = {"format", "issued_by", "issued_at", "note"}
_YEAR_KEYS = {"confirmed", "holidays", "workdays", "note"}


def _as_date(value: object, where: str) -> dt.date:
    if isinstance(value, dt.datetime):
        raise CalendarOverrideError(f"{where}：应为日期（如 2027-01-01），不应带钟点：{value!r}")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise CalendarOverrideError(f"{where}：无法识别的日期 {value!r}（应为 2027-01-01 形式）")


def _entries(
    raw: object, where: str, *, ranges_allowed: bool
) -> tuple[set[dt.date], list[tuple[dt.date, str]]]:
    if not isinstance(raw, list):
        raise CalendarOverrideError(f"{where}：应为列表")
    days: set[dt.date] = set()
    names: list[tuple[dt.date, str]] = []
    for index, item in enumerate(raw, start=1):
        here = f"{where} 第{index}项"
        if isinstance(item, dict):
            allowed = {"name", "date"} | ({"from", "to"} if ranges_allowed else set())
            unknown = set(item) - allowed
            if unknown:
                raise CalendarOverrideError(f"{here}：未知的键 {sorted(unknown)}（允许 {sorted(allowed)}）")
            name = item.get("name", "")
            if not isinstance(name, str):
                raise CalendarOverrideError(f"{here}：name 应为文字")
            if "date" in item:
                if "from" in item or "to" in item:
                    raise CalendarOverrideError(f"{here}：date 与 from/to 不能同时出现")
                span = [_as_date(item["date"], here)]
            elif "from" in item and "to" in item:
                first, last = _as_date(item["from"], here), _as_date(item["to"], here)
                if last < first:
                    raise CalendarOverrideError(f"{here}：to（{last}）早于 from（{first}）")
                if (last - first).days > 31:
                    raise CalendarOverrideError(f"{here}：一段假期不应超过31天（{first}–{last}）")
                span = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
            else:
                need = "date 或 from/to" if ranges_allowed else "date"
                raise CalendarOverrideError(f"{here}：缺少 {need}")
        else:
            span = [_as_date(item, here)]
            name = ""
        for day in span:
            if day in days:
                raise CalendarOverrideError(f"{here}：日期 {day} 重复")
            days.add(day)
            if name:
                names.append((day, name))
    return days, names


def parse_override_toml(text: str, source: str = "<覆盖文件>") -> dict[int, YearOverride]:
    """Parse one override file's text into its years. Pure; raises `CalendarOverrideError`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CalendarOverrideError(f"{source}：不是有效的 TOML：{exc}") from exc
    if data.get("format") != 1:
        raise CalendarOverrideError(f"{source}：缺少 format = 1 或版本不受支持（{data.get('format')!r}）")
    issued_by = data.get("issued_by", "")
    if not isinstance(issued_by, str):
        raise CalendarOverrideError(f"{source}：issued_by 应为文字")
    years: dict[int, YearOverride] = {}
    for key, value in data.items():
        if key in _TOP_KEYS:
            continue
        if not (key.startswith("year_") and key[5:].isdigit() and len(key) == 9):
            raise CalendarOverrideError(f"{source}：未知的键 {key!r}（年份段应写作 [year_2027]）")
        year = int(key[5:])
        where = f"{source} [{key}]"
        if not _MIN_YEAR <= year <= _MAX_YEAR:
            raise CalendarOverrideError(f"{where}：年份超出范围")
        if not isinstance(value, dict):
            raise CalendarOverrideError(f"{where}：应为一个表（[{key}]）")
        unknown = set(value) - _YEAR_KEYS
        if unknown:
            raise CalendarOverrideError(f"{where}：未知的键 {sorted(unknown)}（允许 {sorted(_YEAR_KEYS)}）")
        confirmed = value.get("confirmed")
        if not isinstance(confirmed, bool):
            raise CalendarOverrideError(f"{where}：必须写明 confirmed = true 或 false")
        holidays, holiday_names = _entries(value.get("holidays", []), f"{where} holidays", ranges_allowed=True)
        workdays, workday_names = _entries(value.get("workdays", []), f"{where} workdays", ranges_allowed=False)
        years[year] = YearOverride(
            year=year,
            confirmed=confirmed,
            holidays=frozenset(holidays),
            workdays=frozenset(workdays),
            names=tuple(sorted(holiday_names + workday_names)),
            source=source,
            issued_by=issued_by,
        )
    if not years:
        raise CalendarOverrideError(f"{source}：没有任何年份段（如 [year_2027]）")
    return years


def load_override_file(path: str | Path) -> dict[int, YearOverride]:
    """Read and parse one override file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CalendarOverrideError(f"无法读取工作日历覆盖文件 {p.name}：{exc.__class__.__name__}") from exc
    return parse_override_toml(text, source=p.name)


def load_override_dir(directory: str | Path) -> dict[int, YearOverride]:
    """Read every ``*.toml`` in a directory (a missing directory means no overrides).

    A year defined in two files is an error: which one wins must not depend on file names."""
    d = Path(directory)
    if not d.is_dir():
        return {}
    merged: dict[int, YearOverride] = {}
    for path in sorted(d.glob("*.toml")):
        for year, override in load_override_file(path).items():
            if year in merged:
                raise CalendarOverrideError(
                    f"{year}年的工作日历同时出现在 {merged[year].source} 和 {override.source} 中"
                )
            merged[year] = override
    return merged


# --------------------------------------------------------------------------------------------
# The calendar
# --------------------------------------------------------------------------------------------


def _library_year_range() -> tuple[int, int]:
    years = [d.year for d in _cc_constants.holidays]
    return min(years), max(years)


def _library_version() -> str:
    try:
        return metadata.version("chinese-calendar")
    except metadata.PackageNotFoundError:  # pragma: no cover - vendored copies
        return "unknown"


@dataclass
class _YearTable:
    workday_ordinals: list[int]  # sorted
    workday_set: frozenset[int]


class WorkingCalendar:
    """Working days and office hours. Immutable once built; safe to share between threads
    (the per-year caches are filled idempotently)."""

    def __init__(
        self,
        overrides: Mapping[int, YearOverride] | Iterable[YearOverride] = (),
        office_hours: OfficeHours = DEFAULT_OFFICE_HOURS,
    ) -> None:
        items = overrides.values() if isinstance(overrides, Mapping) else overrides
        self._library_first, self._library_last = _library_year_range()
        self._overrides: dict[int, YearOverride] = {}
        ignored: list[int] = []
        for override in items:
            if override.year in self._overrides:
                raise CalendarOverrideError(f"{override.year}年的工作日历覆盖重复")
            if self._library_first <= override.year <= self._library_last:
                ignored.append(override.year)
                continue
            self._overrides[override.year] = override
        self.ignored_override_years: tuple[int, ...] = tuple(sorted(ignored))
        self.office_hours = office_hours
        self._tz = SHANGHAI
        self._tables: dict[int, _YearTable] = {}
        self.fingerprint = self._compute_fingerprint()

    # -- identity ----------------------------------------------------------------------------

    def _compute_fingerprint(self) -> str:
        """A digest of everything that decides a deadline, so stored deadlines computed under
        another calendar can be found and recomputed."""
        body = {
            "library": ["chinese-calendar", _library_version(), self._library_first, self._library_last],
            "office_hours": self.office_hours.to_text(),
            "tz": "Asia/Shanghai",
            "overrides": {
                str(y): {
                    "confirmed": o.confirmed,
                    "holidays": sorted(d.isoformat() for d in o.holidays),
                    "workdays": sorted(d.isoformat() for d in o.workdays),
                }
                for y, o in sorted(self._overrides.items())
            },
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32]

    @property
    def library_years(self) -> range:
        return range(self._library_first, self._library_last + 1)

    # -- year status -------------------------------------------------------------------------

    def year_source(self, year: int) -> YearSource:
        if self._library_first <= year <= self._library_last:
            return YearSource.LIBRARY
        override = self._overrides.get(year)
        if override is None:
            return YearSource.WEEKENDS_ONLY
        return YearSource.OVERRIDE_CONFIRMED if override.confirmed else YearSource.OVERRIDE_DRAFT

    def is_confirmed(self, year: int) -> bool:
        return self.year_source(year).confirmed

    def unconfirmed_years(self, from_day: dt.date, to_day: dt.date) -> tuple[int, ...]:
        """Years in [from_day, to_day] (either order) whose calendar is not confirmed."""
        first, last = sorted((from_day.year, to_day.year))
        return tuple(y for y in range(first, last + 1) if not self.is_confirmed(y))

    def warning_zh(self, from_day: dt.date, to_day: dt.date) -> str | None:
        return calendar_warning_zh(self, from_day, to_day)

    # -- working days ------------------------------------------------------------------------

    def _table(self, year: int) -> _YearTable:
        table = self._tables.get(year)
        if table is not None:
            return table
        if not _MIN_YEAR <= year <= _MAX_YEAR:
            raise CalendarError(f"日期超出工作日历支持的范围（{year}年）")
        first = dt.date(year, 1, 1)
        days = [first + dt.timedelta(days=i) for i in range((dt.date(year + 1, 1, 1) - first).days)]
        source = self.year_source(year)
        if source is YearSource.LIBRARY:
            working = [d for d in days if chinese_calendar.is_workday(d)]
        elif source is YearSource.WEEKENDS_ONLY:
            working = [d for d in days if d.weekday() < 5]
        else:
            o = self._overrides[year]
            working = [d for d in days if d in o.workdays or (d.weekday() < 5 and d not in o.holidays)]
        ordinals = [d.toordinal() for d in working]
        table = _YearTable(ordinals, frozenset(ordinals))
        self._tables[year] = table
        return table

    def is_working_day(self, day: dt.date) -> bool:
        if isinstance(day, dt.datetime):
            raise CalendarError("is_working_day 需要日期，不是时刻；时刻请先用 local_date 换算")
        return day.toordinal() in self._table(day.year).workday_set

    def add_working_days(self, day: dt.date, n: int) -> dt.date:
        """The n-th working day after `day` (n > 0), before it (n < 0), or `day` itself (n == 0).

        `day` itself never counts, whether or not it is a working day."""
        if n == 0:
            return day
        ordinal, year = day.toordinal(), day.year
        if n > 0:
            while True:
                ords = self._table(year).workday_ordinals
                i = bisect.bisect_right(ords, ordinal)
                if i + n - 1 < len(ords):
                    return dt.date.fromordinal(ords[i + n - 1])
                n -= len(ords) - i
                year += 1
                ordinal = dt.date(year, 1, 1).toordinal() - 1
        k = -n
        while True:
            ords = self._table(year).workday_ordinals
            i = bisect.bisect_left(ords, ordinal)  # ords[:i] are strictly before `ordinal`
            if i - k >= 0:
                return dt.date.fromordinal(ords[i - k])
            k -= i
            year -= 1
            ordinal = dt.date(year, 12, 31).toordinal() + 1

    def next_working_day(self, day: dt.date) -> dt.date:
        return self.add_working_days(day, 1)

    def previous_working_day(self, day: dt.date) -> dt.date:
        return self.add_working_days(day, -1)

    def working_days_between(self, from_day: dt.date, to_day: dt.date) -> int:
        """Working days d with from_day < d <= to_day; negative when to_day < from_day."""
        if to_day < from_day:
            return -self.working_days_between(to_day, from_day)
        a, b = from_day.toordinal(), to_day.toordinal()
        if from_day.year == to_day.year:
            ords = self._table(from_day.year).workday_ordinals
            return bisect.bisect_right(ords, b) - bisect.bisect_right(ords, a)
        first = self._table(from_day.year).workday_ordinals
        total = len(first) - bisect.bisect_right(first, a)
        for year in range(from_day.year + 1, to_day.year):
            total += len(self._table(year).workday_ordinals)
        return total + bisect.bisect_right(self._table(to_day.year).workday_ordinals, b)

    # -- instants and office hours -----------------------------------------------------------

    def _local(self, at: dt.datetime) -> dt.datetime:
        if not isinstance(at, dt.datetime) or at.tzinfo is None or at.utcoffset() is None:
            raise CalendarError("时刻必须带时区（timezone-aware datetime）")
        return at.astimezone(self._tz)

    def local_date(self, at: dt.datetime) -> dt.date:
        return self._local(at).date()

    def at_local(self, day: dt.date, time: dt.time) -> dt.datetime:
        """The UTC instant of a Shanghai wall-clock time on a date."""
        return dt.datetime.combine(day, time, self._tz).astimezone(UTC)

    def open_at(self, day: dt.date) -> dt.datetime:
        return self.at_local(day, self.office_hours.open_time)

    def close_at(self, day: dt.date) -> dt.datetime:
        """Close of office on `day` (the nominal close time also on days off)."""
        return self.at_local(day, self.office_hours.close_time)

    def sessions_on(self, day: dt.date) -> list[tuple[dt.datetime, dt.datetime]]:
        if not self.is_working_day(day):
            return []
        return [(self.at_local(day, s), self.at_local(day, e)) for s, e in self.office_hours.sessions]

    def is_office_time(self, at: dt.datetime) -> bool:
        local = self._local(at)
        if not self.is_working_day(local.date()):
            return False
        t = local.time()
        return any(s <= t < e for s, e in self.office_hours.sessions)

    def receipt_day(self, at: dt.datetime) -> dt.date:
        """The working day a matter received at `at` counts as received on.

        Received on a working day before its close of office (before opening, in a session, or
        over lunch) → that day. After close, or on a day off → the next working day. Day-based
        limits then start counting on the working/natural day after it (民法典 第二百零一条)."""
        local = self._local(at)
        day = local.date()
        if self.is_working_day(day) and local.time() < self.office_hours.close_time:
            return day
        return self.next_working_day(day)

    def iter_office_sessions(self, from_at: dt.datetime) -> Iterator[tuple[dt.datetime, dt.datetime]]:
        """Office sessions (start, end) in time order that end after `from_at`, the first clipped to
        start no earlier than `from_at`. Infinite: callers stop when they have what they need."""
        day = self.local_date(from_at)
        first = True
        while True:
            for start, end in self.sessions_on(day):
                if end <= from_at:
                    continue
                yield (max(start, from_at) if first else start), end
            first = False
            day = self.next_working_day(day)

    def iter_office_sessions_backward(
        self, before_at: dt.datetime
    ) -> Iterator[tuple[dt.datetime, dt.datetime]]:
        """Office sessions in reverse time order that start before `before_at`, the first clipped to
        end no later than it."""
        day = self.local_date(before_at)
        while True:
            for start, end in reversed(self.sessions_on(day)):
                if start >= before_at:
                    continue
                yield start, min(end, before_at)
            day = self.previous_working_day(day)

    def add_office_time(self, at: dt.datetime, after: dt.timedelta) -> dt.datetime:
        """The instant when `after` of office time has passed since `at` (即办 minutes)."""
        if after < dt.timedelta(0):
            return self.subtract_office_time(at, -after)
        remaining = after
        for start, end in self.iter_office_sessions(at):
            if end - start >= remaining:
                return start + remaining
            remaining -= end - start
        raise AssertionError("unreachable")  # pragma: no cover - the iterator is infinite

    def subtract_office_time(self, at: dt.datetime, before: dt.timedelta) -> dt.datetime:
        remaining = before
        if remaining <= dt.timedelta(0):
            return at
        for start, end in self.iter_office_sessions_backward(at):
            if end - start >= remaining:
                return end - remaining
            remaining -= end - start
        raise AssertionError("unreachable")  # pragma: no cover

    def office_time_between(self, from_at: dt.datetime, to_at: dt.datetime) -> dt.timedelta:
        """Office time in [from_at, to_at); negative when to_at < from_at."""
        if to_at < from_at:
            return -self.office_time_between(to_at, from_at)
        total = dt.timedelta(0)
        for start, end in self.iter_office_sessions(from_at):
            if start >= to_at:
                break
            total += min(end, to_at) - start
        return total

    def shift_working_days(self, at: dt.datetime, n: int) -> dt.datetime:
        """The same Shanghai wall-clock time, n working days later (or earlier). Meant for office
        instants such as a due time; a day off is first replaced by its receipt day."""
        local = self._local(at)
        day = local.date()
        if not self.is_working_day(day):
            day = self.next_working_day(day)
            local = dt.datetime.combine(day, self.office_hours.open_time, self._tz)
        target = self.add_working_days(day, n)
        return dt.datetime.combine(target, local.time().replace(tzinfo=None), self._tz).astimezone(UTC)

    def closes_between(self, from_at: dt.datetime, to_at: dt.datetime) -> int:
        """Working-day closes of office in (from_at, to_at]: how many whole working days end in
        that span. Negative when to_at < from_at."""
        if to_at < from_at:
            return -self.closes_between(to_at, from_at)
        first = self.local_date(from_at)
        if self.close_at(first) <= from_at:
            first += _ONE_DAY
        last = self.local_date(to_at)
        if self.close_at(last) > to_at:
            last -= _ONE_DAY
        if last < first:
            return 0
        return self.working_days_between(first - _ONE_DAY, last)


# --------------------------------------------------------------------------------------------
# The console warning
# --------------------------------------------------------------------------------------------


def calendar_warning_zh(calendar: WorkingCalendar, from_day: dt.date, to_day: dt.date) -> str | None:
    """The warning every console shows while a year in [from_day, to_day] is unconfirmed, or None.

    Consoles pass today and the latest due date they display."""
    years = calendar.unconfirmed_years(from_day, to_day)
    if not years:
        return None
    parts = []
    for year in years:
        if calendar.year_source(year) is YearSource.OVERRIDE_DRAFT:
            parts.append(f"{year}年按县级发布的节假日安排草案推算，尚未确认")
        else:
            parts.append(f"{year}年的法定节假日和调休安排尚未公布或尚未录入，暂按周末双休推算")
    return (
        "【工作日历未确认】"
        + "；".join(parts)
        + "。涉及该年份的办理期限可能调整，请以国务院办公厅通知和县政务服务中心发布的工作日历为准。"
    )

