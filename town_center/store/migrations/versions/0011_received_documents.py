"""Documents another tier signed into its chain (`DocumentIssued`): the township keeps its villages'
laptops' documents, the county its townships', by number, kind, matter and hashes (no content), so a
paper or file brought to this tier can be checked against what its issuer signed.

Revision ID: town_0011
Revises: town_0010

Explicit operations, frozen: never import the models here, they move on and this revision must not.
New tables only, so a database made by `create_all` and one migrated here are alike to the byte.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "town_0011"
down_revision: str | None = "town_0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("received_document",
        sa.Column("author_key_id", sa.String(length=64), nullable=False),
        sa.Column("number", sa.String(length=96), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("matter_id", sa.String(length=64), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("html_sha256", sa.String(length=64), nullable=False),
        sa.Column("issued_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("received_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("author_key_id", "number", name="pk_received_document"),
    )
    op.create_index("ix_received_document_number", "received_document", ["number"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_received_document_number", table_name="received_document")
    op.drop_table("received_document")
