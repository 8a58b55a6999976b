"""The front desk: walk-ins registered at the window (首问责任人), the register of complaints,
petitions and consultations, appointments at the window, AB posts and absences (顶岗), and the
window's queue of the day.

Revision ID: town_0010
Revises: town_0009

Explicit operations, frozen: never import the models here, they move on and this revision must not.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "town_0010"
down_revision: str | None = "town_0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "window_intake",
        sa.Column("matter_id", sa.String(length=64), nullable=False),
        sa.Column("first_asked_by", sa.String(length=64), nullable=False),
        sa.Column("first_asked_name", sa.String(length=100), nullable=False),
        sa.Column("on_behalf", sa.Boolean(), nullable=False),
        sa.Column("sealed_signer", sa.LargeBinary(), nullable=False),
        sa.Column("signature_sha256", sa.LargeBinary(length=32), nullable=False),
        sa.Column("registered_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("matter_id"),
    )
    op.create_table(
        "desk_case",
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("register_no", sa.String(length=40), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("serial", sa.Integer(), nullable=False),
        sa.Column("received_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("complexity", sa.String(length=16), nullable=False),
        sa.Column("anonymous", sa.Boolean(), nullable=False),
        sa.Column("sealed_person", sa.LargeBinary(), nullable=True),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("catalog_code", sa.String(length=32), nullable=True),
        sa.Column("linked_matter_id", sa.String(length=64), nullable=True),
        sa.Column("linked_staff_id", sa.String(length=64), nullable=True),
        sa.Column("handler", sa.String(length=64), nullable=False),
        sa.Column("registered_by", sa.String(length=64), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("answered_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("answered_by", sa.String(length=64), nullable=False),
        sa.Column("feedback", sa.String(length=16), nullable=False),
        sa.Column("feedback_note", sa.Text(), nullable=False),
        sa.Column("feedback_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("due_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("case_id"),
        sa.UniqueConstraint("kind", "year", "serial", name="uq_desk_case_serial"),
    )
    op.create_index("ix_desk_case_kind_stage", "desk_case", ["kind", "stage"], unique=False)
    op.create_table(
        "desk_event",
        sa.Column("event_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("text_zh", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_index("ix_desk_event_subject", "desk_event", ["subject_id", "event_id"], unique=False)
    op.create_table(
        "appointment",
        sa.Column("appointment_id", sa.String(length=64), nullable=False),
        sa.Column("applicant_name", sa.String(length=30), nullable=False),
        sa.Column("sealed_phone", sa.LargeBinary(), nullable=True),
        sa.Column("catalog_code", sa.String(length=32), nullable=False),
        sa.Column("scheduled_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("elderly_or_disabled", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("handler", sa.String(length=64), nullable=False),
        sa.Column("contact_failed_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("arrived_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("late_reason", sa.Text(), nullable=False),
        sa.Column("matter_id", sa.String(length=64), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("appointment_id"),
    )
    op.create_index("ix_appointment_scheduled", "appointment", ["scheduled_at_ms"], unique=False)
    op.create_table(
        "post",
        sa.Column("post_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("a_staff", sa.String(length=64), nullable=False),
        sa.Column("b_staff", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("post_id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "absence",
        sa.Column("absence_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("staff_id", sa.String(length=64), nullable=False),
        sa.Column("covered_by", sa.String(length=64), nullable=False),
        sa.Column("from_date", sa.String(length=10), nullable=False),
        sa.Column("to_date", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("registered_by", sa.String(length=64), nullable=False),
        sa.Column("registered_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("returned_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("handover_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("absence_id"),
    )
    op.create_index("ix_absence_staff", "absence", ["staff_id"], unique=False)
    op.create_table(
        "queue_ticket",
        sa.Column("ticket_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("applicant_name", sa.String(length=30), nullable=False),
        sa.Column("elderly_or_disabled", sa.Boolean(), nullable=False),
        sa.Column("appointment_id", sa.String(length=64), nullable=True),
        sa.Column("arrived_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("called_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("called_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("ticket_id"),
        sa.UniqueConstraint("day", "number", name="uq_queue_ticket_number"),
    )


def downgrade() -> None:
    op.drop_table("queue_ticket")
    op.drop_index("ix_absence_staff", table_name="absence")
    op.drop_table("absence")
    op.drop_table("post")
    op.drop_index("ix_appointment_scheduled", table_name="appointment")
    op.drop_table("appointment")
    op.drop_index("ix_desk_event_subject", table_name="desk_event")
    op.drop_table("desk_event")
    op.drop_index("ix_desk_case_kind_stage", table_name="desk_case")
    op.drop_table("desk_case")
    op.drop_table("window_intake")
