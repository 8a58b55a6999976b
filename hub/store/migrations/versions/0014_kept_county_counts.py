"""Counts kept as matters change instead of scanned by the county's pages: the board's totals per
(township, stage, elderly or disabled) (`county_board_count`, `hub.store.kept_counts`), back-filled
here from the matters already held; the township comparison's figures per (day and month, township,
hop) and the hops that may be open past their deadline (`township_hop_figures`, `tracked_open_hop`,
`hub.store.township_figures`), created empty: office time needs the county's working calendar, so the
county fills them from its tracked matters when it first starts on this revision.

Revision ID: hub_0014
Revises: hub_0013

Explicit operations, frozen: never import the models here, they move on and this revision must not.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "hub_0014"
down_revision: str | None = "hub_0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    # A database made by `create_all` before it was stamped may have them already (kept since its start).
    if not inspector.has_table("township_hop_figures"):
        _create_figures()
    if not inspector.has_table("county_board_count"):
        _create_board_counts()


def _create_board_counts() -> None:
    counts = op.create_table(
        "county_board_count",
        sa.Column("township_code", sa.String(length=32), nullable=False),
        sa.Column("stage", sa.String(length=24), nullable=False),
        sa.Column("elderly_or_disabled", sa.Boolean(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("township_code", "stage", "elderly_or_disabled"),
    )
    matter = sa.table("county_matter", sa.column("matter_id", sa.String), sa.column("township_code", sa.String),
                      sa.column("stage", sa.String))
    dossier = sa.table("county_dossier", sa.column("matter_id", sa.String), sa.column("elderly_or_disabled", sa.Boolean))
    # A matter without its flags row yet is counted as not flagged; the intake's dossier back-fill
    # moves it when it finds the flag in the escalation.
    elderly = sa.func.coalesce(dossier.c.elderly_or_disabled, sa.false())
    op.execute(counts.insert().from_select(
        ["township_code", "stage", "elderly_or_disabled", "n"],
        sa.select(matter.c.township_code, matter.c.stage, elderly, sa.func.count())
        .select_from(matter.outerjoin(dossier, dossier.c.matter_id == matter.c.matter_id))
        .group_by(matter.c.township_code, matter.c.stage, elderly)))


def _create_figures() -> None:
    op.create_table(
        "township_hop_figures",
        sa.Column("grain", sa.String(length=5), nullable=False),
        sa.Column("bucket", sa.String(length=10), nullable=False),
        sa.Column("township_code", sa.String(length=32), nullable=False),
        sa.Column("hop", sa.String(length=8), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False)
          for name in ("received", "completed", "on_time", "late", "office_ms", "late_open")),
        sa.PrimaryKeyConstraint("grain", "bucket", "township_code", "hop"),
    )
    op.create_table(
        "tracked_open_hop",
        sa.Column("matter_id", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("township_code", sa.String(length=32), nullable=False),
        sa.Column("hop", sa.String(length=8), nullable=False),
        sa.Column("late_from_ms", sa.BigInteger(), nullable=False),
        sa.Column("stopped_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("matter_id", "position"),
    )
    op.create_index("ix_tracked_open_hop_late", "tracked_open_hop", ["late_from_ms", "stopped_at_ms", "township_code", "hop"],
                    unique=False)


def downgrade() -> None:
    op.drop_index("ix_tracked_open_hop_late", table_name="tracked_open_hop")
    op.drop_table("tracked_open_hop")
    op.drop_table("township_hop_figures")
    op.drop_table("county_board_count")
