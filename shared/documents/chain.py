"""A document as a record in its issuer's signed chain (`DocumentIssued`, docs/wire-v1.md "Written
documents"), and checking a paper or file against such a record at the tier that received it.

The issuer signs the number, the kind, the matter and both hashes into its chain in the transaction
that allocates the number; the receiving tier (the county for a township's documents, the township
for a laptop's) keeps them. It never holds the content itself (the hashes carry no personal data), so
it checks what a person brings: the check code printed on the paper, the printed HTML page, or the
archive PDF, which carries the signed HTML inside it (`adapters.pdf`) and is its layout byte for byte.
Pure: the caller reads the stored record and, for a PDF, passes the extraction and layout engines.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from shared.documents.content import date_zh
from shared.documents.errors import DocumentNotFound
from shared.documents.kinds import DocumentKind
from shared.documents.signed import IssuedDocument, Verification
from shared.wire.v1 import records_pb2

__all__ = ["document_record", "ReceivedDocument", "received_from_record", "verify_received", "received_verification"]


def document_record(doc: IssuedDocument, *, kind: DocumentKind, matter_id: str, issued_at_ms: int) -> records_pb2.Record:
    """The chain record of a document just issued (its audience is the caller's)."""
    record = records_pb2.Record()
    body = record.document_issued
    body.number, body.kind, body.matter_id = doc.number, kind.value, matter_id
    body.content_sha256 = bytes.fromhex(doc.content_hash)
    body.html_sha256 = bytes.fromhex(doc.html_sha256)
    body.issued_at_ms = issued_at_ms
    return record


@dataclass(frozen=True)
class ReceivedDocument:
    """A document as the receiving tier knows it: from the issuer's signed `DocumentIssued`."""

    number: str
    kind: str
    matter_id: str
    content_sha256: str        # hex
    html_sha256: str           # hex
    issued_at_ms: int
    issuer_name: str           # the issuing township or village, by name
    author_key_id: str
    seq: int                   # where in the issuer's chain it was signed

    @property
    def title(self) -> str:
        try:
            return DocumentKind(self.kind).title_zh
        except ValueError:
            return "文书"


def received_from_record(body: records_pb2.DocumentIssued, *, issuer_name: str, author_key_id: str,
                         seq: int) -> ReceivedDocument:
    """Raises ValueError when the record is malformed (hashes not 32 bytes, no number)."""
    if not body.number or len(body.content_sha256) != 32 or len(body.html_sha256) != 32:
        raise ValueError("document_issued without a number or with malformed hashes")
    return ReceivedDocument(body.number, body.kind, body.matter_id, bytes(body.content_sha256).hex(),
                            bytes(body.html_sha256).hex(), int(body.issued_at_ms), issuer_name, author_key_id, seq)


def verify_received(doc: ReceivedDocument, *, typed_hash: str = "", html: bytes | None = None,
                    pdf: bytes | None = None, pdf_html: Callable[[bytes], bytes | None] | None = None,
                    render_pdf: Callable[[str], bytes] | None = None) -> Verification:
    """Whether what a person brings is what the issuer signed: the typed check code (or full hash),
    an HTML page, or a PDF (`pdf_html` extracts the HTML it carries, `render_pdf` lays that HTML out
    again to compare the pages). Nothing brought is itself a problem: the record alone proves only
    that a document of this number exists."""
    problems: list[str] = []
    checks = [f"{doc.issuer_name}已对该文书电子签名，签名记录已送达本机关（其签名链第{doc.seq}条）"]
    if typed_hash:
        if doc.content_sha256.startswith(typed_hash.lower()):
            checks.append("校验码与签发机关签名的内容哈希相符")
        else:
            problems.append("您输入的校验码与该编号的文书不符")
    if html is not None:
        if hashlib.sha256(html).hexdigest() == doc.html_sha256:
            checks.append("所给的打印件（HTML）与签发机关签名的逐字节相同")
        else:
            problems.append("所给的打印件（HTML）与签发机关签名的不是同一份（内容不同）")
    if pdf is not None:
        inner = pdf_html(pdf) if pdf_html is not None else None
        if inner is None:
            problems.append("所给的 PDF 不是本系统生成的存档 PDF（其中没有签名的打印件），无法核验")
        elif hashlib.sha256(inner).hexdigest() != doc.html_sha256:
            problems.append("所给的 PDF 中的打印件与签发机关签名的不是同一份（内容不同）")
        elif render_pdf is None:
            checks.append("所给的 PDF 中的打印件与签发机关签名的相同（本机无法生成 PDF，未比对版面）")
        elif render_pdf(inner.decode("utf-8")) == pdf:
            checks.append("所给的 PDF 就是签名的打印件生成的存档 PDF，逐字节相同")
        else:
            problems.append("所给的 PDF 的版面与签名的打印件不一致（PDF 被改动过）")
    if not typed_hash and html is None and pdf is None:
        problems.append("请提供文书上印的校验码，或文书的 HTML / PDF 文件，才能比对内容")
    issued = dt.datetime.fromtimestamp(doc.issued_at_ms / 1000, tz=dt.UTC)
    return Verification(doc.number, tuple(problems), doc.title, doc.issuer_name, date_zh(issued), tuple(checks))


def received_verification(found: list[ReceivedDocument], *, typed_hash: str = "", html: bytes | None = None,
                          pdf: bytes | None = None, pdf_html: Callable[[bytes], bytes | None] | None = None,
                          render_pdf: Callable[[str], bytes] | None = None) -> Verification:
    """`verify_received` over every received document of one number (two issuers may have configured
    the same prefix): the first that what was brought matches, else the first. Raises `DocumentNotFound`."""
    if not found:
        raise DocumentNotFound("没有找到该编号的文书：本机关和下级签发机关报送的文书中都没有，请核对文书右上方的编号")
    results = [verify_received(d, typed_hash=typed_hash, html=html, pdf=pdf, pdf_html=pdf_html, render_pdf=render_pdf)
               for d in found]
    return next((r for r in results if r.genuine), results[0])
