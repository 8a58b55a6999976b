"""The village laptop's schema baseline (unchanged since the first release).

Revision ID: village_0001
Revises: 

Explicit operations, frozen: never import the models here, they move on and this revision must not.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "village_0001"
down_revision: str | None = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The signed ledger (source of truth), its outbox and receipts, records from the township.
    op.create_table('meta',
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('value', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('key')
    )
    op.create_table('ledger',
        sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('record_id', sa.String(length=36), nullable=False),
        sa.Column('body_kind', sa.String(length=40), nullable=False),
        sa.Column('matter_id', sa.String(length=36), nullable=True),
        sa.Column('payload', sa.LargeBinary(), nullable=False),
        sa.Column('signature', sa.LargeBinary(), nullable=False),
        sa.Column('hash', sa.LargeBinary(), nullable=False),
        sa.Column('claimed_time_ms', sa.BigInteger(), nullable=False),
        sa.Column('applied_order', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('seq'),
        sa.UniqueConstraint('record_id'),
        sa.UniqueConstraint('applied_order')
    )
    op.create_index(op.f('ix_ledger_matter_id'), 'ledger', ['matter_id'], unique=False)
    op.create_table('outbox',
        sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('queued_at_ms', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('seq')
    )
    op.create_table('receipt',
        sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('envelope', sa.LargeBinary(), nullable=False),
        sa.Column('receipt_time_ms', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('seq')
    )
    op.create_table('down_record',
        sa.Column('local_id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('record_id', sa.String(length=36), nullable=False),
        sa.Column('body_kind', sa.String(length=40), nullable=False),
        sa.Column('matter_id', sa.String(length=36), nullable=True),
        sa.Column('envelope', sa.LargeBinary(), nullable=False),
        sa.Column('applied_order', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('local_id'),
        sa.UniqueConstraint('record_id'),
        sa.UniqueConstraint('applied_order')
    )
    op.create_index(op.f('ix_down_record_matter_id'), 'down_record', ['matter_id'], unique=False)

    # Derived and private tables: matters, encrypted applicant data, appointments.
    op.create_table('matter',
        sa.Column('matter_id', sa.String(length=36), nullable=False),
        sa.Column('state_json', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=24), nullable=False),
        sa.Column('catalog_code', sa.String(length=32), nullable=False),
        sa.Column('id_lookup_hash', sa.LargeBinary(), nullable=True),
        sa.Column('lookup_code', sa.String(length=16), nullable=True),
        sa.Column('filed_seq', sa.Integer(), nullable=False),
        sa.Column('due_at_ms', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('matter_id'),
        sa.UniqueConstraint('lookup_code')
    )
    op.create_index(op.f('ix_matter_filed_seq'), 'matter', ['filed_seq'], unique=False)
    op.create_index(op.f('ix_matter_id_lookup_hash'), 'matter', ['id_lookup_hash'], unique=False)
    op.create_index(op.f('ix_matter_status'), 'matter', ['status'], unique=False)
    op.create_table('applicant_private',
        sa.Column('matter_id', sa.String(length=36), nullable=False),
        sa.Column('blob', sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint('matter_id')
    )
    op.create_table('appointment',
        sa.Column('appointment_id', sa.String(length=36), nullable=False),
        sa.Column('matter_id', sa.String(length=36), nullable=True),
        sa.Column('scheduled_at_ms', sa.BigInteger(), nullable=False),
        sa.Column('place', sa.Integer(), nullable=False),
        sa.Column('purpose', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('private_blob', sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint('appointment_id')
    )
    op.create_index(op.f('ix_appointment_scheduled_at_ms'), 'appointment', ['scheduled_at_ms'], unique=False)


def downgrade() -> None:
    # Dropping a table drops its indexes; referencing tables go first.
    for name in (
        "appointment",
        "applicant_private",
        "matter",
        "down_record",
        "receipt",
        "outbox",
        "ledger",
        "meta",
    ):
        op.drop_table(name)
