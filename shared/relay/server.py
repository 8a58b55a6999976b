"""The Relay servicer core, shared by every receiving tier (township for villages, county for townships).

`RelayCore` does the work without gRPC: bound-check, decode, verify each envelope with
`shared.chain.check_link`, hand verified rows to an `IngestStore`, and sign receipts only after the
store has committed. `relay_handlers()` wraps it as gRPC method handlers that take *raw bytes*, so a
request that does not decode is answered with INVALID_ARGUMENT and a Chinese message instead of the
library's generic INTERNAL; every refused call carries a typed reason in its status details
(`google.rpc.ErrorInfo`, docs/wire-v1.md "Errors"). `StreamAdmission` bounds Push streams: a first
message within seconds, bounded idle time, unauthenticated streams capped per peer address (oldest
evicted), streams per key capped, and the health service outside every relay limit.
`build_server()` applies every bound and returns `(server, port)` so tests can bind port 0.

Receipts are deterministic: (author, seq, hash, receipt time from the row, receiver key,
contiguous seq) serialized and signed with Ed25519, which is deterministic; so the same record sent
again gets byte-identical receipt bytes without keeping them, and no receipt exists before its row.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, cast

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from shared.chain import BreakReason, check_link
from shared.clock import Clock, to_unix_ms
from shared.envelope import ChainTip, sign_receipt
from shared.keys import InMemoryKeyDirectory, fingerprint
from shared.relay.errors import CallRefused, LimitExceeded, MalformedRequest
from shared.relay.ports import (
    AgentKey,
    DownLog,
    EnrollmentBounds,
    EnrollmentInfo,
    HeldRecord,
    IngestRow,
    IngestStore,
    KeyRegistry,
    KeyState,
    NonceLog,
    Outcome,
)
from shared.relay.tls import ServerTls
from shared.signing import Signer, is_valid, key_id_for, payload_hash
from shared.wire.v1 import envelope_pb2, records_pb2, relay_pb2

__all__ = ["RelayLimits", "RelayStats", "RelayCore", "PushSession", "StreamAdmission", "relay_handlers", "build_server",
           "build_server_with_health", "pull_signing_bytes", "recover_signing_bytes", "recover_tip_signing_bytes",
           "is_record_id", "peer_address", "refusal_status", "ERROR_DOMAIN", "SERVICE_NAME"]

log = logging.getLogger(__name__)

SERVICE_NAME = "quancheng.v1.Relay"
# `google.rpc.ErrorInfo.domain` of every typed refusal (docs/wire-v1.md "Errors").
ERROR_DOMAIN = "quancheng.v1"
_MIN_SIG_PARALLEL = 32
_RECORD_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_record_id(text: str) -> bool:
    """A record id is a UUID written lowercase with hyphens (36 characters), as `str(uuid.uuid4())` gives."""
    return _RECORD_ID.fullmatch(text) is not None


@dataclass(frozen=True)
class RelayLimits:
    """Every bound of the receiving side, explicit (docs/ARCHITECTURE.md, invariant 10)."""

    max_message_bytes: int = 4 * 1024 * 1024
    max_batch: int = 500
    # Push streams open at once (each holds a worker thread): beyond it the oldest stream that has not
    # proved a key (silent, or being answered after an unverified batch) is evicted, else the longest
    # idle device between batches; when every stream is mid-batch the new one is refused (TOO_MANY_STREAMS).
    max_concurrent_streams: int = 64
    # Streams that have sent nothing yet, per peer address (below the total, so one host never holds every
    # slot; high enough for many villages behind one NAT address); the oldest is evicted.
    max_unauthenticated_per_address: int = 48
    # Streams of one device key; the oldest is evicted (a reconnecting device wins over its stale stream).
    max_streams_per_key: int = 2
    # Enroll, Pull and Recover running at once; beyond it OVERLOADED with retry_after_ms.
    max_concurrent_unary: int = 16
    # A Push stream must send its first message within this, and then never wait longer than
    # `idle_after_ms` for the next; a response the client does not take within `stalled_after_ms` ends it.
    first_message_after_ms: int = 5_000
    idle_after_ms: int = 30_000
    stalled_after_ms: int = 120_000
    # What a load refusal tells the sender to wait.
    retry_after_ms: int = 2_000
    max_pull: int = 500
    # A claimed time more than this ahead of the receiver's clock is flagged.
    claimed_time_tolerance_ms: int = 10 * 60 * 1000
    # A claim earlier than its predecessor's claim or than the receipt floor by more than this is
    # flagged; a laptop a minute or two slow is not (docs/wire-v1.md "Claimed time").
    claimed_time_slack_ms: int = 5 * 60 * 1000
    # Records received with less than this between them belong to one sync run, judged against the
    # receipt before the run, however the device splits them into streams and batches.
    claim_run_gap_ms: int = 10 * 60 * 1000
    # A record claimed to be older than this at receipt would mean a laptop offline for a year: flagged.
    max_claim_age_ms: int = 366 * 24 * 60 * 60 * 1000
    # A signed Pull/Recover is accepted only this close to the receiver's clock; its nonce is kept as long.
    request_window_ms: int = 5 * 60 * 1000
    enrollment: EnrollmentBounds = field(default_factory=EnrollmentBounds)
    keepalive_time_ms: int = 20_000
    keepalive_timeout_ms: int = 10_000
    # Connections are recycled so a stuck or hostile client cannot pin a worker forever.
    max_connection_age_ms: int = 10 * 60 * 1000
    max_connection_age_grace_ms: int = 60_000
    verify_threads: int = 2

    def server_options(self) -> list[tuple[str, int]]:
        return [
            # Twice the bound: up to there the handler refuses an oversized message itself, typed
            # (MESSAGE_TOO_LARGE); only a grossly oversized one gets the library's untyped refusal.
            ("grpc.max_receive_message_length", 2 * self.max_message_bytes),
            ("grpc.max_send_message_length", self.max_message_bytes),
            ("grpc.keepalive_time_ms", self.keepalive_time_ms),
            ("grpc.keepalive_timeout_ms", self.keepalive_timeout_ms),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
            ("grpc.http2.min_recv_ping_interval_without_data_ms", 5_000),
            ("grpc.http2.max_ping_strikes", 0),
            ("grpc.max_connection_age_ms", self.max_connection_age_ms),
            ("grpc.max_connection_age_grace_ms", self.max_connection_age_grace_ms),
        ]


_REFUSAL = {
    BreakReason.MALFORMED: relay_pb2.REFUSAL_REASON_MALFORMED,
    BreakReason.AUTHOR_MISMATCH: relay_pb2.REFUSAL_REASON_AUTHOR_MISMATCH,
    BreakReason.UNKNOWN_KEY: relay_pb2.REFUSAL_REASON_UNKNOWN_KEY,
    BreakReason.REVOKED_KEY: relay_pb2.REFUSAL_REASON_KEY_REVOKED,
    BreakReason.BAD_SIGNATURE: relay_pb2.REFUSAL_REASON_BAD_SIGNATURE,
    BreakReason.WRONG_PREV_HASH: relay_pb2.REFUSAL_REASON_BAD_PREV_HASH,
    BreakReason.SEQ_GAP: relay_pb2.REFUSAL_REASON_GAP,
    BreakReason.REORDERED: relay_pb2.REFUSAL_REASON_GAP,
    BreakReason.FORK: relay_pb2.REFUSAL_REASON_FORK,
}


def pull_signing_bytes(key_id: str, after_cursor: int, max_records: int, nonce: bytes, requested_at_ms: int) -> bytes:
    """What a device signs for a Pull (docs/wire-v1.md "Signed requests")."""
    return f"quancheng.v1.Pull|{key_id}|{after_cursor}|{max_records}|{requested_at_ms}|{nonce.hex()}".encode("ascii")


def recover_signing_bytes(key_id: str, after_seq: int, max_records: int, nonce: bytes, requested_at_ms: int) -> bytes:
    """What a device signs for a Recover (docs/wire-v1.md "Signed requests")."""
    return f"quancheng.v1.Recover|{key_id}|{after_seq}|{max_records}|{requested_at_ms}|{nonce.hex()}".encode("ascii")


def recover_tip_signing_bytes(key_id: str, tip_seq: int, tip_hash: bytes, nonce: bytes) -> bytes:
    """What the receiver signs about a device's tip in a `RecoverResponse`, bound to the request's nonce."""
    return f"quancheng.v1.RecoverTip|{key_id}|{tip_seq}|{tip_hash.hex()}|{nonce.hex()}".encode("ascii")


@dataclass
class PushSession:
    """Per-stream state: the peer (for logs) and the keys whose signatures verified in this stream
    (a stream is authenticated by its first batch). Nothing here changes how records are judged:
    classification and claimed-time flags depend on the chain alone, not on how it was streamed."""

    peer: str = ""
    verified_keys: set[str] = field(default_factory=set)


class RelayStats:
    """What this process's relay has done since it started, for `/metrics` (counters only grow).

    Bumped once per batch under a lock, so the cost on the ingest path is a few additions."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.batches = 0
        self.stored = 0           # new records committed
        self.duplicates = 0       # records seen before: receipted again, nothing written
        self.receipts = 0         # signed receipts sent (new and duplicate records)
        self.refusals: dict[str, int] = {}

    def add_batch(self, *, stored: int, duplicates: int, receipts: int) -> None:
        with self._lock:
            self.batches += 1
            self.stored += stored
            self.duplicates += duplicates
            self.receipts += receipts

    def add_refusal(self, reason: str) -> None:
        with self._lock:
            self.refusals[reason] = self.refusals.get(reason, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"batches": self.batches, "stored": self.stored, "duplicates": self.duplicates,
                    "receipts": self.receipts, "refusals": dict(self.refusals)}


class RelayCore:
    def __init__(self, *, signer: Signer, ingest: IngestStore, keys: KeyRegistry, down: DownLog, clock: Clock,
                 limits: RelayLimits | None = None, tier_label_zh: str = "乡镇",
                 enrolls_role: int = records_pb2.KEY_ROLE_VILLAGE_AGENT, nonces: NonceLog | None = None) -> None:
        self.signer = signer
        # The one kind of device that enrols here (village agents at a township, townships at the
        # county): a key of another role asking to enrol is refused before anyone is asked to approve it.
        self.enrolls_role = enrolls_role
        # The receiving tier as its senders' staff call it ("乡镇", "县级"), for the messages they read.
        self.tier_label_zh = tier_label_zh
        self.ingest = ingest
        self.keys = keys
        self.down = down
        # The relay store keeps nonces too; a separate log only in tests of other stores.
        self.nonces: NonceLog = nonces if nonces is not None else cast(NonceLog, ingest)
        self.clock = clock
        self.limits = limits or RelayLimits()
        self._pool = ThreadPoolExecutor(max_workers=max(1, self.limits.verify_threads), thread_name_prefix="relay-verify")
        # When the last batch arrived (monotonic seconds): background work such as the township's
        # intake yields to ingest while villages are pushing, so receipts are never held up by it.
        self.last_push_monotonic = 0.0
        self.stats = RelayStats()
        self.admission = StreamAdmission(self.limits)

    def close(self) -> None:
        self.admission.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------ push

    def push(self, envelopes: Sequence[envelope_pb2.Envelope], session: PushSession | None = None) -> relay_pb2.PushResponse:
        """Handle one batch. Raises `LimitExceeded` when it is larger than the batch limit."""
        session = session or PushSession()
        self.last_push_monotonic = time.monotonic()
        if len(envelopes) > self.limits.max_batch:
            raise LimitExceeded(f"每批最多 {self.limits.max_batch} 条记录，本批 {len(envelopes)} 条",
                                metadata={"max_batch": str(self.limits.max_batch)})
        response = relay_pb2.PushResponse()
        groups: dict[str, list[envelope_pb2.Envelope]] = {}
        for env in envelopes:
            groups.setdefault(env.key_id, []).append(env)
        for key_id, group in groups.items():
            self._push_author(key_id, group, response, session)
        return response

    def _push_author(self, key_id: str, group: list[envelope_pb2.Envelope], response: relay_pb2.PushResponse,
                     session: PushSession) -> None:
        for _attempt in range(3):
            author = self.ingest.author(key_id)
            if author is not None and author.state is KeyState.PENDING:
                for env in group:
                    self._refuse(response, key_id, _seq_of(env), relay_pb2.REFUSAL_REASON_KEY_PENDING,
                                 f"设备密钥尚待{self.tier_label_zh}审批", session)
                return
            # A scratch response per attempt: a retried attempt must not repeat the refusals of the last.
            attempt = relay_pb2.PushResponse()
            if self._try_author(key_id, author, group, attempt, session):
                response.receipts.extend(attempt.receipts)
                response.refusals.extend(attempt.refusals)
                if attempt.HasField("gap") and not response.HasField("gap"):
                    response.gap.CopyFrom(attempt.gap)
                return
        for env in group:
            self._refuse(response, key_id, _seq_of(env), relay_pb2.REFUSAL_REASON_BUSY,
                         "同一设备的记录正在并发写入，请稍后重试", session)

    def _try_author(self, key_id: str, author: AgentKey | None, group: list[envelope_pb2.Envelope],
                    response: relay_pb2.PushResponse, session: PushSession) -> bool:
        """One attempt at a batch of one author; False when the store saw a concurrent write (retry).

        Every envelope is classified as it would be in a batch of its own (docs/wire-v1.md "Ingest"):
        a seq at or below the moving tip (held, or earlier in this batch) goes to the store, which
        compares hashes (duplicate or fork); a new link is checked here (signature, chain, record id,
        claimed time); after a rotation nothing more of the old key is taken."""
        directory = InMemoryKeyDirectory([author.known()] if author is not None else [])
        signatures = self._signatures(author, group)
        if any(signatures):
            session.verified_keys.add(key_id)
        tip = author.tip if author is not None else ChainTip()
        quarantined = author is not None and author.state is KeyState.QUARANTINED
        now_ms = to_unix_ms(self.clock.now())
        floor = self._claim_floor(author, now_ms)
        prev_claim: int | None = author.last_claimed_ms if author is not None and author.tip.seq > 0 else None
        rows: list[IngestRow] = []
        stop_reason: tuple[int, str] | None = None   # refuse everything after a rotation
        gap_set = False
        no_hashes: Mapping[int, bytes] = {}
        new_ids: dict[str, int] = {}                 # record id → seq, for the new links of this batch
        for env, sig_ok in zip(group, signatures, strict=True):
            if stop_reason is not None:
                self._refuse(response, key_id, _seq_of(env), stop_reason[0], stop_reason[1], session)
                continue
            # Seen seqs are classified by the store inside its transaction (it holds the hashes),
            # so check_link is given no hashes and reports every seen seq as a candidate fork.
            record, reason, detail = check_link(env, directory, tip, no_hashes, signature_ok=sig_ok)
            if reason is BreakReason.FORK and record is not None:
                rows.append(self._row(env, record, None))
                continue
            if reason is not None:
                seq = record.header.seq if record is not None else 0
                if reason in (BreakReason.SEQ_GAP, BreakReason.REORDERED) and not gap_set and not quarantined:
                    gap_set = True
                    response.gap.author_key_id = key_id
                    response.gap.from_seq = tip.seq + 1
                    response.gap.to_seq = seq - 1
                text = reason.label_zh + (f"（{detail}）" if detail else "")
                self._refuse(response, key_id, seq, _REFUSAL.get(reason, relay_pb2.REFUSAL_REASON_UNSPECIFIED), text, session)
                continue
            assert record is not None
            seq = record.header.seq
            if quarantined:
                self._refuse(response, key_id, seq, relay_pb2.REFUSAL_REASON_QUARANTINED,
                             f"该设备发现分叉记录，已隔离，请联系{self.tier_label_zh}工作人员", session)
                continue
            record_id = record.header.record_id
            if not is_record_id(record_id):
                self._refuse(response, key_id, seq, relay_pb2.REFUSAL_REASON_BAD_RECORD_ID,
                             "记录标识必须是小写带连字符的 UUID", session)
                continue
            if record_id in new_ids:
                self._refuse(response, key_id, seq, relay_pb2.REFUSAL_REASON_RECORD_ID_REUSED,
                             f"记录标识已用于本设备序号 {new_ids[record_id]} 的记录", session)
                continue
            claimed = record.header.claimed_time_ms
            flag = self._claimed_time_flag(claimed, prev_claim, floor, now_ms)
            row = self._row(env, record, flag)
            rows.append(row)
            new_ids[record_id] = seq
            prev_claim = claimed
            tip = ChainTip(row.seq, row.hash)
            if row.rotation is not None:
                stop_reason = (relay_pb2.REFUSAL_REASON_KEY_REVOKED, "密钥已轮换，旧密钥此后的记录无效")
        if not rows:
            return True
        assert author is not None
        taken = self.ingest.record_ids_taken(key_id, list(new_ids)) if new_ids else set()
        if taken:
            current = self.ingest.author(key_id)
            if current is not None and current.tip != author.tip:
                # Another stream of this device stored links since the tip was read (a reconnect while
                # the old stream still ran): these ids are probably those links; classify again.
                return False
        rows = self._drop_reused_ids(key_id, author, rows, taken, response, session)
        if not rows:
            return True
        results = self.ingest.store_batch(key_id, author.tip, rows, receipt_time_ms=now_ms, claim_floor_ms=floor)
        if any(r.outcome is Outcome.CONFLICT for r in results):
            # Nothing was written; the batch is classified again against the new tip.
            log.info("concurrent write for key %s; retrying the batch", key_id[:8])
            return False
        to_sign: list[envelope_pb2.Receipt] = []
        receipted: set[tuple[int, bytes]] = set()
        stored = duplicates = flagged = 0
        for row, result in zip(rows, results, strict=True):
            if result.outcome is Outcome.FORK:
                log.warning("refused key=%s seq=%d reason=fork peer=%s: 同一序号出现不同内容，作者已隔离",
                            key_id, row.seq, session.peer)
                self._refuse(response, key_id, row.seq, relay_pb2.REFUSAL_REASON_FORK,
                             "分叉：同一序号出现不同内容，该设备已隔离", session, logged=True)
                continue
            if result.outcome is Outcome.QUARANTINED:
                self._refuse(response, key_id, row.seq, relay_pb2.REFUSAL_REASON_QUARANTINED,
                             f"该设备发现分叉记录，已隔离，请联系{self.tier_label_zh}工作人员", session)
                continue
            if result.outcome is Outcome.STORED:
                stored += 1
            else:
                duplicates += 1
            if row.claimed_time_flag and result.outcome is Outcome.STORED:
                flagged += 1
            if (row.seq, result.hash) in receipted:
                continue   # the same record twice in one batch: its receipt once
            receipted.add((row.seq, result.hash))
            to_sign.append(envelope_pb2.Receipt(author_key_id=key_id, seq=row.seq, record_hash=result.hash,
                                                receipt_time_ms=result.receipt_time_ms, contiguous_through_seq=row.seq))
        if flagged:
            # One line per batch, not per record: a backlog of flagged claims once cost 8% of the
            # relay's time in logging alone (docs/performance.md); each flag is kept in the store.
            log.info("claimed time flagged key=%s: %d records of seq %d..%d", key_id[:8], flagged, rows[0].seq, rows[-1].seq)
        response.receipts.extend(self._sign_receipts(to_sign))
        self.stats.add_batch(stored=stored, duplicates=duplicates, receipts=len(to_sign))
        return True

    def _drop_reused_ids(self, key_id: str, author: AgentKey, rows: list[IngestRow], taken: set[str],
                         response: relay_pb2.PushResponse, session: PushSession) -> list[IngestRow]:
        """Refuse a new link whose record id the author already used in a stored record, and every
        new link after it (they no longer continue a chain this receiver will hold)."""
        if not taken:
            return rows
        kept: list[IngestRow] = []
        broken_at: int | None = None
        for row in rows:
            if row.seq <= author.tip.seq or (broken_at is not None and row.seq < broken_at):
                kept.append(row)   # held seqs, and repeats of links kept before the break: the store classifies them
                continue
            if broken_at is None and row.record_id not in taken:
                kept.append(row)
                continue
            if broken_at is None:
                broken_at = row.seq
            if row.record_id in taken:
                self._refuse(response, key_id, row.seq, relay_pb2.REFUSAL_REASON_RECORD_ID_REUSED,
                             "记录标识已被本设备此前的记录使用", session)
            else:
                self._refuse(response, key_id, row.seq, relay_pb2.REFUSAL_REASON_GAP,
                             f"{BreakReason.SEQ_GAP.label_zh}（期望序号 {broken_at}，收到 {row.seq}）", session)
        return kept

    def _row(self, env: envelope_pb2.Envelope, record: records_pb2.Record, flag: str | None) -> IngestRow:
        header = record.header
        kind = record.WhichOneof("body") or ""
        rotation = None
        if kind == "key_rotated":
            new_pub = bytes(record.key_rotated.new_public_key)
            if len(new_pub) == 32 and key_id_for(new_pub) == record.key_rotated.new_key_id:
                rotation = (record.key_rotated.new_key_id, new_pub)
        return IngestRow(env.key_id, header.seq, header.record_id, payload_hash(env.payload), bytes(env.payload),
                         bytes(env.signature), header.claimed_time_ms, kind, flag, rotation)

    def _claim_floor(self, author: AgentKey | None, now_ms: int) -> int:
        """The receipt time claims are judged against: the last receipt before the current sync run.
        A run is records received less than `claim_run_gap_ms` apart, so a backlog sent in many
        streams or batches is judged once, against what came before it (docs/wire-v1.md)."""
        if author is None or author.last_receipt_ms == 0:
            return 0
        if now_ms - author.last_receipt_ms > self.limits.claim_run_gap_ms:
            return author.last_receipt_ms
        return author.claim_floor_ms

    def _claimed_time_flag(self, claimed_ms: int, prev_claim_ms: int | None, floor_ms: int, now_ms: int) -> str | None:
        lim = self.limits
        if claimed_ms > now_ms + lim.claimed_time_tolerance_ms:
            return f"设备声称时间比{self.tier_label_zh}时间快 {_human_ms(claimed_ms - now_ms)}"
        if prev_claim_ms is not None and claimed_ms < prev_claim_ms - lim.claimed_time_slack_ms:
            return f"设备声称时间早于该设备上一条记录 {_human_ms(prev_claim_ms - claimed_ms)}（设备时钟被调回）"
        if floor_ms and claimed_ms < floor_ms - lim.claimed_time_slack_ms:
            return f"设备声称时间早于该设备上一次同步的回执时间 {_human_ms(floor_ms - claimed_ms)}"
        if claimed_ms < now_ms - lim.max_claim_age_ms:
            return f"设备声称时间早于{self.tier_label_zh}时间 {_human_ms(now_ms - claimed_ms)}，超过一年，不可信"
        return None

    def _signatures(self, author: AgentKey | None, group: list[envelope_pb2.Envelope]) -> list[bool | None]:
        if author is None or author.state not in (KeyState.APPROVED, KeyState.REVOKED):
            return [None] * len(group)
        pub = author.public_key
        if len(group) < _MIN_SIG_PARALLEL or self.limits.verify_threads <= 1:
            return [is_valid(pub, e.payload, e.signature) for e in group]
        # libsodium releases the GIL: slices verified on separate threads use every core.
        n = self.limits.verify_threads
        size = -(-len(group) // n)
        parts = [group[i:i + size] for i in range(0, len(group), size)]
        futures = [self._pool.submit(lambda p: [is_valid(pub, e.payload, e.signature) for e in p], part) for part in parts]
        return [ok for f in futures for ok in f.result()]

    def _sign_receipts(self, receipts: list[envelope_pb2.Receipt]) -> list[envelope_pb2.Envelope]:
        if len(receipts) < _MIN_SIG_PARALLEL or self.limits.verify_threads <= 1:
            return [sign_receipt(self.signer, r) for r in receipts]
        n = self.limits.verify_threads
        size = -(-len(receipts) // n)
        parts = [receipts[i:i + size] for i in range(0, len(receipts), size)]
        futures = [self._pool.submit(lambda p: [sign_receipt(self.signer, r) for r in p], part) for part in parts]
        return [e for f in futures for e in f.result()]

    def _refuse(self, response: relay_pb2.PushResponse, key_id: str, seq: int, reason: int, text: str,
                session: PushSession, *, logged: bool = False) -> None:
        self.stats.add_refusal(relay_pb2.RefusalReason.Name(reason))
        if not logged:
            log.warning("refused key=%s seq=%d reason=%s peer=%s: %s", key_id[:32] or "-", seq,
                        relay_pb2.RefusalReason.Name(reason), session.peer, text)
        response.refusals.add(key_id=key_id, seq=seq, reason=reason, message=text)

    # ------------------------------------------------------------ enroll

    def enroll(self, request: relay_pb2.EnrollRequest, *, peer: str = "") -> relay_pb2.EnrollResponse:
        """Register a self-signed seq-1 enrollment as pending (bounded per peer address and in total),
        or report the key's status."""
        env = request.enrollment
        response = relay_pb2.EnrollResponse(receiver_key_id=self.signer.key_id, receiver_public_key=self.signer.public_key)
        try:
            record = records_pb2.Record.FromString(env.payload)
        except DecodeError as exc:
            raise MalformedRequest("登记记录无法解码") from exc
        known = self.ingest.author(env.key_id)
        if known is None:
            body = record.key_enrollment_requested
            if record.WhichOneof("body") != "key_enrollment_requested" or record.header.seq != 1:
                raise MalformedRequest("登记请求必须是新密钥序号为 1 的登记记录")
            pub = bytes(body.public_key)
            if len(pub) != 32 or key_id_for(pub) != env.key_id or record.header.author_key_id != env.key_id:
                raise MalformedRequest("登记记录中的公钥与密钥标识不符")
            if not is_valid(pub, env.payload, env.signature):
                raise MalformedRequest("登记记录的签名无效", reason=relay_pb2.CALL_REFUSAL_BAD_SIGNATURE,
                                       code="UNAUTHENTICATED")
            if not is_record_id(record.header.record_id):
                raise MalformedRequest("登记记录的记录标识必须是小写带连字符的 UUID")
            if body.role != self.enrolls_role:
                wanted: dict[int, str] = {records_pb2.KEY_ROLE_VILLAGE_AGENT: "村代办员设备",
                                          records_pb2.KEY_ROLE_TOWNSHIP: "乡镇接入密钥"}
                raise MalformedRequest(f"此处只受理{wanted.get(self.enrolls_role, '指定类型')}的登记，"
                                       f"该密钥登记的类型不符", reason=relay_pb2.CALL_REFUSAL_WRONG_ROLE)
            info = EnrollmentInfo(int(body.role), body.holder_name[:100], body.village_code[:32],
                                  body.township_code[:32], fingerprint(pub))
            try:
                known = self.keys.enroll(pub, env, info, now_ms=to_unix_ms(self.clock.now()), from_address=peer,
                                         bounds=self.limits.enrollment)
            except CallRefused as exc:
                exc.metadata.setdefault("retry_after_ms", str(60 * 60 * 1000))
                raise
            log.info("enrollment pending key=%s holder=%s village=%s peer=%s", env.key_id, info.holder_name,
                     info.village_code, peer)
        response.status = known.state.to_wire()
        response.message = {
            KeyState.PENDING: f"已收到登记申请，请等待{self.tier_label_zh}工作人员核对指纹后批准（指纹 {fingerprint(known.public_key)}）",
            KeyState.APPROVED: "设备密钥已批准，可以同步",
            KeyState.REVOKED: f"设备密钥已被吊销，请联系{self.tier_label_zh}工作人员",
            KeyState.QUARANTINED: f"该设备发现分叉记录，已隔离，请联系{self.tier_label_zh}工作人员",
        }[known.state]
        if known.tip.seq >= 1 and record.header.seq == 1 and record.header.author_key_id == known.key_id:
            results = self.ingest.store_batch(known.key_id, known.tip, [_probe_row(known.key_id, env)],
                                              receipt_time_ms=0) if env.payload else []
            if results and results[0].outcome is Outcome.DUPLICATE:
                response.receipt.CopyFrom(sign_receipt(self.signer, envelope_pb2.Receipt(
                    author_key_id=known.key_id, seq=1, record_hash=results[0].hash,
                    receipt_time_ms=results[0].receipt_time_ms, contiguous_through_seq=1)))
        return response

    # ------------------------------------------------------------ signed requests (Pull, Recover)

    def _check_signed_request(self, what_zh: str, author: AgentKey, signing_bytes: bytes, signature: bytes,
                              requested_at_ms: int, nonce: bytes) -> None:
        """A Pull or Recover must be signed by the key, fresh (within the window of this receiver's
        clock) and never seen before: a captured request replayed is refused (docs/wire-v1.md)."""
        if not is_valid(author.public_key, signing_bytes, signature):
            raise MalformedRequest(f"{what_zh}请求签名无效", reason=relay_pb2.CALL_REFUSAL_BAD_SIGNATURE,
                                   code="UNAUTHENTICATED")
        now_ms = to_unix_ms(self.clock.now())
        window = self.limits.request_window_ms
        if abs(requested_at_ms - now_ms) > window:
            raise MalformedRequest(f"{what_zh}请求的时间与{self.tier_label_zh}服务器相差超过 {window // 60_000} 分钟，"
                                   f"请按服务器时间重新签名", reason=relay_pb2.CALL_REFUSAL_CLOCK_SKEW,
                                   code="FAILED_PRECONDITION",
                                   metadata={"server_time_ms": str(now_ms), "window_ms": str(window)})
        if not self.nonces.remember_nonce(author.key_id, nonce, now_ms=now_ms, expires_at_ms=now_ms + 2 * window):
            raise MalformedRequest(f"{what_zh}请求已被使用过（重放），已拒绝", reason=relay_pb2.CALL_REFUSAL_NONCE_REPLAYED,
                                   code="UNAUTHENTICATED")

    @staticmethod
    def _check_nonce_shape(what_zh: str, nonce: bytes) -> None:
        if len(nonce) < 16 or len(nonce) > 64:
            raise MalformedRequest(f"{what_zh}请求的随机数长度无效（应为 16 至 64 字节）")

    # ------------------------------------------------------------ pull

    def pull(self, request: relay_pb2.PullRequest) -> relay_pb2.PullResponse:
        self._check_nonce_shape("拉取", request.nonce)
        author = self.ingest.author(request.key_id) if 0 < len(request.key_id) <= 64 else None
        if author is None:
            raise MalformedRequest("未知的设备密钥", reason=relay_pb2.CALL_REFUSAL_UNKNOWN_KEY, code="UNAUTHENTICATED")
        self._check_signed_request("拉取", author, pull_signing_bytes(
            request.key_id, request.after_cursor, request.max_records, request.nonce, request.requested_at_ms),
            request.signature, request.requested_at_ms, request.nonce)
        if author.state is KeyState.REVOKED:
            raise MalformedRequest(f"设备密钥已被吊销，不能拉取，请联系{self.tier_label_zh}工作人员",
                                   reason=relay_pb2.CALL_REFUSAL_KEY_REVOKED, code="PERMISSION_DENIED")
        if author.state is KeyState.PENDING:
            raise MalformedRequest(f"设备密钥尚待{self.tier_label_zh}审批，批准后才能拉取",
                                   reason=relay_pb2.CALL_REFUSAL_KEY_PENDING, code="PERMISSION_DENIED")
        limit = min(max(1, request.max_records or self.limits.max_pull), self.limits.max_pull)
        envelopes, cursor = self.down.read(request.key_id, request.after_cursor, limit)
        return relay_pb2.PullResponse(records=envelopes, next_cursor=cursor, more=len(envelopes) >= limit)

    # ------------------------------------------------------------ recover

    def recover(self, request: relay_pb2.RecoverRequest) -> relay_pb2.RecoverResponse:
        """A device restored from a backup asks for its own records after `after_seq` and this
        receiver's tip for its key, signed and bound to its nonce, so it never signs a held seq again.

        Read-only. An unknown key gets tip 0 (nothing is held, so nothing can fork); a pending key its
        status and tip 0 only; a revoked key nothing. Records come with the receipts first given for
        them, re-signed: receipts are deterministic."""
        key_id = request.key_id
        self._check_nonce_shape("取回", request.nonce)
        if not key_id or len(key_id) > 64:
            raise MalformedRequest("取回请求缺少设备密钥标识")
        author = self.ingest.author(key_id)
        response = relay_pb2.RecoverResponse(receiver_key_id=self.signer.key_id)
        tip = ChainTip()
        if author is not None:
            self._check_signed_request("取回", author, recover_signing_bytes(
                key_id, request.after_seq, request.max_records, request.nonce, request.requested_at_ms),
                request.signature, request.requested_at_ms, request.nonce)
            if author.state is KeyState.REVOKED:
                # A revoked key signs nothing more, so it has nothing to recover for; its records stay here.
                raise MalformedRequest(f"设备密钥已被吊销，不能取回记录，请联系{self.tier_label_zh}工作人员",
                                       reason=relay_pb2.CALL_REFUSAL_KEY_REVOKED, code="PERMISSION_DENIED")
            response.status = author.state.to_wire()
        if author is not None and author.state is not KeyState.PENDING:
            tip = author.tip
            limit = min(max(1, request.max_records or self.limits.max_pull), self.limits.max_pull)
            held = self.ingest.authored(key_id, request.after_seq, limit + 1)
            # Bounded by bytes too: a record may carry megabytes of sealed evidence. At least one record
            # always fits, since it came in through a push under the same message bound.
            budget = self.limits.max_message_bytes // 2
            taken: list[HeldRecord] = []
            for row in held[:limit]:
                size = len(row.payload) + len(row.signature) + 256
                if taken and size > budget:
                    break
                budget -= size
                taken.append(row)
            response.more = len(taken) < len(held)
            for row in taken:
                response.records.add(payload=row.payload, signature=row.signature, key_id=key_id)
            response.receipts.extend(self._sign_receipts([envelope_pb2.Receipt(
                author_key_id=key_id, seq=row.seq, record_hash=row.hash, receipt_time_ms=row.receipt_time_ms,
                contiguous_through_seq=row.seq) for row in taken]))
            log.info("recover key=%s after=%d sent=%d tip=%d", key_id[:8], request.after_seq, len(taken), tip.seq)
        response.tip_seq = tip.seq
        response.tip_hash = tip.hash
        response.tip_signature = self.signer.sign(recover_tip_signing_bytes(key_id, tip.seq, tip.hash, request.nonce))
        return response


def _probe_row(key_id: str, env: envelope_pb2.Envelope) -> IngestRow:
    return IngestRow(key_id, 1, "", payload_hash(env.payload), bytes(env.payload), bytes(env.signature), 0, "")


def _seq_of(env: envelope_pb2.Envelope) -> int:
    try:
        return int(records_pb2.Record.FromString(env.payload).header.seq)
    except DecodeError:
        return 0


def _human_ms(ms: int) -> str:
    days = ms / 86_400_000
    if days >= 1:
        return f"{days:.0f} 天"
    return f"{ms / 60_000:.0f} 分钟"


# ---------------------------------------------------------------- stream admission


@dataclass(eq=False)
class _Stream:
    context: grpc.ServicerContext
    address: str
    opened_at: float
    since: float                   # when the current phase began (monotonic seconds)
    # "first" (no message yet), "working" (a batch being handled), "answering" (its response being
    # sent), "waiting" (answered, for the next message)
    phase: str = "first"
    key_id: str = ""               # set once a batch of this stream verified under a key
    ended: bool = False
    why_ended: str = ""


class StreamAdmission:
    """Which Push streams may hold a worker thread, and for how long (docs/ARCHITECTURE.md, invariant 10).

    * at most `max_concurrent_streams` at once; beyond it the oldest stream that has sent nothing is
      evicted, else the longest idle authenticated one between batches; a stream mid-batch never is,
      and when every stream is mid-batch the new one is refused (TOO_MANY_STREAMS);
    * per peer address at most `max_unauthenticated_per_address` streams that have not yet sent a
      validly signed batch (the oldest is evicted), so one host's idle streams cannot crowd others out;
    * per key at most `max_streams_per_key` (the oldest is evicted: a device that reconnects wins over
      its own stale stream);
    * a watchdog cancels a stream with no first message after `first_message_after_ms`, none for
      `idle_after_ms` after that, or whose response the client has not taken for `stalled_after_ms`.

    Unary calls (Enroll, Pull, Recover) are bounded by `max_concurrent_unary`. The health service is
    not counted anywhere: it answers while the relay is full. Times are monotonic, not the tier's clock."""

    def __init__(self, limits: RelayLimits, *, now: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._now = now
        self._lock = threading.Lock()
        self._streams: list[_Stream] = []      # oldest first
        self._unary = 0
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None
        self.evicted = 0
        self.timed_out = 0
        self.refused = 0

    # -- streams

    def open(self, context: grpc.ServicerContext, address: str) -> _Stream | None:
        """Admit a new stream, evicting as the bounds say; None when it must be refused."""
        self._ensure_watchdog()
        now = self._now()
        stream = _Stream(context, address, now, now)
        victims: list[_Stream] = []
        with self._lock:
            # Only a stream that has not sent anything yet is evicted for its address: one whose first
            # batch is being verified is a device at work (many villages may share one NAT address).
            silent = [s for s in self._streams if not s.key_id and s.address == address and s.phase == "first"]
            if len(silent) >= self.limits.max_unauthenticated_per_address:
                victims.append(silent[0])
            elif len(self._streams) >= self.limits.max_concurrent_streams:
                # Never a stream mid-batch, authenticated or not: its batch may already be stored, and
                # cancelling it loses the receipts, so the device sends it again and is cut off again
                # while newcomers keep arriving (the reconnect storm's livelock, docs/performance.md).
                # First the oldest stream that has sent nothing; then a device that has been answered
                # and sits waiting (the longest idle one; it reconnects when it has more).
                # An unauthenticated stream being answered stored nothing (nothing on it verified), so
                # it gives way too: a sender that never reads its answer cannot pin a slot.
                unproven = [s for s in self._streams if not s.key_id and s.phase in ("first", "answering")]
                idle = sorted((s for s in self._streams if s.key_id and s.phase == "waiting"), key=lambda s: s.since)
                if unproven:
                    victims.append(unproven[0])
                elif idle:
                    victims.append(idle[0])
                else:
                    self.refused += 1
                    return None
            for victim in victims:
                self._drop(victim, "evicted")
            self._streams.append(stream)
        self._cancel(victims)
        return stream

    def authenticated(self, stream: _Stream, key_id: str) -> None:
        """The stream's batch verified under `key_id`: it leaves the unauthenticated pool; the
        oldest other stream of the key is evicted if the key has too many."""
        victims: list[_Stream] = []
        with self._lock:
            if stream.ended or stream.key_id:
                return
            stream.key_id = key_id
            mine = [s for s in self._streams if s.key_id == key_id and s is not stream]
            while len(mine) >= self.limits.max_streams_per_key:
                victim = mine.pop(0)
                self._drop(victim, "evicted")
                victims.append(victim)
        self._cancel(victims)

    def phase(self, stream: _Stream, phase: str) -> None:
        with self._lock:
            stream.phase, stream.since = phase, self._now()

    def begin_batch(self, stream: _Stream) -> bool:
        """The stream's message arrived: it is mid-batch from now on (never evicted) unless it was
        evicted first; checked and set under one lock, so a slot is never handed out twice."""
        with self._lock:
            if stream.ended:
                return False
            stream.phase, stream.since = "working", self._now()
            return True

    def close(self, stream: _Stream | None = None) -> None:
        """Forget a finished stream; without one, stop the watchdog (the server is going away)."""
        if stream is None:
            self._stop.set()
            return
        with self._lock:
            if not stream.ended:
                self._drop(stream, "closed")

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {"streams": len(self._streams), "unauthenticated": sum(1 for s in self._streams if not s.key_id),
                    "unary": self._unary, "evicted": self.evicted, "timed_out": self.timed_out, "refused": self.refused}

    # -- unary calls

    def enter_unary(self) -> bool:
        with self._lock:
            if self._unary >= self.limits.max_concurrent_unary:
                self.refused += 1
                return False
            self._unary += 1
            return True

    def leave_unary(self) -> None:
        with self._lock:
            self._unary -= 1

    # -- the watchdog

    def sweep(self) -> int:
        """Cancel every stream past its phase's bound; returns how many."""
        lim = self.limits
        bound = {"first": lim.first_message_after_ms, "waiting": lim.idle_after_ms, "working": lim.stalled_after_ms,
                 "answering": lim.stalled_after_ms}
        now = self._now()
        with self._lock:
            late = [s for s in self._streams if (now - s.since) * 1000 > bound[s.phase]]
            for s in late:
                self._drop(s, "idle" if s.phase in ("first", "waiting") else "stalled")
                self.timed_out += 1
        self._cancel(late)
        return len(late)

    def _drop(self, stream: _Stream, why: str) -> None:
        stream.ended, stream.why_ended = True, why
        if why == "evicted":
            self.evicted += 1
        try:
            self._streams.remove(stream)
        except ValueError:
            pass

    @staticmethod
    def _cancel(streams: Iterable[_Stream]) -> None:
        for s in streams:
            log.info("push stream %s peer=%s%s", s.why_ended, s.address, f" key={s.key_id[:8]}" if s.key_id else "")
            s.context.cancel()   # the handler's blocked read ends; idempotent when the call is over

    def _ensure_watchdog(self) -> None:
        if self._watchdog is not None:
            return
        with self._lock:
            if self._watchdog is None:
                self._watchdog = threading.Thread(target=self._watch, name="relay-stream-watchdog", daemon=True)
                self._watchdog.start()

    def _watch(self) -> None:
        tick = max(0.05, min(self.limits.first_message_after_ms, self.limits.idle_after_ms) / 4000)
        while not self._stop.wait(tick):
            try:
                self.sweep()
            except Exception:
                log.exception("stream watchdog sweep failed")


# ---------------------------------------------------------------- gRPC adapter


def _peer(context: grpc.ServicerContext) -> str:
    try:
        return str(context.peer())
    except Exception:  # noqa: BLE001 - a peer string is only for logs
        return "?"


def peer_address(peer: str) -> str:
    """The host part of a gRPC peer string ("ipv4:10.0.0.7:51234" → "10.0.0.7", "ipv6:[::1]:5" → "::1")."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv6" and rest.startswith("["):
        return rest[1:rest.find("]")] if "]" in rest else rest
    if kind == "ipv4":
        return rest.rpartition(":")[0] or rest
    return peer   # unix sockets and the like: the whole string


_CODES = {c.name: c for c in grpc.StatusCode}


def refusal_status(code: grpc.StatusCode, reason: int, message: str, metadata: Mapping[str, str] | None = None) -> grpc.Status:
    """A gRPC status whose details carry `google.rpc.ErrorInfo(reason, domain, metadata)`."""
    name = relay_pb2.CallRefusal.Name(reason).removeprefix("CALL_REFUSAL_")
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason=name, domain=ERROR_DOMAIN, metadata=dict(metadata or {})))
    return rpc_status.to_status(status_pb2.Status(code=code.value[0], message=message, details=[detail]))


def relay_handlers(core: RelayCore) -> grpc.GenericRpcHandler:
    """gRPC handlers for `quancheng.v1.Relay` that decode requests themselves (raw bytes in)."""
    admission = core.admission
    limits = core.limits
    load = {"retry_after_ms": str(limits.retry_after_ms)}

    def refuse(context: grpc.ServicerContext, code: grpc.StatusCode, reason: int, text: str, what: str,
               metadata: Mapping[str, str] | None = None) -> None:
        log.warning("%s refused (%s %s) peer=%s: %s", what, code.name,
                    relay_pb2.CallRefusal.Name(reason), _peer(context), text)
        core.stats.add_refusal(relay_pb2.CallRefusal.Name(reason))
        context.abort_with_status(refusal_status(code, reason, text, metadata))

    def refuse_exc(context: grpc.ServicerContext, exc: CallRefused, what: str) -> None:
        refuse(context, _CODES.get(exc.code, grpc.StatusCode.INVALID_ARGUMENT), exc.reason, str(exc), what, exc.metadata)

    def internal(context: grpc.ServicerContext, what: str, exc: Exception) -> None:
        log.error("%s failed peer=%s", what, _peer(context), exc_info=exc)
        refuse(context, grpc.StatusCode.UNAVAILABLE, relay_pb2.CALL_REFUSAL_INTERNAL,
               f"{core.tier_label_zh}服务器内部错误，请稍后重试", what, load)

    def push(request_iterator: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        peer = _peer(context)
        stream = admission.open(context, peer_address(peer))
        if stream is None:
            refuse(context, grpc.StatusCode.RESOURCE_EXHAUSTED, relay_pb2.CALL_REFUSAL_TOO_MANY_STREAMS,
                   f"{core.tier_label_zh}服务器同时处理的连接已满，请稍后重试", "push", {**load, "scope": "server"})
            return
        session = PushSession(peer=peer)
        try:
            while True:
                admission.phase(stream, "first" if stream.phase == "first" else "waiting")
                try:
                    raw = next(request_iterator)
                except StopIteration:
                    return
                except grpc.RpcError:
                    return   # cancelled: evicted, timed out, or the client went away
                if not admission.begin_batch(stream):
                    return   # evicted while its message arrived: the slot is someone else's now
                if len(raw) > limits.max_message_bytes:
                    refuse(context, grpc.StatusCode.RESOURCE_EXHAUSTED, relay_pb2.CALL_REFUSAL_MESSAGE_TOO_LARGE,
                           f"单条消息超过 {limits.max_message_bytes // 1024} KB 上限，请减少每批条数", "push",
                           {"max_message_bytes": str(limits.max_message_bytes)})
                    return
                try:
                    request = relay_pb2.PushRequest.FromString(raw)
                except DecodeError:
                    refuse(context, grpc.StatusCode.INVALID_ARGUMENT, relay_pb2.CALL_REFUSAL_MALFORMED, "推送请求无法解码", "push")
                    return
                try:
                    response = core.push(request.envelopes, session)
                except CallRefused as exc:
                    refuse_exc(context, exc, "push")
                    return
                except Exception as exc:  # noqa: BLE001 - one bad stream must never take the server down
                    internal(context, "push", exc)
                    return
                first = not stream.key_id
                if session.verified_keys and first:
                    admission.authenticated(stream, sorted(session.verified_keys)[0])
                admission.phase(stream, "answering")
                yield response.SerializeToString()
                if not session.verified_keys:
                    # Nothing in the first batch verified under an enrolled key: answered, and the
                    # stream ends, so an unauthenticated sender cannot keep a worker busy.
                    return
        finally:
            admission.close(stream)

    def unary(name: str, parse: Callable[[bytes], Any], call: Callable[[Any, grpc.ServicerContext], Any]
              ) -> Callable[[bytes, grpc.ServicerContext], bytes]:
        def handler(raw: bytes, context: grpc.ServicerContext) -> bytes:
            if not admission.enter_unary():
                refuse(context, grpc.StatusCode.RESOURCE_EXHAUSTED, relay_pb2.CALL_REFUSAL_OVERLOADED,
                       f"{core.tier_label_zh}服务器繁忙，请稍后重试", name, load)
            try:
                try:
                    request = parse(raw)
                except DecodeError:
                    refuse(context, grpc.StatusCode.INVALID_ARGUMENT, relay_pb2.CALL_REFUSAL_MALFORMED, "请求无法解码", name)
                    raise AssertionError("unreachable") from None  # abort raises
                try:
                    return call(request, context).SerializeToString()
                except CallRefused as exc:
                    refuse_exc(context, exc, name)
                except Exception as exc:  # noqa: BLE001 - one failing call must never take the server down
                    internal(context, name, exc)
                raise AssertionError("unreachable")
            finally:
                admission.leave_unary()
        return handler

    return grpc.method_handlers_generic_handler(SERVICE_NAME, {
        "Enroll": grpc.unary_unary_rpc_method_handler(unary(
            "enroll", relay_pb2.EnrollRequest.FromString, lambda r, c: core.enroll(r, peer=peer_address(_peer(c))))),
        "Push": grpc.stream_stream_rpc_method_handler(push),
        "Pull": grpc.unary_unary_rpc_method_handler(unary("pull", relay_pb2.PullRequest.FromString, lambda r, c: core.pull(r))),
        "Recover": grpc.unary_unary_rpc_method_handler(unary(
            "recover", relay_pb2.RecoverRequest.FromString, lambda r, c: core.recover(r))),
    })


def build_server(core: RelayCore, address: str = "127.0.0.1:0", *, extra_handlers: Sequence[grpc.GenericRpcHandler] = (),
                 health: bool = True, tls: ServerTls | None = None) -> tuple[grpc.Server, int]:
    """A ready (not started) gRPC server with the relay, the health service and every bound set.
    Plain text unless `tls` is given (fine on loopback; anything on a network should use TLS)."""
    server, port, _servicer = build_server_with_health(core, address, extra_handlers=extra_handlers, health=health, tls=tls)
    return server, port


def build_server_with_health(core: RelayCore, address: str = "127.0.0.1:0", *,
                             extra_handlers: Sequence[grpc.GenericRpcHandler] = (), health: bool = True,
                             tls: ServerTls | None = None) -> tuple[grpc.Server, int, Any]:
    """`build_server`, also returning the health servicer, so a process can report NOT_SERVING
    (`enter_graceful_shutdown()`) before it stops accepting calls."""
    from grpc_health.v1 import health as grpc_health
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    limits = core.limits
    # Admitted streams and unary calls each hold a worker; the spare ones answer health probes and
    # refuse excess calls at once. No `maximum_concurrent_rpcs`: it would count health probes too,
    # and idle streams could then lock them out (issue 21); `StreamAdmission` bounds the relay instead.
    pool = ThreadPoolExecutor(max_workers=limits.max_concurrent_streams + limits.max_concurrent_unary + 16,
                              thread_name_prefix="relay-rpc")
    server = grpc.server(pool, options=limits.server_options(), compression=grpc.Compression.Gzip)
    server.add_generic_rpc_handlers((relay_handlers(core), *extra_handlers))
    servicer = None
    if health:
        servicer = grpc_health.HealthServicer()
        servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        servicer.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    # The health service shares the port and its credentials: probes need the CA (and, for mutual TLS, a client certificate).
    port = server.add_secure_port(address, tls.credentials()) if tls is not None else server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"无法监听地址 {address}")
    return server, port, servicer
