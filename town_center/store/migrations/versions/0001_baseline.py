"""The township schema as released at 3686c89 (before the county hub): relay, handling, deadline and console tables.

Revision ID: town_0001
Revises: 

Explicit operations, frozen: never import the models here, they move on and this revision must not.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "town_0001"
down_revision: str | None = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Relay tables: villages' device keys, their ingest logs (records exactly as received), fork evidence, claimed-
    # time flags, the down-log to villages and the township's key/value table.
    op.create_table('agent_key',
        sa.Column('key_id', sa.String(length=32), nullable=False),
        sa.Column('public_key', sa.LargeBinary(length=32), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('role', sa.Integer(), nullable=False),
        sa.Column('holder_name', sa.String(length=100), nullable=False),
        sa.Column('village_code', sa.String(length=32), nullable=False),
        sa.Column('township_code', sa.String(length=32), nullable=False),
        sa.Column('fingerprint', sa.String(length=32), nullable=False),
        sa.Column('enrollment_envelope', sa.LargeBinary(), nullable=True),
        sa.Column('enrolled_at_ms', sa.BigInteger(), nullable=False),
        sa.Column('tip_seq', sa.BigInteger(), nullable=False),
        sa.Column('tip_hash', sa.LargeBinary(length=32), nullable=False),
        sa.Column('last_receipt_ms', sa.BigInteger(), nullable=False),
        sa.Column('last_valid_seq', sa.BigInteger(), nullable=False),
        sa.Column('status_changed_at_ms', sa.BigInteger(), nullable=False),
        sa.Column('status_changed_by', sa.String(length=64), nullable=False),
        sa.Column('status_reason', sa.String(length=200), nullable=False),
        sa.Column('rotated_from', sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint('key_id')
    )
    op.create_table('ingest_log',
        sa.Column('author_key_id', sa.String(length=32), nullable=False),
        sa.Column('seq', sa.BigInteger(), nullable=False),
        sa.Column('record_id', sa.String(length=64), nullable=False),
        sa.Column('hash', sa.LargeBinary(length=32), nullable=False),
        sa.Column('payload', sa.LargeBinary(), nullable=False),
        sa.Column('signature', sa.LargeBinary(length=64), nullable=False),
        sa.Column('body_kind', sa.String(length=40), nullable=False),
        sa.Column('claimed_time_ms', sa.BigInteger(), nullable=False),
        sa.Column('receipt_time_ms', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('author_key_id', 'seq')
    )
    op.create_index('ix_ingest_receipt_time', 'ingest_log', ['receipt_time_ms'], unique=False)
    op.create_table('fork_evidence',
        sa.Column('fork_id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('author_key_id', sa.String(length=32), nullable=False),
        sa.Column('seq', sa.BigInteger(), nullable=False),
        sa.Column('held_hash', sa.LargeBinary(length=32), nullable=False),
        sa.Column('hash', sa.LargeBinary(length=32), nullable=False),
        sa.Column('payload', sa.LargeBinary(), nullable=False),
        sa.Column('signature', sa.LargeBinary(length=64), nullable=False),
        sa.Column('detected_at_ms', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('fork_id'),
        sa.UniqueConstraint('author_key_id', 'seq', 'hash', name='uq_fork_evidence')
    )
    op.create_table('claimed_time_flag',
        sa.Column('author_key_id', sa.String(length=32), nullable=False),
        sa.Column('seq', sa.BigInteger(), nullable=False),
        sa.Column('claimed_time_ms', sa.BigInteger(), nullable=False),
        sa.Column('receipt_time_ms', sa.BigInteger(), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('author_key_id', 'seq')
    )
    op.create_table('down_log',
        sa.Column('cursor', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('audience_key_id', sa.String(length=32), nullable=False),
        sa.Column('key_id', sa.String(length=32), nullable=False),
        sa.Column('payload', sa.LargeBinary(), nullable=False),
        sa.Column('signature', sa.LargeBinary(length=64), nullable=False),
        sa.Column('created_at_ms', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('cursor')
    )
    op.create_index('ix_down_log_audience', 'down_log', ['audience_key_id', 'cursor'], unique=False)
    op.create_table('town_meta',
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('value', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('key')
    )

    # Handling tables: matters, their history, the refusal register, follow-up calls, the intake cursor.
    op.create_table('town_matter',
        sa.Column('matter_id', sa.String(length=64), nullable=False),
        sa.Column('author_key_id', sa.String(length=32), nullable=False),
        sa.Column('village_code', sa.String(length=32), nullable=False),
        sa.Column('catalog_code', sa.String(length=32), nullable=False),
        sa.Column('stage', sa.String(length=24), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=True),
        sa.Column('owner', sa.String(length=64), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('state_json', sa.Text(), nullable=False),
        sa.Column('lookup_code_hash', sa.LargeBinary(length=32), nullable=True),
        sa.Column('id_masked', sa.String(length=32), nullable=False),
        sa.Column('id_lookup_hash', sa.LargeBinary(length=32), nullable=True),
        sa.Column('sealed_details', sa.LargeBinary(), nullable=True),
        sa.Column('door_to_door', sa.Boolean(), nullable=False),
        sa.Column('elderly_or_disabled', sa.Boolean(), nullable=False),
        sa.Column('materials_json', sa.Text(), nullable=False),
        sa.Column('tolerated_json', sa.Text(), nullable=False),
        sa.Column('intake_note', sa.Text(), nullable=False),
        sa.Column('received_at_ms', sa.BigInteger(), nullable=False),
        sa.Column('claimed_filed_at_ms', sa.BigInteger(), nullable=False),
        sa.Column('due_at_ms', sa.BigInteger(), nullable=True),
        sa.Column('completed_at_ms', sa.BigInteger(), nullable=True),
        sa.Column('worst_state', sa.Integer(), nullable=False),
        sa.Column('rating', sa.Integer(), nullable=False),
        sa.Column('rating_comment', sa.Text(), nullable=False),
        sa.Column('signed_off_at_ms', sa.BigInteger(), nullable=True),
        sa.Column('updated_at_ms', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('matter_id')
    )
    op.create_index('ix_town_matter_lookup', 'town_matter', ['lookup_code_hash'], unique=True)
    op.create_index('ix_town_matter_stage', 'town_matter', ['stage', 'received_at_ms'], unique=False)
    op.create_index('ix_town_matter_village', 'town_matter', ['village_code', 'received_at_ms'], unique=False)
    op.create_table('matter_event',
        sa.Column('event_id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('matter_id', sa.String(length=64), nullable=False),
        sa.Column('at_ms', sa.BigInteger(), nullable=False),
        sa.Column('actor', sa.String(length=64), nullable=False),
        sa.Column('action', sa.String(length=32), nullable=False),
        sa.Column('text_zh', sa.Text(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('event_id')
    )
    op.create_index('ix_matter_event_matter', 'matter_event', ['matter_id', 'event_id'], unique=False)
    op.create_table('refusal_register',
        sa.Column('matter_id', sa.String(length=64), nullable=False),
        sa.Column('catalog_code', sa.String(length=32), nullable=False),
        sa.Column('village_code', sa.String(length=32), nullable=False),
        sa.Column('operator_id', sa.String(length=64), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('at_ms', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('matter_id')
    )
    op.create_table('follow_up_call',
        sa.Column('matter_id', sa.String(length=64), nullable=False),
        sa.Column('week_start', sa.String(length=10), nullable=False),
        sa.Column('drawn_at_ms', sa.BigInteger(), nullable=False),
        sa.Column('called_at_ms', sa.BigInteger(), nullable=True),
        sa.Column('caller_id', sa.String(length=64), nullable=False),
        sa.Column('reached', sa.Boolean(), nullable=True),
        sa.Column('rating', sa.Integer(), nullable=False),
        sa.Column('outcome', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('matter_id')
    )
    op.create_index('ix_follow_up_week', 'follow_up_call', ['week_start'], unique=False)
    op.create_table('intake_cursor',
        sa.Column('author_key_id', sa.String(length=32), nullable=False),
        sa.Column('seq', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('author_key_id')
    )

    # Deadline tables (shared.deadline_watch.store).
    op.create_table('hop_deadline',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('matter_id', sa.String(length=64), nullable=False),
        sa.Column('hop', sa.String(length=64), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('responsible', sa.String(length=64), nullable=True),
        sa.Column('limit_text', sa.String(length=16), nullable=False),
        sa.Column('statutory_text', sa.String(length=16), nullable=False),
        sa.Column('clock_json', sa.Text(), nullable=False),
        sa.Column('warn_at_ms', sa.BigInteger(), nullable=True),
        sa.Column('due_at_ms', sa.BigInteger(), nullable=True),
        sa.Column('escalate_at_ms', sa.BigInteger(), nullable=True),
        sa.Column('fired_level', sa.SmallInteger(), nullable=False),
        sa.Column('next_fire_at_ms', sa.BigInteger(), nullable=True),
        sa.Column('rules_fp', sa.String(length=64), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('updated_at_ms', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('matter_id', 'hop', name='uq_hop_deadline_matter_hop')
    )
    op.create_index('ix_hop_deadline_next_fire', 'hop_deadline', ['next_fire_at_ms'], unique=False,
                    postgresql_where=sa.text('next_fire_at_ms IS NOT NULL'),
                    sqlite_where=sa.text('next_fire_at_ms IS NOT NULL'))
    op.create_table('deadline_event',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('matter_id', sa.String(length=64), nullable=False),
        sa.Column('hop', sa.String(length=64), nullable=False),
        sa.Column('level', sa.String(length=16), nullable=False),
        sa.Column('instant_at_ms', sa.BigInteger(), nullable=False),
        sa.Column('due_at_ms', sa.BigInteger(), nullable=False),
        sa.Column('fired_at_ms', sa.BigInteger(), nullable=False),
        sa.Column('fired_by', sa.String(length=96), nullable=False),
        sa.Column('notified', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('matter_id', 'hop', 'level', name='uq_deadline_event_once')
    )
    op.create_table('notification_outbox',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('idempotency_key', sa.String(length=160), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('audience', sa.String(length=16), nullable=False),
        sa.Column('payload_json', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('created_at_ms', sa.BigInteger(), nullable=False),
        sa.Column('next_attempt_at_ms', sa.BigInteger(), nullable=True),
        sa.Column('lease_owner', sa.String(length=96), nullable=True),
        sa.Column('sent_at_ms', sa.BigInteger(), nullable=True),
        sa.Column('last_error', sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('idempotency_key', name='uq_notification_outbox_key')
    )
    op.create_index('ix_notification_outbox_pending', 'notification_outbox', ['next_attempt_at_ms'], unique=False,
                    postgresql_where=sa.text("status = 'pending'"),
                    sqlite_where=sa.text("status = 'pending'"))

    # Console tables (shared.console.store).
    op.create_table('staff',
        sa.Column('staff_id', sa.String(length=64), nullable=False),
        sa.Column('display_name', sa.String(length=100), nullable=False),
        sa.Column('role', sa.String(length=20), nullable=False),
        sa.Column('password_hash', sa.String(length=255), nullable=False),
        sa.Column('disabled', sa.Boolean(), nullable=False),
        sa.Column('created_at_ms', sa.BigInteger(), nullable=False),
        sa.Column('password_changed_at_ms', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('staff_id')
    )
    op.create_table('staff_session',
        sa.Column('session_hash', sa.LargeBinary(length=32), nullable=False),
        sa.Column('staff_id', sa.String(length=64), nullable=False),
        sa.Column('csrf_token', sa.String(length=64), nullable=False),
        sa.Column('created_at_ms', sa.BigInteger(), nullable=False),
        sa.Column('last_seen_ms', sa.BigInteger(), nullable=False),
        sa.Column('expires_at_ms', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['staff_id'], ['staff.staff_id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('session_hash')
    )
    op.create_index(op.f('ix_staff_session_expires_at_ms'), 'staff_session', ['expires_at_ms'], unique=False)
    op.create_index(op.f('ix_staff_session_staff_id'), 'staff_session', ['staff_id'], unique=False)
    op.create_table('login_failure',
        sa.Column('failure_id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('login_name', sa.String(length=64), nullable=False),
        sa.Column('failed_at_ms', sa.BigInteger(), nullable=False),
        sa.Column('locked_until_ms', sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint('failure_id')
    )
    op.create_index(op.f('ix_login_failure_failed_at_ms'), 'login_failure', ['failed_at_ms'], unique=False)
    op.create_index('ix_login_failure_name_time', 'login_failure', ['login_name', 'failed_at_ms'], unique=False)


def downgrade() -> None:
    # Dropping a table drops its indexes; referencing tables go first.
    for name in (
        "login_failure",
        "staff_session",
        "staff",
        "notification_outbox",
        "deadline_event",
        "hop_deadline",
        "intake_cursor",
        "follow_up_call",
        "refusal_register",
        "matter_event",
        "town_matter",
        "town_meta",
        "down_log",
        "claimed_time_flag",
        "fork_evidence",
        "ingest_log",
        "agent_key",
    ):
        op.drop_table(name)
