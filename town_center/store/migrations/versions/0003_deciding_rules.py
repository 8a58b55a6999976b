"""Deciding by the rules: the 否定报备 register says which refusal (不予受理 / 不予批准) and who approved
it; the inbox pages by receipt time on an index, elderly/disabled first.

Revision ID: town_0003
Revises: town_0002

Explicit operations, frozen: never import the models here, they move on and this revision must not.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "town_0003"
down_revision: str | None = "town_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("refusal_register") as batch:
        batch.add_column(sa.Column("refusal_kind", sa.String(length=16), nullable=False, server_default="not_accepted"))
        batch.add_column(sa.Column("approved_by", sa.String(length=64), nullable=False, server_default=""))
    op.create_index("ix_town_matter_received", "town_matter", ["received_at_ms"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_town_matter_received", table_name="town_matter")
    with op.batch_alter_table("refusal_register") as batch:
        batch.drop_column("approved_by")
        batch.drop_column("refusal_kind")
