"""Township use cases around the relay: approving and revoking device keys, publishing signed
records down to villages. Each one changes the tables and, where a village must learn about it,
queues a record signed by the township in the down-log in the same store call."""
from __future__ import annotations

import logging
from collections.abc import Sequence

from shared.clock import Clock, to_unix_ms
from shared.domain.catalog import FILE_ITEM, Catalog, parse_catalog
from shared.domain.personal_data import personal_data_problem
from shared.errors import CatalogError
from shared.relay.ports import AgentKey, KeyState
from shared.signing import Signer
from shared.wire.v1 import records_pb2
from shared.wire_views import key_role_to_wire
from town_center.errors import StoreError
from town_center.store import TownStore

__all__ = ["TownServices", "CATALOG_TEXT_META", "CATALOG_VERSION_META", "published_catalog"]

CATALOG_TEXT_META = "catalog_toml"
CATALOG_VERSION_META = "catalog_version"


def published_catalog(store: TownStore) -> Catalog | None:
    """The catalogue this township last published, if any (it replaces the shipped one after a restart)."""
    text = store.get_meta(CATALOG_TEXT_META)
    return parse_catalog(text) if text else None

log = logging.getLogger(__name__)


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
        body.key_id, body.public_key, body.role = agent.key_id, agent.public_key, key_role_to_wire(agent.info.role)
        body.approved_by, body.village_code, body.township_code = by, agent.info.village_code, agent.info.township_code
        self.publish(record, [agent.key_id])
        log.info("key %s approved by %s", agent.key_id, by)
        return agent

    def revoke(self, key_id: str, *, by: str, reason: str) -> AgentKey:
        """Raises `StoreError` (Chinese) when the reason carries an ID or mobile number: it is signed
        in clear into the key_revoked record every village receives."""
        problem = personal_data_problem(reason, "吊销原因")
        if problem:
            raise StoreError(problem)
        now_ms = self._now_ms()
        agent = self.store.revoke(key_id, by=by, reason=reason, now_ms=now_ms)
        record = records_pb2.Record()
        body = record.key_revoked
        body.key_id, body.effective_at_ms, body.reason = agent.key_id, now_ms, reason
        body.revoked_by, body.last_valid_seq = by, agent.last_valid_seq
        self.publish(record, [agent.key_id])
        log.warning("key %s revoked by %s after seq %d: %s", agent.key_id, by, agent.last_valid_seq, reason)
        return agent

    def publish_catalog(self, toml_text: str, *, by: str) -> Catalog:
        """Validate a new service catalogue, keep it as the township's own, and send it to every village.
        Raises `CatalogError` (naming item and field) before anything is stored or sent."""
        catalog = parse_catalog(toml_text)
        current = self.store.get_meta(CATALOG_VERSION_META)
        if current and current == catalog.version:
            raise CatalogError(FILE_ITEM, "version", f"目录版本 {catalog.version} 已发布过，请提高版本号后再发布")
        record = records_pb2.Record()
        record.catalog_update.version = catalog.version
        record.catalog_update.catalog_toml = toml_text.encode("utf-8")
        self.publish(record, ["*"], dedup_key=f"catalog:{catalog.version}",
                     meta={CATALOG_TEXT_META: toml_text, CATALOG_VERSION_META: catalog.version})
        log.info("catalogue %s published by %s (%d items)", catalog.version, by, len(catalog))
        return catalog

    def publish(self, record: records_pb2.Record, audience_key_ids: Sequence[str], *, dedup_key: str = "",
                meta: dict[str, str] | None = None) -> int:
        """Sign `record` with the township key and queue it for the given devices ("*" for all)."""
        record.audience.key_ids.extend(k for k in audience_key_ids if k != "*")
        return self.store.publish(self.signer, record, audience_key_ids, now_ms=self._now_ms(), dedup_key=dedup_key,
                                  meta=meta)
