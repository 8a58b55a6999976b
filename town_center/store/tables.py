"""The township's relay tables, on its own `MetaData` (built by `shared.relay.sql_tables`).

Instants are Unix milliseconds (`BigInteger`) of the township's clock unless named "claimed".
"""
from __future__ import annotations

from sqlalchemy import MetaData

from shared.relay.sql_outbox import sender_tables
from shared.relay.sql_tables import relay_tables

__all__ = ["metadata", "tables", "agent_key", "ingest_log", "fork_evidence", "claimed_time_flag", "down_log", "town_meta",
           "county_up"]

metadata = MetaData()
tables = relay_tables(metadata, meta_table_name="town_meta")
agent_key = tables.agent_key
ingest_log = tables.ingest_log
fork_evidence = tables.fork_evidence
claimed_time_flag = tables.claimed_time_flag
down_log = tables.down_log
town_meta = tables.meta
# The township's own chain to the county: ledger, outbox, receipts, records pulled from the county.
county_up = sender_tables(metadata, "county_")
