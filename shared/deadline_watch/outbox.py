"""The notification outbox (implements `notify.OutboxPort`): notifications are written in the same
transaction as their cause, claimed under a lease by the relay that sends them, and marked sent,
retried or rejected. An applicant's number is kept only sealed to the tier's key (`sealed_recipient`),
opened when the row is claimed, and the sealed box leaves the row once the gateway is done with it."""
from __future__ import annotations

import datetime as dt
import json
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, Engine, func, inspect, null, select, update
from sqlalchemy.exc import SQLAlchemyError

from shared.deadline_watch.access import TableAccess
from shared.deadline_watch.errors import DeadlineStoreError
from shared.deadline_watch.instants import _from_ms, _now_ms
from shared.deadline_watch.notify import Audience, Notification, OutboxItem, mask_phone
from shared.deadline_watch.sealed_recipient import RecipientSeal
from shared.deadline_watch.tables import notification_outbox
from shared.errors import SignatureError

__all__ = ["NotificationOutbox"]

# Keeps the logger name the store had before it was split, so log filters stay as they were.
log = logging.getLogger(__name__)


_NO_KEY_ZH = "未配置本级密钥，不能保存申请人手机号（短信队列只保存加密后的号码）"
_OTHER_KEY_ZH = "申请人手机号无法解密（本级密钥已更换），短信未发送"


def _has_sealed_column(engine: Engine) -> bool:
    inspector = inspect(engine)
    if not inspector.has_table("notification_outbox"):
        return True   # `create_schema` will make the table as it is now
    return "sealed_recipient" in {c["name"] for c in inspector.get_columns("notification_outbox")}


class NotificationOutbox:
    """Reads and writes `notification_outbox`. `seal` seals applicants' numbers (see the module
    docstring); without one an applicant's SMS is refused (`DeadlineStoreError`), never kept in clear."""

    def __init__(self, db: TableAccess, seal: RecipientSeal | None = None) -> None:
        self._db = db
        self._seal = seal
        # A database still at a revision before the sealed numbers (only ever opened so by the tests of
        # upgrades, which run this code on an old schema): staff notices work, applicants' SMS are refused.
        self._sealed_column = _has_sealed_column(db.engine)

    def _row(self, n: Notification, now_ms: int) -> dict[str, Any]:
        payload = n.to_json_dict()
        sealed: bytes | None = None
        if n.audience is Audience.APPLICANT:
            if self._seal is None or not self._sealed_column:
                raise DeadlineStoreError(_NO_KEY_ZH)
            sealed = self._seal.seal(n.recipient)
            payload["recipient"] = mask_phone(n.recipient)
        row: dict[str, Any] = {
            "idempotency_key": n.idempotency_key,
            "kind": n.kind.value,
            "audience": n.audience.value,
            "payload_json": json.dumps(payload, ensure_ascii=False, separators=(",", ":")),
            "status": "pending",
            "attempts": 0,
            "created_at_ms": now_ms,
            "next_attempt_at_ms": now_ms,
        }
        if self._sealed_column:
            row["sealed_recipient"] = sealed
        return row

    def enqueue(self, c: Connection, notifications: Sequence[Notification], now_ms: int) -> int:
        o = notification_outbox
        params = [self._row(n, now_ms) for n in notifications]
        if self._db.dialect == "postgresql" and len(params) > 1 and not any(p.get("sealed_recipient") for p in params):
            # JSON payloads are costly to escape into a text[] literal; a pipelined executemany of
            # one short statement is faster. Batches only come from the scan, which needs no count.
            # Batches hold staff notices only (the scan's): no sealed number to write.
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
                    select(o.c.id, o.c.payload_json, o.c.attempts,
                           o.c.sealed_recipient if self._sealed_column else null().label("sealed_recipient"))
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
            items = []
            for r in rows:
                notification = Notification.from_json_dict(json.loads(r.payload_json))
                if r.sealed_recipient is not None:
                    opened = self._open(r.sealed_recipient)
                    if opened is None:
                        # Sealed to a key this tier no longer holds: it can never be sent, so it is not retried.
                        c.execute(update(o).where(o.c.id == r.id).values(
                            status="rejected", next_attempt_at_ms=None, sealed_recipient=None, last_error=_OTHER_KEY_ZH))
                        log.error("SMS not sent, its number cannot be opened: %s", notification.safe_repr())
                        continue
                    notification = replace(notification, recipient=opened)
                items.append(OutboxItem(r.id, notification, r.attempts + 1))
            return items

        return self._db.run(None, work)

    def _open(self, sealed: bytes) -> str | None:
        if self._seal is None:
            return None
        try:
            return self._seal.open(bytes(sealed))
        except SignatureError:
            return None

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
        """An applicant's sealed number leaves a row once the gateway took (or finally refused) it; the
        row keeps the masked number for the record. SQLite zeroes the freed bytes (secure_delete)."""
        o = notification_outbox

        if not self._sealed_column:
            return

        def work(c: Connection) -> None:
            if c.dialect.name == "sqlite":
                c.exec_driver_sql("PRAGMA secure_delete=ON")
            c.execute(update(o).where(o.c.id == item_id, o.c.status.in_(("sent", "rejected")),
                                      o.c.sealed_recipient.is_not(None)).values(sealed_recipient=None))

        self._db.run(None, work)
        self._truncate_wal()

    def seal_queued_numbers(self) -> int:
        """Rows queued before numbers were sealed (the database's `notification_outbox` from an older
        version) still hold a number in their JSON: seal it where the SMS is still to be sent, mask it
        where it is not. Returns how many rows changed. Then the old row versions are rewritten away
        (VACUUM FULL on PostgreSQL, secure_delete and a WAL checkpoint on SQLite): run at start-up,
        before the relay drains. Raises `DeadlineStoreError` without a seal when such rows exist."""
        o = notification_outbox
        if not self._sealed_column:
            return 0

        def work(c: Connection) -> int:
            if c.dialect.name == "sqlite":
                c.exec_driver_sql("PRAGMA secure_delete=ON")
            rows = c.execute(select(o.c.id, o.c.status, o.c.payload_json).where(
                o.c.audience == Audience.APPLICANT.value, o.c.sealed_recipient.is_(None))).all()
            changed = 0
            for r in rows:
                payload = json.loads(r.payload_json)
                number = str(payload.get("recipient", ""))
                if not number or mask_phone(number) == number:
                    continue
                values: dict[str, Any] = {}
                if r.status == "pending":
                    if self._seal is None:
                        raise DeadlineStoreError(_NO_KEY_ZH)
                    values["sealed_recipient"] = self._seal.seal(number)
                payload["recipient"] = mask_phone(number)
                values["payload_json"] = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
                c.execute(update(o).where(o.c.id == r.id).values(**values))
                changed += 1
            return changed

        changed = self._db.run(None, work)
        if changed:
            log.warning("sealed or masked %d applicant numbers queued by an older version", changed)
            self._rewrite_old_versions()
        return changed

    def _rewrite_old_versions(self) -> None:
        if self._db.dialect == "postgresql":
            # The rows' old versions (numbers in clear) stay in the table's pages until VACUUM; FULL
            # writes the table anew and drops the old file. Once per upgraded database, so its lock is fine.
            try:
                with self._db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                    c.exec_driver_sql("VACUUM FULL notification_outbox")
            except SQLAlchemyError as exc:
                log.warning("VACUUM FULL notification_outbox failed: %s", exc.__class__.__name__)
            return
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
