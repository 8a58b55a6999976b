"""The printed receipt and one-time notification, as plain data.

The village collects 收件 a township or county matter on the villager's behalf, so its receipt is a
代办收件回执 (a 受理回执 only for a matter the village decides itself; a 退回告知书 for a returned
request). Everything on it comes from the signed filing record, never from today's catalogue: the
notice lines are the ones written at filing (`RequestFiled.intake_notice`), so a reprint says what
the villager was told the first time. Records filed before the notice was kept get it rebuilt from
what the record holds (materials brought, tolerated with their dates), marked as rebuilt.

Both the CLI (text) and the web UI (HTML) render from `ReceiptView`, so they never disagree.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select

from shared.clock import from_unix_ms, to_unix_ms
from shared.documents.adapters import sql
from shared.documents.adapters.archive import DocumentArchive, IssuerSettings
from shared.documents.chain import document_record
from shared.documents.content import Line
from shared.documents.drafts import DocumentDraft
from shared.documents.errors import DocumentInvalid
from shared.documents.kinds import DocumentKind, IssuingTier
from shared.documents.signed import IssuedDocument, Verification
from shared.domain.catalog import IntakeOutcome, Tier, assess_materials
from shared.errors import CatalogError
from shared.wire.v1 import records_pb2
from village_agent.domain import RATING_ZH, MatterStatus
from village_agent.hop import hop_due
from village_agent.notice import AUTHORIZED_POWERS_ZH, authorization_text, intake_notice_lines
from village_agent.services import AgentService

SHANGHAI = ZoneInfo("Asia/Shanghai")
REBUILT_ZH = "（本告知书登记时未单独保存，据登记记录和现行服务事项目录重新生成）"


@dataclass(frozen=True)
class ReceiptView:
    matter_id: str
    lookup_code: str
    title: str
    matter_name: str
    catalog_code: str
    applicant_name: str
    id_masked: str
    village_name: str
    agent_name: str
    township_name: str
    filed_at: str
    accepted: bool
    notice_lines: tuple[str, ...]
    status_zh: str
    lookup_hint: str
    route_zh: str          # 报送：青石镇便民服务中心, or 办理：本村便民服务室
    rebuilt: bool = False


def receipt_title(outcome: int, village_decides: bool) -> str:
    if outcome == records_pb2.INTAKE_OUTCOME_RETURN:
        return "退回告知书"
    return "受理回执" if village_decides else "代办收件回执"


def build_receipt(service: AgentService, matter_id: str, *, conn: Connection | None = None) -> ReceiptView:
    """`conn`: read inside that (write) transaction, which sees the filing it has just made."""
    state = service.store.matter_state(matter_id, conn=conn)
    body = service.store.filing_record(matter_id, conn=conn).request_filed
    item = service.catalog.item(body.catalog_code) if body.catalog_code in service.catalog else None
    village_decides = item is not None and item.decided_by is Tier.VILLAGE
    notice = tuple(body.intake_notice.splitlines()) if body.intake_notice else ()
    rebuilt = not notice
    if rebuilt:
        notice = _rebuilt_notice(service, body, state.filed_claimed_ms)
    applicant = service.applicant(matter_id, conn=conn)
    filed_at = from_unix_ms(state.filed_claimed_ms).astimezone(SHANGHAI)
    code = service.store.lookup_code_of(matter_id, conn=conn)
    township = service.config.township_name
    return ReceiptView(
        matter_id=matter_id,
        lookup_code=code or "（本机无此件查询码：请以首次打印的回执为准）",
        title=receipt_title(body.intake_outcome, village_decides),
        matter_name=body.catalog_item_name or (item.name if item else body.catalog_code),
        catalog_code=body.catalog_code,
        applicant_name=applicant.name if applicant else "",
        id_masked=state.id_masked,
        village_name=service.config.village_name,
        agent_name=service.config.agent_name,
        township_name=township,
        filed_at=f"{filed_at:%Y年%m月%d日 %H:%M}",
        accepted=body.intake_outcome != records_pb2.INTAKE_OUTCOME_RETURN,
        notice_lines=notice,
        status_zh=state.status.label_zh,
        lookup_hint=(f"凭查询码可在{township}便民服务中心“办件进度查询”页面（政务公开）或到中心窗口查询办理进度，"
                     f"也可请本村代办员{service.config.agent_name}代为查询。"),
        route_zh=_route_zh(body.intake_outcome, village_decides, service.config.village_name, township),
        rebuilt=rebuilt,
    )


def _route_zh(outcome: int, village_decides: bool, village: str, township: str) -> str:
    if outcome == records_pb2.INTAKE_OUTCOME_RETURN:
        # Not passed on for handling; the township only registers the refusal (否定报备).
        return f"备案：{township}便民服务中心（退回件登记，不报送办理）"
    return f"办理：{village}便民服务室" if village_decides else f"报送：{township}便民服务中心"


def _rebuilt_notice(service: AgentService, body: records_pb2.RequestFiled, filed_ms: int) -> tuple[str, ...]:
    """For records from before the notice was kept: rebuilt from the record's own materials and dates."""
    if body.catalog_code not in service.catalog:
        return ("一次性告知书", f"事项编码 {body.catalog_code}：现行服务事项目录中已无此事项，无法重新生成告知内容。", REBUILT_ZH)
    item = service.catalog.item(body.catalog_code)
    try:
        assessment = assess_materials(item, list(body.materials_brought), not_applicable=list(body.materials_not_applicable))
    except CatalogError:
        return ("一次性告知书", "登记时的材料与现行服务事项目录不一致，无法重新生成告知内容。", REBUILT_ZH)
    commitments = {t.material_id: t.supply_by_date for t in body.tolerated_missing if _is_date(t.supply_by_date)}
    if assessment.outcome is IntakeOutcome.ACCEPT_WITH_TOLERANCE and set(commitments) != {m.id for m in assessment.missing_auxiliary}:
        commitments = {}
    lines = intake_notice_lines(assessment, commitments, township_name=service.config.township_name,
                                village_due=hop_due(item, from_unix_ms(filed_ms), service.calendar))
    return (*lines, REBUILT_ZH)


def _is_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def receipt_text(view: ReceiptView) -> str:
    lines = [
        f"{view.village_name}便民服务室  {view.title}",
        f"查询码：{view.lookup_code}",
        view.lookup_hint,
        f"事项：{view.matter_name}",
        f"申请人：{view.applicant_name}    身份证：{view.id_masked}",
        f"收件时间：{view.filed_at}    代办员：{view.agent_name}",
        view.route_zh,
        "",
        *view.notice_lines,
        "",
        "代办员签字：            申请人签字（或按手印）：            日期：",
    ]
    return "\n".join(lines)


def format_due(due_at_ms: int) -> str:
    if not due_at_ms:
        return "未计时"
    return f"{from_unix_ms(due_at_ms).astimezone(SHANGHAI):%Y-%m-%d %H:%M}"


def now_local(service: AgentService) -> dt.datetime:
    return service.clock.now().astimezone(SHANGHAI)


# ============================================================== numbered, signed documents (文书)
#
# The laptop's documents are numbered and signed like the township's (`shared.documents`), in the
# transaction of the record that issues them: the receipt, one-time notice, application form and 委托书
# with the filing, the 交付签收单 with the sign-off (`AgentStore.append(then=...)`). Each is also a
# `DocumentIssued` record of the laptop's chain, so the township can verify the paper (docs/wire-v1.md
# "Written documents"). Every print serves the stored bytes. Their content comes from the signed filing
# record and the matter's state, never from today's catalogue alone.

PRINTABLE = {
    "receipt": DocumentKind.COLLECTION_RECEIPT,
    "notice": DocumentKind.ONE_TIME_NOTICE,
    "application": DocumentKind.APPLICATION_FORM,
    "authorization": DocumentKind.AUTHORIZATION,
    "handover": DocumentKind.HANDOVER,
}
_METHOD_ZH = {
    records_pb2.AUTHORIZATION_METHOD_DRAWN_SIGNATURE: "委托人在代办员电脑上现场手写签名",
    records_pb2.AUTHORIZATION_METHOD_PHOTO_OF_FORM: "委托人在纸质委托书上签字（已拍照留存）",
    records_pb2.AUTHORIZATION_METHOD_WITNESS: "委托人不能书写，由代办员以外的见证人见证",
    records_pb2.AUTHORIZATION_METHOD_FINGERPRINT: "委托人在纸质委托书上按手印（已拍照留存）",
}


FILING_KINDS = (DocumentKind.COLLECTION_RECEIPT, DocumentKind.ONE_TIME_NOTICE, DocumentKind.APPLICATION_FORM,
                DocumentKind.AUTHORIZATION)


class VillageDocuments:
    """The laptop's printable documents for one agent service (browser print; no PDF on the laptop)."""

    def __init__(self, service: AgentService) -> None:
        self.service = service
        # Content and HTML name the villager: encrypted at rest with the laptop's vault, like the applicant.
        self.archive = DocumentArchive(IssuingTier.VILLAGE, service.signer, self._settings, pdf=None, vault=service.vault)

    def _settings(self, conn: Connection) -> IssuerSettings:
        village = self.service.config.village_name
        return IssuerSettings(f"{village}便民服务室", f"{village}村民委员会便民服务室", f"{village}代办",
                              f"本文书已由本村代办员电脑签名留存；办理进度凭查询码在{self.service.config.township_name}"
                              "便民服务中心“办件进度查询”页面查询")

    def issue_at_filing(self, conn: Connection, matter_id: str) -> list[records_pb2.Record]:
        """Inside the filing's transaction: number and sign the filing's documents; their chain records."""
        return [self._issue_in(conn, kind, matter_id)[1] for kind in FILING_KINDS]

    def issue_at_sign_off(self, conn: Connection, matter_id: str) -> list[records_pb2.Record]:
        """Inside the sign-off's transaction: the 交付签收单 (unless one was printed before)."""
        if self._number_of(conn, DocumentKind.HANDOVER, matter_id) is not None:
            return []
        return [self._issue_in(conn, DocumentKind.HANDOVER, matter_id)[1]]

    def _issue_in(self, conn: Connection, kind: DocumentKind, matter_id: str) -> tuple[IssuedDocument, records_pb2.Record]:
        now = self.service.clock.now()
        doc = self.archive.issue_in(conn, self._draft(kind, matter_id, conn=conn), now=now)
        return doc, document_record(doc, kind=kind, matter_id=matter_id, issued_at_ms=to_unix_ms(now))

    @staticmethod
    def _number_of(conn: Connection, kind: DocumentKind, matter_id: str) -> str | None:
        d = sql.issued_document
        return conn.execute(select(d.c.number).where(d.c.matter_id == matter_id, d.c.kind == kind.code)
                            .order_by(d.c.issued_at_ms).limit(1)).scalar()

    def issue_or_load(self, what: str, matter_id: str) -> IssuedDocument:
        """The matter's document of this kind as issued with its record; a matter filed before documents
        were issued with the filing gets it now, numbered and signed into the chain in one transaction."""
        kind = PRINTABLE.get(what)
        if kind is None:
            raise DocumentInvalid("没有这种文书")
        with self.service.store.engine.connect() as conn:
            number = self._number_of(conn, kind, matter_id)
            if number is not None:
                return self.archive.load(conn, number)
        # Printable once the result is handed over: a villager who signs off on paper (signature or
        # fingerprint photographed) needs the numbered form before the sign-off is recorded.
        if kind is DocumentKind.HANDOVER and self.service.store.matter_state(matter_id).status not in (
                MatterStatus.HANDED_OVER, MatterStatus.SIGNED_OFF):
            raise DocumentInvalid("办理结果尚未交付：交付签收单在交付后即可打印，群众签收时编号签发")
        issued: list[IssuedDocument] = []

        def build(conn: Connection) -> list[records_pb2.Record]:
            number = self._number_of(conn, kind, matter_id)   # another window printed it meanwhile
            if number is not None:
                issued.append(self.archive.load(conn, number))
                return []
            doc, record = self._issue_in(conn, kind, matter_id)
            issued.append(doc)
            return [record]

        service = self.service
        if service.store.sign_in(service.signer, build, to_unix_ms(service.clock.now()),
                                 queued_at_ms=to_unix_ms(service.clock.now())) and service.on_recorded is not None:
            service.on_recorded()
        return issued[0]

    def load(self, number: str) -> IssuedDocument:
        with self.service.store.engine.connect() as conn:
            return self.archive.load(conn, number)

    def verify(self, number: str, *, typed_hash: str = "") -> Verification:
        with self.service.store.engine.connect() as conn:
            return self.archive.verify(conn, number, typed_hash=typed_hash)

    # ------------------------------------------------------------------ content from the records

    def _draft(self, kind: DocumentKind, matter_id: str, *, conn: Connection | None = None) -> DocumentDraft:
        service = self.service
        view = build_receipt(service, matter_id, conn=conn)
        body = service.store.filing_record(matter_id, conn=conn).request_filed
        state = service.store.matter_state(matter_id, conn=conn)
        applicant = service.applicant(matter_id, conn=conn)
        name = view.applicant_name or "申请人"
        common = (Line("申请事项", view.matter_name), Line("申请人", name), Line("收件时间", view.filed_at),
                  Line("代办员", view.agent_name))
        if kind is DocumentKind.COLLECTION_RECEIPT:
            return DocumentDraft(kind, matter_id, name, title=view.title,
                                 opening=f"你的“{view.matter_name}”申请材料已由本村代办员代为收件，记录如下。",
                                 lines=(Line("查询码", view.lookup_code), *common,
                                        Line("身份证号（脱敏）", view.id_masked or "—"), Line("去向", view.route_zh),
                                        *self._material_lines(body)),
                                 paragraphs=(view.lookup_hint,),
                                 signatures=(Line("代办员签字", ""), Line("申请人签字（或按手印）", "")))
        if kind is DocumentKind.ONE_TIME_NOTICE:
            return DocumentDraft(kind, matter_id, name, opening=f"关于你申请的“{view.matter_name}”，现将所需材料、办理程序、"
                                 "时限、收费和依据一次性书面告知如下。", lines=common, items=view.notice_lines,
                                 signatures=(Line("申请人确认已知悉（签字或按手印）", ""),))
        if kind is DocumentKind.APPLICATION_FORM:
            lines = [*common, Line("身份证号（脱敏）", view.id_masked or "—")]
            if applicant is not None:
                lines += [Line("联系电话", applicant.phone), Line("住址", applicant.address)]
            lines += [Line("收件方式", "上门服务" if body.door_to_door else f"{view.village_name}便民服务室"),
                      *self._material_lines(body)]
            return DocumentDraft(kind, matter_id, name, opening="本人申请由村代办员代为办理下列事项，所填情况属实。",
                                 lines=tuple(lines), signatures=(Line("申请人签字（或按手印）", ""), Line("代办员签字", "")))
        if kind is DocumentKind.AUTHORIZATION:
            auth = body.authorization
            lines = [Line("委托事项", view.matter_name), Line("委托人", name), Line("受托人（代办员）", view.agent_name),
                     Line("委托权限", AUTHORIZED_POWERS_ZH),
                     Line("委托期限", f"自{view.filed_at[:11]}起至该事项办结、结果交付并签收之日止"),
                     Line("委托方式", _METHOD_ZH.get(auth.method, "未注明"))]
            if auth.evidence_sha256:
                lines.append(Line("签名凭证校验值", bytes(auth.evidence_sha256).hex()[:32].upper()))
            return DocumentDraft(kind, matter_id, name, lines=tuple(lines),
                                 opening=authorization_text(applicant_name=view.applicant_name, matter_name=view.matter_name,
                                                            agent_name=view.agent_name, village_name=view.village_name,
                                                            from_date_zh=view.filed_at[:11]),
                                 signatures=(Line("委托人签名（或按手印）", ""),
                                             Line("见证人签名（委托人不能书写时；见证人不得为代办员本人）", ""),
                                             Line("受托人（代办员）签名", "")))
        if state.status not in (MatterStatus.HANDED_OVER, MatterStatus.SIGNED_OFF):
            raise DocumentInvalid("办理结果尚未交付，不能打印交付签收单")
        lines = [*common, Line("办理结果", state.message or "—"), Line("办理状态", state.status.label_zh)]
        if state.rating:
            lines.append(Line("满意度评价", RATING_ZH.get(state.rating, "—")))
        return DocumentDraft(kind, matter_id, name, lines=tuple(lines),
                             opening=f"你申请的“{view.matter_name}”已办结，办理结果及材料已由代办员交付，请核对后签收。",
                             paragraphs=("签收后本次代办服务结束。对服务有意见的，可向乡镇便民服务中心反映。",),
                             signatures=(Line("申请人签收（签字或按手印）", ""), Line("代办员签字", "")))

    def _material_lines(self, body: records_pb2.RequestFiled) -> tuple[Line, ...]:
        """Exactly what the filing record says of each material: brought, 不适用, 容缺 (with its date), missing."""
        catalog = self.service.catalog
        item = catalog.item(body.catalog_code) if body.catalog_code in catalog else None
        names = {m.id: m.name for m in item.materials} if item is not None else {}

        def named(ids: Iterable[object]) -> str:
            return "、".join(names.get(str(i), str(i)) for i in ids) or "无"

        brought, na = list(body.materials_brought), list(body.materials_not_applicable)
        tolerated = [f"{names.get(t.material_id, t.material_id)}（承诺{t.supply_by_date}前补交）" for t in body.tolerated_missing]
        accounted = set(brought) | set(na) | {t.material_id for t in body.tolerated_missing}
        missing = [m for m in (item.materials if item is not None else ()) if m.id not in accounted]
        return (Line("已收材料", named(brought)), Line("不适用的材料", named(na)),
                Line("容缺材料", "、".join(tolerated) or "无"),
                Line("尚缺材料", "、".join(m.name for m in missing) or "无"))
