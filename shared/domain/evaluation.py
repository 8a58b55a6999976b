"""好差评 as the rules mean them: the five levels, the 差评 reason categories, the evaluation token
printed on the 交付签收单, the SMS reply, the 差评 loop (整改 → 回访 → 办结, or 复核 invalidation),
the 回访's five findings and the 百分制 assessment score. Pure: no database, network or clock — every
instant and every random byte is handed in.

Sources: 003 服务评价制度 (five levels, the last two 差评; 一次一评; real-name but confidential; 复核 of a
malicious 差评), 003 服务回访制度 (态度、效率、按章办事、廉洁、建议), 004 评比办法 (百分制, monthly), and
the national 好差评 plans summarised in `docs/evaluation.md`.
"""
from __future__ import annotations

import datetime as dt
import enum
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from shared.domain.lookup_code import ALPHABET
from shared.domain.personal_data import contains_personal_data, personal_data_problem
from shared.errors import SharedError

__all__ = [
    "EvaluationError", "Level", "BadReason", "Channel", "RectificationState", "Rating", "Rectification",
    "FollowUpFindings", "ScoreWeights", "ScoreInputs", "SmsReply", "TOKEN_RANDOM_BYTES", "DEFAULT_RECTIFY_WORKING_DAYS",
    "DEFAULT_FOLLOW_UP_PERCENT", "check_county_values", "parse_weights", "new_token", "normalise_token", "token_digest",
    "parse_sms_reply", "rating_from_form", "assessment_score",
    "mask_phone", "may_record_follow_up", "SMS_HELP", "Period", "PeriodError", "parse_period",
]


class EvaluationError(SharedError, ValueError):
    """Raised when a rating, a token, an SMS reply, a setting or a step of the 差评 loop breaks the
    rules; the message is the Chinese sentence shown to the villager or the staff member (the CLI
    prints it as a `SharedError`)."""


class Level(enum.IntEnum):
    """The five levels, numbered as `records.proto` Rating (1 best … 5 worst)."""

    VERY_SATISFIED = 1
    SATISFIED = 2
    BASICALLY_SATISFIED = 3
    DISSATISFIED = 4
    VERY_DISSATISFIED = 5

    @property
    def label_zh(self) -> str:
        return ("非常满意", "满意", "基本满意", "不满意", "非常不满意")[self.value - 1]

    @property
    def is_bad(self) -> bool:
        """不满意 and 非常不满意 are 差评 (003 服务评价制度 第四条)."""
        return self.value >= 4

    @property
    def score(self) -> int:
        """The level on a 0–100 scale for the average satisfaction figure."""
        return {1: 100, 2: 80, 3: 60, 4: 30, 5: 0}[self.value]


class BadReason(str, enum.Enum):
    """Why a villager gives a 差评 (003 第三条: 服务态度、办事效率、办事质量; 廉洁 from the 回访 rules)."""

    ATTITUDE = "attitude"
    EFFICIENCY = "efficiency"
    QUALITY = "quality"
    INTEGRITY = "integrity"
    OTHER = "other"

    @property
    def label_zh(self) -> str:
        return {"attitude": "服务态度不好", "efficiency": "办事慢、超时或推诿",
                "quality": "没有一次讲清、材料反复要或办错", "integrity": "吃拿卡要、不廉洁",
                "other": "其他问题"}[self.value]

    @property
    def short_zh(self) -> str:
        return {"attitude": "态度", "efficiency": "效率", "quality": "质量", "integrity": "廉洁", "other": "其他"}[self.value]


class Channel(str, enum.Enum):
    """How a rating arrived. The villager's own channels count as the villager's one rating (一次一评);
    a rating the agent typed on the laptop at sign-off is 代为录入 and counted apart."""

    QR = "qr"
    SMS = "sms"
    AGENT_ENTERED = "agent_entered"

    @property
    def label_zh(self) -> str:
        return {"qr": "扫码评价", "sms": "短信评价", "agent_entered": "代为录入"}[self.value]

    @property
    def by_villager(self) -> bool:
        return self is not Channel.AGENT_ENTERED


# ---------------------------------------------------------------- the rating itself


@dataclass(frozen=True)
class Rating:
    level: Level
    reason: BadReason | None = None
    comment: str = ""

    def __post_init__(self) -> None:
        if self.level.is_bad and self.reason is None:
            raise EvaluationError("选择“不满意”或“非常不满意”时，请选择一个原因，方便我们整改")
        if not self.level.is_bad and self.reason is not None:
            object.__setattr__(self, "reason", None)   # a reason only belongs to a 差评
        if len(self.comment) > 300:
            raise EvaluationError("意见最多 300 字，请删减后再提交")
        if contains_personal_data(self.comment):
            # The comment is read by staff and kept in the record: the villager's numbers stay sealed.
            raise EvaluationError("意见里请不要写身份证号或手机号，我们已有您的联系方式，请删去后再提交")


def rating_from_form(level: str, reason: str = "", comment: str = "") -> Rating:
    """A rating from what a form (or the SMS parser) sent, refused in Chinese when it does not fit."""
    try:
        lv = Level(int(str(level).strip()))
    except ValueError:
        raise EvaluationError("请选择一个评价：非常满意、满意、基本满意、不满意或非常不满意") from None
    why: BadReason | None = None
    if reason.strip():
        try:
            why = BadReason(reason.strip())
        except ValueError:
            raise EvaluationError("请从列出的原因中选择一个") from None
    return Rating(lv, why, (comment or "").strip())


# ---------------------------------------------------------------- the evaluation token

# 10 symbols of a 32-letter alphabet: 50 bits, written like the 查询码 (ABCDE-FGHJK) so an elderly
# villager can also type it into an SMS; stored only as a keyed digest.
TOKEN_RANDOM_BYTES = 10
_TOKEN = re.compile(r"^[2-9A-HJ-NP-Z]{5}-?[2-9A-HJ-NP-Z]{5}$")
DEFAULT_RECTIFY_WORKING_DAYS = 5   # local plans set 5 to 15 working days; the county may change it
DEFAULT_FOLLOW_UP_PERCENT = 10     # 003 服务回访制度 asks for a regular sample; the county may change it


def check_county_values(rectify_working_days: int, follow_up_percent: int) -> None:
    """Raises `EvaluationError` when a 整改 deadline or a 回访 sample rate is out of range."""
    if not 1 <= rectify_working_days <= 30:
        raise EvaluationError("整改期限应为 1 到 30 个工作日")
    if not 1 <= follow_up_percent <= 100:
        raise EvaluationError("回访抽样比例应为 1% 到 100%")


def new_token(random_bytes: bytes) -> str:
    """The printed token from `TOKEN_RANDOM_BYTES` random bytes (the caller draws them: `secrets`)."""
    if len(random_bytes) < TOKEN_RANDOM_BYTES:
        raise EvaluationError("评价码随机数不足")
    symbols = "".join(ALPHABET[b % len(ALPHABET)] for b in random_bytes[:TOKEN_RANDOM_BYTES])
    return f"{symbols[:5]}-{symbols[5:]}"


def normalise_token(raw: str) -> str | None:
    """The token as printed from what a person typed or a QR code carried, or None."""
    text = re.sub(r"\s+", "", raw or "").upper()
    if not _TOKEN.match(text):
        return None
    return text if "-" in text else f"{text[:5]}-{text[5:]}"


def token_digest(secret: bytes, token: str) -> bytes:
    """What the store keeps: an HMAC under the township's secret, so a copy of the database does not
    let anyone rate in a villager's name by trying all tokens offline."""
    return hmac.new(secret, token.encode("ascii"), hashlib.sha256).digest()


# ---------------------------------------------------------------- SMS reply

_LEVEL_WORDS = (("非常不满意", Level.VERY_DISSATISFIED), ("非常满意", Level.VERY_SATISFIED),
                ("基本满意", Level.BASICALLY_SATISFIED), ("不满意", Level.DISSATISFIED), ("满意", Level.SATISFIED))
_REASON_WORDS = (("态度", BadReason.ATTITUDE), ("效率", BadReason.EFFICIENCY), ("慢", BadReason.EFFICIENCY),
                 ("超时", BadReason.EFFICIENCY), ("推诿", BadReason.EFFICIENCY), ("质量", BadReason.QUALITY),
                 ("办错", BadReason.QUALITY), ("材料", BadReason.QUALITY), ("廉洁", BadReason.INTEGRITY),
                 ("吃拿卡要", BadReason.INTEGRITY), ("其他", BadReason.OTHER))
SMS_HELP = ("评价格式：评价码（或查询码）加一个数字，如“ABCDE-FGHJK 1”。1 非常满意，2 满意，3 基本满意，"
            "4 不满意，5 非常不满意；选 4 或 5 请再写原因：态度、效率、质量、廉洁或其他。")


@dataclass(frozen=True)
class SmsReply:
    code: str            # the token or the lookup code, as printed (both look alike: ABCDE-FGHJK)
    rating: Rating


def parse_sms_reply(text: str) -> SmsReply:
    """A villager's SMS: a code, a level (digit 1–5 or its words) and, for a 差评, a reason word.
    Anything else after them is kept as the comment."""
    body = (text or "").strip().upper()
    if not body:
        raise EvaluationError("短信内容为空。" + SMS_HELP)
    code_match = re.search(r"(?<![0-9A-Z])([2-9A-HJ-NP-Z]{5}-?[2-9A-HJ-NP-Z]{5})(?![0-9A-Z])", body)
    if code_match is None:
        raise EvaluationError("短信里没有找到评价码或查询码。" + SMS_HELP)
    code = normalise_token(code_match.group(1))
    assert code is not None
    rest = body[:code_match.start()] + " " + body[code_match.end():]
    level: Level | None = None
    digit = re.search(r"(?<![0-9A-Z])([1-5])(?![0-9A-Z])", rest)
    if digit is not None:
        level = Level(int(digit.group(1)))
        rest = rest[:digit.start()] + " " + rest[digit.end():]
    else:
        for word, lv in _LEVEL_WORDS:
            if word in rest:
                level = lv
                rest = rest.replace(word, " ", 1)
                break
    if level is None:
        raise EvaluationError("短信里没有找到评价等级。" + SMS_HELP)
    reason = next((r for word, r in _REASON_WORDS if word in rest), None)
    comment = re.sub(r"\s+", " ", rest.replace("评价", " ")).strip()[:300]
    if level.is_bad and reason is None:
        raise EvaluationError("选“不满意”或“非常不满意”时请写明原因：态度、效率、质量、廉洁或其他。")
    return SmsReply(code, Rating(level, reason, comment))


def mask_phone(phone: str) -> str:
    digits = re.sub(r"\D", "", phone or "")
    if len(digits) >= 11:
        digits = digits[-11:]
        return f"{digits[:3]}****{digits[-4:]}"
    return "****" if digits else ""


# ---------------------------------------------------------------- the 差评 loop


class RectificationState(str, enum.Enum):
    OPEN = "open"                # 待整改: an owner and a deadline, no fix yet
    FIXED = "fixed"              # 已整改: the fix is recorded, the villager not yet called back
    FOLLOWED_UP = "followed_up"  # 已回访: the villager was called back about the fix
    CLOSED = "closed"            # 已办结
    INVALIDATED = "invalidated"  # 复核为无效评价 (malicious), by the director's decision

    @property
    def label_zh(self) -> str:
        return {"open": "待整改", "fixed": "已整改待回访", "followed_up": "已回访待办结", "closed": "已办结",
                "invalidated": "复核无效"}[self.value]


@dataclass(frozen=True)
class Rectification:
    """One 差评's 整改 record. Transitions return a new value or raise `EvaluationError`."""

    owner_id: str
    due_at: dt.datetime
    assigned_by: str
    assigned_at: dt.datetime
    state: RectificationState = RectificationState.OPEN
    fix_text: str = ""
    fixed_by: str = ""
    fixed_at: dt.datetime | None = None
    follow_up_by: str = ""
    follow_up_at: dt.datetime | None = None
    closed_by: str = ""
    closed_at: dt.datetime | None = None
    review_reason: str = ""
    reviewed_by: str = ""
    reviewed_at: dt.datetime | None = None

    @classmethod
    def assign(cls, *, owner_id: str, due_at: dt.datetime, by: str, at: dt.datetime) -> Rectification:
        if not owner_id:
            raise EvaluationError("请选择整改责任人")
        if due_at <= at:
            raise EvaluationError("整改期限应晚于现在")
        return cls(owner_id=owner_id, due_at=due_at, assigned_by=by, assigned_at=at)

    def overdue_at(self, now: dt.datetime) -> bool:
        return self.state is RectificationState.OPEN and now > self.due_at

    def record_fix(self, text: str, *, by: str, at: dt.datetime) -> Rectification:
        if self.state is not RectificationState.OPEN:
            raise EvaluationError(f"该差评当前为“{self.state.label_zh}”，不能再登记整改")
        if by != self.owner_id:
            raise EvaluationError("整改情况只能由整改责任人登记")
        if len(text.strip()) < 4:
            raise EvaluationError("请写明整改了什么（至少 4 个字）")
        _refuse_numbers(text, "整改情况")
        return replace(self, state=RectificationState.FIXED, fix_text=text.strip()[:1000], fixed_by=by, fixed_at=at)

    def followed_up(self, *, by: str, at: dt.datetime) -> Rectification:
        if self.state is not RectificationState.FIXED:
            raise EvaluationError("整改登记后才能回访评价人")
        return replace(self, state=RectificationState.FOLLOWED_UP, follow_up_by=by, follow_up_at=at)

    def close(self, *, by: str, at: dt.datetime) -> Rectification:
        if self.state is not RectificationState.FOLLOWED_UP:
            raise EvaluationError("回访评价人之后才能办结该差评")
        return replace(self, state=RectificationState.CLOSED, closed_by=by, closed_at=at)

    def invalidate(self, reason: str, *, by: str, by_director: bool, at: dt.datetime) -> Rectification:
        """复核: a 差评 found malicious is invalid, by the director's decision only, with the reason kept."""
        if not by_director:
            raise EvaluationError("复核认定无效评价须由中心主任决定")
        if self.state in (RectificationState.CLOSED, RectificationState.INVALIDATED):
            raise EvaluationError(f"该差评已{self.state.label_zh}，不能再复核")
        if len(reason.strip()) < 6:
            raise EvaluationError("请写明复核认定为恶意差评的事实和理由（至少 6 个字）")
        _refuse_numbers(reason, "复核理由")
        return replace(self, state=RectificationState.INVALIDATED, review_reason=reason.strip()[:1000],
                       reviewed_by=by, reviewed_at=at)


# ---------------------------------------------------------------- 回访 findings


@dataclass(frozen=True)
class FollowUpFindings:
    """What a 回访 asks (003 服务回访制度 第三条): four yes/no findings, the villager's satisfaction and suggestions."""

    reached: bool
    attitude_ok: bool = True        # 服务态度: no harsh or rude manner
    efficiency_ok: bool = True      # 办事效率: done within the promise, no passing the buck
    by_the_rules_ok: bool = True    # 按章办事: 一次性告知、首问首办 kept, the procedure followed
    integrity_ok: bool = True       # 廉洁自律: no 吃拿卡要
    satisfaction: Level | None = None
    suggestion: str = ""

    def __post_init__(self) -> None:
        if self.reached and self.satisfaction is None:
            raise EvaluationError("回访接通后请记录服务对象的满意程度")
        if len(self.suggestion) > 1000:
            raise EvaluationError("意见建议最多 1000 字")
        _refuse_numbers(self.suggestion, "意见建议")

    @property
    def problems_zh(self) -> list[str]:
        if not self.reached:
            return []
        found = [("服务态度", self.attitude_ok), ("办事效率", self.efficiency_ok), ("按章办事", self.by_the_rules_ok),
                 ("廉洁自律", self.integrity_ok)]
        return [name for name, ok in found if not ok]

    @property
    def good(self) -> bool:
        return self.reached and not self.problems_zh and self.satisfaction is not None and not self.satisfaction.is_bad


def may_record_follow_up(caller_id: str, handled_by: set[str]) -> None:
    """Nobody calls back the villager about his own case: the 回访 checks on him."""
    if caller_id in handled_by:
        raise EvaluationError("不能回访自己经办的办件，请由其他同事或督查人员回访")


# ---------------------------------------------------------------- report periods (月报, 季度, 年度)

BEIJING = dt.timezone(dt.timedelta(hours=8))


class PeriodError(EvaluationError):
    """Raised when a report period is not a month, quarter, year or day range the page understands."""


@dataclass(frozen=True)
class Period:
    start: dt.date          # first day, Beijing
    end: dt.date            # the day after the last
    label: str              # 2026年第4季度
    label_key: str = ""     # 2026-Q4: what a link or a command line gives back

    @property
    def start_at(self) -> dt.datetime:
        return dt.datetime.combine(self.start, dt.time(), BEIJING)

    @property
    def end_at(self) -> dt.datetime:
        return dt.datetime.combine(self.end, dt.time(), BEIJING)


def _month_start(year: int, month: int) -> dt.date:
    return dt.date(year + (month - 1) // 12, (month - 1) % 12 + 1, 1)


def parse_period(text: str, today: dt.date) -> Period:
    """"2026-11" (a month), "2026-Q4" (a quarter), "2026" (a year), "2026-11-02~2026-11-20" (days,
    both included); empty: this month."""
    t = (text or "").strip().upper().replace("至", "~").replace("..", "~")
    if not t:
        t = today.strftime("%Y-%m")
    try:
        if m := re.fullmatch(r"(\d{4})-(\d{1,2})", t):
            y, mo = int(m.group(1)), int(m.group(2))
            if not 1 <= mo <= 12:
                raise PeriodError("月份应为 1 到 12")
            return Period(_month_start(y, mo), _month_start(y, mo + 1), f"{y}年{mo}月", f"{y}-{mo:02d}")
        if m := re.fullmatch(r"(\d{4})-?Q([1-4])", t):
            y, q = int(m.group(1)), int(m.group(2))
            return Period(_month_start(y, 3 * q - 2), _month_start(y, 3 * q + 1), f"{y}年第{q}季度", f"{y}-Q{q}")
        if m := re.fullmatch(r"(\d{4})", t):
            y = int(m.group(1))
            return Period(dt.date(y, 1, 1), dt.date(y + 1, 1, 1), f"{y}年", f"{y}")
        if m := re.fullmatch(r"(\d{4}-\d{2}-\d{2})\s*~\s*(\d{4}-\d{2}-\d{2})", t):
            a, b = dt.date.fromisoformat(m.group(1)), dt.date.fromisoformat(m.group(2))
            if b < a:
                raise PeriodError("统计期间的结束日期早于开始日期")
            return Period(a, b + dt.timedelta(days=1), f"{a:%Y年%m月%d日}至{b:%Y年%m月%d日}", f"{a}~{b}")
    except ValueError as exc:
        if isinstance(exc, PeriodError):
            raise
        raise PeriodError("统计期间有误：请写成 2026-11（月）、2026-Q4（季度）、2026（年）或 2026-11-02~2026-11-20") from None
    raise PeriodError("统计期间有误：请写成 2026-11（月）、2026-Q4（季度）、2026（年）或 2026-11-02~2026-11-20")


# ---------------------------------------------------------------- the 百分制 score (004 评比办法)


@dataclass(frozen=True)
class ScoreWeights:
    """Points out of 100 per part; the county configures them (004: 考核打分细则由各乡镇另行制定).
    `complaint_deduction` is outside the 100: 004 scores from a 基本分 of 100 with 扣分, and a matter
    with a 群众投诉 fails its 工作实绩 condition, so each 投诉 takes that many points off the total."""

    on_time: int = 40
    satisfaction: int = 30
    no_bad_reviews: int = 10
    bad_reviews_closed: int = 10
    follow_up_good: int = 10
    complaint_deduction: int = 5

    PARTS = ("on_time", "satisfaction", "no_bad_reviews", "bad_reviews_closed", "follow_up_good")

    def __post_init__(self) -> None:
        parts = [getattr(self, k) for k in self.PARTS]
        if any(p < 0 for p in parts) or sum(parts) != 100:
            raise EvaluationError(f"考核权重须为非负整数且合计 100 分（现为 {sum(parts)} 分）")
        if not 0 <= self.complaint_deduction <= 20:
            raise EvaluationError("每件投诉扣分应为 0 到 20 分")

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> ScoreWeights:
        try:
            values = {k: _whole(v) for k, v in data.items() if k in cls.__dataclass_fields__}
        except (TypeError, ValueError):
            raise EvaluationError("考核权重应为整数") from None
        return cls(**values)

    def as_dict(self) -> dict[str, int]:
        return {k: int(getattr(self, k)) for k in self.__dataclass_fields__}


def _whole(value: object) -> int:
    """A weight as read from a TOML or JSON document: TypeError or ValueError when it is not a number."""
    if isinstance(value, int | float | str):
        return int(value)
    raise TypeError(f"not a number: {type(value).__name__}")


def parse_weights(text: str) -> ScoreWeights:
    """`on_time=40,satisfaction=30,...` as typed on a command line; raises `EvaluationError`."""
    try:
        pairs = {k.strip(): v.strip() for k, v in (part.split("=", 1) for part in text.split(",") if part.strip())}
    except ValueError:
        raise EvaluationError("权重格式应为 名称=分值，用逗号分隔") from None
    unknown = set(pairs) - set(ScoreWeights.__dataclass_fields__)
    if unknown:
        raise EvaluationError("不认识的权重名称：" + "、".join(sorted(unknown)))
    return ScoreWeights.from_dict(dict(pairs))


@dataclass(frozen=True)
class ScoreInputs:
    on_time_rate: float | None       # 0..1, None when nothing was completed
    satisfaction: float | None       # 0..100, None when nothing was rated by a villager
    bad_review_rate: float | None    # 0..1 of villager ratings
    bad_review_closure: float | None # 0..1 of 差评 closed or invalidated
    follow_up_good_rate: float | None
    complaints: int = 0               # 投诉 registered about the group in the period


def assessment_score(inputs: ScoreInputs, weights: ScoreWeights) -> float:
    """The 百分制 score. A part with nothing to measure (no 差评 to close, nobody called back) gets its
    full points: nobody loses marks for work that did not arise. Each 投诉 then takes
    `complaint_deduction` points off (004 评比办法: 基本分 100, 扣分; never below 0)."""
    def part(value: float | None, points: int) -> float:
        return points * (1.0 if value is None else max(0.0, min(1.0, value)))

    total = (part(inputs.on_time_rate, weights.on_time)
             + part(None if inputs.satisfaction is None else inputs.satisfaction / 100, weights.satisfaction)
             + part(None if inputs.bad_review_rate is None else 1 - inputs.bad_review_rate, weights.no_bad_reviews)
             + part(inputs.bad_review_closure, weights.bad_reviews_closed)
             + part(inputs.follow_up_good_rate, weights.follow_up_good))
    return round(max(0.0, total - weights.complaint_deduction * max(0, inputs.complaints)), 1)


def _refuse_numbers(text: str, field_zh: str) -> None:
    problem = personal_data_problem(text, field_zh)
    if problem:
        raise EvaluationError(problem)
