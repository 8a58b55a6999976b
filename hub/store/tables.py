"""The county's tables, on its own `MetaData`: the relay's (township keys, their ingest logs, the
down-log to townships) and the county's handling and tracking tables.

Instants are Unix milliseconds (`BigInteger`) of the county's clock unless a name says otherwise
(`township_*` columns hold what a township's signed records say, on the township's clock).
"""
from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, LargeBinary, MetaData, String, Table, Text

from shared.relay.sql_tables import relay_tables

__all__ = ["metadata", "tables", "township_key", "ingest_log", "down_log", "hub_meta", "village_key", "county_matter",
           "county_event", "tracked_matter", "supervision_notice", "hub_intake_cursor", "county_dossier", "county_refusal",
           "county_delegation", "county_board_count", "township_hop_figures", "tracked_open_hop"]

metadata = MetaData()
tables = relay_tables(metadata, meta_table_name="hub_meta")
township_key = tables.agent_key     # at the county the enrolled devices are townships' link keys
ingest_log = tables.ingest_log
down_log = tables.down_log
hub_meta = tables.meta

# Village keys a township vouched for (its signed KeyApproved / KeyRevoked): the county checks a
# village signature inside an escalation against these, and only for the township that vouched.
village_key = Table(
    "village_key", metadata,
    Column("key_id", String(32), primary_key=True),
    Column("public_key", LargeBinary(32), nullable=False),
    Column("township_key_id", String(32), nullable=False),
    Column("village_code", String(32), nullable=False, default=""),
    Column("state", String(16), nullable=False),          # approved / revoked
    Column("last_valid_seq", BigInteger, nullable=False, default=0),
    Column("announced_at_ms", BigInteger, nullable=False),
)

# A 上报件 the county handles and decides.
county_matter = Table(
    "county_matter", metadata,
    Column("matter_id", String(64), primary_key=True),
    Column("township_key_id", String(32), nullable=False),
    Column("township_code", String(32), nullable=False),
    Column("village_code", String(32), nullable=False, default=""),
    Column("village_key_id", String(32), nullable=False),
    Column("catalog_code", String(32), nullable=False),
    Column("stage", String(24), nullable=False),
    Column("version", Integer, nullable=False),
    Column("state_json", Text, nullable=False),
    Column("summary", Text, nullable=False, default=""),
    Column("township_received_at_ms", BigInteger, nullable=False),
    Column("received_at_ms", BigInteger, nullable=False),   # the county's receipt: starts the county hop
    Column("escalation_seq", BigInteger, nullable=False),
    Column("due_at_ms", BigInteger, nullable=True),
    Column("worst_state", Integer, nullable=False, default=0),
    Column("sealed_applicant", LargeBinary, nullable=True),  # sealed to the county key
    Column("outcome", String(24), nullable=False, default=""),
    Column("decided_at_ms", BigInteger, nullable=True),
    Column("signed_off_at_ms", BigInteger, nullable=True),
    Column("rating", Integer, nullable=False, default=0),
    Column("updated_at_ms", BigInteger, nullable=False),
    Index("ix_county_matter_township", "township_code", "stage"),
    Index("ix_county_matter_stage", "stage"),
    # The board's keyset pages, newest first, over the county and over one township.
    Index("ix_county_matter_received", "received_at_ms", "matter_id"),
    Index("ix_county_matter_township_received", "township_code", "received_at_ms", "matter_id"),
)

county_event = Table(
    "county_event", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("matter_id", String(64), nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(40), nullable=False),
    Column("text_zh", Text, nullable=False),
    Index("ix_county_event_matter", "matter_id", "id"),
)

# Every township matter as the township last reported it (its signed StatusUpdate), so the county
# tracks every township's clocks, not only what is escalated.
tracked_matter = Table(
    "tracked_matter", metadata,
    Column("matter_id", String(64), primary_key=True),
    Column("township_key_id", String(32), nullable=False),
    Column("township_code", String(32), nullable=False),
    Column("village_code", String(32), nullable=False, default=""),
    Column("catalog_code", String(32), nullable=False, default=""),
    Column("kind", Integer, nullable=False, default=0),        # records_pb2.MatterKind
    Column("stage", Integer, nullable=False, default=0),       # records_pb2.Stage
    Column("hops_json", Text, nullable=False, default="[]"),   # the HopViews as the township signed them
    Column("township_due_at_ms", BigInteger, nullable=False, default=0),
    Column("township_stopped_at_ms", BigInteger, nullable=False, default=0),
    Column("message", Text, nullable=False, default=""),
    Column("status_seq", BigInteger, nullable=False),          # the township record it came from
    Column("updated_at_ms", BigInteger, nullable=False),       # county receipt time of that record
    Index("ix_tracked_township", "township_code", "township_due_at_ms"),
    # 超期统计: the counts read only open township hops; the list takes the most overdue first.
    Index("ix_tracked_open", "township_stopped_at_ms", "township_code", "kind", "township_due_at_ms"),
    Index("ix_tracked_due", "township_due_at_ms", "matter_id"),
)

# 督办 notices the county issued, with their path: signed → received (pulled) → acknowledged.
supervision_notice = Table(
    "supervision_notice", metadata,
    Column("notice_id", String(64), primary_key=True),
    Column("matter_id", String(64), nullable=False),
    Column("township_key_id", String(32), nullable=False),
    Column("township_code", String(32), nullable=False),
    Column("hop_tier", String(16), nullable=False),
    Column("level", Integer, nullable=False),
    Column("overdue_working_days", Integer, nullable=False, default=0),
    Column("message", Text, nullable=False),
    Column("issued_at_ms", BigInteger, nullable=False),
    Column("issued_by", String(64), nullable=False),
    Column("down_cursor", BigInteger, nullable=False),
    Column("received_at_ms", BigInteger, nullable=True),
    Column("acknowledged_at_ms", BigInteger, nullable=True),
    Column("acknowledged_by", String(64), nullable=True),
    Column("explanation", Text, nullable=True),
)

hub_intake_cursor = Table(
    "hub_intake_cursor", metadata,
    Column("author_key_id", String(32), primary_key=True),
    Column("seq", BigInteger, nullable=False),
)

# What the board sorts and flags by, taken from the village's signed filing inside the escalation when
# it is taken in (the full dossier is read from that escalation, kept in `ingest_log`, on the matter page).
county_dossier = Table(
    "county_dossier", metadata,
    Column("matter_id", String(64), primary_key=True),
    Column("elderly_or_disabled", Boolean, nullable=False, default=False),
    Column("door_to_door", Boolean, nullable=False, default=False),
)

# 否定报备: every 不予批准 the county decides, with who decided it and, for a major or difficult matter,
# the director who approved it (004 篇6). Written in the decision's own transaction; never updated.
county_refusal = Table(
    "county_refusal", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("matter_id", String(64), nullable=False),
    Column("township_key_id", String(32), nullable=False),
    Column("township_code", String(32), nullable=False),
    Column("catalog_code", String(32), nullable=False),
    Column("refused_at_ms", BigInteger, nullable=False),
    Column("reason", Text, nullable=False),
    Column("decided_by", String(64), nullable=False),
    Column("decided_by_role", String(20), nullable=False),
    Column("approved_by", String(64), nullable=False, default=""),
    Column("major", Boolean, nullable=False, default=False),
    Index("ix_county_refusal_time", "refused_at_ms"),
)

# A director's delegation of county decisions to a staff member (Role.APPROVER), and its withdrawal.
county_delegation = Table(
    "county_delegation", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("staff_id", String(64), nullable=False),
    Column("delegated_by", String(64), nullable=False),
    Column("delegated_at_ms", BigInteger, nullable=False),
    Column("withdrawn_by", String(64), nullable=True),
    Column("withdrawn_at_ms", BigInteger, nullable=True),
    Index("ix_county_delegation_staff", "staff_id", "id"),
)

# The board's totals kept as matters arrive and change stage, in the transaction that changes them
# (`hub.store.kept_counts`): the board's first page of a county of 100k matters reads these few rows,
# not every matter (docs/performance.md, county pages).
county_board_count = Table(
    "county_board_count", metadata,
    Column("township_code", String(32), primary_key=True),
    Column("stage", String(24), primary_key=True),
    Column("elderly_or_disabled", Boolean, primary_key=True),
    Column("n", BigInteger, nullable=False, default=0),
)

# The township comparison's figures per (day and month, township, hop), kept as status updates arrive
# (`hub.store.township_figures`): received by the day a hop started; completed, on time, late and office
# time by the day it stopped; `late_open` is the change, at the start of that day, in hops open past
# their deadline (+1 when one becomes so, -1 when it stops), so the count at a period's end is a sum of
# months and days, not a pass over every tracked matter (docs/performance.md, county pages).
township_hop_figures = Table(
    "township_hop_figures", metadata,
    Column("grain", String(5), primary_key=True),          # "day" (bucket 2026-11-02) or "month" (2026-11)
    Column("bucket", String(10), primary_key=True),
    Column("township_code", String(32), primary_key=True),
    Column("hop", String(8), primary_key=True),            # "township" or "county"
    Column("received", BigInteger, nullable=False, default=0),
    Column("completed", BigInteger, nullable=False, default=0),
    Column("on_time", BigInteger, nullable=False, default=0),
    Column("late", BigInteger, nullable=False, default=0),
    Column("office_ms", BigInteger, nullable=False, default=0),
    Column("late_open", BigInteger, nullable=False, default=0),
)

# Tracked hops that may still be open past their deadline at the comparison's "now" (open, or stopped
# after the county received the update): the current period's overdue count reads these, by index.
tracked_open_hop = Table(
    "tracked_open_hop", metadata,
    Column("matter_id", String(64), primary_key=True),
    Column("position", Integer, primary_key=True),         # the hop's place in the status update
    Column("township_code", String(32), nullable=False),
    Column("hop", String(8), nullable=False),
    Column("late_from_ms", BigInteger, nullable=False),    # past its deadline from here (started and due)
    Column("stopped_at_ms", BigInteger, nullable=False, default=0),
    Index("ix_tracked_open_hop_late", "late_from_ms", "stopped_at_ms", "township_code", "hop"),   # covers the count
)
