"""The township's 好差评: the evaluation token printed on the 交付签收单, the villager's own rating
through the public page or an SMS reply (一次一评), the agent's laptop rating kept apart as 代为录入,
who may see the evaluator, the 差评 loop (整改 → 回访 → 办结, or 复核 by the director), the 回访's
five findings and the provincial feed. The rules are `shared.domain.evaluation`; this module loads,
checks roles, saves. See `docs/evaluation.md`.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import secrets
import urllib.parse
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy import text as sql_text
from sqlalchemy.exc import IntegrityError

from shared.clock import from_unix_ms, to_unix_ms
from shared.domain import lookup_code
from shared.domain.evaluation import (
    DEFAULT_FOLLOW_UP_PERCENT,
    DEFAULT_RECTIFY_WORKING_DAYS,
    TOKEN_RANDOM_BYTES,
    BadReason,
    Channel,
    EvaluationError,
    FollowUpFindings,
    Level,
    Rating,
    Rectification,
    RectificationState,
    ScoreWeights,
    check_county_values,
    mask_phone,
    may_record_follow_up,
    new_token,
    normalise_token,
    parse_sms_reply,
    token_digest,
)
from shared.domain.figures import draw_follow_up_sample
from shared.domain.handling import Actor, Role, Stage
from shared.domain.personal_data import contains_personal_data
from shared.wire.v1 import records_pb2
from town_center.errors import UnknownMatter
from town_center.handling import HandlingService
from town_center.store.evaluation_tables import evaluation, evaluation_token, follow_up_finding
from town_center.store.matter_tables import follow_up_call, matter_event, town_matter

__all__ = ["Evaluations", "EvaluationSettings", "check_county_values", "COUNTY_SETTINGS_META",
           "take_county_settings_in", "EvaluationLink", "EvaluationView", "OwnFigures", "RatedMatter",
           "SETTINGS_META", "CONFIDENTIAL_ROLES", "evaluation_qr_svg"]

SETTINGS_META = "evaluation_settings"
# The county's assessment settings as last received (signed `assessment_settings`, folded by the county link).
COUNTY_SETTINGS_META = "county_assessment_settings"
# Who sees the evaluator (003 服务评价制度 第八条: the evaluator is kept confidential).
CONFIDENTIAL_ROLES = frozenset({Role.DIRECTOR, Role.SUPERVISOR})
# A token is printed once the result exists: on the 交付签收单 the agent hands over.
_RATEABLE = frozenset({Stage.RESULT_READY, Stage.HANDED_OVER, Stage.SIGNED_OFF, Stage.RETURNED})
_RETRIES = 5
# PostgreSQL advisory-lock key of the evaluation feed's cursor (a fixed bigint, see `_next_seq`).
_FEED_LOCK_KEY = 0x7165_6576_616C_0001


@dataclass(frozen=True)
class EvaluationSettings:
    """The 整改 deadline, the score weights and the 回访 sample rate are the county's settings: a
    township's own values (`town-center evaluation settings`) count only until the county's first
    signed `assessment_settings` arrives (`county_set_by` then names who set them there). The public
    address is the township's own."""

    rectify_working_days: int = DEFAULT_RECTIFY_WORKING_DAYS
    weights: ScoreWeights = ScoreWeights()
    public_url: str = ""     # where villagers reach this township's /evaluate page (printed as the QR code)
    follow_up_percent: int = DEFAULT_FOLLOW_UP_PERCENT
    county_set_by: str = ""
    county_set_at_ms: int = 0

    def to_json(self) -> str:
        return json.dumps({"rectify_working_days": self.rectify_working_days, "weights": self.weights.as_dict(),
                           "public_url": self.public_url, "follow_up_percent": self.follow_up_percent,
                           "county_set_by": self.county_set_by, "county_set_at_ms": self.county_set_at_ms},
                          ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | None) -> EvaluationSettings:
        if not text:
            return cls()
        data = json.loads(text)
        return cls(int(data.get("rectify_working_days", DEFAULT_RECTIFY_WORKING_DAYS)),
                   ScoreWeights.from_dict(data.get("weights", {})), str(data.get("public_url", "")),
                   int(data.get("follow_up_percent", DEFAULT_FOLLOW_UP_PERCENT)), str(data.get("county_set_by", "")),
                   int(data.get("county_set_at_ms", 0)))

    @property
    def from_county(self) -> bool:
        return bool(self.county_set_at_ms)

    @classmethod
    def from_wire(cls, body: records_pb2.AssessmentSettings) -> EvaluationSettings:
        """The county's signed settings, checked as strictly as a township's own (raises `EvaluationError`)."""
        w = body.weights
        weights = ScoreWeights(on_time=w.on_time, satisfaction=w.satisfaction, no_bad_reviews=w.no_bad_reviews,
                               bad_reviews_closed=w.bad_reviews_closed, follow_up_good=w.follow_up_good,
                               complaint_deduction=body.complaint_deduction)
        check_county_values(int(body.rectify_working_days), int(body.follow_up_sample_percent))
        return cls(int(body.rectify_working_days), weights, "", int(body.follow_up_sample_percent),
                   body.set_by[:64] or "county", int(body.set_at_ms) or 1)

    def to_wire(self, *, set_by: str, set_at_ms: int) -> records_pb2.Record:
        """The county's settings as the signed record it sends down to every township."""
        record = records_pb2.Record()
        body = record.assessment_settings
        body.rectify_working_days, body.follow_up_sample_percent = self.rectify_working_days, self.follow_up_percent
        body.complaint_deduction = self.weights.complaint_deduction
        for k in ScoreWeights.PARTS:
            setattr(body.weights, k, getattr(self.weights, k))
        body.set_by, body.set_at_ms = set_by[:64], set_at_ms
        return record


def take_county_settings_in(store: Any, conn: Connection, body: records_pb2.AssessmentSettings) -> EvaluationSettings:
    """Keep the county's signed settings (folded in `conn` by the county link); raises
    `EvaluationError` when they break the rules, so nothing unusable replaces the settings in force.
    An older record than the one kept (set earlier at the county) changes nothing."""
    settings = EvaluationSettings.from_wire(body)
    kept = store.get_meta_in(conn, COUNTY_SETTINGS_META)
    if kept and EvaluationSettings.from_json(kept).county_set_at_ms > settings.county_set_at_ms:
        return EvaluationSettings.from_json(kept)
    store.set_meta_in(conn, COUNTY_SETTINGS_META, settings.to_json())
    return settings




@dataclass(frozen=True)
class EvaluationLink:
    url: str
    token: str
    qr_svg: str          # inline SVG: prints sharply at any size, no image library needed


@dataclass(frozen=True)
class RatedMatter:
    catalog_name: str
    level: Level


@dataclass(frozen=True)
class EvaluationView:
    """One evaluation as the director or the supervisor sees it (with who rated)."""

    evaluation_id: str
    matter_id: str
    catalog_name: str
    village_code: str
    channel: Channel
    level: Level
    reason: BadReason | None
    comment: str
    rated_at: dt.datetime
    operator_id: str
    valid: bool
    rectification: Rectification | None
    evaluator_name: str = ""
    evaluator_phone: str = ""
    evaluator_id_masked: str = ""
    sms_from_masked: str = ""


@dataclass(frozen=True)
class OwnFigures:
    """What a rated staff member sees about himself: counts only, never who rated or which matter."""

    by_level: dict[Level, int]
    agent_entered: int
    bad_reasons: dict[BadReason, int]
    tasks: list[dict[str, Any]]      # his 整改 tasks: what was criticised and by when, no matter identity


def evaluation_qr_svg(url: str) -> str:
    """The QR code of `url` as an SVG document (qrcode's pure-Python SVG factory)."""
    import qrcode
    import qrcode.image.svg

    image = qrcode.make(url, image_factory=qrcode.image.svg.SvgPathImage, box_size=10, border=2)
    out = io.BytesIO()
    image.save(out)
    return out.getvalue().decode("utf-8")


def _rect_to_json(r: Rectification) -> str:
    def conv(v: Any) -> Any:
        if isinstance(v, dt.datetime):
            return to_unix_ms(v)
        if isinstance(v, RectificationState):
            return v.value
        return v
    return json.dumps({k: conv(v) for k, v in asdict(r).items()}, ensure_ascii=False)


_RECT_TIMES = ("due_at", "assigned_at", "fixed_at", "follow_up_at", "closed_at", "reviewed_at")


def _rect_from_json(text: str | None) -> Rectification | None:
    if not text:
        return None
    data = json.loads(text)
    for k in _RECT_TIMES:
        data[k] = from_unix_ms(int(data[k])) if data.get(k) is not None else None
    data["state"] = RectificationState(data["state"])
    return Rectification(**data)


class Evaluations:
    """好差评 at the township, over the handling service's store, clock and key."""

    def __init__(self, handling: HandlingService, *, random_bytes: Callable[[int], bytes] = secrets.token_bytes) -> None:
        self.handling = handling
        self.store = handling.store
        self.clock = handling.clock
        self._random = random_bytes
        # Keyed by the township key, so tokens cannot be tried offline against a copied database.
        self._secret = hashlib.sha256(b"quancheng-evaluation-token|" + handling.signer.seed()).digest()

    # ------------------------------------------------------------------ settings

    def settings(self) -> EvaluationSettings:
        """The settings in force: the county's once it has sent any, else the township's own."""
        own = EvaluationSettings.from_json(self.store.get_meta(SETTINGS_META))
        county = self.store.get_meta(COUNTY_SETTINGS_META)
        if not county:
            return own
        return replace(EvaluationSettings.from_json(county), public_url=own.public_url)

    def configure(self, *, rectify_working_days: int | None = None, weights: ScoreWeights | None = None,
                  public_url: str | None = None, follow_up_percent: int | None = None) -> EvaluationSettings:
        own = EvaluationSettings.from_json(self.store.get_meta(SETTINGS_META))
        in_force = self.settings()
        if in_force.from_county and (rectify_working_days is not None or weights is not None
                                     or follow_up_percent is not None):
            raise EvaluationError(f"整改期限、考核权重和回访抽样比例已由县级统一设置（{in_force.county_set_by}，"
                                  f"{from_unix_ms(in_force.county_set_at_ms):%Y-%m-%d %H:%M}），乡镇不能修改；"
                                  "如需调整请联系县级")
        days = own.rectify_working_days if rectify_working_days is None else rectify_working_days
        percent = own.follow_up_percent if follow_up_percent is None else follow_up_percent
        check_county_values(days, percent)
        url = own.public_url if public_url is None else public_url.strip().rstrip("/")
        parts = urllib.parse.urlsplit(url)
        if url and (parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment):
            raise EvaluationError("评价网址应为村民手机能打开的乡镇网址，如 https://qingshi.example.cn")
        self.store.set_meta(SETTINGS_META, EvaluationSettings(days, weights or own.weights, url, percent).to_json())
        return self.settings()

    # ------------------------------------------------------------------ tokens

    def issue_token(self, matter_id: str, *, by: str) -> str:
        """A fresh token for the matter's 交付签收单 (a reprint replaces the previous one). Only the
        printed copy holds the token; the store keeps its keyed digest."""
        now_ms = to_unix_ms(self.clock.now())
        for _ in range(_RETRIES):
            token = new_token(self._random(TOKEN_RANDOM_BYTES))
            digest = token_digest(self._secret, token)
            try:
                with self.store.engine.begin() as conn:
                    row = conn.execute(select(town_matter.c.stage).where(town_matter.c.matter_id == matter_id)).first()
                    if row is None:
                        raise UnknownMatter("找不到该办件：可能链接有误，或办件尚未同步到本中心")
                    if Stage(row.stage) not in _RATEABLE:
                        raise EvaluationError("办件尚无办理结果，交付时才能生成评价码")
                    if self._villager_rating(conn, matter_id) is not None:
                        raise EvaluationError("申请人已评价过该办件（一次一评），不再生成评价码")
                    exists = conn.execute(select(evaluation_token.c.matter_id)
                                          .where(evaluation_token.c.matter_id == matter_id)).first()
                    values = {"token_digest": digest, "issued_at_ms": now_ms, "issued_by": by[:64], "used_at_ms": None}
                    if exists:
                        conn.execute(update(evaluation_token).where(evaluation_token.c.matter_id == matter_id).values(**values))
                    else:
                        conn.execute(insert(evaluation_token).values(matter_id=matter_id, **values))
                return token
            except IntegrityError:
                continue   # two tokens collided (2^-50) or two prints raced: draw again
        raise EvaluationError("评价码生成失败，请重试")

    def evaluation_link(self, matter_id: str, base_url: str | None = None, *, by: str,
                        code: str | None = None) -> EvaluationLink:
        """The URL and QR code printed on the 交付签收单: the township's public `/evaluate` page (at
        `base_url`, else the configured public address) with the token, and the 查询码 when the printer
        knows it. Issues a new token."""
        base_url = base_url or self.settings().public_url
        if not base_url:
            raise EvaluationError("尚未设置村民评价网址：请运行 town-center evaluation settings --public-url 乡镇网址")
        token = self.issue_token(matter_id, by=by)
        query = {"t": token}
        written = lookup_code.normalise(code or "")
        if written:
            query["c"] = written
        url = base_url.rstrip("/") + "/evaluate?" + urllib.parse.urlencode(query)
        return EvaluationLink(url, token, evaluation_qr_svg(url))

    # ------------------------------------------------------------------ the villager rates

    def rate_with_token(self, raw_token: str, rating: Rating, *, channel: Channel = Channel.QR,
                        raw_code: str = "", sms_from: str = "") -> RatedMatter:
        """The villager's one rating (一次一评). The token proves the slip; a 查询码, when typed, must be
        the same matter's. Every refusal is one Chinese sentence that tells nothing about other matters."""
        token = normalise_token(raw_token)
        if token is None:
            raise EvaluationError("评价码不正确，请核对交付签收单上的评价码（10 位字母数字，如 ABCDE-FGHJK）")
        digest = token_digest(self._secret, token)
        with self.store.engine.connect() as conn:
            found = conn.execute(select(evaluation_token.c.matter_id)
                                 .where(evaluation_token.c.token_digest == digest)).first()
        if found is None:
            raise EvaluationError("评价码不正确或已被新的签收单取代，请核对后重试")
        matter_id = found.matter_id
        if raw_code.strip():
            code = lookup_code.normalise(raw_code)
            with self.store.engine.connect() as conn:
                stored = conn.execute(select(town_matter.c.lookup_code_hash)
                                      .where(town_matter.c.matter_id == matter_id)).scalar()
            if code is None or stored is None or lookup_code.lookup_code_hash(code) != bytes(stored):
                raise EvaluationError("查询码与评价码不是同一件事，请核对交付签收单")
        return self._rate(matter_id, rating, channel, sms_from=sms_from, token_digest_used=digest)

    def rate_by_sms(self, sender: str, text: str) -> str:
        """An SMS reply from the gateway: rates and returns the reply to send back (Chinese). A 查询码
        instead of the token is taken only from the applicant's own phone number."""
        try:
            reply = parse_sms_reply(text)
            try:
                rated = self.rate_with_token(reply.code, reply.rating, channel=Channel.SMS, sms_from=sender)
            except EvaluationError as by_token:
                matter_id = self._matter_for_code_from_phone(reply.code, sender)
                if matter_id is None:
                    raise by_token from None
                rated = self._rate(matter_id, reply.rating, Channel.SMS, sms_from=sender)
        except EvaluationError as exc:
            return str(exc)
        extra = "我们会尽快核实整改并回访您。" if rated.level.is_bad else ""
        return f"感谢您对“{rated.catalog_name}”的评价：{rated.level.label_zh}。{extra}"

    def _matter_for_code_from_phone(self, code: str, sender: str) -> str | None:
        written = lookup_code.normalise(code)
        if written is None:
            return None
        matter_id = self.handling.matter_id_for_lookup_hash(lookup_code.lookup_code_hash(written))
        if matter_id is None:
            return None
        details = self.handling.applicant(matter_id)
        digits = "".join(ch for ch in sender if ch.isdigit())[-11:]
        on_file = "".join(ch for ch in (details.phone if details is not None else "") if ch.isdigit())[-11:]
        return matter_id if digits and digits == on_file else None

    def _rate(self, matter_id: str, rating: Rating, channel: Channel, *, sms_from: str = "",
              token_digest_used: bytes | None = None) -> RatedMatter:
        now_ms = to_unix_ms(self.clock.now())

        def write(conn: Connection) -> RatedMatter:
            row = conn.execute(select(town_matter).where(town_matter.c.matter_id == matter_id)).first()
            if row is None:
                raise EvaluationError("评价码不正确，请核对后重试")
            if Stage(row.stage) not in _RATEABLE:
                raise EvaluationError("该办件还没有办理结果，办结后再评价")
            if self._villager_rating(conn, matter_id) is not None:
                raise EvaluationError("您已经评价过这件事了（一次一评），谢谢！")
            self._insert(conn, row, channel, rating, now_ms, sms_from=mask_phone(sms_from))
            if token_digest_used is not None:
                conn.execute(update(evaluation_token).where(evaluation_token.c.matter_id == matter_id)
                             .values(used_at_ms=now_ms))
            return RatedMatter(self._catalog_name(row.catalog_code), rating.level)

        return self._write(write)

    def _insert(self, conn: Connection, row: Any, channel: Channel, rating: Rating, at_ms: int, *,
                sms_from: str = "") -> str:
        evaluation_id = secrets.token_hex(12)
        conn.execute(insert(evaluation).values(
            evaluation_id=evaluation_id, matter_id=row.matter_id, channel=channel.value, by_villager=channel.by_villager,
            level=int(rating.level), reason=rating.reason.value if rating.reason else "", comment=rating.comment,
            rated_at_ms=at_ms, village_code=row.village_code, catalog_code=row.catalog_code, kind=row.kind,
            operator_id=row.owner or "", agent_key_id=row.author_key_id, sms_from_masked=sms_from, valid=True,
            feed_seq=self._next_seq(conn)))
        if channel.by_villager and rating.level.is_bad:
            # Every real-name 差评 is called back: it joins this week's 回访 list at once.
            drawn = conn.execute(select(follow_up_call.c.matter_id).where(follow_up_call.c.matter_id == row.matter_id)).first()
            if drawn is None:
                today = self.handling.calendar.local_date(from_unix_ms(at_ms))
                conn.execute(insert(follow_up_call).values(
                    matter_id=row.matter_id, week_start=(today - dt.timedelta(days=today.weekday())).isoformat(),
                    drawn_at_ms=at_ms, caller_id="", rating=0, outcome=""))
        # No line in the matter's history: every operator reads it beside the applicant's details, and
        # a rating must lead nobody to the evaluator (docs/evaluation.md, confidentiality).
        return evaluation_id

    def import_agent_entered(self) -> int:
        """The laptop's sign-off rating (the agent typed it) as a 代为录入 evaluation, once per matter.
        Returns how many were added."""
        with self.store.engine.connect() as conn:
            have = set(conn.execute(select(evaluation.c.matter_id).where(evaluation.c.by_villager.is_(False))).scalars())
            rows = [r for r in conn.execute(select(town_matter).where(town_matter.c.rating > 0)) if r.matter_id not in have]
        added = 0
        for r in rows:
            try:
                level = Level(int(r.rating))
            except ValueError:
                continue
            # The laptop's form asks no reason; a 差评 entered for the villager is marked “其他” and the
            # comment keeps what the agent wrote.
            comment = (r.rating_comment or "")[:300]
            if contains_personal_data(comment):
                # Another laptop client may not refuse numbers as ours does: the rating counts, the text does not.
                comment = "（意见中含证件号码或手机号，未保存）"
            rating = Rating(level, BadReason.OTHER if level.is_bad else None, comment)
            at_ms = int(r.signed_off_at_ms or r.updated_at_ms)

            def write(conn: Connection, r: Any = r, rating: Rating = rating, at_ms: int = at_ms) -> None:
                exists = conn.execute(select(evaluation.c.evaluation_id).where(
                    evaluation.c.matter_id == r.matter_id, evaluation.c.by_villager.is_(False))).first()
                if exists is None:
                    self._insert(conn, r, Channel.AGENT_ENTERED, rating, at_ms)

            self._write(write)
            added += 1
        return added

    # ------------------------------------------------------------------ reads

    def views(self, *, role: Role, since: dt.datetime | None = None, until: dt.datetime | None = None,
              bad_only: bool = False) -> list[EvaluationView]:
        """Evaluations with the evaluator: for the director and the supervisor only."""
        self._require(role, CONFIDENTIAL_ROLES, "评价人信息仅中心主任和督查人员可以查看")
        self.import_agent_entered()
        q = select(evaluation).order_by(evaluation.c.rated_at_ms.desc())
        if since is not None:
            q = q.where(evaluation.c.rated_at_ms >= to_unix_ms(since))
        if until is not None:
            q = q.where(evaluation.c.rated_at_ms < to_unix_ms(until))
        if bad_only:
            q = q.where(evaluation.c.level >= 4)
        with self.store.engine.connect() as conn:
            rows = conn.execute(q).all()
            masked = dict(conn.execute(select(town_matter.c.matter_id, town_matter.c.id_masked).where(
                town_matter.c.matter_id.in_({r.matter_id for r in rows}))).all()) if rows else {}
        out = []
        for r in rows:
            details = self.handling.applicant(r.matter_id) if r.by_villager else None
            out.append(self._view(r, evaluator_name=details.name if details else "",
                                  evaluator_phone=details.phone if details else "",
                                  evaluator_id_masked=masked.get(r.matter_id, "") if r.by_villager else ""))
        return out

    def view(self, evaluation_id: str, *, role: Role) -> EvaluationView:
        self._require(role, CONFIDENTIAL_ROLES, "评价人信息仅中心主任和督查人员可以查看")
        with self.store.engine.connect() as conn:
            r = conn.execute(select(evaluation).where(evaluation.c.evaluation_id == evaluation_id)).first()
            masked = conn.execute(select(town_matter.c.id_masked).where(
                town_matter.c.matter_id == r.matter_id)).scalar() if r is not None else ""
        if r is None:
            raise EvaluationError("找不到该评价")
        details = self.handling.applicant(r.matter_id) if r.by_villager else None
        return self._view(r, evaluator_name=details.name if details else "",
                          evaluator_phone=details.phone if details else "",
                          evaluator_id_masked=(masked or "") if r.by_villager else "")

    def _view(self, r: Any, **who: str) -> EvaluationView:
        return EvaluationView(
            evaluation_id=r.evaluation_id, matter_id=r.matter_id, catalog_name=self._catalog_name(r.catalog_code),
            village_code=r.village_code, channel=Channel(r.channel), level=Level(int(r.level)),
            reason=BadReason(r.reason) if r.reason else None, comment=r.comment, rated_at=from_unix_ms(int(r.rated_at_ms)),
            operator_id=r.operator_id, valid=bool(r.valid), rectification=_rect_from_json(r.rect_json),
            sms_from_masked=r.sms_from_masked, **who)

    def own_figures(self, staff_id: str) -> OwnFigures:
        """A staff member's own figures and 整改 tasks, with nothing that leads to the evaluator."""
        self.import_agent_entered()
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(evaluation.c.level, evaluation.c.reason, evaluation.c.by_villager)
                                .where(evaluation.c.operator_id == staff_id, evaluation.c.valid.is_(True))).all()
            tasks = conn.execute(select(evaluation).where(evaluation.c.rect_owner == staff_id)
                                 .order_by(evaluation.c.rect_due_at_ms)).all()
        by_level = {lv: 0 for lv in Level}
        reasons = {r: 0 for r in BadReason}
        agent_entered = 0
        for level, reason, by_villager in rows:
            if not by_villager:
                agent_entered += 1
                continue
            by_level[Level(int(level))] += 1
            if reason:
                reasons[BadReason(reason)] += 1
        task_rows = []
        for t in tasks:
            rect = _rect_from_json(t.rect_json)
            if rect is None:
                continue
            task_rows.append({"evaluation_id": t.evaluation_id, "catalog_name": self._catalog_name(t.catalog_code),
                              "level": Level(int(t.level)), "reason": BadReason(t.reason) if t.reason else None,
                              "comment": t.comment, "rect": rect, "overdue": rect.overdue_at(self.clock.now())})
        return OwnFigures(by_level, agent_entered, reasons, task_rows)

    # ------------------------------------------------------------------ the 差评 loop

    def assign_rectification(self, evaluation_id: str, owner_id: str, *, actor: Actor,
                             due_at: dt.datetime | None = None) -> Rectification:
        """整改: the director or the supervisor names an owner; the deadline is the county's setting
        (working days) unless one is given."""
        self._require(actor.role, CONFIDENTIAL_ROLES, "指定整改责任人须由中心主任或督查人员进行")
        now = self.clock.now()
        if self.handling.staff is not None and self.handling.staff.active_name(owner_id) is None:
            raise EvaluationError("整改责任人须是本中心在岗的工作人员")
        due = due_at or self.handling.calendar.shift_working_days(now, self.settings().rectify_working_days)

        def change(r: Any, current: Rectification | None) -> Rectification:
            if not Level(int(r.level)).is_bad:
                raise EvaluationError("只有差评需要整改")
            if current is not None:
                raise EvaluationError("该差评已指定整改责任人")
            return Rectification.assign(owner_id=owner_id, due_at=due, by=actor.staff_id, at=now)

        return self._move(evaluation_id, change)

    def record_fix(self, evaluation_id: str, text: str, *, actor: Actor) -> Rectification:
        now = self.clock.now()
        return self._move(evaluation_id, lambda r, cur: self._need(cur).record_fix(text, by=actor.staff_id, at=now))

    def close(self, evaluation_id: str, *, actor: Actor) -> Rectification:
        self._require(actor.role, CONFIDENTIAL_ROLES, "差评办结须由中心主任或督查人员确认")
        now = self.clock.now()
        return self._move(evaluation_id, lambda r, cur: self._need(cur).close(by=actor.staff_id, at=now))

    def invalidate(self, evaluation_id: str, reason: str, *, actor: Actor) -> Rectification:
        """复核: only the director's decision marks a 差评 invalid (malicious); the reason is kept."""
        now = self.clock.now()

        def change(r: Any, current: Rectification | None) -> Rectification:
            if not Level(int(r.level)).is_bad:
                raise EvaluationError("只有差评可以复核")
            base = current or Rectification(owner_id="", due_at=now, assigned_by="", assigned_at=now)
            return base.invalidate(reason, by=actor.staff_id, by_director=actor.role is Role.DIRECTOR, at=now)

        return self._move(evaluation_id, change, invalidates=True)

    @staticmethod
    def _need(current: Rectification | None) -> Rectification:
        if current is None:
            raise EvaluationError("该差评尚未指定整改责任人")
        return current

    def _move(self, evaluation_id: str, change: Callable[[Any, Rectification | None], Rectification], *,
              invalidates: bool = False) -> Rectification:

        def write(conn: Connection) -> Rectification:
            r = conn.execute(select(evaluation).where(evaluation.c.evaluation_id == evaluation_id).with_for_update()).first()
            if r is None:
                raise EvaluationError("找不到该评价")
            after = change(r, _rect_from_json(r.rect_json))
            values: dict[str, Any] = {"rect_state": after.state.value, "rect_owner": after.owner_id or None,
                                      "rect_due_at_ms": to_unix_ms(after.due_at), "rect_json": _rect_to_json(after),
                                      "feed_seq": self._next_seq(conn)}
            if invalidates:
                values["valid"] = False
            conn.execute(update(evaluation).where(evaluation.c.evaluation_id == evaluation_id).values(**values))
            return after

        return self._write(write)

    # ------------------------------------------------------------------ 回访

    def draw_follow_ups(self) -> tuple[int, str]:
        """This week's 回访 draw (003 服务回访制度): a random sample of the completed matters not drawn
        before (with `HandlingService.draw_follow_ups`'s key, at the county's sample rate), once a week, plus
        every valid 差评 a villager gave that is not on the list yet (real-name 差评 are called back
        100%; they join the list the moment they arrive, so they do not count as this week's draw).
        Returns (how many were added, the week's Monday)."""
        now = self.clock.now()
        now_ms = to_unix_ms(now)
        today = self.handling.calendar.local_date(now)
        week = (today - dt.timedelta(days=today.weekday())).isoformat()
        with self.store.engine.connect() as conn:
            drawn = set(conn.execute(select(follow_up_call.c.matter_id)).scalars())
            this_week = set(conn.execute(select(follow_up_call.c.matter_id)
                                         .where(follow_up_call.c.week_start == week)).scalars())
            bad = list(dict.fromkeys(conn.execute(select(evaluation.c.matter_id).where(
                evaluation.c.level >= 4, evaluation.c.valid.is_(True), evaluation.c.by_villager.is_(True))).scalars()))
        sample: list[str] = []
        if not this_week - set(bad):
            completed = [m for m in self.handling.matter_facts()
                         if m.completed_at is not None and m.matter_id not in drawn and m.matter_id not in bad]
            secret = hashlib.sha256(b"quancheng-follow-up|" + self.handling.signer.seed()).digest()
            sample = [m.matter_id for m in draw_follow_up_sample(completed, week_start=today - dt.timedelta(days=today.weekday()),
                                                                  secret=secret,
                                                                  fraction=self.settings().follow_up_percent / 100)]
        new = [m for m in dict.fromkeys([*sample, *bad]) if m not in drawn]
        if not new:
            return 0, week
        try:
            with self.store.engine.begin() as conn:
                conn.execute(insert(follow_up_call), [
                    {"matter_id": m, "week_start": week, "drawn_at_ms": now_ms, "caller_id": "", "rating": 0,
                     "outcome": ""} for m in new])
        except IntegrityError:
            return 0, week   # another director or 督查 drew at the same moment
        return len(new), week

    def handled_by(self, matter_id: str) -> set[str]:
        """Staff who worked on the matter (its owner and every staff action in its history)."""
        with self.store.engine.connect() as conn:
            owner = conn.execute(select(town_matter.c.owner).where(town_matter.c.matter_id == matter_id)).scalar()
            if owner is None:
                raise UnknownMatter("找不到该办件：可能链接有误，或办件尚未同步到本中心")
            actors = set(conn.execute(select(matter_event.c.actor).where(
                matter_event.c.matter_id == matter_id, matter_event.c.action != "evaluation")).scalars())
        return {a for a in actors | {owner} if a and not a.startswith("village:") and a not in ("county", "evaluation")}

    def record_follow_up(self, matter_id: str, findings: FollowUpFindings, *, actor: Actor) -> None:
        """The 回访 with its five findings. Nobody calls back about his own case; a 差评 whose fix is
        recorded moves on to 已回访."""
        if actor.role is Role.ADMINISTRATOR:
            raise EvaluationError("系统管理员不办理回访")
        may_record_follow_up(actor.staff_id, self.handled_by(matter_id))
        now = self.clock.now()
        now_ms = to_unix_ms(now)
        sat = int(findings.satisfaction) if findings.satisfaction is not None else 0
        # The handling service keeps the call itself (and signs it into the township chain); what the
        # villager said stays in the findings, which only the 回访 and 好差评 pages show.
        outcome = "已回访，记录见回访登记" if findings.reached else ""
        self.handling.record_follow_up(matter_id, actor=actor, reached=findings.reached, rating=sat, outcome=outcome)

        def write(conn: Connection) -> None:
            bad = conn.execute(select(evaluation).where(evaluation.c.matter_id == matter_id, evaluation.c.by_villager.is_(True),
                                                        evaluation.c.level >= 4)).first()
            values = dict(evaluation_id=bad.evaluation_id if bad is not None else None, reached=findings.reached,
                          attitude_ok=findings.attitude_ok, efficiency_ok=findings.efficiency_ok,
                          by_the_rules_ok=findings.by_the_rules_ok, integrity_ok=findings.integrity_ok,
                          satisfaction=sat, suggestion=findings.suggestion.strip(), recorded_by=actor.staff_id[:64],
                          recorded_at_ms=now_ms)
            if conn.execute(select(follow_up_finding.c.matter_id).where(follow_up_finding.c.matter_id == matter_id)).first():
                conn.execute(update(follow_up_finding).where(follow_up_finding.c.matter_id == matter_id).values(**values))
            else:
                conn.execute(insert(follow_up_finding).values(matter_id=matter_id, **values))
            if bad is not None and findings.reached:
                rect = _rect_from_json(bad.rect_json)
                if rect is not None and rect.state is RectificationState.FIXED:
                    after = rect.followed_up(by=actor.staff_id, at=now)
                    conn.execute(update(evaluation).where(evaluation.c.evaluation_id == bad.evaluation_id).values(
                        rect_state=after.state.value, rect_json=_rect_to_json(after), feed_seq=self._next_seq(conn)))

        self._write(write)

    # ------------------------------------------------------------------ the provincial feed

    def feed(self, after: int = 0, *, limit: int = 500) -> tuple[list[dict[str, Any]], int]:
        """Evaluations changed since cursor `after`, oldest change first, with no personal data: the
        matter's code, tier, channel, level, reason, time and rectification status (`docs/evaluation.md`).
        Returns (rows, next cursor); a row appears again when its rectification moves."""
        self.import_agent_entered()
        limit = max(1, min(limit, 5000))
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(evaluation).where(evaluation.c.feed_seq > after)
                                .order_by(evaluation.c.feed_seq).limit(limit)).all()
        out = []
        for r in rows:
            rect = _rect_from_json(r.rect_json)
            status = "none" if not Level(int(r.level)).is_bad else (rect.state.value if rect else "pending")
            out.append({
                "cursor": int(r.feed_seq), "evaluation_ref": r.evaluation_id, "matter_code": r.catalog_code,
                "tier": "township", "channel": r.channel, "entered_by_agent": not r.by_villager,
                "level": int(r.level), "level_zh": Level(int(r.level)).label_zh, "bad": Level(int(r.level)).is_bad,
                "reason": r.reason or None, "rated_at": from_unix_ms(int(r.rated_at_ms)).isoformat(),
                "valid": bool(r.valid), "rectification": status,
                "rectified_at": rect.fixed_at.isoformat() if rect and rect.fixed_at else None,
                "closed_at": rect.closed_at.isoformat() if rect and rect.closed_at else None,
            })
        return out, (out[-1]["cursor"] if out else after)

    # ------------------------------------------------------------------ helpers

    def _villager_rating(self, conn: Connection, matter_id: str) -> Any:
        return conn.execute(select(evaluation.c.evaluation_id).where(
            evaluation.c.matter_id == matter_id, evaluation.c.by_villager.is_(True))).first()

    @staticmethod
    def _next_seq(conn: Connection) -> int:
        # Cursors must be handed out in commit order so a feed reader never skips a change. On
        # PostgreSQL a transaction lock serialises the writers from here to their commit (SQLite's
        # writers are serialised already); the unique index stays as the last guard (`_write` retries).
        if conn.dialect.name == "postgresql":
            conn.execute(sql_text("SELECT pg_advisory_xact_lock(:key)"), {"key": _FEED_LOCK_KEY})
        return int(conn.execute(select(func.coalesce(func.max(evaluation.c.feed_seq), 0))).scalar_one()) + 1

    def _write(self, fn: Callable[[Connection], Any]) -> Any:
        for attempt in range(_RETRIES):
            try:
                with self.store.engine.begin() as conn:
                    return fn(conn)
            except IntegrityError:
                if attempt == _RETRIES - 1:
                    raise EvaluationError("保存评价时与他人同时操作，请稍后重试") from None
        raise AssertionError("unreachable")

    def _catalog_name(self, code: str) -> str:
        catalog = self.handling.catalog
        return catalog.item(code).name if code in catalog else "服务事项"

    @staticmethod
    def _require(role: Role, allowed: frozenset[Role], message: str) -> None:
        if role not in allowed:
            raise EvaluationError(message)
