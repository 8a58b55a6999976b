"""The notification outbox (implements `notify.OutboxPort`): notifications are written in the same
transaction as their cause, claimed under a lease by the relay that sends them, and marked sent,
retried or rejected; an applicant's number leaves the row once the gateway is done with it."""
from __future__ import annotations

import datetime as dt
import json
import logging
import sqlite3
from collections.abc import Sequence

from sqlalchemy import Connection, func, select, update

from shared.deadline_watch.access import TableAccess
from shared.deadline_watch.instants import _from_ms, _now_ms
from shared.deadline_watch.notify import Notification, OutboxItem, mask_phone
from shared.deadline_watch.tables import notification_outbox

__all__ = ["NotificationOutbox"]

# Keeps the logger name the store had before it was split, so log filters stay as they were.
log = logging.getLogger("shared.deadline_watch.store")


class NotificationOutbox:
    """Reads and writes `notification_outbox`."""

    def __init__(self, db: TableAccess) -> None:
        self._db = db

    def enqueue(self, c: Connection, notifications: Sequence[Notification], now_ms: int) -> int:
        o = notification_outbox
        params = [
            {
                "idempotency_key": n.idempotency_key,
                "kind": n.kind.value,
                "audience": n.audience.value,
                "payload_json": json.dumps(n.to_json_dict(), ensure_ascii=False, separators=(",", ":")),
                "status": "pending",
                "attempts": 0,
                "created_at_ms": now_ms,
                "next_attempt_at_ms": now_ms,
            }
            for n in notifications
        ]
        if self._db.dialect == "postgresql" and len(params) > 1:
            # JSON payloads are costly to escape into a text[] literal; a pipelined executemany of
            # one short statement is faster. Batches only come from the scan, which needs no count.
            c.exec_driver_sql(
                "INSERT INTO notification_outbox (idempotency_key, kind, audience, payload_json, status, attempts,"
                " created_at_ms, next_attempt_at_ms) VALUES (%s, %s, %s, %s, 'pending', 0, %s, %s)"
                " ON CONFLICT (idempotency_key) DO NOTHING",
                [(p["idempotency_key"], p["kind"], p["audience"], p["payload_json"], now_ms, now_ms) for p in params],
            )
            return len(params)
        result = c.execute(
            self._db.insert(o).on_conflict_do_nothing(index_elements=[o.c.idempotency_key]).returning(o.c.id), params
        )
        return len(result.all())

    def enqueue_notification(
        self, notification: Notification, *, now: dt.datetime, conn: Connection | None = None
    ) -> bool:
        """Put a notification in the outbox (pass `conn` to share the caller's transaction).
        Returns False when one with the same idempotency key is already there."""
        return bool(self._db.run(conn, lambda c: self.enqueue(c, [notification], _now_ms(now))))

    def claim_notifications(
        self, now: dt.datetime, *, limit: int, lease_after: dt.timedelta, owner: str
    ) -> list[OutboxItem]:
        o = notification_outbox
        now_ms = _now_ms(now)
        lease_ms = now_ms + int(lease_after.total_seconds() * 1000)

        def work(c: Connection) -> list[OutboxItem]:
            rows = c.execute(
                self._db.locking(
                    select(o.c.id, o.c.payload_json, o.c.attempts)
                    .where(o.c.status == "pending", o.c.next_attempt_at_ms <= now_ms)
                    .order_by(o.c.next_attempt_at_ms)
                    .limit(limit),
                    skip_locked=True,
                )
            ).all()
            if not rows:
                return []
            c.execute(
                update(o)
                .where(o.c.id.in_([r.id for r in rows]))
                .values(lease_owner=owner[:96], next_attempt_at_ms=lease_ms, attempts=o.c.attempts + 1)
            )
            return [
                OutboxItem(r.id, Notification.from_json_dict(json.loads(r.payload_json)), r.attempts + 1) for r in rows
            ]

        return self._db.run(None, work)

    def mark_sent(self, item_id: int, *, owner: str, now: dt.datetime) -> None:
        o = notification_outbox
        self._db.run(
            None,
            lambda c: c.execute(
                update(o)
                .where(o.c.id == item_id, o.c.status == "pending")
                .values(status="sent", sent_at_ms=_now_ms(now), next_attempt_at_ms=None, lease_owner=owner[:96])
            ),
        )

    def mark_retry(self, item_id: int, *, owner: str, now: dt.datetime, retry_at: dt.datetime, reason: str) -> None:
        o = notification_outbox
        self._db.run(
            None,
            lambda c: c.execute(
                update(o)
                .where(o.c.id == item_id, o.c.status == "pending", o.c.lease_owner == owner[:96])
                .values(next_attempt_at_ms=_now_ms(retry_at), lease_owner=None, last_error=reason[:200])
            ),
        )

    def mark_rejected(self, item_id: int, *, owner: str, now: dt.datetime, reason: str) -> None:
        o = notification_outbox
        self._db.run(
            None,
            lambda c: c.execute(
                update(o)
                .where(o.c.id == item_id, o.c.status == "pending")
                .values(status="rejected", next_attempt_at_ms=None, lease_owner=owner[:96], last_error=reason[:200])
            ),
        )

    def forget_recipient(self, item_id: int) -> None:
        """An applicant's mobile number leaves a row once the gateway took (or finally refused) it: the
        row keeps the masked number for the record. SQLite zeroes the freed bytes (secure_delete) so
        the old row cannot be read back from the file."""
        o = notification_outbox

        def work(c: Connection) -> None:
            if c.dialect.name == "sqlite":
                c.exec_driver_sql("PRAGMA secure_delete=ON")
            row = c.execute(
                select(o.c.payload_json).where(o.c.id == item_id, o.c.status.in_(("sent", "rejected")))
            ).first()
            if row is None:
                return
            payload = json.loads(row.payload_json)
            if payload.get("audience") != "applicant":
                return
            payload["recipient"] = mask_phone(str(payload.get("recipient", "")))
            c.execute(update(o).where(o.c.id == item_id).values(
                payload_json=json.dumps(payload, ensure_ascii=False, separators=(",", ":"))))

        self._db.run(None, work)
        self._truncate_wal()

    def _truncate_wal(self) -> None:
        """The row as queued (with the number) lives on in the SQLite write-ahead log until that is
        checkpointed and cut back: done here on a connection of its own, waiting at most a few seconds
        for readers. Best effort: when busy, the next forgotten number tries again."""
        if self._db.engine.dialect.name != "sqlite" or not self._db.engine.url.database:
            return
        try:
            with sqlite3.connect(self._db.engine.url.database, timeout=3) as raw:
                busy = raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            raw.close()
        except sqlite3.Error as exc:
            log.warning("WAL checkpoint after forgetting a number failed: %s", exc.__class__.__name__)
            return
        if busy:
            log.info("WAL checkpoint after forgetting a number was busy; retried with the next one")

    def next_notification_at(self) -> dt.datetime | None:
        o = notification_outbox
        return self._db.run(
            None,
            lambda c: _from_ms(
                c.execute(
                    select(o.c.next_attempt_at_ms)
                    .where(o.c.status == "pending", o.c.next_attempt_at_ms.is_not(None))
                    .order_by(o.c.next_attempt_at_ms)
                    .limit(1)
                ).scalar()
            ),
        )

    def outbox_counts(self, *, conn: Connection | None = None) -> dict[str, int]:
        o = notification_outbox
        return self._db.run(
            conn,
            lambda c: {s: n for s, n in c.execute(select(o.c.status, func.count()).group_by(o.c.status)).all()},
        )

