"""Walk-ins at the township window: the operator registers an applicant who came in person, for any
catalogue matter, with the same one-time materials assessment as at the village, the applicant's
signature drawn on the window's pad (or, for someone applying on another's behalf, the photo of
the applicant's signed 委托书 and the representative's own signature), and a receipt with the
lookup code and the written one-time notification.

How the matter is made: the township holds a second signing key for its window, derived from the
township key (so it needs no file of its own and is exactly as well kept), enrolled in its own
relay store as the window's "device". The walk-in's `RequestFiled` is signed by that key as the
next link of the window's own chain and stored in the ingest log as a village record is; the
intake then folds it into a matter on the very path every relayed filing takes
(`HandledMatter.received`: the acceptance clock, all six kinds, escalation with the signed filing
the county verifies under a key the township vouched for). The window's hand-over and the
applicant's sign-off at the window are signed the same way. The 首问责任人 of a walk-in is the
operator who registered it (kept in `window_intake`); the 承办人 is whoever classifies it.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import delete, insert, select

from shared.clock import Clock, from_unix_ms, to_unix_ms
from shared.domain import id_number
from shared.domain.catalog import IntakeOutcome, MaterialsAssessment, assess_materials
from shared.domain.front_desk import WINDOW_VILLAGE_CODE
from shared.domain.handling import Actor, Stage
from shared.domain.lookup_code import ALPHABET, lookup_code_hash
from shared.domain.personal_data import personal_data_problem
from shared.envelope import sign_next
from shared.errors import CatalogError
from shared.evidence_image import drawn_signature_problem, is_image, photo_problem
from shared.relay.ports import EnrollmentInfo, IngestRow, Outcome
from shared.sealing import open_sealed, seal_to
from shared.signing import Signer, payload_hash
from shared.wire.v1 import records_pb2
from shared.wire_views import rating_to_wire
from town_center.front_desk.errors import FrontDeskError
from town_center.front_desk.tables import window_intake
from town_center.handling import HandlingService
from town_center.intake import Intake
from town_center.store import TownStore

log = logging.getLogger(__name__)

__all__ = ["WindowIntake", "WalkInForm", "WalkInReceipt", "FirstAsked", "window_signer", "WINDOW_VILLAGE_CODE",
           "WINDOW_HOLDER_NAME"]

WINDOW_HOLDER_NAME = "乡镇便民服务中心窗口"
MAX_IMAGE_BYTES = 3 * 1024 * 1024
MAX_TOLERANCE_DAYS = 60
_MOBILE_OR_LANDLINE = "0123456789-"
_RATINGS = {1: "非常满意", 2: "满意", 3: "基本满意", 4: "不满意", 5: "非常不满意"}


def window_signer(township: Signer) -> Signer:
    """The window's key: derived from the township key, so it is kept exactly as that key is."""
    return Signer(hashlib.sha256(b"quancheng-window-key|" + township.seed()).digest())


@dataclass
class WalkInForm:
    applicant_name: str = ""
    id_number: str = ""
    phone: str = ""
    address: str = ""
    catalog_code: str = ""
    materials_brought: list[str] = field(default_factory=list)
    not_applicable: list[str] = field(default_factory=list)
    commitments: dict[str, str] = field(default_factory=dict)   # material id → YYYY-MM-DD (容缺)
    elderly_or_disabled: bool = False
    on_behalf: bool = False
    representative_name: str = ""
    representative_relation: str = ""
    authorization_photo: bytes = b""      # the applicant's signed 委托书 (on behalf only)
    signature_png: bytes = b""            # drawn on the window's pad by whoever stands at the window
    note: str = ""


@dataclass(frozen=True)
class WalkInReceipt:
    matter_id: str
    lookup_code: str
    catalog_name: str
    outcome_zh: str
    notice: str
    registered_at: dt.datetime


@dataclass(frozen=True)
class FirstAsked:
    """The 首问责任人 of a walk-in: the window operator who received the applicant."""

    staff_id: str
    name: str
    on_behalf: bool
    registered_at: dt.datetime


class WindowIntake:
    def __init__(self, store: TownStore, handling: HandlingService, intake: Intake, clock: Clock, *,
                 township_code: str = "") -> None:
        self.store = store
        self.handling = handling
        self.intake = intake
        self.clock = clock
        self.township = handling.signer
        self.signer = window_signer(handling.signer)
        self.township_code = township_code
        # One signer of the window chain per process; the store's compare-and-set covers other processes.
        self._lock = threading.Lock()
        self._id_secret = hashlib.sha256(b"quancheng-window-id-lookup|" + self.township.seed()).digest()

    @property
    def key_id(self) -> str:
        return self.signer.key_id

    def ensure_key(self) -> None:
        """Enroll the window's key in the township's own store, approved by the township (it holds it)."""
        if self.store.author(self.signer.key_id) is not None:
            return
        self.store.register_approved(self.signer.public_key, EnrollmentInfo(
            records_pb2.KEY_ROLE_VILLAGE_AGENT, WINDOW_HOLDER_NAME, WINDOW_VILLAGE_CODE, self.township_code, ""),
            by="乡镇便民服务中心", now_ms=to_unix_ms(self.clock.now()))

    # ------------------------------------------------------------------ checks

    def assess(self, catalog_code: str, brought: Sequence[str], not_applicable: Sequence[str] = ()) -> MaterialsAssessment:
        catalog = self.handling.catalog
        if catalog_code not in catalog:
            raise FrontDeskError("请从服务事项目录中选择办理事项")
        item = catalog.item(catalog_code)
        try:
            return assess_materials(item, list(brought), not_applicable=list(not_applicable))
        except CatalogError as exc:
            raise FrontDeskError(f"材料勾选有误：{exc}") from exc

    def problems(self, form: WalkInForm) -> list[str]:
        """Every problem with the form at once, in Chinese (nothing is saved while any remains)."""
        problems: list[str] = []
        name = form.applicant_name.strip()
        if not name:
            problems.append("请填写申请人姓名")
        elif len(name) > 30 or any(ch.isdigit() for ch in name):
            problems.append("申请人姓名应为 30 字以内且不含数字")
        id_problem = id_number.problem(form.id_number)
        if id_problem:
            problems.append(f"身份证号码：{id_problem}")
        phone = form.phone.strip().replace(" ", "")
        if not (7 <= len(phone) <= 20 and all(ch in _MOBILE_OR_LANDLINE for ch in phone)):
            problems.append("请填写 11 位手机号码或带区号的固定电话")
        if not form.address.strip():
            problems.append("请填写住址")
        elif len(form.address) > 100:
            problems.append("住址不超过 100 字")
        assessment = None
        try:
            assessment = self.assess(form.catalog_code, form.materials_brought, form.not_applicable)
        except FrontDeskError as exc:
            problems.append(str(exc))
        if assessment is not None and assessment.outcome is IntakeOutcome.ACCEPT_WITH_TOLERANCE:
            today = self.handling.calendar.local_date(self.clock.now())
            for material in assessment.missing_auxiliary:
                text = form.commitments.get(material.id, "").strip()
                try:
                    date = dt.date.fromisoformat(text)
                except ValueError:
                    problems.append(f"缺少“{material.name}”时须由申请人承诺补交日期（格式如 2026-12-01）")
                    continue
                if date < today or date > today + dt.timedelta(days=MAX_TOLERANCE_DAYS):
                    problems.append(f"“{material.name}”的承诺补交日期应在今天到 {MAX_TOLERANCE_DAYS} 天之内")
        problems.extend(self._signature_problems(form))
        if len(form.note) > 200:
            problems.append("备注不超过 200 字")
        else:
            problem = personal_data_problem(form.note, "备注")
            if problem:
                problems.append(problem)
        return problems

    def _signature_problems(self, form: WalkInForm) -> list[str]:
        problems: list[str] = []
        who = "代办人" if form.on_behalf else "申请人"
        if not form.signature_png:
            problems.append(f"请{who}在签名板上签名")
        elif len(form.signature_png) > MAX_IMAGE_BYTES or not is_image(form.signature_png):
            problems.append("签名图片无效，请清除后重新签名")
        else:
            problem = drawn_signature_problem(form.signature_png)
            if problem:
                problems.append(f"{who}签名：{problem}")
        if form.on_behalf:
            if not form.representative_name.strip() or len(form.representative_name.strip()) > 30:
                problems.append("代他人申请的，请填写代办人姓名（30 字以内）")
            if not form.representative_relation.strip() or len(form.representative_relation) > 20:
                problems.append("请填写代办人与申请人的关系（如：儿子、邻居）")
            if not form.authorization_photo:
                problems.append("代他人申请的，须拍摄或上传申请人签字（或按手印）的委托书")
            elif len(form.authorization_photo) > MAX_IMAGE_BYTES or not is_image(form.authorization_photo):
                problems.append("委托书图片只接受 3 MB 以内的 PNG 或 JPEG 图片")
            else:
                problem = photo_problem(form.authorization_photo, what="申请人签字的委托书")
                if problem:
                    problems.append(problem)
        return problems

    # ------------------------------------------------------------------ registration

    def register(self, form: WalkInForm, *, operator: Actor, operator_name: str) -> WalkInReceipt:
        """Register a walk-in: checked as a whole, signed by the window, folded into a matter now."""
        problems = self.problems(form)
        if problems:
            raise FrontDeskError("；".join(problems))
        assessment = self.assess(form.catalog_code, form.materials_brought, form.not_applicable)
        item = assessment.item
        matter_id = str(uuid.uuid4())
        code = _new_lookup_code()
        normalized = id_number.normalize(form.id_number)
        record = records_pb2.Record()
        body = record.request_filed
        body.matter_id, body.catalog_code = matter_id, item.code
        body.catalog_version = self.handling.catalog.version
        body.village_code = WINDOW_VILLAGE_CODE
        body.applicant.id_number_masked = id_number.mask(normalized)
        body.applicant.id_lookup_hash = hmac.new(self._id_secret, normalized.encode(), hashlib.sha256).digest()
        details = records_pb2.ApplicantDetails(name=form.applicant_name.strip(), id_number=normalized,
                                               phone=form.phone.strip().replace(" ", ""), address=form.address.strip())
        body.applicant.sealed_details = seal_to(self.township.public_key, details.SerializeToString())
        body.applicant.sealed_to_key_id = self.township.key_id
        body.applicant.elderly_or_disabled = form.elderly_or_disabled
        now_ms = to_unix_ms(self.clock.now())
        auth = body.authorization
        # In person the applicant's own signature on the pad is the application's signature; on another's
        # behalf the applicant's signed 委托书 is the authorization (the county checks the same one).
        evidence = form.authorization_photo if form.on_behalf else form.signature_png
        auth.method = (records_pb2.AUTHORIZATION_METHOD_PHOTO_OF_FORM if form.on_behalf
                       else records_pb2.AUTHORIZATION_METHOD_DRAWN_SIGNATURE)
        auth.sealed_evidence = seal_to(self.township.public_key, evidence)
        auth.evidence_sha256 = hashlib.sha256(evidence).digest()
        auth.sealed_to_key_id = self.township.key_id
        auth.captured_at_ms = now_ms
        body.materials_brought.extend(m.id for m in assessment.brought)
        body.materials_not_applicable.extend(m.id for m in assessment.not_applicable)
        if assessment.outcome is IntakeOutcome.ACCEPT_WITH_TOLERANCE:
            for material in assessment.missing_auxiliary:
                body.tolerated_missing.add(material_id=material.id, supply_by_date=form.commitments[material.id].strip(),
                                           commitment_signed=True)
        body.intake_outcome = {
            IntakeOutcome.ACCEPT: records_pb2.INTAKE_OUTCOME_ACCEPT,
            IntakeOutcome.ACCEPT_WITH_TOLERANCE: records_pb2.INTAKE_OUTCOME_ACCEPT_WITH_TOLERANCE,
            IntakeOutcome.RETURN: records_pb2.INTAKE_OUTCOME_RETURN,
        }[assessment.outcome]
        body.return_reason = assessment.return_reason_zh or ""
        body.lookup_code_hash = lookup_code_hash(code)
        body.note = form.note.strip()[:200]
        body.catalog_item_name = item.name
        notice = assessment.notice_zh()
        body.intake_notice = notice
        signer_doc = {"signed_by": "representative" if form.on_behalf else "applicant",
                      "representative_name": form.representative_name.strip() if form.on_behalf else "",
                      "relation": form.representative_relation.strip() if form.on_behalf else "",
                      "signature_png": form.signature_png.hex()}
        with self.store.engine.begin() as conn:
            conn.execute(insert(window_intake).values(
                matter_id=matter_id, first_asked_by=operator.staff_id[:64], first_asked_name=(operator_name or operator.staff_id)[:100],
                on_behalf=form.on_behalf, signature_sha256=hashlib.sha256(form.signature_png).digest(),
                sealed_signer=seal_to(self.township.public_key, json.dumps(signer_doc).encode()),
                registered_at_ms=now_ms))
        try:
            self._sign_and_store(record)
        except BaseException:
            with self.store.engine.begin() as conn:
                conn.execute(delete(window_intake).where(window_intake.c.matter_id == matter_id))
            raise
        self._fold()
        return WalkInReceipt(matter_id, code, item.name, assessment.outcome.label_zh, notice, self.clock.now())

    def _sign_and_store(self, record: records_pb2.Record) -> int:
        """Sign `record` as the next link of the window chain and store it as received, at the township's
        present. The store's compare-and-set on the chain tip means a second process signing at the same
        moment gets a conflict (never a fork): the record is signed again on the new tip."""
        self.ensure_key()
        with self._lock:
            for _attempt in range(5):
                author = self.store.author(self.signer.key_id)
                if author is None:
                    raise FrontDeskError("窗口签名密钥未登记，请联系系统管理员")
                now_ms = to_unix_ms(self.clock.now())
                signed = sign_next(self.signer, record, author.tip, now_ms)
                row = IngestRow(self.signer.key_id, signed.seq, signed.record_id, payload_hash(signed.envelope.payload),
                                signed.envelope.payload, signed.envelope.signature, now_ms,
                                record.WhichOneof("body") or "")
                [result] = self.store.store_batch(self.signer.key_id, author.tip, [row], receipt_time_ms=now_ms)
                if result.outcome is Outcome.STORED:
                    return signed.seq
                if result.outcome is not Outcome.CONFLICT:
                    raise FrontDeskError("窗口签名记录未能保存（窗口密钥状态异常），请联系系统管理员")
        raise FrontDeskError("窗口正忙，请稍后重试")

    # ------------------------------------------------------------------ at the end: hand-over and sign-off

    def is_walk_in(self, matter_id: str) -> bool:
        return self.first_asked(matter_id) is not None

    def first_asked(self, matter_id: str) -> FirstAsked | None:
        with self.store.engine.connect() as conn:
            row = conn.execute(select(window_intake).where(window_intake.c.matter_id == matter_id)).first()
        if row is None:
            return None
        return FirstAsked(row.first_asked_by, row.first_asked_name, bool(row.on_behalf), from_unix_ms(int(row.registered_at_ms)))

    def representative(self, matter_id: str) -> Mapping[str, str] | None:
        """Who signed at the window when applying on another's behalf (for the handling staff)."""
        with self.store.engine.connect() as conn:
            sealed = conn.execute(select(window_intake.c.sealed_signer).where(window_intake.c.matter_id == matter_id)).scalar()
        if sealed is None:
            return None
        doc = json.loads(open_sealed(self.township.seed(), bytes(sealed)))
        return {"name": doc.get("representative_name", ""), "relation": doc.get("relation", "")}

    def sign_off(self, matter_id: str, *, signature_png: bytes, comment: str, actor: Actor, rating: int = 0) -> None:
        """The result handed over at the window and the applicant's signed confirmation: signed by the
        window as the village agent's hand-over and the villager's sign-off are. The console passes no
        rating: the applicant rates on their own (the 交付签收单's QR code, docs/evaluation.md), since the
        operator rated must not collect it; `rating` stays for a window evaluator device's reading."""
        if not self.is_walk_in(matter_id):
            raise FrontDeskError("本件不是窗口现场登记的办件，结果由村代办员交付并请群众签收")
        page = self.handling.page(matter_id)
        if page.matter.stage is not Stage.RESULT_READY:
            raise FrontDeskError(f"本件当前为“{page.matter.stage.label_zh}”，结果办出后才能交付签收")
        if rating != 0 and rating not in _RATINGS:
            raise FrontDeskError("评价应为非常满意、满意、基本满意、不满意或非常不满意")
        if not signature_png or len(signature_png) > MAX_IMAGE_BYTES or not is_image(signature_png):
            raise FrontDeskError("请申请人在签名板上签名确认领取")
        problem = drawn_signature_problem(signature_png)
        if problem:
            raise FrontDeskError(f"签收签名：{problem}")
        if len(comment) > 200:
            raise FrontDeskError("评价意见不超过 200 字")
        problem = personal_data_problem(comment, "评价意见")
        if problem:
            raise FrontDeskError(problem)
        now_ms = to_unix_ms(self.clock.now())
        handed = records_pb2.Record()
        handed.result_handed_over.matter_id = matter_id
        handed.result_handed_over.handed_over_at_ms = now_ms
        handed.result_handed_over.result_summary = page.matter.result_summary[:500]
        self._sign_and_store(handed)
        signed = records_pb2.Record()
        body = signed.signed_off
        body.matter_id, body.rating, body.comment = matter_id, rating_to_wire(rating), comment.strip()
        body.sealed_signature = seal_to(self.township.public_key, signature_png)
        body.sealed_to_key_id = self.township.key_id
        body.signed_at_ms = now_ms
        body.confirmation_method = records_pb2.AUTHORIZATION_METHOD_DRAWN_SIGNATURE
        body.evidence_sha256 = hashlib.sha256(signature_png).digest()
        self._sign_and_store(signed)
        self._fold()

    def _fold(self) -> None:
        """Fold the window's new record into its matter now. It is stored and signed already: if the fold
        fails here, the background intake folds it on its next pass (the receipt is still given)."""
        try:
            self.intake.run_once()
        except Exception:
            log.exception("walk-in folded later by the background intake")


def _new_lookup_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(10))
    return f"{raw[:5]}-{raw[5:]}"
