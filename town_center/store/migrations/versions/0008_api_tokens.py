"""Per-staff API tokens for the JSON API at `/api`: only each token's SHA-256 is kept, with its owner,
purpose, expiry, revocation and last use.

Revision ID: town_0008
Revises: town_0007

Explicit operations, frozen: never import the models here, they move on and this revision must not.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "town_0008"
down_revision: str | None = "town_0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_token",
        sa.Column("token_no", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("staff_id", sa.String(length=64), nullable=False),
        sa.Column("note", sa.String(length=100), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("last_used_at_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("token_no"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_api_token_staff_id", "api_token", ["staff_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_api_token_staff_id", table_name="api_token")
    op.drop_table("api_token")
