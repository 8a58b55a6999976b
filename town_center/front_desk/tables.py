"""The front desk's tables, on their own `MetaData` (listed in `town_center.store.migrations`).

Instants are Unix milliseconds of the township's clock; dates are ISO text (Beijing dates).
Personal data (a complainant's or petitioner's identity, an appointment's phone, a representative's
name and signature) is sealed to the township key and opened only for those allowed to see it.
"""
from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = ["metadata", "window_intake", "desk_case", "desk_event", "appointment", "post", "absence", "queue_ticket"]

metadata = MetaData()

# A walk-in registered at the window: who was asked first (首问责任人) and who stood at the window.
window_intake = Table(
    "window_intake", metadata,
    Column("matter_id", String(64), primary_key=True),
    Column("first_asked_by", String(64), nullable=False),
    Column("first_asked_name", String(100), nullable=False),
    Column("on_behalf", Boolean, nullable=False, default=False),
    # Sealed JSON: the representative's name and relation, and the pad signature of whoever signed.
    Column("sealed_signer", LargeBinary, nullable=False),
    Column("signature_sha256", LargeBinary(32), nullable=False),
    Column("registered_at_ms", BigInteger, nullable=False),
)

# 投诉来访登记表, 信访登记 and 咨询件: one register, told apart by `kind`.
desk_case = Table(
    "desk_case", metadata,
    Column("case_id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("register_no", String(40), nullable=False),
    Column("year", Integer, nullable=False),
    Column("serial", Integer, nullable=False),
    Column("received_at_ms", BigInteger, nullable=False),
    Column("channel", String(16), nullable=False),
    Column("complexity", String(16), nullable=False, default="simple"),
    Column("anonymous", Boolean, nullable=False, default=False),
    Column("sealed_person", LargeBinary, nullable=True),     # name and contact, sealed; NULL when anonymous
    Column("subject", Text, nullable=False, default=""),     # about whom / what
    Column("content", Text, nullable=False, default=""),
    Column("catalog_code", String(32), nullable=True),       # the matter asked about (咨询件)
    Column("linked_matter_id", String(64), nullable=True),
    Column("linked_staff_id", String(64), nullable=True),
    Column("handler", String(64), nullable=False, default=""),   # 承办人: answers it; moves with 顶岗
    Column("registered_by", String(64), nullable=False),
    Column("stage", String(16), nullable=False),
    Column("answer", Text, nullable=False, default=""),
    Column("answered_at_ms", BigInteger, nullable=True),
    Column("answered_by", String(64), nullable=False, default=""),
    Column("feedback", String(16), nullable=False, default=""),
    Column("feedback_note", Text, nullable=False, default=""),
    Column("feedback_at_ms", BigInteger, nullable=True),
    Column("due_at_ms", BigInteger, nullable=True),
    Column("version", Integer, nullable=False, default=1),
    UniqueConstraint("kind", "year", "serial", name="uq_desk_case_serial"),
    Index("ix_desk_case_kind_stage", "kind", "stage"),
)

# History of cases, appointments and absences (what happened, by whom, in Chinese).
desk_event = Table(
    "desk_event", metadata,
    Column("event_id", Integer, primary_key=True, autoincrement=True),
    Column("subject_id", String(64), nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(32), nullable=False),
    Column("text_zh", Text, nullable=False),
    Index("ix_desk_event_subject", "subject_id", "event_id"),
)

appointment = Table(
    "appointment", metadata,
    Column("appointment_id", String(64), primary_key=True),
    Column("applicant_name", String(30), nullable=False),
    Column("sealed_phone", LargeBinary, nullable=True),
    Column("catalog_code", String(32), nullable=False),
    Column("scheduled_at_ms", BigInteger, nullable=False),
    Column("elderly_or_disabled", Boolean, nullable=False, default=False),
    Column("state", String(16), nullable=False),
    Column("handler", String(64), nullable=False),          # who confirmed it and serves it; moves with 顶岗
    Column("contact_failed_at_ms", BigInteger, nullable=True),
    Column("arrived_at_ms", BigInteger, nullable=True),
    Column("late_reason", Text, nullable=False, default=""),
    Column("matter_id", String(64), nullable=True),
    Column("version", Integer, nullable=False, default=1),
    Index("ix_appointment_scheduled", "scheduled_at_ms"),
)

# AB posts 主岗/协岗: a post with its A and B.
post = Table(
    "post", metadata,
    Column("post_id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(60), nullable=False, unique=True),
    Column("a_staff", String(64), nullable=False),
    Column("b_staff", String(64), nullable=False),
)

absence = Table(
    "absence", metadata,
    Column("absence_id", Integer, primary_key=True, autoincrement=True),
    Column("staff_id", String(64), nullable=False),
    Column("covered_by", String(64), nullable=False),
    Column("from_date", String(10), nullable=False),
    Column("to_date", String(10), nullable=False),
    Column("reason", Text, nullable=False),
    Column("registered_by", String(64), nullable=False),
    Column("registered_at_ms", BigInteger, nullable=False),
    Column("returned_at_ms", BigInteger, nullable=True),
    # What moved to B at once, as JSON [{"what": "matter"|"appointment"|"case", "id": ..., "title": ...}],
    # and moves back on return (only what B still holds).
    Column("handover_json", Text, nullable=False, default="[]"),
    Index("ix_absence_staff", "staff_id"),
)

# The window's queue of the day: a ticket per applicant who came (walk-in or with an appointment).
queue_ticket = Table(
    "queue_ticket", metadata,
    Column("ticket_id", Integer, primary_key=True, autoincrement=True),
    Column("day", String(10), nullable=False),
    Column("number", Integer, nullable=False),
    Column("applicant_name", String(30), nullable=False),
    Column("elderly_or_disabled", Boolean, nullable=False, default=False),
    Column("appointment_id", String(64), nullable=True),
    Column("arrived_at_ms", BigInteger, nullable=False),
    Column("called_at_ms", BigInteger, nullable=True),
    Column("called_by", String(64), nullable=False, default=""),
    UniqueConstraint("day", "number", name="uq_queue_ticket_number"),
)
