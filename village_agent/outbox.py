"""The village side of the relay: the outbox the sync loop drains and the down-flow it applies.

Trust rules: an outbox row is dropped only for a receipt that verifies under the township key
this laptop was set up with and that names this device, the seq and the exact hash stored here.
A record from the township is applied only if its signature verifies under that same key.

After a restore from a backup (`village_agent.backup`) the outbox is also the `RecoveryLog`: the
township's copies of this laptop's later records are appended only if they carry this device's own
signature and continue its hash chain, their receipts only if the township signed them, and signing
resumes only after a township-signed tip, answering this laptop's own request, matches the ledger.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from sqlalchemy import delete, func, insert, select

from shared.clock import Clock, SystemClock, to_unix_ms
from shared.domain.catalog import Catalog
from shared.envelope import ChainTip, open_down_records, open_receipt, open_record, receipt_problem
from shared.errors import EnvelopeError
from shared.relay.server import recover_tip_signing_bytes
from shared.signing import is_valid, payload_hash
from shared.wire.v1 import envelope_pb2
from village_agent.errors import RecoveryError
from village_agent.store import AgentStore, ledger, outbox, receipt

log = logging.getLogger("village_agent.outbox")


class VillageOutbox:
    def __init__(self, store: AgentStore, *, own_key_id: str, township_public_key: bytes, township_key_id: str,
                 on_catalog: Callable[[Catalog], None] | None = None, clock: Clock | None = None) -> None:
        self.store = store
        self.clock = clock or SystemClock()
        self.on_catalog = on_catalog  # a running agent takes up a new catalogue without a restart
        self.own_key_id = own_key_id
        self.township_public_key = township_public_key
        self.township_key_id = township_key_id

    def pending(self, limit: int) -> list[envelope_pb2.Envelope]:
        """Queued records, lowest seq first."""
        query = (select(ledger.c.payload, ledger.c.signature).join(outbox, outbox.c.seq == ledger.c.seq)
                 .order_by(ledger.c.seq).limit(limit))
        with self.store.engine.connect() as conn:
            return [envelope_pb2.Envelope(payload=bytes(r.payload), signature=bytes(r.signature), key_id=self.own_key_id)
                    for r in conn.execute(query)]

    def pending_count(self) -> int:
        return self.store.outbox_size()

    def confirm(self, receipts: Sequence[envelope_pb2.Envelope], *, now_ms: int) -> int:
        """Verify each receipt and, only for those that verify, drop the outbox row and keep the receipt."""
        confirmed = 0
        with self.store.transaction() as conn:
            for env in receipts:
                reason = self._receipt_problem(env)
                if reason is not None:
                    log.warning("receipt refused: %s", reason)
                    continue
                r = open_receipt(env)
                stored = conn.execute(select(ledger.c.hash).where(ledger.c.seq == r.seq)).scalar()
                if stored is None or bytes(stored) != r.record_hash:
                    log.warning("receipt refused: seq %d does not match the stored record", r.seq)
                    continue
                exists = conn.execute(select(receipt.c.seq).where(receipt.c.seq == r.seq)).first()
                if exists is None:
                    conn.execute(insert(receipt).values(seq=r.seq, envelope=env.SerializeToString(),
                                                        receipt_time_ms=r.receipt_time_ms))
                confirmed += conn.execute(delete(outbox).where(outbox.c.seq == r.seq)).rowcount
                self.store._set_meta(conn, "last_receipt_time_ms", str(r.receipt_time_ms))
            if confirmed:
                self.store._set_meta(conn, "last_sync_at_ms", str(now_ms))
        return confirmed

    def _receipt_problem(self, env: envelope_pb2.Envelope) -> str | None:
        return receipt_problem(env, receiver_key_id=self.township_key_id, receiver_public_key=self.township_public_key,
                               own_key_id=self.own_key_id)

    def resend_from(self, from_seq: int, *, now_ms: int) -> int:
        """The township is missing records from `from_seq` on (e.g. it was restored from a backup):
        queue them again. Receipts already held stay; the township answers duplicates idempotently."""
        with self.store.transaction() as conn:
            queued = {int(s) for s in conn.execute(select(outbox.c.seq))}
            seqs = [int(s) for s in conn.execute(select(ledger.c.seq).where(ledger.c.seq >= from_seq))]
            missing = [s for s in seqs if s not in queued]
            if missing:
                conn.execute(insert(outbox), [{"seq": s, "queued_at_ms": now_ms} for s in missing])
        return len(missing)

    def last_receipt_time_ms(self) -> int:
        return int(self.store.get_meta("last_receipt_time_ms", "0"))

    def receipt_count(self) -> int:
        with self.store.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(receipt)).scalar() or 0)

    # ------------------------------------------------------------ down-flow

    def pull_cursor(self) -> int:
        return int(self.store.get_meta("pull_cursor", "0"))

    def apply_down(self, envelopes: Sequence[envelope_pb2.Envelope], next_cursor: int) -> int:
        """Verify every township record, then apply the batch and move the cursor in one transaction.
        One bad signature refuses the whole batch: the cursor stays, and the next pull asks again."""
        records = open_down_records(envelopes, receiver_key_id=self.township_key_id,
                                    receiver_public_key=self.township_public_key, refusal_zh="乡镇下发的记录签名无效，已拒收")
        applied = self.store.apply_down(envelopes, records, next_cursor)
        if self.on_catalog is not None and any(r.WhichOneof("body") == "catalog_update" for r in records):
            catalog = self.store.published_catalog()
            if catalog is not None:
                self.on_catalog(catalog)
        return applied

    # ------------------------------------------------------------ recovery after a restore (RecoveryLog)

    def recovering(self) -> bool:
        return self.store.recovering()

    def own_tip(self) -> ChainTip:
        return self.store.tip()

    def append_recovered(self, envelopes: Sequence[envelope_pb2.Envelope],
                         receipts: Sequence[envelope_pb2.Envelope]) -> ChainTip:
        hashes = {}
        for env in envelopes:
            try:
                hashes[open_record(env).header.seq] = payload_hash(env.payload)
            except EnvelopeError as exc:
                raise RecoveryError(f"乡镇返回的本机记录无法解码：{exc}") from exc
        rows: list[tuple[int, bytes, int]] = []
        for env in receipts:
            problem = self._receipt_problem(env)
            if problem is None:
                r = open_receipt(env)
                problem = None if hashes.get(r.seq) == r.record_hash else "does not match the record sent with it"
            if problem is not None:
                log.warning("recovered receipt refused: %s", problem)
                raise RecoveryError("乡镇返回的回执未通过核验，未写入任何记录")
            rows.append((r.seq, env.SerializeToString(), r.receipt_time_ms))
        return self.store.append_recovered(envelopes, rows)

    def finish_recovery(self, receiver_tip: ChainTip, *, receiver_key_id: str, signature: bytes, nonce: bytes) -> None:
        signed = recover_tip_signing_bytes(self.own_key_id, receiver_tip.seq, receiver_tip.hash, nonce)
        if receiver_key_id != self.township_key_id or not is_valid(self.township_public_key, signed, signature):
            raise RecoveryError("乡镇返回的链尾签名无效（不是本机登记的乡镇？），仍不能继续登记")
        self.store.finish_recovery(receiver_tip, now_ms=to_unix_ms(self.clock.now()))
