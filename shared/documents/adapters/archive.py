"""Issuing a document inside the transaction of the record that issues it: allocate the number,
build the content, sign, store; the archive PDF is laid out once that transaction has committed.
Shared by the township and the county (`town_center.documents`, `hub.documents`) and the laptop."""
from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine

from shared.clock import to_unix_ms
from shared.documents.adapters import sql
from shared.documents.adapters.pdf import html_to_pdf
from shared.documents.content import DocumentContent
from shared.documents.drafts import DocumentDraft
from shared.documents.errors import DocumentNotFound, DocumentRenderError
from shared.documents.kinds import IssuingTier
from shared.documents.numbering import format_number, numbering_year
from shared.documents.signed import IssuedDocument, Verification, issue, verify_document, with_pdf_check
from shared.signing import Signer

__all__ = ["DocumentListing", "IssuerSettings", "DocumentArchive", "ISSUER_META"]

log = logging.getLogger(__name__)

# Store meta key holding the issuer's configured name, seal text and number prefix (JSON).
ISSUER_META = "document_issuer"


@dataclass(frozen=True)
class DocumentListing:
    """One line of a matter page's list of documents."""

    number: str
    title: str
    issued_at: dt.datetime
    check_code: str
    has_pdf: bool


@dataclass(frozen=True)
class IssuerSettings:
    name: str            # 青石镇便民服务中心
    seal_text: str       # the seal's text, e.g. 青石镇人民政府便民服务中心
    prefix: str          # the number's issuer word: 青石镇便民中心〔2026〕受字第1号
    verify_hint: str = ""

    def to_json(self) -> str:
        return json.dumps({"name": self.name, "seal_text": self.seal_text, "prefix": self.prefix,
                           "verify_hint": self.verify_hint}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> IssuerSettings:
        d = json.loads(text)
        return cls(str(d["name"]), str(d["seal_text"]), str(d["prefix"]), str(d.get("verify_hint", "")))


@dataclass
class DocumentArchive:
    tier: IssuingTier
    signer: Signer
    settings: Callable[[Connection], IssuerSettings]
    # The PDF engine; None keeps documents without a PDF (rendered later by `archive_pdf`).
    pdf: Callable[[str], bytes] | None = html_to_pdf
    # Encrypts content and HTML at rest (the laptop's vault); None on the servers.
    vault: sql.DocumentVault | None = None
    _local: threading.local = field(default_factory=threading.local, repr=False)

    def issue_in(self, conn: Connection, draft: DocumentDraft, *, now: dt.datetime) -> IssuedDocument:
        settings = self.settings(conn)
        year = numbering_year(now)
        seq = sql.allocate_seq(conn, year, draft.kind)
        number = format_number(settings.prefix, year, draft.kind, seq)
        content = DocumentContent(
            kind=draft.kind, tier=self.tier, number=number, title=draft.title or draft.kind.title_zh,
            issuer_name=settings.name, seal_text=settings.seal_text, issued_at_ms=to_unix_ms(now),
            matter_id=draft.matter_id, addressee=draft.addressee, opening=draft.opening, lines=draft.lines,
            list_heading=draft.list_heading, items=draft.items, paragraphs=draft.paragraphs, rights=draft.rights,
            signatures=draft.signatures, footer_note=draft.footer_note, verify_hint=settings.verify_hint)
        # The PDF is laid out after the transaction commits (`archive_pending`): WeasyPrint takes about half
        # a second for an A4 page of Chinese, too long to hold the database's write lock.
        doc = issue(content, self.signer)
        sql.save_document(conn, doc, kind=draft.kind, year=year, seq=seq, matter_id=draft.matter_id,
                          title=content.title, issued_at_ms=content.issued_at_ms, vault=self.vault)
        if self.pdf is not None:
            pending = getattr(self._local, "pending", None)
            if pending is None:
                pending = self._local.pending = []
            pending.append(number)
        return doc

    def archive_pending(self, engine: Engine) -> None:
        """Render and store the PDFs of the documents this thread issued in transactions now committed
        (a rolled-back one's number no longer exists and is skipped). A PDF that cannot be made now is
        made when first asked for (`archive_pdf`)."""
        pending = getattr(self._local, "pending", None) or []
        self._local.pending = []
        if self.pdf is None:
            return
        for number in pending:
            try:
                with engine.connect() as conn:
                    doc = sql.load_document(conn, number, vault=self.vault)
                if doc.pdf is not None:
                    continue
                pdf = self.pdf(doc.html)
                with engine.begin() as conn:
                    sql.set_pdf(conn, number, pdf)
            except DocumentNotFound:
                continue
            except Exception:
                log.exception("archive PDF of %s not made now", number)

    def load(self, conn: Connection, number: str) -> IssuedDocument:
        return sql.load_document(conn, number, vault=self.vault)

    def archive_pdf(self, conn: Connection, number: str) -> bytes:
        """The archived PDF, rendered now from the signed HTML if it was not rendered at issue."""
        doc = sql.load_document(conn, number, vault=self.vault)
        if doc.pdf is not None:
            return doc.pdf
        if self.pdf is None:
            raise DocumentRenderError("本机未配置 PDF 生成组件")
        pdf = self.pdf(doc.html)
        sql.set_pdf(conn, number, pdf)
        return pdf

    def verify(self, conn: Connection, number: str, *, typed_hash: str = "", deep: bool = False) -> Verification:
        """`deep` also lays the signed HTML out again and compares it with the archived PDF (half a
        second: for the CLI and tests, not the public page)."""
        doc = sql.load_document(conn, number, vault=self.vault)
        result = verify_document(doc, {self.signer.key_id: self.signer.public_key}, typed_hash=typed_hash)
        if deep and doc.pdf is not None and self.pdf is not None:
            result = with_pdf_check(result, doc, self.pdf)
        return result
