"""The county's overdue figures and list by index: open township hops by (stopped, township, kind,
due) so the counts read only open rows, tracked matters by (township due, matter id) so the most
overdue come first without a sort, and county matters by stage for the open 上报件 count.

Revision ID: hub_0013
Revises: hub_0012

Explicit operations, frozen: never import the models here, they move on and this revision must not.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "hub_0013"
down_revision: str | None = "hub_0012"
branch_labels = None
depends_on = None

_INDEXES = (
    ("ix_tracked_open", "tracked_matter", ["township_stopped_at_ms", "township_code", "kind", "township_due_at_ms"]),
    ("ix_tracked_due", "tracked_matter", ["township_due_at_ms", "matter_id"]),
    ("ix_county_matter_stage", "county_matter", ["stage"]),
)


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    for name, table, columns in _INDEXES:
        # A database made by `create_all` before it was stamped may have them already.
        if name not in {i["name"] for i in inspector.get_indexes(table)}:
            op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    for name, table, _ in reversed(_INDEXES):
        op.drop_index(name, table_name=table)
