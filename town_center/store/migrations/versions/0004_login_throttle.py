"""Sign-in throttled by login name and client address together: each failure records the address,
the account-wide lock has its own end, and `login_success` remembers where each account signed in
lately (the account-wide lock passes those addresses by, so nobody can lock a colleague out).

Revision ID: town_0004
Revises: town_0003

Explicit operations, frozen: never import the models here, they move on and this revision must not.
A database stamped before migrations may lack the console's tables (its console was never opened):
then there is nothing to change here, and the console's own create call makes them as they are now;
for the same reason a part already made by that call is left as it is.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "town_0004"
down_revision: str | None = "town_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table("login_failure") or not inspector.has_table("staff"):
        return
    present = {c["name"] for c in inspector.get_columns("login_failure")}
    if "client_address" not in present:
        with op.batch_alter_table("login_failure") as batch:
            batch.add_column(sa.Column("client_address", sa.String(length=64), nullable=False, server_default=""))
            batch.add_column(sa.Column("account_locked_until_ms", sa.BigInteger(), nullable=True))
    if not inspector.has_table("login_success"):
        op.create_table("login_success",
            sa.Column("staff_id", sa.String(length=64), nullable=False),
            sa.Column("client_address", sa.String(length=64), nullable=False),
            sa.Column("last_success_ms", sa.BigInteger(), nullable=False),
            sa.ForeignKeyConstraint(["staff_id"], ["staff.staff_id"], ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("staff_id", "client_address")
        )
        op.create_index(op.f("ix_login_success_last_success_ms"), "login_success", ["last_success_ms"], unique=False)


def downgrade() -> None:
    if not sa.inspect(op.get_bind()).has_table("login_success"):
        return
    op.drop_table("login_success")
    with op.batch_alter_table("login_failure") as batch:
        batch.drop_column("account_locked_until_ms")
        batch.drop_column("client_address")
