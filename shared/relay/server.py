"""The Relay servicer core, shared by every receiving tier (township for villages, county for townships).

`RelayCore` does the work without gRPC: bound-check, decode, verify each envelope with
`shared.chain.check_link`, hand verified rows to an `IngestStore`, and sign receipts only after the
store has committed. `relay_handlers()` wraps it as gRPC method handlers that take *raw bytes*, so a
request that does not decode is answered with INVALID_ARGUMENT and a Chinese message instead of the
library's generic INTERNAL. `build_server()` applies every bound (message size, concurrent streams,
keepalive, connection age) and returns `(server, port)` so tests can bind port 0.

Receipts are deterministic: (author, seq, hash, receipt time from the row, receiver key,
contiguous seq) serialized and signed with Ed25519, which is deterministic; so the same record sent
again gets byte-identical receipt bytes without keeping them, and no receipt exists before its row.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc
from google.protobuf.message import DecodeError

from shared.chain import BreakReason, check_link
from shared.clock import Clock, to_unix_ms
from shared.envelope import ChainTip, sign_receipt
from shared.keys import InMemoryKeyDirectory, fingerprint
from shared.relay.errors import LimitExceeded, MalformedRequest
from shared.relay.ports import AgentKey, DownLog, EnrollmentInfo, HeldRecord, IngestRow, IngestStore, KeyRegistry, KeyState, Outcome
from shared.relay.tls import ServerTls
from shared.signing import Signer, is_valid, key_id_for, payload_hash
from shared.wire.v1 import envelope_pb2, records_pb2, relay_pb2

__all__ = ["RelayLimits", "RelayStats", "RelayCore", "PushSession", "relay_handlers", "build_server", "build_server_with_health", "pull_signing_bytes",
           "recover_signing_bytes", "recover_tip_signing_bytes", "SERVICE_NAME"]

log = logging.getLogger("shared.relay.server")

SERVICE_NAME = "quancheng.v1.Relay"
_MIN_SIG_PARALLEL = 32


@dataclass(frozen=True)
class RelayLimits:
    """Every bound of the receiving side, explicit (DESIGN invariant 10)."""

    max_message_bytes: int = 4 * 1024 * 1024
    max_batch: int = 500
    max_concurrent_streams: int = 64
    max_pull: int = 500
    # A claimed time more than this ahead of the receiver's clock is flagged.
    claimed_time_tolerance_ms: int = 10 * 60 * 1000
    # A device's first stream has no earlier receipt to bound its claims from below; a record
    # claimed to be older than this at receipt would mean a laptop offline for a year: flagged.
    max_claim_age_ms: int = 366 * 24 * 60 * 60 * 1000
    keepalive_time_ms: int = 20_000
    keepalive_timeout_ms: int = 10_000
    # Connections are recycled so a stuck or hostile client cannot pin a worker forever.
    max_connection_age_ms: int = 10 * 60 * 1000
    max_connection_age_grace_ms: int = 60_000
    verify_threads: int = 2

    def server_options(self) -> list[tuple[str, int]]:
        return [
            ("grpc.max_receive_message_length", self.max_message_bytes),
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


def pull_signing_bytes(key_id: str, after_cursor: int, max_records: int, nonce: bytes) -> bytes:
    return f"quancheng.v1.Pull|{key_id}|{after_cursor}|{max_records}|{nonce.hex()}".encode("ascii")


def recover_signing_bytes(key_id: str, after_seq: int, max_records: int, nonce: bytes) -> bytes:
    return f"quancheng.v1.Recover|{key_id}|{after_seq}|{max_records}|{nonce.hex()}".encode("ascii")


def recover_tip_signing_bytes(key_id: str, tip_seq: int, tip_hash: bytes, nonce: bytes) -> bytes:
    """What the receiver signs about a device's tip in a `RecoverResponse`, bound to the request's nonce."""
    return f"quancheng.v1.RecoverTip|{key_id}|{tip_seq}|{tip_hash.hex()}|{nonce.hex()}".encode("ascii")


@dataclass
class PushSession:
    """Per-stream state: the claimed-time floor per author, fixed when the author is first seen in
    this stream, so a backlog recorded offline and sent in many batches is judged against the
    receipts the device could have known about, not against the batch before it."""

    floors_ms: dict[str, int] = field(default_factory=dict)
    peer: str = ""


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
                 enrolls_role: int = records_pb2.KEY_ROLE_VILLAGE_AGENT) -> None:
        self.signer = signer
        # The one kind of device that enrols here (village agents at a township, townships at the
        # county): a key of another role asking to enrol is refused before anyone is asked to approve it.
        self.enrolls_role = enrolls_role
        # The receiving tier as its senders' staff call it ("乡镇", "县级"), for the messages they read.
        self.tier_label_zh = tier_label_zh
        self.ingest = ingest
        self.keys = keys
        self.down = down
        self.clock = clock
        self.limits = limits or RelayLimits()
        self._pool = ThreadPoolExecutor(max_workers=max(1, self.limits.verify_threads), thread_name_prefix="relay-verify")
        # When the last batch arrived (monotonic seconds): background work such as the township's
        # intake yields to ingest while villages are pushing, so receipts are never held up by it.
        self.last_push_monotonic = 0.0
        self.stats = RelayStats()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------ push

    def push(self, envelopes: Sequence[envelope_pb2.Envelope], session: PushSession | None = None) -> relay_pb2.PushResponse:
        """Handle one batch. Raises `LimitExceeded` when it is larger than the batch limit."""
        session = session or PushSession()
        self.last_push_monotonic = time.monotonic()
        if len(envelopes) > self.limits.max_batch:
            raise LimitExceeded(f"每批最多 {self.limits.max_batch} 条记录，本批 {len(envelopes)} 条")
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
            if author is not None and author.state in (KeyState.PENDING, KeyState.QUARANTINED):
                reason = (relay_pb2.REFUSAL_REASON_KEY_PENDING if author.state is KeyState.PENDING
                          else relay_pb2.REFUSAL_REASON_QUARANTINED)
                text = (f"设备密钥尚待{self.tier_label_zh}审批" if author.state is KeyState.PENDING
                        else f"该设备发现分叉记录，已隔离，请联系{self.tier_label_zh}工作人员")
                for env in group:
                    self._refuse(response, key_id, _seq_of(env), reason, text, session)
                return
            if self._try_author(key_id, author, group, response, session):
                return
        for env in group:
            self._refuse(response, key_id, _seq_of(env), relay_pb2.REFUSAL_REASON_UNSPECIFIED,
                         "同一设备的记录正在并发写入，请稍后重试", session)

    def _try_author(self, key_id: str, author: AgentKey | None, group: list[envelope_pb2.Envelope],
                    response: relay_pb2.PushResponse, session: PushSession) -> bool:
        directory = InMemoryKeyDirectory([author.known()] if author is not None else [])
        signatures = self._signatures(author, group)
        tip = author.tip if author is not None else ChainTip()
        floor = session.floors_ms.setdefault(key_id, author.last_receipt_ms if author is not None else 0)
        now_ms = to_unix_ms(self.clock.now())
        rows: list[IngestRow] = []
        stop_reason: tuple[int, str] | None = None   # refuse everything after a fork or a rotation
        gap_set = False
        no_hashes: Mapping[int, bytes] = {}
        for env, sig_ok in zip(group, signatures):
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
                if reason in (BreakReason.SEQ_GAP, BreakReason.REORDERED) and not gap_set:
                    gap_set = True
                    response.gap.author_key_id = key_id
                    response.gap.from_seq = tip.seq + 1
                    response.gap.to_seq = seq - 1
                text = reason.label_zh + (f"（{detail}）" if detail else "")
                self._refuse(response, key_id, seq, _REFUSAL.get(reason, relay_pb2.REFUSAL_REASON_UNSPECIFIED), text, session)
                continue
            assert record is not None
            flag = self._claimed_time_flag(record.header.claimed_time_ms, floor, now_ms)
            row = self._row(env, record, flag)
            rows.append(row)
            tip = ChainTip(row.seq, row.hash)
            if row.rotation is not None:
                stop_reason = (relay_pb2.REFUSAL_REASON_KEY_REVOKED, "密钥已轮换，旧密钥此后的记录无效")
        if not rows:
            return True
        assert author is not None
        results = self.ingest.store_batch(key_id, author.tip, rows, receipt_time_ms=now_ms)
        if any(r.outcome is Outcome.CONFLICT for r in results):
            # Nothing new was written; whatever was classified as duplicate/fork is reclassified on retry.
            log.info("concurrent write for key %s; retrying the batch", key_id[:8])
            return False
        to_sign: list[envelope_pb2.Receipt] = []
        stored = duplicates = 0
        for row, result in zip(rows, results):
            if result.outcome is Outcome.FORK:
                log.warning("refused key=%s seq=%d reason=fork peer=%s: 同一序号出现不同内容，作者已隔离",
                            key_id, row.seq, session.peer)
                self._refuse(response, key_id, row.seq, relay_pb2.REFUSAL_REASON_FORK,
                             "分叉：同一序号出现不同内容，该设备已隔离", session, logged=True)
                continue
            if result.outcome is Outcome.STORED:
                stored += 1
            else:
                duplicates += 1
            if row.claimed_time_flag and result.outcome is Outcome.STORED:
                log.info("claimed time flagged key=%s seq=%d: %s", key_id[:8], row.seq, row.claimed_time_flag)
            to_sign.append(envelope_pb2.Receipt(author_key_id=key_id, seq=row.seq, record_hash=result.hash,
                                                receipt_time_ms=result.receipt_time_ms, contiguous_through_seq=row.seq))
        response.receipts.extend(self._sign_receipts(to_sign))
        self.stats.add_batch(stored=stored, duplicates=duplicates, receipts=len(to_sign))
        return True

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

    def _claimed_time_flag(self, claimed_ms: int, floor_ms: int, now_ms: int) -> str | None:
        if claimed_ms > now_ms + self.limits.claimed_time_tolerance_ms:
            return f"设备声称时间比{self.tier_label_zh}时间快 {_human_ms(claimed_ms - now_ms)}"
        if claimed_ms < floor_ms:
            return f"设备声称时间早于该设备上一次回执时间 {_human_ms(floor_ms - claimed_ms)}"
        if claimed_ms < now_ms - self.limits.max_claim_age_ms:
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

    def enroll(self, request: relay_pb2.EnrollRequest) -> relay_pb2.EnrollResponse:
        """Register a self-signed seq-1 enrollment as pending, or report the key's status."""
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
                raise MalformedRequest("登记记录的签名无效")
            if body.role != self.enrolls_role:
                wanted = {records_pb2.KEY_ROLE_VILLAGE_AGENT: "村代办员设备", records_pb2.KEY_ROLE_TOWNSHIP: "乡镇接入密钥"}
                raise MalformedRequest(f"此处只受理{wanted.get(self.enrolls_role, '指定类型')}的登记，"
                                       f"该密钥登记的类型不符")
            info = EnrollmentInfo(int(body.role), body.holder_name[:100], body.village_code[:32],
                                  body.township_code[:32], fingerprint(pub))
            known = self.keys.enroll(pub, env, info, now_ms=to_unix_ms(self.clock.now()))
            log.info("enrollment pending key=%s holder=%s village=%s", env.key_id, info.holder_name, info.village_code)
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

    # ------------------------------------------------------------ pull

    def pull(self, request: relay_pb2.PullRequest) -> relay_pb2.PullResponse:
        key = self.keys.lookup(request.key_id)
        if key is None:
            raise MalformedRequest("未知的设备密钥")
        if len(request.nonce) < 8 or len(request.nonce) > 64:
            raise MalformedRequest("拉取请求的随机数长度无效")
        if not is_valid(key.public_key, pull_signing_bytes(request.key_id, request.after_cursor, request.max_records,
                                                           request.nonce), request.signature):
            raise MalformedRequest("拉取请求签名无效")
        limit = min(max(1, request.max_records or self.limits.max_pull), self.limits.max_pull)
        envelopes, cursor = self.down.read(request.key_id, request.after_cursor, limit)
        return relay_pb2.PullResponse(records=envelopes, next_cursor=cursor, more=len(envelopes) >= limit)

    # ------------------------------------------------------------ recover

    def recover(self, request: relay_pb2.RecoverRequest) -> relay_pb2.RecoverResponse:
        """A device restored from a backup asks for its own records after `after_seq` and this
        receiver's tip for its key, signed and bound to its nonce, so it never signs a held seq again.

        Read-only. An unknown key gets tip 0 (nothing is held, so nothing can fork). Records come
        with the receipts first given for them, re-signed: receipts are deterministic."""
        key_id = request.key_id
        if len(request.nonce) < 8 or len(request.nonce) > 64:
            raise MalformedRequest("取回请求的随机数长度无效")
        if not key_id or len(key_id) > 64:
            raise MalformedRequest("取回请求缺少设备密钥标识")
        author = self.ingest.author(key_id)
        response = relay_pb2.RecoverResponse(receiver_key_id=self.signer.key_id)
        tip = ChainTip()
        if author is not None:
            if not is_valid(author.public_key, recover_signing_bytes(key_id, request.after_seq, request.max_records,
                                                                     request.nonce), request.signature):
                raise MalformedRequest("取回请求签名无效")
            if author.state is KeyState.REVOKED:
                # A revoked key signs nothing more, so it has nothing to recover for; its records stay here.
                raise MalformedRequest(f"设备密钥已被吊销，不能取回记录，请联系{self.tier_label_zh}工作人员")
            response.status = author.state.to_wire()
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


# ---------------------------------------------------------------- gRPC adapter


def _peer(context: grpc.ServicerContext) -> str:
    try:
        return str(context.peer())
    except Exception:  # noqa: BLE001 - a peer string is only for logs
        return "?"


def relay_handlers(core: RelayCore) -> grpc.GenericRpcHandler:
    """gRPC handlers for `quancheng.v1.Relay` that decode requests themselves (raw bytes in)."""

    def fail(context: grpc.ServicerContext, code: grpc.StatusCode, text: str, what: str) -> None:
        log.warning("%s refused (%s) peer=%s: %s", what, code.name, _peer(context), text)
        context.abort(code, text)

    def push(request_iterator: Iterable[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        session = PushSession(peer=_peer(context))
        for raw in request_iterator:
            try:
                request = relay_pb2.PushRequest.FromString(raw)
            except DecodeError:
                fail(context, grpc.StatusCode.INVALID_ARGUMENT, "推送请求无法解码", "push")
                return
            try:
                response = core.push(request.envelopes, session)
            except LimitExceeded as exc:
                fail(context, grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc), "push")
                return
            except MalformedRequest as exc:
                fail(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc), "push")
                return
            except Exception:  # noqa: BLE001 - one bad stream must never take the server down
                log.exception("push failed peer=%s", session.peer)
                context.abort(grpc.StatusCode.UNAVAILABLE, f"{core.tier_label_zh}服务器内部错误，请稍后重试")
                return
            yield response.SerializeToString()

    def unary(name: str, parse: Callable[[bytes], object], call: Callable[[object], object]) -> Callable[[bytes, grpc.ServicerContext], bytes]:
        def handler(raw: bytes, context: grpc.ServicerContext) -> bytes:
            try:
                request = parse(raw)
            except DecodeError:
                fail(context, grpc.StatusCode.INVALID_ARGUMENT, "请求无法解码", name)
                raise AssertionError("unreachable")  # abort raises
            try:
                return call(request).SerializeToString()  # type: ignore[attr-defined, no-any-return]
            except MalformedRequest as exc:
                fail(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc), name)
            except LimitExceeded as exc:
                fail(context, grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc), name)
            except Exception:  # noqa: BLE001
                log.exception("%s failed peer=%s", name, _peer(context))
                context.abort(grpc.StatusCode.UNAVAILABLE, f"{core.tier_label_zh}服务器内部错误，请稍后重试")
            raise AssertionError("unreachable")
        return handler

    return grpc.method_handlers_generic_handler(SERVICE_NAME, {
        "Enroll": grpc.unary_unary_rpc_method_handler(
            unary("enroll", relay_pb2.EnrollRequest.FromString, core.enroll)),  # type: ignore[arg-type]
        "Push": grpc.stream_stream_rpc_method_handler(push),
        "Pull": grpc.unary_unary_rpc_method_handler(
            unary("pull", relay_pb2.PullRequest.FromString, core.pull)),  # type: ignore[arg-type]
        "Recover": grpc.unary_unary_rpc_method_handler(
            unary("recover", relay_pb2.RecoverRequest.FromString, core.recover)),  # type: ignore[arg-type]
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
    from grpc_health.v1 import health as grpc_health, health_pb2, health_pb2_grpc

    limits = core.limits
    # More worker threads than admitted RPCs: excess calls are refused with RESOURCE_EXHAUSTED by
    # `maximum_concurrent_rpcs` instead of queueing behind a slow village.
    pool = ThreadPoolExecutor(max_workers=limits.max_concurrent_streams + 8, thread_name_prefix="relay-rpc")
    server = grpc.server(pool, options=limits.server_options(), maximum_concurrent_rpcs=limits.max_concurrent_streams + 4,
                         compression=grpc.Compression.Gzip)
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
