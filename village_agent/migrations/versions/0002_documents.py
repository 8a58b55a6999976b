"""Written documents on the laptop (receipts, notices, authorizations, hand-over records, printed from its
browser): the numbering table (one gapless sequence per year and kind) and the archive of
issued documents (content, printed HTML, signature, PDF), as `shared.documents.adapters.sql` defines.

Revision ID: village_0002
Revises: village_0001

Explicit operations, frozen: never import the models here, they move on and this revision must not.
New tables only, so a database made by `create_all` and one migrated here are alike to the byte.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "village_0002"
down_revision: str | None = "village_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("document_sequence",
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("year", "kind", name="pk_document_sequence"),
    )
    op.create_table("issued_document",
        sa.Column("number", sa.String(length=96), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("matter_id", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=40), nullable=False),
        sa.Column("issued_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("content_json", sa.LargeBinary(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("html_sha256", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("signature", sa.LargeBinary(length=64), nullable=False),
        sa.Column("pdf", sa.LargeBinary(), nullable=True),
        sa.Column("pdf_sha256", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("number"),
        sa.UniqueConstraint("year", "kind", "seq", name="uq_issued_document_seq"),
    )
    op.create_index("ix_issued_document_matter", "issued_document", ["matter_id", "issued_at_ms"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_issued_document_matter", table_name="issued_document")
    op.drop_table("issued_document")
    op.drop_table("document_sequence")
