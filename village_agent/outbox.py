"""The village side of the relay: the laptop's outbox toward its township is the shared sender
outbox (`shared.relay.sql_outbox.SqlOutbox`) over the agent store's tables.

Trust rules (enforced by `SqlOutbox`): an outbox row is dropped only for a receipt that verifies
under the township key this laptop was set up with and that names this device, the seq and the
exact hash stored here. A record from the township is applied only if its signature verifies under
that same key.

What differs from the township's outbox toward its county: the store signs (a record commits with
its projections in one transaction), records from the township are applied to the projections at
once (`AgentStore.apply_down`, no inbox table), the store's own transactions word a full disk in
Chinese, the last receipt and sync times are kept for the sync panel, and after a restore from a
backup (`village_agent.backup`) the store is the `RecoveryStore`: the township's copies of this
laptop's later records are appended only if they carry this device's own signature and continue its
hash chain, their receipts only if the township signed them, and signing resumes only after a
township-signed tip, answering this laptop's own request, matches the ledger.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from shared.relay.sql_outbox import SenderTables, SqlOutbox
from shared.wire.v1 import records_pb2
from village_agent.store import ledger, meta, outbox, receipt

if TYPE_CHECKING:
    from village_agent.services import AgentService

__all__ = ["VILLAGE_SENDER_TABLES", "village_outbox"]

VILLAGE_SENDER_TABLES = SenderTables(ledger=ledger, outbox=outbox, receipt=receipt, inbox=None, state=meta)


def village_outbox(service: AgentService) -> SqlOutbox:
    store = service.store

    def take_up_catalog(records: Sequence[records_pb2.Record]) -> None:
        # A running agent takes up a new catalogue without a restart.
        if any(r.WhichOneof("body") == "catalog_update" for r in records):
            catalog = store.published_catalog()
            if catalog is not None:
                service.catalog = catalog

    return SqlOutbox(store.engine, VILLAGE_SENDER_TABLES, own_key_id=service.signer.key_id,
                     receiver_key_id=service.config.township_key_id,
                     receiver_public_key=service.config.township_public_key,
                     signs=False, down=store, recovery=store, transaction=store.transaction,
                     on_down=take_up_catalog, sync_marks=True, receiver_label_zh="乡镇", clock=service.clock)
