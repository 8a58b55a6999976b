"""Township use cases around the relay: approving and revoking device keys, publishing signed
records down to villages. Each one changes the tables and, where a village must learn about it,
queues a record signed by the township in the down-log in the same store call."""
from __future__ import annotations

import logging
from collections.abc import Sequence

from shared.clock import Clock, to_unix_ms
from shared.relay.ports import AgentKey, KeyState
from shared.signing import Signer
from shared.wire.v1 import records_pb2
from town_center.store import TownStore

__all__ = ["TownServices"]

log = logging.getLogger("town_center.services")


class TownServices:
    def __init__(self, store: TownStore, signer: Signer, clock: Clock) -> None:
        self.store = store
        self.signer = signer
        self.clock = clock

    def _now_ms(self) -> int:
        return to_unix_ms(self.clock.now())

    def list_agents(self, state: KeyState | None = None) -> list[AgentKey]:
        return self.store.keys(state)

    def approve(self, key_id: str, *, by: str) -> AgentKey:
        agent = self.store.approve(key_id, by=by, now_ms=self._now_ms())
        record = records_pb2.Record()
        body = record.key_approved
        body.key_id, body.public_key, body.role = agent.key_id, agent.public_key, agent.info.role  # type: ignore[assignment]
        body.approved_by, body.village_code, body.township_code = by, agent.info.village_code, agent.info.township_code
        self.publish(record, [agent.key_id])
        log.info("key %s approved by %s", agent.key_id, by)
        return agent

    def revoke(self, key_id: str, *, by: str, reason: str) -> AgentKey:
        now_ms = self._now_ms()
        agent = self.store.revoke(key_id, by=by, reason=reason, now_ms=now_ms)
        record = records_pb2.Record()
        body = record.key_revoked
        body.key_id, body.effective_at_ms, body.reason = agent.key_id, now_ms, reason
        body.revoked_by, body.last_valid_seq = by, agent.last_valid_seq
        self.publish(record, [agent.key_id])
        log.warning("key %s revoked by %s after seq %d: %s", agent.key_id, by, agent.last_valid_seq, reason)
        return agent

    def publish(self, record: records_pb2.Record, audience_key_ids: Sequence[str], *, dedup_key: str = "") -> int:
        """Sign `record` with the township key and queue it for the given devices ("*" for all)."""
        record.audience.key_ids.extend(k for k in audience_key_ids if k != "*")
        return self.store.publish(self.signer, record, audience_key_ids, now_ms=self._now_ms(), dedup_key=dedup_key)
