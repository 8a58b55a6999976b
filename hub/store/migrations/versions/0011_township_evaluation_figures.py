"""The 好差评 figures each township signs up per month (`hub.evaluation.township_evaluation_figures`).

Revision ID: hub_0011
Revises: hub_0010

Explicit operations, frozen: never import the models here, they move on and this revision must not.
A new table only.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "hub_0011"
down_revision: str | None = "hub_0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("township_evaluation_figures",
        sa.Column("township_code", sa.String(length=32), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("cells_json", sa.Text(), nullable=False),
        sa.Column("computed_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("received_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("township_code", "month"),
    )


def downgrade() -> None:
    op.drop_table("township_evaluation_figures")
