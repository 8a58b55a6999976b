"""The numbering table and the archive of issued documents, on their own `MetaData` (one set per
tier database: the township's and the county's migrations create them).

A number is allocated by incrementing the (year, kind) row inside the caller's transaction: on
PostgreSQL the UPDATE takes the row lock, so concurrent issuers queue and each sees the previous
one's number; on SQLite the transaction already holds the database's write lock. A rolled-back
action rolls its increment back with it, so the sequence has no gaps.
"""
from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from shared.documents.errors import DocumentNotFound
from shared.documents.kinds import DocumentKind
from shared.documents.signed import IssuedDocument

if TYPE_CHECKING:
    from shared.documents.chain import ReceivedDocument

__all__ = ["metadata", "document_sequence", "issued_document", "allocate_seq", "save_document", "load_document",
           "documents_of_matter", "set_pdf", "DocumentRow", "received_metadata", "received_document", "save_received",
           "load_received", "DocumentVault"]

metadata = MetaData()

document_sequence = Table(
    "document_sequence", metadata,
    Column("year", Integer, nullable=False),
    Column("kind", String(24), nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    PrimaryKeyConstraint("year", "kind", name="pk_document_sequence"),
)

issued_document = Table(
    "issued_document", metadata,
    Column("number", String(96), primary_key=True),
    Column("kind", String(24), nullable=False),
    Column("year", Integer, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("matter_id", String(64), nullable=False),
    Column("title", String(40), nullable=False),
    Column("issued_at_ms", BigInteger, nullable=False),
    Column("content_json", LargeBinary, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("html", Text, nullable=False),
    Column("html_sha256", String(64), nullable=False),
    Column("key_id", String(32), nullable=False),
    Column("signature", LargeBinary(64), nullable=False),
    Column("pdf", LargeBinary, nullable=True),
    Column("pdf_sha256", String(64), nullable=False, default=""),
    UniqueConstraint("year", "kind", "seq", name="uq_issued_document_seq"),
    Index("ix_issued_document_matter", "matter_id", "issued_at_ms"),
)

# Documents another tier signed into its chain (`DocumentIssued`): the county keeps the townships',
# the township the laptops'. Their own `MetaData`: the laptop receives none and must not create it.
received_metadata = MetaData()

received_document = Table(
    "received_document", received_metadata,
    Column("author_key_id", String(64), nullable=False),
    Column("number", String(96), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("kind", String(24), nullable=False),
    Column("matter_id", String(64), nullable=False),
    Column("content_sha256", String(64), nullable=False),
    Column("html_sha256", String(64), nullable=False),
    Column("issued_at_ms", BigInteger, nullable=False),
    Column("received_at_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("author_key_id", "number", name="pk_received_document"),
    Index("ix_received_document_number", "number"),
)

DocumentRow = Any

# The laptop keeps documents' content and printed HTML encrypted with its vault (names and ID numbers
# never rest in clear in its data folder); their hashes and signature stay as issued.
_SEALED = b"sealed:"


class DocumentVault(Protocol):
    def encrypt(self, plaintext: bytes, context: str) -> bytes: ...
    def decrypt(self, blob: bytes, context: str) -> bytes: ...


def allocate_seq(conn: Connection, year: int, kind: DocumentKind) -> int:
    """The next sequence number of `kind` in `year`, inside the caller's transaction."""
    s = document_sequence
    where = (s.c.year == year, s.c.kind == kind.code)
    if conn.execute(update(s).where(*where).values(last_seq=s.c.last_seq + 1)).rowcount == 0:
        try:
            with conn.begin_nested():
                conn.execute(insert(s).values(year=year, kind=kind.code, last_seq=1))
            return 1
        except IntegrityError:
            # Another transaction made the year's row first (PostgreSQL); it is there now to lock.
            conn.execute(update(s).where(*where).values(last_seq=s.c.last_seq + 1))
    return int(conn.execute(select(s.c.last_seq).where(*where)).scalar_one())


def save_document(conn: Connection, doc: IssuedDocument, *, kind: DocumentKind, year: int, seq: int, matter_id: str,
                  title: str, issued_at_ms: int, vault: DocumentVault | None = None) -> None:
    content, html = doc.content_json, doc.html
    if vault is not None:
        content = _SEALED + vault.encrypt(content, matter_id[:64])
        html = (_SEALED + base64.b64encode(vault.encrypt(html.encode("utf-8"), matter_id[:64]))).decode("ascii")
    conn.execute(insert(issued_document).values(
        number=doc.number, kind=kind.code, year=year, seq=seq, matter_id=matter_id[:64], title=title[:40],
        issued_at_ms=issued_at_ms, content_json=content, content_hash=doc.content_hash, html=html,
        html_sha256=doc.html_sha256, key_id=doc.key_id, signature=doc.signature, pdf=doc.pdf,
        pdf_sha256=doc.pdf_sha256))


def set_pdf(conn: Connection, number: str, pdf: bytes) -> None:
    """Archive a PDF rendered after the document was issued (the PDF engine was missing then)."""
    conn.execute(update(issued_document).where(issued_document.c.number == number, issued_document.c.pdf.is_(None))
                 .values(pdf=pdf))


def _to_issued(row: Any, vault: DocumentVault | None = None) -> IssuedDocument:
    content, html = bytes(row.content_json), str(row.html)
    if vault is not None and content.startswith(_SEALED):
        content = vault.decrypt(content[len(_SEALED):], row.matter_id)
    if vault is not None and html.startswith(_SEALED.decode("ascii")):
        html = vault.decrypt(base64.b64decode(html[len(_SEALED):]), row.matter_id).decode("utf-8")
    return IssuedDocument(number=row.number, content_json=content, content_hash=row.content_hash,
                          html=html, html_sha256=row.html_sha256, key_id=row.key_id, signature=bytes(row.signature),
                          pdf=bytes(row.pdf) if row.pdf is not None else None, pdf_sha256=row.pdf_sha256 or "")


def load_document(conn: Connection, number: str, *, vault: DocumentVault | None = None) -> IssuedDocument:
    row = conn.execute(select(issued_document).where(issued_document.c.number == number)).first()
    if row is None:
        raise DocumentNotFound("没有找到该编号的文书，请核对文书右上方的编号")
    return _to_issued(row, vault)


def save_received(conn: Connection, doc: ReceivedDocument, *, received_at_ms: int) -> None:
    """Keep a received document; the same record received again (a resend) changes nothing."""
    exists = conn.execute(select(received_document.c.seq).where(
        received_document.c.author_key_id == doc.author_key_id, received_document.c.number == doc.number)).first()
    if exists is not None:
        return
    conn.execute(insert(received_document).values(
        author_key_id=doc.author_key_id[:64], number=doc.number[:96], seq=doc.seq, kind=doc.kind[:24],
        matter_id=doc.matter_id[:64], content_sha256=doc.content_sha256, html_sha256=doc.html_sha256,
        issued_at_ms=doc.issued_at_ms, received_at_ms=received_at_ms))


def load_received(conn: Connection, number: str, issuer_names: dict[str, str]) -> list[ReceivedDocument]:
    """Every received document carrying this number (two issuers may share a prefix), oldest first;
    `issuer_names` names each signing key's holder."""
    from shared.documents.chain import ReceivedDocument

    r = received_document
    rows = conn.execute(select(r).where(r.c.number == number).order_by(r.c.issued_at_ms, r.c.author_key_id)).all()
    return [ReceivedDocument(row.number, row.kind, row.matter_id, row.content_sha256, row.html_sha256,
                             int(row.issued_at_ms), issuer_names.get(row.author_key_id, "下级签发机关"),
                             row.author_key_id, int(row.seq)) for row in rows]


def documents_of_matter(conn: Connection, matter_id: str) -> list[Any]:
    """The matter's documents, oldest first, without their bodies (for the matter page's list)."""
    d = issued_document
    return list(conn.execute(select(d.c.number, d.c.kind, d.c.title, d.c.issued_at_ms, d.c.content_hash,
                                    d.c.pdf.is_not(None).label("has_pdf")).where(d.c.matter_id == matter_id)
                             .order_by(d.c.issued_at_ms, d.c.number)).all())
