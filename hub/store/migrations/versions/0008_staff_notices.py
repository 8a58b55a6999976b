"""The county's own 督办 kept for its staff until read (`hub.evaluation.county_staff_notice`).

Revision ID: hub_0008
Revises: hub_0007

Explicit operations, frozen: never import the models here, they move on and this revision must not.
A new table only.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "hub_0008"
down_revision: str | None = "hub_0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("county_staff_notice",
        sa.Column("notice_id", sa.String(length=64), nullable=False),
        sa.Column("matter_id", sa.String(length=64), nullable=False),
        sa.Column("hop", sa.String(length=16), nullable=False),
        sa.Column("responsible", sa.String(length=64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("issued_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("read_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("read_by", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("notice_id"),
    )
    op.create_index("ix_county_staff_notice_open", "county_staff_notice", ["read_at_ms", "issued_at_ms"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_county_staff_notice_open", table_name="county_staff_notice")
    op.drop_table("county_staff_notice")
