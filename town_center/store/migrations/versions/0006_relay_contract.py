"""The wire contract's bounds (docs/wire-v1.md): where a pending enrollment came from (pending ones are
bounded per address), the claimed time of each key's tip and the receipt time its claims are judged
against, the record-id lookup (unique per author), and the nonces of signed Pull/Recover requests.

Revision ID: town_0006
Revises: town_0005

Explicit operations, frozen: never import the models here, they move on and this revision must not.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "town_0006"
down_revision: str | None = "town_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Idempotent: a database whose relay tables were made by today's models (tests that run the
    # relay on an older schema add these first) already has them.
    inspector = sa.inspect(op.get_bind())
    present = {c["name"] for c in inspector.get_columns("agent_key")}
    if "enrolled_from" not in present:
        with op.batch_alter_table("agent_key") as batch:
            batch.add_column(sa.Column("enrolled_from", sa.String(length=64), nullable=False, server_default=""))
            batch.add_column(sa.Column("last_claimed_ms", sa.BigInteger(), nullable=False, server_default="0"))
            batch.add_column(sa.Column("claim_floor_ms", sa.BigInteger(), nullable=False, server_default="0"))
    if "ix_agent_key_state" not in {i["name"] for i in inspector.get_indexes("agent_key")}:
        op.create_index("ix_agent_key_state", "agent_key", ["state", "enrolled_at_ms"], unique=False)
    if "ix_ingest_record_id" not in {i["name"] for i in inspector.get_indexes("ingest_log")}:
        op.create_index("ix_ingest_record_id", "ingest_log", ["author_key_id", "record_id"], unique=False)
    if not inspector.has_table("request_nonce"):
        op.create_table("request_nonce",
            sa.Column("key_id", sa.String(length=32), nullable=False),
            sa.Column("nonce", sa.LargeBinary(length=64), nullable=False),
            sa.Column("expires_at_ms", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("key_id", "nonce"),
        )
        op.create_index("ix_request_nonce_expiry", "request_nonce", ["expires_at_ms"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_request_nonce_expiry", table_name="request_nonce")
    op.drop_table("request_nonce")
    op.drop_index("ix_ingest_record_id", table_name="ingest_log")
    op.drop_index("ix_agent_key_state", table_name="agent_key")
    with op.batch_alter_table("agent_key") as batch:
        batch.drop_column("claim_floor_ms")
        batch.drop_column("last_claimed_ms")
        batch.drop_column("enrolled_from")
