"""The township's 好差评 and 督查 tables: evaluations (one villager rating and one 代为录入 rating per
matter, each with its 差评 loop), the evaluation tokens (kept only as keyed digests), the 回访's
findings, the supervisor's overdue records and the township's own 督办 addressed to staff.
On their own `MetaData` (listed in `town_center.store.migrations`); created by migration town_0009.
"""
from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, LargeBinary, MetaData, String, Table, Text

__all__ = ["metadata", "evaluation", "evaluation_token", "follow_up_finding", "overdue_record", "staff_notice"]

metadata = MetaData()

evaluation = Table(
    "evaluation", metadata,
    Column("evaluation_id", String(32), primary_key=True),
    Column("matter_id", String(64), nullable=False),
    Column("channel", String(16), nullable=False),            # shared.domain.evaluation.Channel
    Column("by_villager", Boolean, nullable=False),           # 一次一评: one villager rating per matter
    Column("level", Integer, nullable=False),                 # Level 1..5
    Column("reason", String(16), nullable=False, default=""),  # BadReason of a 差评
    Column("comment", Text, nullable=False, default=""),
    Column("rated_at_ms", BigInteger, nullable=False),
    # Who and what was rated, copied at rating time so the figures need no join and stay as they were.
    Column("village_code", String(32), nullable=False, default=""),
    Column("catalog_code", String(32), nullable=False, default=""),
    Column("kind", String(16), nullable=True),
    Column("operator_id", String(64), nullable=False, default=""),
    Column("agent_key_id", String(32), nullable=False, default=""),
    Column("sms_from_masked", String(16), nullable=False, default=""),   # the evaluator's number, masked
    Column("valid", Boolean, nullable=False, default=True),   # False once 复核 found it malicious
    Column("rect_state", String(16), nullable=True),          # RectificationState of a 差评
    Column("rect_owner", String(64), nullable=True),
    Column("rect_due_at_ms", BigInteger, nullable=True),
    Column("rect_json", Text, nullable=True),                 # the whole Rectification
    Column("feed_seq", BigInteger, nullable=False),           # the provincial feed's cursor; bumped on change
    Index("ix_evaluation_matter_source", "matter_id", "by_villager", unique=True),
    Index("ix_evaluation_feed_seq", "feed_seq", unique=True),
    Index("ix_evaluation_rated", "rated_at_ms"),
)

evaluation_token = Table(
    "evaluation_token", metadata,
    Column("matter_id", String(64), primary_key=True),
    Column("token_digest", LargeBinary(32), nullable=False),  # HMAC of the printed token; reissuing replaces it
    Column("issued_at_ms", BigInteger, nullable=False),
    Column("issued_by", String(64), nullable=False, default=""),
    Column("used_at_ms", BigInteger, nullable=True),
    Index("ix_evaluation_token_digest", "token_digest", unique=True),
)

follow_up_finding = Table(
    "follow_up_finding", metadata,
    Column("matter_id", String(64), primary_key=True),
    Column("evaluation_id", String(32), nullable=True),       # the 差评 this 回访 follows, if any
    Column("reached", Boolean, nullable=False),
    Column("attitude_ok", Boolean, nullable=False),
    Column("efficiency_ok", Boolean, nullable=False),
    Column("by_the_rules_ok", Boolean, nullable=False),
    Column("integrity_ok", Boolean, nullable=False),
    Column("satisfaction", Integer, nullable=False, default=0),
    Column("suggestion", Text, nullable=False, default=""),
    Column("recorded_by", String(64), nullable=False),
    Column("recorded_at_ms", BigInteger, nullable=False),
)

# 督查: per overdue matter, the cause and the solution; at 3 working days, the contact with the applicant.
overdue_record = Table(
    "overdue_record", metadata,
    Column("record_id", Integer, primary_key=True, autoincrement=True),
    Column("matter_id", String(64), nullable=False),
    Column("hop", String(16), nullable=False),
    Column("what", String(16), nullable=False),               # "cause" or "contact"
    Column("cause", String(16), nullable=False, default=""),  # "applicant" or "agency"
    Column("text", Text, nullable=False, default=""),         # the solution, or the applicant's view
    Column("reached", Boolean, nullable=True),
    Column("overdue_working_days", Integer, nullable=False, default=0),
    Column("recorded_by", String(64), nullable=False),
    Column("recorded_at_ms", BigInteger, nullable=False),
    Index("ix_overdue_record_matter", "matter_id", "record_id"),
)

# The township's own 督办 goes to people: the matter's owner and every supervisor, not to a laptop.
staff_notice = Table(
    "staff_notice", metadata,
    Column("notice_id", String(64), primary_key=True),
    Column("matter_id", String(64), nullable=False),
    Column("hop", String(16), nullable=False),
    Column("owner_id", String(64), nullable=False, default=""),
    Column("message", Text, nullable=False),
    Column("issued_at_ms", BigInteger, nullable=False),
    Column("read_by_owner_at_ms", BigInteger, nullable=True),
    Column("read_by_supervisor_at_ms", BigInteger, nullable=True),
    Index("ix_staff_notice_owner", "owner_id", "issued_at_ms"),
)
