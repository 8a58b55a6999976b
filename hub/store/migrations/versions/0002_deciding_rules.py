"""Deciding by the rules: the county's 否定报备 register (county_refusal), the director's delegations of
county decisions (county_delegation), and the flags the board sorts by (county_dossier).

Revision ID: hub_0002
Revises: hub_0001

Explicit operations, frozen: never import the models here, they move on and this revision must not.
New tables only, so a database made by `create_all` and one migrated here are alike to the byte.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "hub_0002"
down_revision: str | None = "hub_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('county_dossier',
        sa.Column('matter_id', sa.String(length=64), nullable=False),
        sa.Column('elderly_or_disabled', sa.Boolean(), nullable=False),
        sa.Column('door_to_door', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('matter_id')
    )
    op.create_table('county_refusal',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('matter_id', sa.String(length=64), nullable=False),
        sa.Column('township_key_id', sa.String(length=32), nullable=False),
        sa.Column('township_code', sa.String(length=32), nullable=False),
        sa.Column('catalog_code', sa.String(length=32), nullable=False),
        sa.Column('refused_at_ms', sa.BigInteger(), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('decided_by', sa.String(length=64), nullable=False),
        sa.Column('decided_by_role', sa.String(length=20), nullable=False),
        sa.Column('approved_by', sa.String(length=64), nullable=False),
        sa.Column('major', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_county_refusal_time', 'county_refusal', ['refused_at_ms'], unique=False)
    op.create_table('county_delegation',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('staff_id', sa.String(length=64), nullable=False),
        sa.Column('delegated_by', sa.String(length=64), nullable=False),
        sa.Column('delegated_at_ms', sa.BigInteger(), nullable=False),
        sa.Column('withdrawn_by', sa.String(length=64), nullable=True),
        sa.Column('withdrawn_at_ms', sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_county_delegation_staff', 'county_delegation', ['staff_id', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_county_delegation_staff', table_name='county_delegation')
    op.drop_table('county_delegation')
    op.drop_index('ix_county_refusal_time', table_name='county_refusal')
    op.drop_table('county_refusal')
    op.drop_table('county_dossier')
