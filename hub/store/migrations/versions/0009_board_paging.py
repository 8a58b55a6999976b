"""The county board pages by keyset: indexes on (received_at_ms, matter_id) over the county and
(township_code, received_at_ms, matter_id) over one township, so a page reads only its rows.

Revision ID: hub_0009
Revises: hub_0008

Explicit operations, frozen: never import the models here, they move on and this revision must not.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "hub_0009"
down_revision: str | None = "hub_0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A database made by `create_all` before it was stamped may have them already.
    present = {i["name"] for i in sa.inspect(op.get_bind()).get_indexes("county_matter")}
    if "ix_county_matter_received" not in present:
        op.create_index("ix_county_matter_received", "county_matter", ["received_at_ms", "matter_id"], unique=False)
    if "ix_county_matter_township_received" not in present:
        op.create_index("ix_county_matter_township_received", "county_matter",
                        ["township_code", "received_at_ms", "matter_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_county_matter_township_received", table_name="county_matter")
    op.drop_index("ix_county_matter_received", table_name="county_matter")
