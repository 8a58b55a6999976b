"""What a village agent does, each action validated, signed and committed in one transaction.

The service is the only writer of the ledger. Validation happens before anything is signed:
invalid input raises `FormError` naming every bad field (in Chinese), and nothing is written.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from shared.calendar import WorkingCalendar
from shared.clock import Clock, from_unix_ms, to_unix_ms
from shared.domain import id_number
from shared.domain.catalog import (
    Catalog,
    CatalogItem,
    IntakeOutcome,
    MaterialsAssessment,
    Tier,
    UnknownMaterialError,
    assess_materials,
)
from shared.domain.lookup_code import ALPHABET as LOOKUP_ALPHABET
from shared.domain.lookup_code import lookup_code_hash
from shared.domain.personal_data import personal_data_problem
from shared.envelope import SignedRecord
from shared.errors import CatalogError
from shared.evidence_image import (
    MAX_EVIDENCE_BYTES,
    drawn_signature_problem,
    is_image,
    photo_problem,
)
from shared.sealing import seal_to
from shared.signing import Signer
from shared.wire.v1 import records_pb2
from village_agent import domain
from village_agent.config import AgentConfig
from village_agent.domain import AppointmentStatus, MatterState
from village_agent.errors import FieldProblem, FormError, UnknownMatterError
from village_agent.hop import hop_due
from village_agent.notice import intake_notice_lines
from village_agent.store import AgentStore
from village_agent.vault import Vault

if TYPE_CHECKING:
    from village_agent.receipt import VillageDocuments

log = logging.getLogger(__name__)
SHANGHAI = ZoneInfo("Asia/Shanghai")
MAX_TOLERANCE_DAYS = 90
_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_LANDLINE = re.compile(r"^0\d{2,3}-?\d{7,8}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

# The villager's own mark, or a witness when the villager cannot give one: for the authorization
# 委托书 at filing and for the sign-off 签收确认 alike.
AUTHORIZATION_METHODS = {
    "drawn_signature": records_pb2.AUTHORIZATION_METHOD_DRAWN_SIGNATURE,
    "photo_of_form": records_pb2.AUTHORIZATION_METHOD_PHOTO_OF_FORM,
    "fingerprint": records_pb2.AUTHORIZATION_METHOD_FINGERPRINT,
    "witness": records_pb2.AUTHORIZATION_METHOD_WITNESS,
}
_LOOKUP_CODE = re.compile(r"^[2-9A-HJ-NP-Z]{5}-?[2-9A-HJ-NP-Z]{5}$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_WITNESS_NAME_NOISE = re.compile(r"[\s·•.,，。:：()（）]+")
RATINGS = {
    "very_satisfied": records_pb2.RATING_VERY_SATISFIED,
    "satisfied": records_pb2.RATING_SATISFIED,
    "basically_satisfied": records_pb2.RATING_BASICALLY_SATISFIED,
    "dissatisfied": records_pb2.RATING_DISSATISFIED,
    "very_dissatisfied": records_pb2.RATING_VERY_DISSATISFIED,
}
PLACES = {
    "service_room": records_pb2.VISIT_PLACE_SERVICE_ROOM,
    "applicant_home": records_pb2.VISIT_PLACE_APPLICANT_HOME,
    "township_center": records_pb2.VISIT_PLACE_TOWNSHIP_CENTER,
}


@dataclass
class RequestForm:
    applicant_name: str
    id_number: str
    phone: str
    address: str
    catalog_code: str
    materials_brought: list[str] = field(default_factory=list)
    # Missing materials the applicant commits to supply, with the date: {material id: "YYYY-MM-DD"}.
    commitments: dict[str, str] = field(default_factory=dict)
    not_applicable: list[str] = field(default_factory=list)
    authorization_method: str = ""
    authorization_evidence: bytes = b""   # PNG/JPEG of the drawn signature or the signed form
    witness_name: str = ""
    witness_statement: str = ""
    elderly_or_disabled: bool = False
    door_to_door: bool = False
    visit_id: str = ""
    note: str = ""


@dataclass(frozen=True)
class FiledRequest:
    matter_id: str
    lookup_code: str
    seq: int
    assessment: MaterialsAssessment


@dataclass(frozen=True)
class ApplicantView:
    """Decrypted personal data, only ever held in memory for display."""

    name: str
    phone: str
    address: str


def new_lookup_code() -> str:
    raw = "".join(secrets.choice(LOOKUP_ALPHABET) for _ in range(10))
    return f"{raw[:5]}-{raw[5:]}"


def _is_image(data: bytes) -> bool:
    return is_image(data)


def same_person_name(a: str, b: str) -> bool:
    """Two names written for one person (spaces and punctuation aside)."""
    return bool(a.strip()) and _WITNESS_NAME_NOISE.sub("", a) == _WITNESS_NAME_NOISE.sub("", b)


@dataclass(frozen=True)
class Confirmation:
    """The villager's mark on a sign-off, or a witness's attestation when the villager cannot give one."""

    method: str = ""              # a key of AUTHORIZATION_METHODS
    evidence: bytes = b""         # the image: drawn signature (PNG from the pad), photo, fingerprint photo
    witness_name: str = ""
    witness_statement: str = ""


def materials_problem(item: CatalogItem, exc: CatalogError, brought: Sequence[str],
                      not_applicable: Sequence[str]) -> FieldProblem:
    """The catalogue's refusal of a material list, told with the materials' names (ids only when unknown)."""
    known = {m.id: m.name for m in item.materials}
    if isinstance(exc, UnknownMaterialError):
        return FieldProblem("materials_brought", "已带材料",
                            f"“{item.name}”没有这些材料：{'、'.join(exc.unknown_ids)}（材料编号见 village-agent catalog {item.code}）")
    both = [known[m] for m in brought if m in known and m in set(not_applicable)]
    if both:
        return FieldProblem("not_applicable", "不适用的材料", f"这些材料既勾选为已带又标为不适用：{'、'.join(both)}")
    fixed = [known[m] for m in not_applicable if m in known and not item.material(m).is_conditional]
    if fixed:
        return FieldProblem("not_applicable", "不适用的材料", f"这些材料每位申请人都须提交，不能标为不适用：{'、'.join(fixed)}")
    return FieldProblem("materials_brought", "已带材料", "材料清单无法识别，请重新勾选")


def free_text_problems(*fields: tuple[str, str, str]) -> list[FieldProblem]:
    """Free text is signed and stored in plain text at every tier: (field, label, text) carrying an ID or
    mobile number is refused. Refused rather than sealed: the township, the county and the villager read
    these words, and the applicant's own numbers are already sealed in the applicant details."""
    problems = []
    for name, label, text in fields:
        problem = personal_data_problem(text, label)
        if problem:
            problems.append(FieldProblem(name, label, problem))
    return problems


class AgentService:
    def __init__(self, *, store: AgentStore, signer: Signer, vault: Vault, catalog: Catalog,
                 config: AgentConfig, clock: Clock, calendar: WorkingCalendar | None = None) -> None:
        self.store = store
        self.signer = signer
        self.vault = vault
        self.catalog = catalog
        self.config = config
        self.clock = clock
        # The working-day calendar the village hop's clock counts on (shown on the list and matter pages).
        self.calendar = calendar or WorkingCalendar()
        # Set by the relay loop: wakes it after each commit (a flag only; the outbox is the queue).
        self.on_recorded: Callable[[], None] | None = None
        self._documents: Any = None

    @property
    def documents(self) -> VillageDocuments:
        """The laptop's numbered documents (issued with the filing and the sign-off that decide them)."""
        if self._documents is None:
            from village_agent.receipt import VillageDocuments

            self._documents = VillageDocuments(self)
        return self._documents

    # ------------------------------------------------------------ helpers

    def _now_ms(self) -> int:
        return to_unix_ms(self.clock.now())

    def _today(self) -> dt.date:
        return self.clock.now().astimezone(SHANGHAI).date()

    def _append(self, record: records_pb2.Record, *, now_ms: int | None = None, **extra: Any) -> SignedRecord:
        now_ms = self._now_ms() if now_ms is None else now_ms
        signed = self.store.append(self.signer, record, now_ms, queued_at_ms=now_ms, **extra)
        # ids and kinds only: never personal data
        log.info("recorded seq=%d kind=%s record=%s", signed.seq, record.WhichOneof("body"), signed.record_id)
        if self.on_recorded is not None:
            self.on_recorded()
        return signed

    def _seal(self, plaintext: bytes) -> bytes:
        return seal_to(self.config.township_public_key, plaintext)

    # ------------------------------------------------------------ intake

    def assess(self, catalog_code: str, brought: Sequence[str], not_applicable: Sequence[str] = ()) -> MaterialsAssessment:
        """The live checklist: what is missing and whether the matter can be accepted."""
        if catalog_code not in self.catalog:
            raise FormError([FieldProblem("catalog_code", "办理事项", f"服务事项目录中没有编码为 {catalog_code or '（空）'} 的事项，"
                                                                   "可用 village-agent catalog 查看全部事项")])
        item = self.catalog.item(catalog_code)
        try:
            return assess_materials(item, list(brought), not_applicable=list(not_applicable))
        except CatalogError as exc:
            raise FormError([materials_problem(item, exc, brought, not_applicable)]) from exc

    def resolve_matter(self, reference: str) -> str:
        """The matter a person names: by the lookup code on the receipt (the way people know it), or by
        the internal id that pages and scripts carry. Raises `UnknownMatterError` in Chinese."""
        text = reference.strip()
        if not text:
            raise UnknownMatterError("请给出事项的查询码（回执上的 10 位查询码，如 AB3CD-EF4GH）")
        if _UUID.match(text.lower()) and self.store.has_matter(text.lower()):
            return text.lower()
        code = text.upper().replace(" ", "")
        if _LOOKUP_CODE.match(code):
            code = code if "-" in code else f"{code[:5]}-{code[5:]}"
            return self.store.matter_by_lookup_code(code).matter_id
        raise UnknownMatterError("本机没有这个事项，请核对查询码（回执上的 10 位查询码，如 AB3CD-EF4GH）")

    def matter_title(self, state: MatterState) -> str:
        """How a person knows the matter: the catalogue item's name."""
        return self.catalog.item(state.catalog_code).name if state.catalog_code in self.catalog else "（目录中已无此事项）"

    def validate_request(self, form: RequestForm) -> MaterialsAssessment:
        problems: list[FieldProblem] = []
        name = form.applicant_name.strip()
        if not name:
            problems.append(FieldProblem("applicant_name", "申请人姓名", "请填写申请人姓名"))
        elif len(name) > 30 or any(ch.isdigit() for ch in name):
            problems.append(FieldProblem("applicant_name", "申请人姓名", "姓名应为 30 字以内且不含数字"))
        id_problem = id_number.problem(form.id_number)
        if id_problem:
            problems.append(FieldProblem("id_number", "身份证号码", id_problem))
        phone = form.phone.strip().replace(" ", "")
        if not (_MOBILE.match(phone) or _LANDLINE.match(phone)):
            problems.append(FieldProblem("phone", "联系电话", "请填写 11 位手机号码或带区号的固定电话"))
        if not form.address.strip():
            problems.append(FieldProblem("address", "住址", "请填写住址"))
        elif len(form.address) > 100:
            problems.append(FieldProblem("address", "住址", "住址不超过 100 字"))
        assessment: MaterialsAssessment | None = None
        if form.catalog_code not in self.catalog:
            problems.append(FieldProblem("catalog_code", "办理事项", "请从目录中选择办理事项"))
        else:
            item = self.catalog.item(form.catalog_code)
            try:
                assessment = assess_materials(item, form.materials_brought, not_applicable=form.not_applicable)
            except CatalogError as exc:
                problems.append(materials_problem(item, exc, form.materials_brought, form.not_applicable))
            unknown = sorted(set(form.commitments) - {m.id for m in item.materials})
            if unknown:
                problems.append(FieldProblem("commitments", "承诺补交日期",
                                             f"该事项没有这些材料：{'、'.join(unknown)}（材料编号见 village-agent catalog {item.code}）"))
        # Dates matter only where the matter is taken on tolerance; a returned request promises nothing.
        if assessment is not None and assessment.outcome is IntakeOutcome.ACCEPT_WITH_TOLERANCE:
            problems.extend(self._check_commitments(assessment, form.commitments))
        problems.extend(self._check_authorization(form))
        if len(form.note) > 200:
            problems.append(FieldProblem("note", "备注", "备注不超过 200 字"))
        else:
            problems.extend(free_text_problems(("note", "备注", form.note)))
        if problems:
            raise FormError(problems)
        assert assessment is not None
        return assessment

    def _check_commitments(self, assessment: MaterialsAssessment, commitments: dict[str, str]) -> list[FieldProblem]:
        problems = []
        today = self._today()
        for material in assessment.missing_auxiliary:
            label = f"承诺补交日期（{material.name}）"
            date_text = commitments.get(material.id, "").strip()
            if not date_text:
                why = "缺少该材料时须由申请人承诺补交日期"
                if material.condition:
                    why += f"；申请人不属于“{material.condition}”情形的，请标为不适用"
                problems.append(FieldProblem(f"commitment:{material.id}", label, why))
                continue
            if not _DATE.match(date_text):
                problems.append(FieldProblem(f"commitment:{material.id}", label, "日期格式应为 年-月-日，如 2026-12-01"))
                continue
            try:
                date = dt.date.fromisoformat(date_text)
            except ValueError:
                problems.append(FieldProblem(f"commitment:{material.id}", label, "日期无效"))
                continue
            if date < today or date > today + dt.timedelta(days=MAX_TOLERANCE_DAYS):
                problems.append(FieldProblem(f"commitment:{material.id}", label, f"应在今天到 {MAX_TOLERANCE_DAYS} 天之内"))
        return problems

    def _check_authorization(self, form: RequestForm) -> list[FieldProblem]:
        label = "委托书"
        method = AUTHORIZATION_METHODS.get(form.authorization_method)
        if method is None:
            return [FieldProblem("authorization_method", label,
                                 "请选择委托方式：现场签名、拍摄已签字的委托书、按手印，或见证人")]
        if method == records_pb2.AUTHORIZATION_METHOD_WITNESS:
            return self._check_witness(form.witness_name, form.witness_statement, "群众无法签字时须有见证人，请填写见证人姓名")
        evidence = form.authorization_evidence
        if not evidence:
            what = {records_pb2.AUTHORIZATION_METHOD_DRAWN_SIGNATURE: "请让群众在屏幕上签名",
                    records_pb2.AUTHORIZATION_METHOD_FINGERPRINT: "请拍摄群众按了手印的委托书"}.get(method, "请拍摄已签字的委托书")
            return [FieldProblem("authorization_evidence", label, what)]
        if len(evidence) > MAX_EVIDENCE_BYTES:
            return [FieldProblem("authorization_evidence", label, "图片超过 3 MB，请重新拍摄或压缩")]
        if not _is_image(evidence):
            return [FieldProblem("authorization_evidence", label, "只接受 PNG 或 JPEG 图片")]
        if method == records_pb2.AUTHORIZATION_METHOD_DRAWN_SIGNATURE:
            # The township checks the same pixels and cannot accept a matter on a blank or token mark.
            problem = drawn_signature_problem(evidence)
            return [FieldProblem("authorization_evidence", label, problem)] if problem else []
        what = "群众按的手印" if method == records_pb2.AUTHORIZATION_METHOD_FINGERPRINT else "群众签字的委托书"
        problem = photo_problem(evidence, what=what)
        return [FieldProblem("authorization_evidence", label, problem)] if problem else []

    def _check_witness(self, name: str, statement: str, missing_name: str) -> list[FieldProblem]:
        problems = []
        if not name.strip():
            problems.append(FieldProblem("witness_name", "见证人姓名", missing_name))
        elif len(name.strip()) > 30:
            problems.append(FieldProblem("witness_name", "见证人姓名", "见证人姓名不超过 30 字"))
        elif same_person_name(name, self.config.agent_name):
            problems.append(FieldProblem("witness_name", "见证人姓名",
                                         "见证人不能是代办员本人，请由在场的其他人（如村干部、邻居、家属）见证"))
        if not statement.strip():
            problems.append(FieldProblem("witness_statement", "见证说明", "请填写见证说明（如：本人确认申请人口头委托）"))
        elif len(statement) > 200:
            problems.append(FieldProblem("witness_statement", "见证说明", "见证说明不超过 200 字"))
        return problems

    def file_request(self, form: RequestForm, *, matter_id: str | None = None) -> FiledRequest:
        """Validate, seal personal data to the township, sign and commit a new request."""
        assessment = self.validate_request(form)
        if matter_id and self.store.has_matter(matter_id):
            # The same request re-sent after a crash between commit and reply: answer, don't file twice.
            state = self.store.matter_state(matter_id)
            return FiledRequest(matter_id, self.store.lookup_code_of(matter_id), state.filed_seq, assessment)
        matter_id = matter_id or str(uuid.uuid4())
        code = new_lookup_code()
        normalized_id = id_number.normalize(form.id_number)
        record = records_pb2.Record()
        body = record.request_filed
        body.matter_id = matter_id
        body.catalog_code = form.catalog_code
        body.catalog_version = self.catalog.version
        body.village_code = self.config.village_code
        body.applicant.id_number_masked = id_number.mask(normalized_id)
        id_hash = self.vault.id_lookup_hash(normalized_id)
        body.applicant.id_lookup_hash = id_hash
        details = records_pb2.ApplicantDetails(name=form.applicant_name.strip(), id_number=normalized_id,
                                               phone=form.phone.strip(), address=form.address.strip())
        body.applicant.sealed_details = self._seal(details.SerializeToString())
        body.applicant.sealed_to_key_id = self.config.township_key_id
        body.applicant.elderly_or_disabled = form.elderly_or_disabled
        auth = body.authorization
        auth.method = AUTHORIZATION_METHODS[form.authorization_method]
        evidence = form.authorization_evidence if auth.method != records_pb2.AUTHORIZATION_METHOD_WITNESS else json.dumps(
            {"witness_name": form.witness_name.strip(), "statement": form.witness_statement.strip()}, ensure_ascii=False).encode()
        auth.sealed_evidence = self._seal(evidence)
        auth.evidence_sha256 = hashlib.sha256(evidence).digest()
        auth.sealed_to_key_id = self.config.township_key_id
        auth.captured_at_ms = self._now_ms()
        body.materials_brought.extend(m.id for m in assessment.brought)
        body.materials_not_applicable.extend(m.id for m in assessment.not_applicable)
        commitments: dict[str, str] = {}
        if assessment.outcome is IntakeOutcome.ACCEPT_WITH_TOLERANCE:
            # A returned request signs no commitment: only a matter taken on tolerance promises dates.
            for material in assessment.missing_auxiliary:
                commitments[material.id] = form.commitments[material.id].strip()
                body.tolerated_missing.add(material_id=material.id, supply_by_date=commitments[material.id],
                                           commitment_signed=True)
        body.intake_outcome = {
            IntakeOutcome.ACCEPT: records_pb2.INTAKE_OUTCOME_ACCEPT,
            IntakeOutcome.ACCEPT_WITH_TOLERANCE: records_pb2.INTAKE_OUTCOME_ACCEPT_WITH_TOLERANCE,
            IntakeOutcome.RETURN: records_pb2.INTAKE_OUTCOME_RETURN,
        }[assessment.outcome]
        body.return_reason = assessment.return_reason_zh or ""
        body.door_to_door = form.door_to_door
        body.visit_id = form.visit_id
        body.lookup_code_hash = lookup_code_hash(code)
        body.note = form.note.strip()
        # What the villager is told, written once now and kept signed: a reprint prints these lines.
        filed_at_ms = self._now_ms()
        body.catalog_item_name = assessment.item.name
        body.intake_notice = "\n".join(intake_notice_lines(
            assessment, commitments, township_name=self.config.township_name,
            village_due=hop_due(assessment.item, from_unix_ms(filed_at_ms), self.calendar)))
        private = json.dumps({"name": details.name, "phone": details.phone, "address": details.address}, ensure_ascii=False)
        # The receipt, notice, application form and 委托书 are numbered and signed in the filing's transaction.
        signed = self._append(record, now_ms=filed_at_ms, private_blob=self.vault.encrypt(private.encode(), matter_id),
                              lookup_code=code, id_lookup_hash=id_hash,
                              then=lambda conn: self.documents.issue_at_filing(conn, matter_id))
        return FiledRequest(matter_id, code, signed.seq, assessment)

    def applicant(self, matter_id: str, *, conn: Connection | None = None) -> ApplicantView | None:
        blob = self.store.private_blob(matter_id, conn=conn)
        if blob is None:
            return None
        doc = json.loads(self.vault.decrypt(blob, matter_id))
        return ApplicantView(doc["name"], doc["phone"], doc["address"])

    def earlier_matters(self, raw_id_number: str) -> list[MatterState]:
        problem = id_number.problem(raw_id_number)
        if problem:
            raise FormError([FieldProblem("id_number", "身份证号码", problem)])
        return self.store.matters_for_id_hash(self.vault.id_lookup_hash(raw_id_number))

    # ------------------------------------------------------------ later actions on a matter

    def add_materials(self, matter_id: str, material_ids: list[str], note: str = "") -> SignedRecord:
        state = self.store.matter_state(matter_id)
        domain.check_can_add_materials(state)
        item = self.catalog.item(state.catalog_code)
        ids = [m.strip() for m in material_ids if m.strip()]
        if not ids:
            raise FormError([FieldProblem("material_ids", "补充材料", "请选择补充的材料")])
        unknown = [m for m in ids if m not in {x.id for x in item.materials}]
        if unknown:
            raise FormError([FieldProblem(
                "material_ids", "补充材料",
                f"“{item.name}”没有这些材料：{'、'.join(unknown)}（材料编号见 village-agent catalog {item.code}）")])
        if problems := free_text_problems(("note", "备注", note)):
            raise FormError(problems)
        record = records_pb2.Record()
        record.materials_added.matter_id = matter_id
        record.materials_added.material_ids.extend(ids)
        record.materials_added.note = note.strip()
        return self._append(record)

    def make_appointment(self, *, scheduled_at: dt.datetime, place: str, purpose: str,
                         matter_id: str = "", place_detail: str = "") -> tuple[str, SignedRecord]:
        problems = []
        if scheduled_at.tzinfo is None:
            problems.append(FieldProblem("scheduled_at", "预约时间", "预约时间须带时区"))
        elif scheduled_at < self.clock.now() - dt.timedelta(minutes=1):
            problems.append(FieldProblem("scheduled_at", "预约时间", "预约时间不能早于现在"))
        if place not in PLACES:
            problems.append(FieldProblem("place", "地点", "请选择地点：村便民服务室、申请人家中或乡镇便民服务中心"))
        if not purpose.strip():
            problems.append(FieldProblem("purpose", "事由", "请填写预约事由"))
        problems.extend(free_text_problems(("purpose", "事由", purpose)))
        if matter_id:
            self.store.matter_state(matter_id)
        if problems:
            raise FormError(problems)
        appointment_id = str(uuid.uuid4())
        record = records_pb2.Record()
        body = record.appointment_made
        body.appointment_id = appointment_id
        body.matter_id = matter_id
        body.scheduled_at_ms = to_unix_ms(scheduled_at)
        body.place = PLACES[place]
        body.purpose = purpose.strip()
        if place_detail.strip():
            body.sealed_place_detail = self._seal(place_detail.strip().encode())
        blob = self.vault.encrypt(place_detail.strip().encode(), appointment_id) if place_detail.strip() else None
        return appointment_id, self._append(record, appointment_blob=blob)

    def record_visit(self, *, appointment_id: str = "", matter_id: str = "", place: str = "applicant_home",
                     outcome: str = "", late_reason: str = "") -> tuple[str, SignedRecord]:
        """A visit, or the villager come to the service room. Always recorded: more than 30 minutes late,
        or after the appointment was forfeited, with the reason (`domain.visit_problem`)."""
        if appointment_id:
            row = self.store.appointment_row(appointment_id)
            problem = domain.visit_problem(AppointmentStatus(row.status), row.scheduled_at_ms, self._now_ms(), late_reason)
            if problem:
                raise FormError([FieldProblem("late_reason", "迟到原因", problem)])
        if place not in PLACES:
            raise FormError([FieldProblem("place", "地点", "地点无效")])
        if problems := free_text_problems(("outcome", "上门情况", outcome), ("late_reason", "迟到原因", late_reason)):
            raise FormError(problems)
        visit_id = str(uuid.uuid4())
        record = records_pb2.Record()
        body = record.visit_recorded
        body.visit_id = visit_id
        body.appointment_id = appointment_id
        body.matter_id = matter_id
        body.visited_at_ms = self._now_ms()
        body.place = PLACES[place]
        body.outcome = outcome.strip()
        body.late_reason = late_reason.strip()
        return visit_id, self._append(record)

    def appointments_awaiting_contact(self) -> list[str]:
        """Appointments more than 30 minutes past their time and not kept: the agent is to call the
        villager; only a failed contact lets them be forfeited (`forfeit_appointment`)."""
        now_ms = self._now_ms()
        return [row.appointment_id for row in self.store.appointments(status=AppointmentStatus.SCHEDULED)
                if domain.is_late(row.scheduled_at_ms, now_ms)]

    def forfeit_appointment(self, appointment_id: str, *, contact_at: dt.datetime | None, method: str,
                            outcome: str) -> SignedRecord:
        """预约服务制度 第七条: forfeit one appointment, 30 minutes late AND a contact attempt after the
        time failed. The attempt (when, how, outcome) is signed into the forfeit, so the township sees
        what it rests on. A visit racing the forfeit: the store lets exactly one through."""
        row = self.store.appointment_row(appointment_id)
        contact_at_ms = to_unix_ms(contact_at) if contact_at is not None else None
        problem = domain.forfeit_problem(AppointmentStatus(row.status), row.scheduled_at_ms, self._now_ms(),
                                         contact_at_ms=contact_at_ms, method=method, outcome=outcome)
        if problem:
            raise FormError([FieldProblem("contact", "联系情况", problem)])
        if problems := free_text_problems(("outcome", "联系结果", outcome)):
            raise FormError(problems)
        record = records_pb2.Record()
        body = record.appointment_forfeited
        body.appointment_id = appointment_id
        body.forfeited_at_ms = self._now_ms()
        body.rebook_contact_needed = True
        body.contact.attempted_at_ms = contact_at_ms or 0
        body.contact.method = method
        body.contact.outcome = outcome.strip()[:200]
        return self._append(record)

    def withdraw(self, matter_id: str, reason: str) -> SignedRecord:
        state = self.store.matter_state(matter_id)
        domain.check_can_withdraw(state)
        if not reason.strip():
            raise FormError([FieldProblem("reason", "撤回原因", "请填写撤回原因")])
        if problems := free_text_problems(("reason", "撤回原因", reason)):
            raise FormError(problems)
        record = records_pb2.Record()
        record.withdrawn.matter_id = matter_id
        record.withdrawn.reason = reason.strip()
        return self._append(record)

    def hand_over(self, matter_id: str, result_summary: str, materials_returned: Sequence[str] = ()) -> SignedRecord:
        state = self.store.matter_state(matter_id)
        decided_here = self.catalog.item(state.catalog_code).decided_by is Tier.VILLAGE if state.catalog_code in self.catalog else False
        domain.check_can_hand_over(state, decided_here)
        if not result_summary.strip():
            raise FormError([FieldProblem("result_summary", "办理结果", "请填写交付的办理结果")])
        if problems := free_text_problems(("result_summary", "办理结果", result_summary)):
            raise FormError(problems)
        record = records_pb2.Record()
        body = record.result_handed_over
        body.matter_id = matter_id
        body.handed_over_at_ms = self._now_ms()
        body.result_summary = result_summary.strip()
        body.materials_returned.extend(materials_returned)
        return self._append(record)

    def sign_off(self, matter_id: str, rating: str, comment: str = "", signature_png: bytes = b"", *,
                 confirmation: Confirmation | None = None) -> SignedRecord:
        """The villager confirms receipt and rates the service (签收确认): only with the villager's own
        mark (`signature_png`, the drawn pad; or `confirmation`: a photo of the signed form, a
        fingerprint 按手印, or a witness who is not the agent). Refused in Chinese otherwise."""
        state = self.store.matter_state(matter_id)
        domain.check_can_sign_off(state)
        if confirmation is None:
            confirmation = Confirmation("drawn_signature", signature_png) if signature_png else Confirmation()
        problems = []
        if rating not in RATINGS:
            problems.append(FieldProblem("rating", "满意度评价", "请选择：非常满意、满意、基本满意、不满意、非常不满意"))
        if len(comment) > 300:
            problems.append(FieldProblem("comment", "意见建议", "意见建议不超过 300 字"))
        else:
            problems.extend(free_text_problems(("comment", "意见建议", comment)))
        problems.extend(self._check_confirmation(confirmation))
        if problems:
            raise FormError(problems)
        record = records_pb2.Record()
        body = record.signed_off
        body.matter_id = matter_id
        body.rating = RATINGS[rating]
        body.comment = comment.strip()
        body.confirmation_method = AUTHORIZATION_METHODS[confirmation.method]
        if confirmation.method == "witness":
            evidence = json.dumps({"witness_name": confirmation.witness_name.strip(),
                                   "statement": confirmation.witness_statement.strip()}, ensure_ascii=False).encode()
        else:
            evidence = confirmation.evidence
        body.sealed_signature = self._seal(evidence)
        body.sealed_to_key_id = self.config.township_key_id
        body.evidence_sha256 = hashlib.sha256(evidence).digest()
        body.signed_at_ms = self._now_ms()
        # The 交付签收单 is numbered and signed in the sign-off's transaction.
        return self._append(record, then=lambda conn: self.documents.issue_at_sign_off(conn, matter_id))

    def _check_confirmation(self, c: Confirmation) -> list[FieldProblem]:
        label = "签收确认"
        if c.method not in AUTHORIZATION_METHODS:
            return [FieldProblem("signature", label, "须由群众签名、拍摄已签字的签收单或按手印确认；"
                                                      "群众无法签字时，须由代办员以外的见证人证明")]
        if c.method == "witness":
            return self._check_witness(c.witness_name, c.witness_statement, "由见证人证明时，请填写见证人姓名")
        if c.method == "drawn_signature":
            problem = drawn_signature_problem(c.evidence)
        elif c.method == "fingerprint":
            problem = photo_problem(c.evidence, what="群众按的手印")
        else:
            problem = photo_problem(c.evidence, what="群众签字的签收单")
        return [FieldProblem("signature", label, problem)] if problem else []

    def follow_up(self, matter_id: str, *, reached: bool, outcome: str, rating: str = "") -> SignedRecord:
        state = self.store.matter_state(matter_id)
        domain.check_can_follow_up(state)
        if rating and rating not in RATINGS:
            raise FormError([FieldProblem("rating", "回访评价", "评价无效")])
        if problems := free_text_problems(("outcome", "回访情况", outcome)):
            raise FormError(problems)
        record = records_pb2.Record()
        body = record.follow_up_called
        body.matter_id = matter_id
        body.called_at_ms = self._now_ms()
        body.reached = reached
        body.outcome = outcome.strip()
        body.rating = RATINGS.get(rating, records_pb2.RATING_UNSPECIFIED)
        body.caller_id = self.signer.key_id
        return self._append(record)
