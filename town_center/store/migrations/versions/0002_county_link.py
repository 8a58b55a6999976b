"""The county link: the township's own chain to the county (county_ledger, county_outbox, county_receipt,
county_inbox, county_state) and the county's 督办 notices (county_notice).

Revision ID: town_0002
Revises: town_0001

Explicit operations, frozen: never import the models here, they move on and this revision must not.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "town_0002"
down_revision: str | None = "town_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The township's own chain to the county (shared.relay.sql_outbox.sender_tables with prefix "county_"): ledger,
    # outbox, verified receipts, records pulled from the county, link state.
    op.create_table('county_ledger',
        sa.Column('seq', sa.BigInteger(), nullable=False),
        sa.Column('record_id', sa.String(length=64), nullable=False),
        sa.Column('hash', sa.LargeBinary(length=32), nullable=False),
        sa.Column('payload', sa.LargeBinary(), nullable=False),
        sa.Column('signature', sa.LargeBinary(length=64), nullable=False),
        sa.Column('body_kind', sa.String(length=40), nullable=False),
        sa.Column('matter_id', sa.String(length=64), nullable=False),
        sa.Column('created_at_ms', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('seq')
    )
    op.create_index('ix_county_ledger_matter', 'county_ledger', ['matter_id'], unique=False)
    op.create_table('county_outbox',
        sa.Column('seq', sa.BigInteger(), nullable=False),
        sa.Column('queued_at_ms', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('seq')
    )
    op.create_table('county_receipt',
        sa.Column('seq', sa.BigInteger(), nullable=False),
        sa.Column('envelope', sa.LargeBinary(), nullable=False),
        sa.Column('receipt_time_ms', sa.BigInteger(), nullable=False),
        sa.Column('applied', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('seq')
    )
    op.create_index('ix_county_receipt_applied', 'county_receipt', ['applied'], unique=False)
    op.create_table('county_inbox',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('key_id', sa.String(length=32), nullable=False),
        sa.Column('payload', sa.LargeBinary(), nullable=False),
        sa.Column('signature', sa.LargeBinary(length=64), nullable=False),
        sa.Column('body_kind', sa.String(length=40), nullable=False),
        sa.Column('pulled_at_ms', sa.BigInteger(), nullable=False),
        sa.Column('applied', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_county_inbox_applied', 'county_inbox', ['applied', 'id'], unique=False)
    op.create_table('county_state',
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('value', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('key')
    )

    # 督办 notices from the county, until acknowledged.
    op.create_table('county_notice',
        sa.Column('notice_id', sa.String(length=64), nullable=False),
        sa.Column('matter_id', sa.String(length=64), nullable=False),
        sa.Column('hop_tier', sa.String(length=16), nullable=False),
        sa.Column('level', sa.Integer(), nullable=False),
        sa.Column('overdue_working_days', sa.Integer(), nullable=False),
        sa.Column('message', sa.Text(), nullable=False),
        sa.Column('issued_at_ms', sa.BigInteger(), nullable=False),
        sa.Column('issued_by', sa.String(length=64), nullable=False),
        sa.Column('received_at_ms', sa.BigInteger(), nullable=False),
        sa.Column('acknowledged_at_ms', sa.BigInteger(), nullable=True),
        sa.Column('acknowledged_by', sa.String(length=64), nullable=True),
        sa.Column('explanation', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('notice_id')
    )
    op.create_index('ix_county_notice_open', 'county_notice', ['acknowledged_at_ms'], unique=False)


def downgrade() -> None:
    # Dropping a table drops its indexes; referencing tables go first.
    for name in (
        "county_notice",
        "county_state",
        "county_inbox",
        "county_receipt",
        "county_outbox",
        "county_ledger",
    ):
        op.drop_table(name)
