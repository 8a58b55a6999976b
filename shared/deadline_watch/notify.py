"""Notifications: what is said (templates), the ports that say it, and the outbox relay.

* `Notifier` is the port for messages to people: `WebhookNotifier` POSTs JSON to an SMS gateway or
  the office messaging endpoint; `LogNotifier` writes them to the log (development, offline sites).
* `SupervisionPort` receives 督办 notices. `LogSupervisionRecorder` only logs them; the township and
  county code that sends them down as signed records implements this port later.
* `OutboxRelay` drains the durable outbox table (`DeadlineStore` implements `OutboxPort`). A
  notification is written to the outbox in the same transaction as the event that causes it, so a
  crash between firing and sending still sends after restart; it is marked sent only after the
  endpoint accepted it, and every retry carries the same idempotency key so the receiver can drop
  duplicates (delivery is at-least-once; the key makes the effect once).

Personal data: an applicant's mobile number is needed to send an SMS. The outbox keeps it only sealed to
the tier's key (`sealed_recipient`; the row's JSON has the masked number), opens it when the relay claims
the row, and drops it once the gateway has taken (or finally refused) the message
(`OutboxPort.forget_recipient`); it is never logged (`mask_phone`) nor put in an error message.

What people read names a matter as people know it, never by its internal id: `MatterNames` is the port
through which each tier supplies a matter's title (the catalogue item, the village or township) and,
where the tier knows it, the lookup code; hops are named in Chinese (`HOP_ZH`). The relay words each
notice with the names at the moment it is delivered, so a notice queued before a restart reads the same.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Protocol

import httpx

from shared.clock import Clock, SystemClock
from shared.deadline_watch.errors import (
    DeliveryRejectedError,
    DeliveryRetryableError,
    NotificationError,
)
from shared.domain.deadlines import ClockState, format_instant_zh
from shared.retry import RetryPolicy

__all__ = [
    "Audience",
    "NotificationKind",
    "Notification",
    "Notifier",
    "SupervisionPort",
    "LogNotifier",
    "LogSupervisionRecorder",
    "WebhookNotifier",
    "sign_body",
    "verify_signature",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "IDEMPOTENCY_HEADER",
    "OutboxItem",
    "OutboxPort",
    "OutboxRelay",
    "DrainReport",
    "deadline_notifications",
    "result_ready_sms",
    "extension_notice_sms",
    "mask_phone",
    "MatterName",
    "MatterNames",
    "HOP_ZH",
    "hop_zh",
    "worded",
]

log = logging.getLogger("shared.deadline_watch.notify")

SIGNATURE_HEADER = "X-QCDB-Signature"
TIMESTAMP_HEADER = "X-QCDB-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"


class Audience(str, Enum):
    APPLICANT = "applicant"  # SMS to the applicant's mobile
    STAFF = "staff"  # office messaging to the responsible operator / window
    SUPERVISION = "supervision"  # 督办 record, handled by the SupervisionPort


class NotificationKind(str, Enum):
    DEADLINE_WARNING = "deadline_warning"
    DEADLINE_OVERDUE = "deadline_overdue"
    DEADLINE_SUPERVISE = "deadline_supervise"
    RESULT_READY = "result_ready"
    EXTENSION_NOTICE = "extension_notice"
    APPOINTMENT_NOTICE = "appointment_notice"  # a window appointment changed or cancelled (town_center.front_desk)


@dataclass(frozen=True)
class Notification:
    idempotency_key: str  # stable across retries and processes: the receiver dedups on it
    kind: NotificationKind
    audience: Audience
    recipient: str  # staff id / window code; for APPLICANT a mobile number (personal data)
    text_zh: str
    data: Mapping[str, str] = field(default_factory=dict)  # matter_id, hop, level, due_at …

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "idempotency_key": self.idempotency_key,
            "kind": self.kind.value,
            "audience": self.audience.value,
            "recipient": self.recipient,
            "text": self.text_zh,
            "data": dict(self.data),
        }

    @classmethod
    def from_json_dict(cls, d: Mapping[str, Any]) -> Notification:
        return cls(
            idempotency_key=d["idempotency_key"],
            kind=NotificationKind(d["kind"]),
            audience=Audience(d["audience"]),
            recipient=d["recipient"],
            text_zh=d["text"],
            data=dict(d.get("data", {})),
        )

    def safe_repr(self) -> str:
        """For logs: the recipient masked when it is an applicant's number."""
        who = mask_phone(self.recipient) if self.audience is Audience.APPLICANT else self.recipient
        return f"{self.kind.value} to {self.audience.value}:{who} key={self.idempotency_key}"


# The hop keys the tiers save clocks under, as people call them (town_center.handling, hub.handling).
HOP_ZH = {
    "village": "村级报送",
    "acceptance": "乡镇受理",
    "township": "乡镇办理",
    "county": "县级办理",
    "delivery": "送达",
}


def hop_zh(hop: str) -> str:
    return HOP_ZH.get(hop, "办理")


@dataclass(frozen=True)
class MatterName:
    """How people know a matter: its title (the catalogue item's name), where it comes from, and the
    lookup code on the villager's receipt where this tier knows it."""

    title: str
    place: str = ""          # the village (at the township) or the township (at the county)
    lookup_code: str = ""

    def text_zh(self) -> str:
        where = f"{self.place}的" if self.place else ""
        code = f"（查询码 {self.lookup_code}）" if self.lookup_code else ""
        return f"{where}“{self.title}”{code}"


class MatterNames(Protocol):
    """The port through which a tier names its matters in notices. None when it does not know the matter."""

    def matter_name(self, matter_id: str) -> MatterName | None: ...


def _matter_text(name: MatterName | None) -> str:
    return name.text_zh() if name is not None else "一件办件"


def mask_phone(phone: str) -> str:
    """'13812345678' → '138****5678'; anything short is fully masked."""
    digits = "".join(ch for ch in phone if ch.isdigit())
    if len(digits) < 7:
        return "****"
    return f"{digits[:3]}****{digits[-4:]}"


# --------------------------------------------------------------------------------------------
# Ports and simple implementations
# --------------------------------------------------------------------------------------------


class Notifier(Protocol):
    def send(self, notification: Notification) -> None:
        """Deliver or raise `DeliveryRetryableError` / `DeliveryRejectedError`."""
        ...


class SupervisionPort(Protocol):
    def record_supervision(self, notification: Notification) -> None:
        """Take a 督办 notice (audience SUPERVISION). Must be idempotent on the notification's
        idempotency key: after a crash the same notice can come again."""
        ...


class LogNotifier:
    """Writes notifications to the log instead of sending them. Applicant numbers are masked and
    applicant texts are not logged."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or log

    def send(self, notification: Notification) -> None:
        if notification.audience is Audience.APPLICANT:
            self._log.info("通知（未发送，仅记录）%s", notification.safe_repr())
        else:
            self._log.info("通知（未发送，仅记录）%s：%s", notification.safe_repr(), notification.text_zh)


class LogSupervisionRecorder:
    """Until signed 督办 records are built, a 督办 notice is only logged (the deadline_event row is
    the durable record)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or log

    def record_supervision(self, notification: Notification) -> None:
        self._log.warning("督办：%s：%s", notification.safe_repr(), notification.text_zh)


# --------------------------------------------------------------------------------------------
# Webhook
# --------------------------------------------------------------------------------------------


# Half jitter: each wait keeps at least half of its exponential step, so a notification is not
# retried almost at once, while many senders still do not retry in step.
WEBHOOK_RETRY = RetryPolicy(initial_s=0.5, cap_s=30.0, jitter=0.5)   # within one send
OUTBOX_RETRY = RetryPolicy(initial_s=30.0, cap_s=3600.0, jitter=0.5)  # across drains of the outbox


def sign_body(secret: bytes, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over ``timestamp + "." + body``; the header value is ``"v1=" + hex``.

    The timestamp is signed so a captured request cannot be replayed much later; receivers should
    reject timestamps far from their own clock and dedup on the idempotency key."""
    mac = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify_signature(secret: bytes, timestamp: str, body: bytes, header_value: str) -> bool:
    return hmac.compare_digest(sign_body(secret, timestamp, body), header_value)


class WebhookNotifier:
    """POSTs a notification as JSON to an SMS gateway or office messaging endpoint.

    Headers: ``Idempotency-Key`` (the same on every retry), ``X-QCDB-Timestamp`` (unix seconds) and
    ``X-QCDB-Signature`` (`sign_body`). Timeouts, connection errors, 5xx and 429 are retried up to
    `max_attempts` with `backoff`; then `DeliveryRetryableError` is raised and the outbox retries
    later. Other 4xx raise `DeliveryRejectedError` at once. 2xx is success (the receiver may answer
    2xx for a duplicate key too)."""

    def __init__(
        self,
        url: str,
        secret: bytes,
        *,
        timeout_after: float = 5.0,
        max_attempts: int = 3,
        backoff: RetryPolicy = WEBHOOK_RETRY,
        clock: Clock | None = None,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not secret:
            raise ValueError("a webhook needs a signing secret")
        self._url = url
        self._secret = secret
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._clock = clock or SystemClock()
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_after),
            transport=transport,
            follow_redirects=False,
            headers={"User-Agent": "quancheng-daiban-deadline-watch/1"},
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> WebhookNotifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, notification: Notification) -> None:
        # The body is serialized once: every retry carries exactly the same bytes.
        body = json.dumps(notification.to_json_dict(), ensure_ascii=False, sort_keys=True).encode("utf-8")
        last_reason = "未尝试"
        for attempt in range(1, self._max_attempts + 1):
            timestamp = str(int(self._clock.now().timestamp()))
            headers = {
                "Content-Type": "application/json; charset=utf-8",
                IDEMPOTENCY_HEADER: notification.idempotency_key,
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: sign_body(self._secret, timestamp, body),
            }
            retry_after: float | None = None
            try:
                response = self._client.post(self._url, content=body, headers=headers)
            except httpx.TimeoutException as exc:
                last_reason = f"超时（{exc.__class__.__name__}）"
            except httpx.TransportError as exc:
                last_reason = f"连接失败（{exc.__class__.__name__}）"
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return
                if status == 429 or status >= 500:
                    last_reason = f"对方返回 HTTP {status}"
                    retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
                else:
                    raise DeliveryRejectedError(f"对方拒收：HTTP {status}")
            if attempt < self._max_attempts:
                delay = self._backoff.delay(attempt, self._rng)
                if retry_after is not None:
                    delay = max(delay, min(retry_after, self._backoff.cap_s))
                self._sleep(delay)
        raise DeliveryRetryableError(f"{self._max_attempts}次尝试均失败，最后一次：{last_reason}")


def _retry_after_seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


# --------------------------------------------------------------------------------------------
# Outbox relay
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutboxItem:
    id: int
    notification: Notification
    attempts: int  # including the current claim


class OutboxPort(Protocol):
    """The durable outbox (implemented by `DeadlineStore`). Claims are leases: an item claimed by
    a relay that then dies becomes claimable again once the lease runs out."""

    def claim_notifications(
        self, now: dt.datetime, *, limit: int, lease_after: dt.timedelta, owner: str
    ) -> list[OutboxItem]: ...

    def mark_sent(self, item_id: int, *, owner: str, now: dt.datetime) -> None: ...

    def mark_retry(self, item_id: int, *, owner: str, now: dt.datetime, retry_at: dt.datetime, reason: str) -> None: ...

    def mark_rejected(self, item_id: int, *, owner: str, now: dt.datetime, reason: str) -> None: ...

    def forget_recipient(self, item_id: int) -> None:
        """Drop an applicant's sealed mobile number from a row that is sent or finally refused."""
        ...


@dataclass
class DrainReport:
    sent: int = 0
    retried: int = 0
    rejected: int = 0

    def __add__(self, other: DrainReport) -> DrainReport:
        return DrainReport(self.sent + other.sent, self.retried + other.retried, self.rejected + other.rejected)


class OutboxRelay:
    """Sends what the outbox holds. Keeps no queue in memory: everything comes from the table, so
    after a restart it simply carries on. One relay drains at a time (the watch's scan job)."""

    def __init__(
        self,
        outbox: OutboxPort,
        notifier: Notifier,
        supervision: SupervisionPort | None = None,
        *,
        owner: str,
        batch_size: int = 50,
        max_batches: int = 20,
        lease_after: dt.timedelta = dt.timedelta(minutes=2),
        retry_backoff: RetryPolicy = OUTBOX_RETRY,
        rng: random.Random | None = None,
        names: MatterNames | None = None,
    ) -> None:
        self._outbox = outbox
        self._names = names
        self._notifier = notifier
        self._supervision = supervision or LogSupervisionRecorder()
        self._owner = owner
        self._batch_size = batch_size
        self._max_batches = max_batches
        self._lease_after = lease_after
        self._retry_backoff = retry_backoff
        self._rng = rng or random.Random()

    def drain(self, now: dt.datetime) -> DrainReport:
        report = DrainReport()
        for _ in range(self._max_batches):
            items = self._outbox.claim_notifications(
                now, limit=self._batch_size, lease_after=self._lease_after, owner=self._owner
            )
            for item in items:
                report += self._deliver(item, now)
            if len(items) < self._batch_size:
                break
        return report

    def _deliver(self, item: OutboxItem, now: dt.datetime) -> DrainReport:
        n = worded(item.notification, self._names)
        try:
            if n.audience is Audience.SUPERVISION:
                self._supervision.record_supervision(n)
            else:
                self._notifier.send(n)
        except DeliveryRejectedError as exc:
            log.error("通知被拒收，不再重试：%s：%s", n.safe_repr(), exc.reason)
            self._outbox.mark_rejected(item.id, owner=self._owner, now=now, reason=exc.reason)
            self._forget(item)
            return DrainReport(rejected=1)
        except NotificationError as exc:
            retry_at = now + dt.timedelta(seconds=self._retry_backoff.delay(item.attempts, self._rng))
            log.warning("通知暂未送达，稍后重试：%s：%s", n.safe_repr(), exc.reason)
            self._outbox.mark_retry(item.id, owner=self._owner, now=now, retry_at=retry_at, reason=exc.reason)
            return DrainReport(retried=1)
        except Exception as exc:  # a buggy port must not stop the other notifications
            retry_at = now + dt.timedelta(seconds=self._retry_backoff.delay(item.attempts, self._rng))
            reason = f"发送时出错：{exc.__class__.__name__}"
            log.exception("通知发送出错：%s", n.safe_repr())
            self._outbox.mark_retry(item.id, owner=self._owner, now=now, retry_at=retry_at, reason=reason)
            return DrainReport(retried=1)
        self._outbox.mark_sent(item.id, owner=self._owner, now=now)
        self._forget(item)
        return DrainReport(sent=1)

    def _forget(self, item: OutboxItem) -> None:
        if item.notification.audience is Audience.APPLICANT:
            self._outbox.forget_recipient(item.id)


# --------------------------------------------------------------------------------------------
# What is said
# --------------------------------------------------------------------------------------------


def deadline_notifications(
    *,
    matter_id: str,
    hop: str,
    level: ClockState,
    due_at: dt.datetime,
    responsible: str | None,
    supervise_working_days: int = 3,
    name: MatterName | None = None,
) -> list[Notification]:
    """The staff notice for a fired level, and for 督办 also the supervision record. The matter is
    named by `name` (or as "一件办件" until the relay words it with the tier's `MatterNames`)."""
    data = {"matter_id": matter_id, "hop": hop, "level": level.value, "due_at": due_at.isoformat(),
            "supervise_working_days": str(supervise_working_days)}
    staff = responsible or "office"
    base_key = f"deadline:{matter_id}:{hop}:{level.value}"
    text = _deadline_text(level, hop, due_at, supervise_working_days, name)
    if level is ClockState.WARNING:
        return [Notification(base_key, NotificationKind.DEADLINE_WARNING, Audience.STAFF, staff, text, data)]
    if level is ClockState.OVERDUE:
        return [Notification(base_key, NotificationKind.DEADLINE_OVERDUE, Audience.STAFF, staff, text, data)]
    if level is ClockState.SUPERVISE:
        return [
            Notification(base_key + ":staff", NotificationKind.DEADLINE_SUPERVISE, Audience.STAFF, staff, text, data),
            Notification(
                base_key + ":record", NotificationKind.DEADLINE_SUPERVISE, Audience.SUPERVISION, staff, text, data
            ),
        ]
    raise ValueError(f"no notification for level {level}")


def _deadline_text(level: ClockState, hop: str, due_at: dt.datetime, supervise_working_days: int,
                   name: MatterName | None) -> str:
    what, due_text = f"{_matter_text(name)}（{hop_zh(hop)}环节）", format_instant_zh(due_at)
    if level is ClockState.WARNING:
        return f"【临期预警】{what}将于 {due_text} 到期，请抓紧办理。"
    if level is ClockState.OVERDUE:
        return f"【超期提醒】{what}已超过办理期限（{due_text}），请尽快办结并说明超期原因。"
    return (f"【督办】{what}已超期{supervise_working_days}个工作日（期限 {due_text}），"
            "请立即处理、说明原因，并与申请人联系。")


def _result_ready_text(name: MatterName | None, pickup_place_zh: str) -> str:
    # An applicant is told the title only: the village and lookup code are on the receipt they hold.
    what = f"“{name.title}”" if name is not None else "事项"
    return f"您委托办理的{what}已办结，请携带身份证件到{pickup_place_zh}领取结果并签收确认。"


def _extension_text(name: MatterName | None, new_due_at: dt.datetime) -> str:
    what = f"“{name.title}”" if name is not None else "事项"
    return (f"您委托办理的{what}经批准延期办理，办理期限延至 {format_instant_zh(new_due_at)}，"
            "书面延期告知书将送达您本人。")


def result_ready_sms(*, matter_id: str, phone: str, pickup_place_zh: str, key: str | None = None,
                     name: MatterName | None = None) -> Notification:
    """The applicant's SMS when the result is ready to collect. Enqueue it in the transaction that
    records the result (`DeadlineStore.enqueue_notification(..., conn=...)`)."""
    return Notification(
        key or f"result-ready:{matter_id}",
        NotificationKind.RESULT_READY,
        Audience.APPLICANT,
        phone,
        _result_ready_text(name, pickup_place_zh),
        {"matter_id": matter_id, "pickup_place": pickup_place_zh},
    )


def extension_notice_sms(
    *, matter_id: str, hop: str, phone: str, new_due_at: dt.datetime, extension_index: int,
    name: MatterName | None = None,
) -> Notification:
    """An SMS telling the applicant of an approved extension (the written notice itself is a
    document; this tells them it exists)."""
    return Notification(
        f"extension:{matter_id}:{hop}:{extension_index}",
        NotificationKind.EXTENSION_NOTICE,
        Audience.APPLICANT,
        phone,
        _extension_text(name, new_due_at),
        {"matter_id": matter_id, "hop": hop, "due_at": new_due_at.isoformat()},
    )


def worded(notification: Notification, names: MatterNames | None) -> Notification:
    """The notification as people should read it: its matter named through `names`. A notification
    whose data cannot be worded again (another kind, or missing fields) is returned as queued."""
    matter_id = notification.data.get("matter_id", "")
    if names is None or not matter_id:
        return notification
    try:
        name = names.matter_name(matter_id)
    except Exception:
        log.exception("办件名称查询出错，通知按原文发送：%s", notification.safe_repr())
        return notification
    if name is None:
        return notification
    data, kind = notification.data, notification.kind
    try:
        if kind in (NotificationKind.DEADLINE_WARNING, NotificationKind.DEADLINE_OVERDUE, NotificationKind.DEADLINE_SUPERVISE):
            text = _deadline_text(ClockState(data["level"]), data.get("hop", ""), dt.datetime.fromisoformat(data["due_at"]),
                                  int(data.get("supervise_working_days", "3")), name)
        elif kind is NotificationKind.RESULT_READY and "pickup_place" in data:
            text = _result_ready_text(name, data["pickup_place"])
        elif kind is NotificationKind.EXTENSION_NOTICE and "due_at" in data:
            text = _extension_text(name, dt.datetime.fromisoformat(data["due_at"]))
        else:
            return notification
    except (KeyError, ValueError):
        return notification
    return replace(notification, text_zh=text)

