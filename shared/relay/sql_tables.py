"""The receiving side's relay tables (device keys, the append-only ingest log, fork evidence,
claimed-time flags, the down-log, the nonces of signed requests) and a small key/value table, built
on a caller's `MetaData`.

The township (for its villages) and the county (for its townships) each build them on their own
`MetaData`, so one `create_all` makes a tier's relay and handling tables together and one
transaction can cover a handled change and the signed record it queues.

Instants are Unix milliseconds (`BigInteger`) of the receiving tier's clock unless named "claimed":
identical on SQLite and PostgreSQL and free of driver time-zone conversions.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, MetaData, String, Table, Text, UniqueConstraint

__all__ = ["RelayTables", "relay_tables"]


@dataclass(frozen=True)
class RelayTables:
    metadata: MetaData
    agent_key: Table
    ingest_log: Table
    fork_evidence: Table
    claimed_time_flag: Table
    down_log: Table
    meta: Table
    request_nonce: Table


def relay_tables(metadata: MetaData, *, meta_table_name: str) -> RelayTables:
    agent_key = Table(
        "agent_key", metadata,
        Column("key_id", String(32), primary_key=True),
        Column("public_key", LargeBinary(32), nullable=False),
        Column("state", String(16), nullable=False),          # shared.relay.ports.KeyState
        Column("role", Integer, nullable=False, default=0),
        Column("holder_name", String(100), nullable=False, default=""),
        Column("village_code", String(32), nullable=False, default=""),
        Column("township_code", String(32), nullable=False, default=""),
        Column("fingerprint", String(32), nullable=False, default=""),
        Column("enrollment_envelope", LargeBinary, nullable=True),
        Column("enrolled_at_ms", BigInteger, nullable=False),
        # Chain position: the optimistic-concurrency check of every ingest batch and of revocation.
        Column("tip_seq", BigInteger, nullable=False, default=0),
        Column("tip_hash", LargeBinary(32), nullable=False),
        Column("last_receipt_ms", BigInteger, nullable=False, default=0),
        Column("last_valid_seq", BigInteger, nullable=False, default=0),
        Column("status_changed_at_ms", BigInteger, nullable=False, default=0),
        Column("status_changed_by", String(64), nullable=False, default=""),
        Column("status_reason", String(200), nullable=False, default=""),
        Column("rotated_from", String(32), nullable=True),
        # The peer address an enrollment came from: pending enrollments are bounded per address.
        Column("enrolled_from", String(64), nullable=False, server_default=""),
        # The chain tip's claimed time, and the receipt time claims are judged against (docs/wire-v1.md
        # "Claimed time"): both move with the tip in the same compare-and-set.
        Column("last_claimed_ms", BigInteger, nullable=False, server_default="0"),
        Column("claim_floor_ms", BigInteger, nullable=False, server_default="0"),
        Index("ix_agent_key_state", "state", "enrolled_at_ms"),
    )

    ingest_log = Table(
        "ingest_log", metadata,
        Column("author_key_id", String(32), primary_key=True),
        Column("seq", BigInteger, primary_key=True),
        Column("record_id", String(64), nullable=False),
        Column("hash", LargeBinary(32), nullable=False),
        Column("payload", LargeBinary, nullable=False),        # exactly as received
        Column("signature", LargeBinary(64), nullable=False),
        Column("body_kind", String(40), nullable=False),
        Column("claimed_time_ms", BigInteger, nullable=False),  # the device's claim, kept and shown
        # The township's receipt time: what the signed receipt says, and the start of the township's hop clock.
        Column("receipt_time_ms", BigInteger, nullable=False),
        Index("ix_ingest_receipt_time", "receipt_time_ms"),
        # A record id is unique per author: looked up for every new record of a batch.
        Index("ix_ingest_record_id", "author_key_id", "record_id"),
    )

    fork_evidence = Table(
        "fork_evidence", metadata,
        Column("fork_id", Integer, primary_key=True, autoincrement=True),
        Column("author_key_id", String(32), nullable=False),
        Column("seq", BigInteger, nullable=False),
        Column("held_hash", LargeBinary(32), nullable=False),
        Column("hash", LargeBinary(32), nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("signature", LargeBinary(64), nullable=False),
        Column("detected_at_ms", BigInteger, nullable=False),
        UniqueConstraint("author_key_id", "seq", "hash", name="uq_fork_evidence"),
    )

    claimed_time_flag = Table(
        "claimed_time_flag", metadata,
        Column("author_key_id", String(32), primary_key=True),
        Column("seq", BigInteger, primary_key=True),
        Column("claimed_time_ms", BigInteger, nullable=False),
        Column("receipt_time_ms", BigInteger, nullable=False),
        Column("reason", Text, nullable=False),
    )

    down_log = Table(
        "down_log", metadata,
        Column("cursor", Integer, primary_key=True, autoincrement=True),
        Column("audience_key_id", String(32), nullable=False),   # "*" for every device
        Column("key_id", String(32), nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("signature", LargeBinary(64), nullable=False),
        Column("created_at_ms", BigInteger, nullable=False),
        Index("ix_down_log_audience", "audience_key_id", "cursor"),
    )

    meta = Table(
        meta_table_name, metadata,
        Column("key", String(64), primary_key=True),
        Column("value", Text, nullable=False),
    )
    # Nonces of signed Pull/Recover requests, kept until the request could no longer be accepted
    # (its time window has passed), so a captured request cannot be replayed.
    request_nonce = Table(
        "request_nonce", metadata,
        Column("key_id", String(32), primary_key=True),
        Column("nonce", LargeBinary(64), primary_key=True),
        Column("expires_at_ms", BigInteger, nullable=False),
        Index("ix_request_nonce_expiry", "expires_at_ms"),
    )
    return RelayTables(metadata, agent_key, ingest_log, fork_evidence, claimed_time_flag, down_log, meta, request_nonce)
