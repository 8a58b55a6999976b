"""督办 notices from the deadline engine, sent down the chain as records signed by the township.

Implements `shared.deadline_watch.notify.SupervisionPort`: the deadline watch fires a SUPERVISE
level exactly once per (matter, hop) and hands the notice here; it becomes a `SupervisionNotice`
in the township's own signed log, queued for the agent(s) responsible for the matter. The
notification's idempotency key is the publish dedup key, so a retry after a crash publishes once.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from shared.clock import to_unix_ms
from shared.deadline_watch.notify import Notification
from shared.wire.v1 import records_pb2
from town_center.services import TownServices

_TIERS = {"village": records_pb2.TIER_VILLAGE, "township": records_pb2.TIER_TOWNSHIP, "county": records_pb2.TIER_COUNTY}

# Which devices must hear about a matter (its filing agent, and anyone the township adds).
AudienceFor = Callable[[str], Sequence[str]]


class SignedSupervisionRecorder:
    def __init__(self, services: TownServices, audience_for: AudienceFor, *, supervise_working_days: int = 3) -> None:
        self.services = services
        self.audience_for = audience_for
        self.supervise_working_days = supervise_working_days

    def record_supervision(self, notification: Notification) -> None:
        matter_id = notification.data.get("matter_id", "")
        audience = list(self.audience_for(matter_id)) or ["*"]
        record = records_pb2.Record()
        body = record.supervision_notice
        body.notice_id = hashlib.sha256(notification.idempotency_key.encode()).hexdigest()[:32]
        body.matter_id = matter_id
        body.hop_tier = _TIERS.get(notification.data.get("hop", ""), records_pb2.TIER_TOWNSHIP)
        body.level = records_pb2.SUPERVISION_LEVEL_SUPERVISE
        body.overdue_working_days = self.supervise_working_days
        body.message = notification.text_zh
        body.issued_at_ms = to_unix_ms(self.services.clock.now())
        body.issued_by = self.services.signer.key_id
        self.services.publish(record, audience, dedup_key=f"supervision:{notification.idempotency_key}")


