"""A document as issued and stored: its content, the HTML printed, and the tier's Ed25519 signature
over a statement naming the number and both hashes. `verify_document` checks a stored document
against the issuing tier's public key and returns every problem, in Chinese."""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.documents.content import DocumentContent, canonical_json, content_from_json, content_hash
from shared.documents.render import html_sha256, render_html
from shared.signing import Signer, is_valid, key_id_for

__all__ = ["IssuedDocument", "issue", "statement", "verify_document", "Verification", "with_pdf_check"]

_STATEMENT_TAG = b"quancheng-document/v1\n"


def statement(number: str, digest: str, html_digest: str, pdf_digest: str) -> bytes:
    """The exact bytes the tier signs for a document (`pdf_digest` is empty when no PDF was made at issue)."""
    return _STATEMENT_TAG + f"{number}\n{digest}\n{html_digest}\n{pdf_digest}\n".encode()


@dataclass(frozen=True)
class IssuedDocument:
    number: str
    content_json: bytes
    content_hash: str
    html: str
    html_sha256: str
    key_id: str
    signature: bytes
    pdf: bytes | None = None
    pdf_sha256: str = ""

    @property
    def content(self) -> DocumentContent:
        return content_from_json(self.content_json)


def issue(content: DocumentContent, signer: Signer, *, pdf: Callable[[str], bytes | None] | None = None) -> IssuedDocument:
    """Render (HTML, and the PDF when `pdf` is given and returns one) and sign a document whose
    number has just been allocated."""
    html = render_html(content)
    digest, html_digest = content_hash(content), html_sha256(html)
    pdf_bytes = pdf(html) if pdf is not None else None
    pdf_digest = hashlib.sha256(pdf_bytes).hexdigest() if pdf_bytes is not None else ""
    return IssuedDocument(number=content.number, content_json=canonical_json(content), content_hash=digest, html=html,
                          html_sha256=html_digest, key_id=signer.key_id, pdf=pdf_bytes, pdf_sha256=pdf_digest,
                          signature=signer.sign(statement(content.number, digest, html_digest, pdf_digest)))


@dataclass(frozen=True)
class Verification:
    number: str
    problems: tuple[str, ...] = ()
    title: str = ""
    issuer_name: str = ""
    issued_on_zh: str = ""
    checks: tuple[str, ...] = field(default_factory=tuple)

    @property
    def genuine(self) -> bool:
        return not self.problems


def verify_document(doc: IssuedDocument, public_keys: dict[str, bytes], *, typed_hash: str = "") -> Verification:
    """Check a stored document: its content hashes to the recorded hash, its HTML is the recorded
    HTML, the signature is the issuing tier's over both, the content names this number, and (when a
    person typed the hash printed on their paper) that hash is this document's."""
    problems: list[str] = []
    checks: list[str] = []
    title = issuer = issued_on = ""
    try:
        content = content_from_json(doc.content_json)
        title, issuer, issued_on = content.title, content.issuer_name, content.issued_on_zh
    except (ValueError, KeyError, TypeError):
        content = None
        problems.append("文书内容已损坏，无法读取")
    if hashlib.sha256(doc.content_json).hexdigest() != doc.content_hash or (
            content is not None and content_hash(content) != doc.content_hash):
        problems.append("文书内容与签发时的哈希值不符（内容被改动过）")
    else:
        checks.append("内容哈希相符")
    if content is not None and content.number != doc.number:
        problems.append("文书内容中的编号与登记的编号不符")
    if html_sha256(doc.html) != doc.html_sha256:
        problems.append("打印件（HTML）与签发时不符（被改动过）")
    else:
        checks.append("打印件与首次打印逐字节相同")
    if content is not None and render_html(content) != doc.html:
        problems.append("打印件与文书内容不一致")
    key = public_keys.get(doc.key_id)
    if key is None or key_id_for(key) != doc.key_id:
        problems.append("签发机关的签名密钥不是本机关的密钥，无法确认文书出自本机关")
    elif not is_valid(key, statement(doc.number, doc.content_hash, doc.html_sha256, doc.pdf_sha256),
                          doc.signature):
        problems.append("签发机关的电子签名验证失败（文书被改动过或签名伪造）")
    else:
        checks.append("签发机关电子签名有效")
    if doc.pdf is not None and doc.pdf_sha256:
        if hashlib.sha256(doc.pdf).hexdigest() != doc.pdf_sha256:
            problems.append("存档的 PDF 与签发时不符（被改动过）")
        else:
            checks.append("存档 PDF 与签发时相同")
    elif doc.pdf is not None:
        checks.append("存档 PDF 由签名的打印件生成")
    if typed_hash and not doc.content_hash.startswith(typed_hash.lower()):
        problems.append("您输入的校验码与该编号的文书不符")
    return Verification(doc.number, tuple(problems), title, issuer, issued_on, tuple(checks))



def with_pdf_check(result: Verification, doc: IssuedDocument, render_pdf: Callable[..., bytes]) -> Verification:
    """The archived PDF is the signed HTML laid out again (the layout is deterministic), byte for byte.

    `render_pdf(html)` lays the HTML out; a renderer that also takes `embed_html=False` re-checks
    archives made before the PDF carried its HTML (one that does not raises TypeError, skipped)."""
    from dataclasses import replace

    from shared.documents.errors import DocumentRenderError

    if doc.pdf is None:
        return result
    try:
        same = render_pdf(doc.html) == doc.pdf
        if not same:
            try:
                # Archived before the PDF carried its HTML (adapters.pdf): laid out as then.
                same = render_pdf(doc.html, embed_html=False) == doc.pdf
            except TypeError:
                pass
    except DocumentRenderError:
        return replace(result, checks=(*result.checks, "本机无法生成 PDF，未比对存档 PDF"))
    if same:
        return replace(result, checks=(*result.checks, "存档 PDF 与签名的打印件重新生成的 PDF 逐字节相同"))
    return replace(result, problems=(*result.problems, "存档的 PDF 与签名的打印件不一致（PDF 被改动过）"))
