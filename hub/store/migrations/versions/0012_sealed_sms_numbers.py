"""Applicants' mobile numbers in the SMS queue are kept sealed to the tier's key, never in clear:
`notification_outbox.sealed_recipient` holds the sealed number until the gateway is done with it, and
the row's JSON holds only the masked number.

Here, without the key: the column is added, and rows already sent or finally refused have any number
left in their JSON masked. Rows still waiting to be sent are sealed by the store when the tier starts
with its key (`DeadlineStore.seal_queued_numbers`), which then rewrites the old row versions away.

Revision ID: hub_0012
Revises: hub_0011

Explicit operations, frozen: never import the models here, they move on and this revision must not.
"""
from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "hub_0012"
down_revision: str | None = "hub_0011"
branch_labels = None
depends_on = None


def _masked(number: str) -> str:
    digits = "".join(ch for ch in number if ch.isdigit())
    return "****" if len(digits) < 7 else f"{digits[:3]}****{digits[-4:]}"


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    if not inspector.has_table("notification_outbox"):
        return
    if "sealed_recipient" not in {c["name"] for c in inspector.get_columns("notification_outbox")}:
        op.add_column("notification_outbox", sa.Column("sealed_recipient", sa.LargeBinary(), nullable=True))
    rows = bind.execute(sa.text("SELECT id, payload_json FROM notification_outbox"
                                " WHERE audience = 'applicant' AND status IN ('sent', 'rejected')")).all()
    for row_id, payload_json in rows:
        payload = json.loads(payload_json)
        number = str(payload.get("recipient", ""))
        if number and _masked(number) != number:
            payload["recipient"] = _masked(number)
            bind.execute(sa.text("UPDATE notification_outbox SET payload_json = :p WHERE id = :i"),
                         {"p": json.dumps(payload, ensure_ascii=False, separators=(",", ":")), "i": row_id})


def downgrade() -> None:
    with op.batch_alter_table("notification_outbox") as batch:
        batch.drop_column("sealed_recipient")
