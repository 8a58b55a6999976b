"""Open clocks counted as they change, so `/metrics` never scans every clock: each clock row says
which state it is counted under and until when (`phase`, `phase_until_ms`, on a partial index);
`hop_clock_count` holds the counts and `hop_clock_count_change` the changes not yet folded in.

Existing open clocks are counted here under their status; a running one is marked as ended at once
(`phase_until_ms` = 0), so the first read corrects it and the deadline watch's next scan settles it.

Revision ID: hub_0006
Revises: hub_0005

Explicit operations, frozen: never import the models here, they move on and this revision must not.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "hub_0006"
down_revision: str | None = "hub_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A database made by `create_all` before it was stamped may have any part of this already.
    inspector = sa.inspect(op.get_bind())
    present = {c["name"] for c in inspector.get_columns("hop_deadline")}
    if "phase" not in present:
        with op.batch_alter_table("hop_deadline") as batch:
            batch.add_column(sa.Column("phase", sa.String(length=16), nullable=True))
            batch.add_column(sa.Column("phase_until_ms", sa.BigInteger(), nullable=True))
    if "ix_hop_deadline_phase_until" not in {i["name"] for i in inspector.get_indexes("hop_deadline")}:
        op.create_index("ix_hop_deadline_phase_until", "hop_deadline", ["phase_until_ms"], unique=False,
                        postgresql_where=sa.text("phase_until_ms IS NOT NULL"),
                        sqlite_where=sa.text("phase_until_ms IS NOT NULL"))
    if not inspector.has_table("hop_clock_count_change"):
        op.create_table("hop_clock_count_change",
            sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
            sa.Column("hop", sa.String(length=64), nullable=False),
            sa.Column("phase", sa.String(length=16), nullable=False),
            sa.Column("delta", sa.Integer(), nullable=False),
            sa.PrimaryKeyConstraint("id"))
    if not inspector.has_table("hop_clock_count"):
        op.create_table("hop_clock_count",
            sa.Column("hop", sa.String(length=64), nullable=False),
            sa.Column("phase", sa.String(length=16), nullable=False),
            sa.Column("n", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("hop", "phase"))
    if "phase" in present:
        return   # counted already by the code that made the columns
    op.execute("UPDATE hop_deadline SET phase = status, phase_until_ms = NULL WHERE status NOT IN ('running', 'stopped')")
    op.execute("UPDATE hop_deadline SET phase = 'on_time', phase_until_ms = 0 WHERE status = 'running'")
    op.execute("DELETE FROM hop_clock_count_change")
    op.execute("DELETE FROM hop_clock_count")
    op.execute("INSERT INTO hop_clock_count (hop, phase, n) SELECT hop, phase, COUNT(*) FROM hop_deadline"
               " WHERE phase IS NOT NULL GROUP BY hop, phase")


def downgrade() -> None:
    op.drop_table("hop_clock_count_change")
    op.drop_table("hop_clock_count")
    op.drop_index("ix_hop_deadline_phase_until", table_name="hop_deadline")
    with op.batch_alter_table("hop_deadline") as batch:
        batch.drop_column("phase_until_ms")
        batch.drop_column("phase")
