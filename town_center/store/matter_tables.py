"""The township's handling tables: matters, their history, the refusal register, follow-up calls
and the intake cursor over the ingest log. On the relay's `MetaData` so one `create_all` makes
every table and one transaction can cover a matter change, its hop clock and its signed record.
"""
from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, LargeBinary, String, Table, Text

from town_center.store.tables import metadata

__all__ = ["town_matter", "matter_event", "refusal_register", "follow_up_call", "intake_cursor", "county_notice"]

town_matter = Table(
    "town_matter", metadata,
    Column("matter_id", String(64), primary_key=True),
    Column("author_key_id", String(32), nullable=False),    # the filing agent's device: audience of down records
    Column("village_code", String(32), nullable=False, default=""),
    Column("catalog_code", String(32), nullable=False),
    # Queryable copies of what `state_json` holds; written together with it, never alone.
    Column("stage", String(24), nullable=False),
    Column("kind", String(16), nullable=True),
    Column("owner", String(64), nullable=False, default=""),
    Column("version", Integer, nullable=False),
    Column("state_json", Text, nullable=False),             # shared.domain.handling.matter_to_json_dict
    Column("lookup_code_hash", LargeBinary(32), nullable=True),
    Column("id_masked", String(32), nullable=False, default=""),
    Column("id_lookup_hash", LargeBinary(32), nullable=True),
    Column("sealed_details", LargeBinary, nullable=True),   # sealed to the township key; opened only on the matter page
    Column("door_to_door", Boolean, nullable=False, default=False),
    Column("elderly_or_disabled", Boolean, nullable=False, default=False),
    Column("materials_json", Text, nullable=False, default="[]"),
    Column("tolerated_json", Text, nullable=False, default="[]"),
    Column("intake_note", Text, nullable=False, default=""),
    Column("received_at_ms", BigInteger, nullable=False),   # township receipt time: starts its hop clock
    Column("claimed_filed_at_ms", BigInteger, nullable=False, default=0),
    Column("due_at_ms", BigInteger, nullable=True),
    Column("completed_at_ms", BigInteger, nullable=True),   # result ready (the township's work done)
    Column("worst_state", Integer, nullable=False, default=0),  # ClockState rank the hop reached
    Column("rating", Integer, nullable=False, default=0),
    Column("rating_comment", Text, nullable=False, default=""),
    Column("signed_off_at_ms", BigInteger, nullable=True),
    Column("updated_at_ms", BigInteger, nullable=False),
    Index("ix_town_matter_stage", "stage", "received_at_ms"),
    Index("ix_town_matter_village", "village_code", "received_at_ms"),
    Index("ix_town_matter_lookup", "lookup_code_hash", unique=True),
    Index("ix_town_matter_received", "received_at_ms"),
)

matter_event = Table(
    "matter_event", metadata,
    Column("event_id", Integer, primary_key=True, autoincrement=True),
    Column("matter_id", String(64), nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("actor", String(64), nullable=False),            # staff id, "village:<key>" or "county"
    Column("action", String(32), nullable=False),
    Column("text_zh", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Index("ix_matter_event_matter", "matter_id", "event_id"),
)

# 否定报备: every refusal is registered for audit.
refusal_register = Table(
    "refusal_register", metadata,
    Column("matter_id", String(64), primary_key=True),
    Column("catalog_code", String(32), nullable=False),
    Column("village_code", String(32), nullable=False),
    Column("operator_id", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("refusal_kind", String(16), nullable=False, server_default="not_accepted"),  # RefusalKind
    Column("approved_by", String(64), nullable=False, server_default=""),  # the director, for a major matter
)

follow_up_call = Table(
    "follow_up_call", metadata,
    Column("matter_id", String(64), primary_key=True),
    Column("week_start", String(10), nullable=False),       # YYYY-MM-DD, the Monday of the draw
    Column("drawn_at_ms", BigInteger, nullable=False),
    Column("called_at_ms", BigInteger, nullable=True),
    Column("caller_id", String(64), nullable=False, default=""),
    Column("reached", Boolean, nullable=True),
    Column("rating", Integer, nullable=False, default=0),
    Column("outcome", Text, nullable=False, default=""),
    Index("ix_follow_up_week", "week_start"),
)

# How far the intake has folded each author's ingested records into matters (chain order).
intake_cursor = Table(
    "intake_cursor", metadata,
    Column("author_key_id", String(32), primary_key=True),
    Column("seq", BigInteger, nullable=False),
)

# 督办 notices from the county about this township's matters, until acknowledged with an explanation.
county_notice = Table(
    "county_notice", metadata,
    Column("notice_id", String(64), primary_key=True),
    Column("matter_id", String(64), nullable=False),
    Column("hop_tier", String(16), nullable=False),
    Column("level", Integer, nullable=False),
    Column("overdue_working_days", Integer, nullable=False, default=0),
    Column("message", Text, nullable=False),
    Column("issued_at_ms", BigInteger, nullable=False),      # the county's clock
    Column("issued_by", String(64), nullable=False),
    Column("received_at_ms", BigInteger, nullable=False),    # the township's clock
    Column("acknowledged_at_ms", BigInteger, nullable=True),
    Column("acknowledged_by", String(64), nullable=True),
    Column("explanation", Text, nullable=True),
    Index("ix_county_notice_open", "acknowledged_at_ms"),
)
