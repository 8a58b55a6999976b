"""The numbering table and the archive of issued documents, on their own `MetaData` (one set per
tier database: the township's and the county's migrations create them).

A number is allocated by incrementing the (year, kind) row inside the caller's transaction: on
PostgreSQL the UPDATE takes the row lock, so concurrent issuers queue and each sees the previous
one's number; on SQLite the transaction already holds the database's write lock. A rolled-back
action rolls its increment back with it, so the sequence has no gaps.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger, Column, Connection, Index, Integer, LargeBinary, MetaData, PrimaryKeyConstraint, String, Table, Text,
    UniqueConstraint, insert, select, update,
)
from sqlalchemy.exc import IntegrityError

from shared.documents.errors import DocumentNotFound
from shared.documents.kinds import DocumentKind
from shared.documents.signed import IssuedDocument

__all__ = ["metadata", "document_sequence", "issued_document", "allocate_seq", "save_document", "load_document",
           "documents_of_matter", "set_pdf", "DocumentRow"]

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

DocumentRow = Any


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
                  title: str, issued_at_ms: int) -> None:
    conn.execute(insert(issued_document).values(
        number=doc.number, kind=kind.code, year=year, seq=seq, matter_id=matter_id[:64], title=title[:40],
        issued_at_ms=issued_at_ms, content_json=doc.content_json, content_hash=doc.content_hash, html=doc.html,
        html_sha256=doc.html_sha256, key_id=doc.key_id, signature=doc.signature, pdf=doc.pdf,
        pdf_sha256=doc.pdf_sha256))


def set_pdf(conn: Connection, number: str, pdf: bytes) -> None:
    """Archive a PDF rendered after the document was issued (the PDF engine was missing then)."""
    conn.execute(update(issued_document).where(issued_document.c.number == number, issued_document.c.pdf.is_(None))
                 .values(pdf=pdf))


def _to_issued(row: Any) -> IssuedDocument:
    return IssuedDocument(number=row.number, content_json=bytes(row.content_json), content_hash=row.content_hash,
                          html=row.html, html_sha256=row.html_sha256, key_id=row.key_id, signature=bytes(row.signature),
                          pdf=bytes(row.pdf) if row.pdf is not None else None, pdf_sha256=row.pdf_sha256 or "")


def load_document(conn: Connection, number: str) -> IssuedDocument:
    row = conn.execute(select(issued_document).where(issued_document.c.number == number)).first()
    if row is None:
        raise DocumentNotFound("没有找到该编号的文书，请核对文书右上方的编号")
    return _to_issued(row)


def documents_of_matter(conn: Connection, matter_id: str) -> list[Any]:
    """The matter's documents, oldest first, without their bodies (for the matter page's list)."""
    d = issued_document
    return list(conn.execute(select(d.c.number, d.c.kind, d.c.title, d.c.issued_at_ms, d.c.content_hash,
                                    d.c.pdf.is_not(None).label("has_pdf")).where(d.c.matter_id == matter_id)
                             .order_by(d.c.issued_at_ms, d.c.number)).all())
