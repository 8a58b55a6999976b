"""好差评 and 督查: evaluations with their 差评 loop, evaluation tokens (keyed digests only), the 回访's
findings, the supervisor's overdue records and the township's own 督办 addressed to staff, as
`town_center.store.evaluation_tables` defines.

Revision ID: town_0009
Revises: town_0008

Explicit operations, frozen: never import the models here, they move on and this revision must not.
New tables only, so a database made by `create_all` and one migrated here are alike.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "town_0009"
down_revision: str | None = "town_0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("evaluation",
        sa.Column("evaluation_id", sa.String(length=32), nullable=False),
        sa.Column("matter_id", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("by_villager", sa.Boolean(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("rated_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("village_code", sa.String(length=32), nullable=False),
        sa.Column("catalog_code", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=True),
        sa.Column("operator_id", sa.String(length=64), nullable=False),
        sa.Column("agent_key_id", sa.String(length=32), nullable=False),
        sa.Column("sms_from_masked", sa.String(length=16), nullable=False),
        sa.Column("valid", sa.Boolean(), nullable=False),
        sa.Column("rect_state", sa.String(length=16), nullable=True),
        sa.Column("rect_owner", sa.String(length=64), nullable=True),
        sa.Column("rect_due_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("rect_json", sa.Text(), nullable=True),
        sa.Column("feed_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("evaluation_id"),
    )
    op.create_index("ix_evaluation_matter_source", "evaluation", ["matter_id", "by_villager"], unique=True)
    op.create_index("ix_evaluation_feed_seq", "evaluation", ["feed_seq"], unique=True)
    op.create_index("ix_evaluation_rated", "evaluation", ["rated_at_ms"], unique=False)
    op.create_table("evaluation_token",
        sa.Column("matter_id", sa.String(length=64), nullable=False),
        sa.Column("token_digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("issued_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("issued_by", sa.String(length=64), nullable=False),
        sa.Column("used_at_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("matter_id"),
    )
    op.create_index("ix_evaluation_token_digest", "evaluation_token", ["token_digest"], unique=True)
    op.create_table("follow_up_finding",
        sa.Column("matter_id", sa.String(length=64), nullable=False),
        sa.Column("evaluation_id", sa.String(length=32), nullable=True),
        sa.Column("reached", sa.Boolean(), nullable=False),
        sa.Column("attitude_ok", sa.Boolean(), nullable=False),
        sa.Column("efficiency_ok", sa.Boolean(), nullable=False),
        sa.Column("by_the_rules_ok", sa.Boolean(), nullable=False),
        sa.Column("integrity_ok", sa.Boolean(), nullable=False),
        sa.Column("satisfaction", sa.Integer(), nullable=False),
        sa.Column("suggestion", sa.Text(), nullable=False),
        sa.Column("recorded_by", sa.String(length=64), nullable=False),
        sa.Column("recorded_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("matter_id"),
    )
    op.create_table("overdue_record",
        sa.Column("record_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("matter_id", sa.String(length=64), nullable=False),
        sa.Column("hop", sa.String(length=16), nullable=False),
        sa.Column("what", sa.String(length=16), nullable=False),
        sa.Column("cause", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("reached", sa.Boolean(), nullable=True),
        sa.Column("overdue_working_days", sa.Integer(), nullable=False),
        sa.Column("recorded_by", sa.String(length=64), nullable=False),
        sa.Column("recorded_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("record_id"),
    )
    op.create_index("ix_overdue_record_matter", "overdue_record", ["matter_id", "record_id"], unique=False)
    op.create_table("staff_notice",
        sa.Column("notice_id", sa.String(length=64), nullable=False),
        sa.Column("matter_id", sa.String(length=64), nullable=False),
        sa.Column("hop", sa.String(length=16), nullable=False),
        sa.Column("owner_id", sa.String(length=64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("issued_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("read_by_owner_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("read_by_supervisor_at_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("notice_id"),
    )
    op.create_index("ix_staff_notice_owner", "staff_notice", ["owner_id", "issued_at_ms"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_staff_notice_owner", table_name="staff_notice")
    op.drop_table("staff_notice")
    op.drop_index("ix_overdue_record_matter", table_name="overdue_record")
    op.drop_table("overdue_record")
    op.drop_table("follow_up_finding")
    op.drop_index("ix_evaluation_token_digest", table_name="evaluation_token")
    op.drop_table("evaluation_token")
    op.drop_index("ix_evaluation_rated", table_name="evaluation")
    op.drop_index("ix_evaluation_feed_seq", table_name="evaluation")
    op.drop_index("ix_evaluation_matter_source", table_name="evaluation")
    op.drop_table("evaluation")
