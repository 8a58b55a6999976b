"""The sending side's sync loop, for any hop (village → township now, township → county later).

Invariants it keeps (docs/ARCHITECTURE.md, invariants 4, 5, 10):
* The outbox table is the queue. Memory holds only a wake-up flag; after a restart the loop simply
  reads the table again, so it resumes mid-batch from the first record without a verified receipt.
* Single-flight per destination: at most one sync pass per target address in a process.
* A row leaves the outbox only through `Outbox.confirm`, which verifies the receipt first.
* Every call has a deadline; the channel sends keepalive pings so a half-open connection (peer
  gone without a FIN) fails the call instead of hanging it; messages are gzip-compressed.
* Failures back off exponentially with full jitter up to a cap (`shared.retry`).
* Plain text by default (loopback); with `tls` a TLS channel, and a failed handshake is reported as
  `TlsHandshakeFailed` with a Chinese explanation (wrong CA, name, date, or a plain-text peer).
* A refused call is told apart by its typed reason (`google.rpc.ErrorInfo` in the status details,
  docs/wire-v1.md "Errors"): size → smaller batches, load → back off, auth or malformed → stop and
  say why in Chinese. Staff never read raw gRPC details; they go to the log.
"""
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from shared.clock import Clock, to_unix_ms
from shared.envelope import ChainTip, open_record
from shared.errors import EnvelopeError
from shared.relay.errors import PeerUnavailable, RelayError, SyncRefused, TlsHandshakeFailed
from shared.relay.ports import Outbox, RecoveryLog
from shared.relay.server import ERROR_DOMAIN, SERVICE_NAME, pull_signing_bytes, recover_signing_bytes
from shared.relay.tls import ClientTls, handshake_problem_zh
from shared.retry import Backoff, RetryPolicy
from shared.signing import Signer
from shared.wire.v1 import relay_pb2

__all__ = ["ClientLimits", "SyncResult", "RelayClient", "channel_options", "is_size_refusal", "call_refusal",
           "refusal_zh"]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

_RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED,
              grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL,
              grpc.StatusCode.ABORTED}
_NEEDS_ENROLLMENT = {relay_pb2.REFUSAL_REASON_UNKNOWN_KEY, relay_pb2.REFUSAL_REASON_KEY_PENDING}

# A typed refusal (docs/wire-v1.md §9) says whether RESOURCE_EXHAUSTED is about size or load. Without
# one (a receiver older than typed refusals, or gRPC's own bound on a grossly oversized message, reported
# as "Received/Sent message larger than max (x vs. y)"), the status text is all there is: size markers
# mean smaller batches; anything else is load — retry with backoff and keep the batch size, or a
# reconnect storm would shrink every village's batches to one record for good.
_SIZE_REFUSAL_MARKERS = ("每批最多", "larger than max")


def is_size_refusal(code: grpc.StatusCode | None, detail: str | None) -> bool:
    """True when an untyped RESOURCE_EXHAUSTED status says the batch or message was too large (a
    receiver older than typed refusals, or gRPC's own bound on a grossly oversized message)."""
    return code is grpc.StatusCode.RESOURCE_EXHAUSTED and any(m in (detail or "") for m in _SIZE_REFUSAL_MARKERS)


_SIZE = {"BATCH_TOO_LARGE", "MESSAGE_TOO_LARGE"}
_MAX_RETRY_AFTER_S = 600.0
_LOAD = {"OVERLOADED", "TOO_MANY_STREAMS", "ENROLLMENT_LIMIT", "INTERNAL", "IDLE"}


def call_refusal(exc: grpc.RpcError) -> tuple[str, dict[str, str]]:
    """The typed reason of a refused call ("BATCH_TOO_LARGE", "CLOCK_SKEW", …) and its metadata;
    ("", {}) when the status carries none (network failures, gRPC's own refusals, older receivers)."""
    try:
        status = rpc_status.from_call(exc)
    except Exception:  # noqa: BLE001 - a status whose details do not parse is an untyped one
        return "", {}
    if status is None:
        return "", {}
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            if info.domain == ERROR_DOMAIN:
                return info.reason, dict(info.metadata)
    return "", {}


def refusal_zh(reason: str, metadata: dict[str, str], peer_label_zh: str) -> str:
    """What the sender's staff read for a typed refusal: Chinese, without gRPC's own words."""
    texts = {
        "BATCH_TOO_LARGE": f"{peer_label_zh}要求每批不超过 {metadata.get('max_batch', '?')} 条记录",
        "MESSAGE_TOO_LARGE": f"单次发送的数据超过{peer_label_zh}的大小上限",
        "OVERLOADED": f"{peer_label_zh}繁忙，稍后自动重试",
        "TOO_MANY_STREAMS": f"{peer_label_zh}同时处理的连接已满，稍后自动重试",
        "ENROLLMENT_LIMIT": f"{peer_label_zh}待审批的设备登记已满，请联系工作人员先处理已有的登记",
        "INTERNAL": f"{peer_label_zh}内部出错，稍后自动重试",
        "IDLE": f"与{peer_label_zh}的连接长时间无数据，已断开，稍后自动重试",
        "UNKNOWN_KEY": f"{peer_label_zh}不认识本机设备密钥，请先完成登记",
        "BAD_SIGNATURE": f"{peer_label_zh}认为本机请求的签名无效，请联系信息化人员检查本机密钥",
        "KEY_PENDING": f"本机设备密钥尚待{peer_label_zh}审批",
        "KEY_REVOKED": f"本机设备密钥已被{peer_label_zh}吊销，请联系工作人员",
        "NONCE_REPLAYED": f"{peer_label_zh}拒绝了重复的请求，稍后自动重试",
        "CLOCK_SKEW": f"本机时间与{peer_label_zh}相差过大，已按服务器时间校正，稍后自动重试",
        "MALFORMED": f"{peer_label_zh}认为本机发送的请求格式有误，请联系信息化人员",
        "WRONG_ROLE": f"{peer_label_zh}不受理这类设备的登记，请检查本机设置的服务器地址",
    }
    return texts.get(reason, f"{peer_label_zh}拒绝了请求，请联系信息化人员")


_CODE_ZH = {
    grpc.StatusCode.UNAVAILABLE: "网络不通或服务器未启动",
    grpc.StatusCode.DEADLINE_EXCEEDED: "等待应答超时",
    grpc.StatusCode.CANCELLED: "连接被中断",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "服务器繁忙",
}


@dataclass(frozen=True)
class ClientLimits:
    batch_size: int = 200
    # Batches sent on one stream before waiting for their answers.
    window: int = 4
    push_deadline_s: float = 30.0
    unary_deadline_s: float = 10.0
    pull_batch: int = 200
    # With nothing queued, the loop still pulls this often (status and results flow down).
    idle_poll_s: float = 30.0
    max_message_bytes: int = 4 * 1024 * 1024
    keepalive_time_ms: int = 10_000
    keepalive_timeout_ms: int = 5_000


def channel_options(limits: ClientLimits) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", limits.max_message_bytes),
        ("grpc.max_send_message_length", limits.max_message_bytes),
        ("grpc.keepalive_time_ms", limits.keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", limits.keepalive_timeout_ms),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        # Our loop owns the backoff policy; keep the channel's own reconnect delays short.
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.min_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 2_000),
        ("grpc.enable_retries", 0),
    ]


@dataclass
class SyncResult:
    confirmed: int = 0
    resent: int = 0
    pulled: int = 0
    recovered: int = 0          # own records fetched back from the receiver after a restore
    refusals: list[relay_pb2.Refusal] = field(default_factory=list)
    key_status: int = relay_pb2.KEY_STATUS_UNSPECIFIED
    drained: bool = False       # the outbox was empty when the pass ended
    skipped: bool = False       # another pass to the same destination was running

    @property
    def ok(self) -> bool:
        return self.drained and not self.skipped


class _EndedAfterProgress(Exception):
    """A Push stream the receiver cancelled after receipts on it were confirmed (internal to the client)."""

    def __init__(self, progress: int, code_name: str) -> None:
        super().__init__(code_name)
        self.progress = progress
        self.code_name = code_name


_flights_guard = threading.Lock()
_flights: dict[str, threading.Lock] = {}


def _flight_lock(target: str, sender_key_id: str) -> threading.Lock:
    # Keyed by sender too: one laptop has one key, but a bench or a township relaying for several
    # keys may run several senders in one process, each single-flight on its own.
    with _flights_guard:
        return _flights.setdefault(f"{sender_key_id}@{target}", threading.Lock())


# Refusals that say where the device's key stands at the receiver.
_KEY_STATUS_OF_REFUSAL = {
    relay_pb2.REFUSAL_REASON_KEY_PENDING: relay_pb2.KEY_STATUS_PENDING,
    relay_pb2.REFUSAL_REASON_KEY_REVOKED: relay_pb2.KEY_STATUS_REVOKED,
    relay_pb2.REFUSAL_REASON_QUARANTINED: relay_pb2.KEY_STATUS_QUARANTINED,
}


class RelayClient:
    def __init__(self, target: str, outbox: Outbox, signer: Signer, clock: Clock, *,
                 limits: ClientLimits | None = None, policy: RetryPolicy | None = None,
                 backoff: Backoff | None = None, peer_label_zh: str = "乡镇服务器", tls: ClientTls | None = None) -> None:
        self.target = target
        # None: plain text (loopback, tests); else the CA the peer's certificate must chain to.
        self.tls = tls
        # Who is on the other end, in the messages the sender's staff read ("乡镇服务器", "县级服务器").
        self.peer_label_zh = peer_label_zh
        self.outbox = outbox
        self.signer = signer
        self.clock = clock
        self.limits = limits or ClientLimits()
        self.backoff = backoff or Backoff(policy or RetryPolicy(initial_s=0.5, cap_s=30.0))
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._channel: grpc.Channel | None = None
        self._channel_lock = threading.Lock()
        self.last_result: SyncResult | None = None
        self.last_error: str = ""
        # The receiver's clock minus ours, learnt from a CLOCK_SKEW refusal: signed requests carry
        # the receiver's time as best we know it (a laptop's clock may be far off).
        self._clock_offset_ms = 0

    # ------------------------------------------------------------ lifecycle

    def _stub_channel(self) -> grpc.Channel:
        with self._channel_lock:
            if self._channel is None:
                if self.tls is not None:
                    self._channel = grpc.secure_channel(self.target, self.tls.credentials(),
                                                        options=[*channel_options(self.limits), *self.tls.channel_options()],
                                                        compression=grpc.Compression.Gzip)
                else:
                    self._channel = grpc.insecure_channel(self.target, options=channel_options(self.limits),
                                                          compression=grpc.Compression.Gzip)
            return self._channel

    def _drop_channel(self) -> None:
        with self._channel_lock:
            if self._channel is not None:
                self._channel.close()
                self._channel = None

    def wake(self) -> None:
        """Something was queued: sync soon (no-op if a pass is running; it re-reads the table)."""
        self._wake.set()

    def start(self) -> threading.Thread:
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name=f"relay-sync-{self.target}", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._drop_channel()

    def run(self) -> None:
        """Loop until `stop()`: sync, then wait for a wake-up (or the idle poll), backing off on failure."""
        while not self._stop.is_set():
            self._wake.clear()
            try:
                result = self.sync_once()
            except RelayError as exc:
                self.last_error = str(exc)
                # The receiver's own "retry after" when it gave one (load), capped so a busy answer
                # never silences the laptop for long.
                delay = max(self.backoff.next_delay(), min(getattr(exc, "retry_after_s", 0.0), _MAX_RETRY_AFTER_S))
                log.info("sync to %s failed (%s); retry in %.2fs", self.target, exc, delay)
                self._stop.wait(delay)
                continue
            except EnvelopeError as exc:
                # A record from above that does not verify: refused, never skipped (it would hide a
                # tampered store), so syncing stops before it until the sender's staff repair it.
                # Operators must see that on their status page, not only in a log.
                self.last_error = (f"{self.peer_label_zh}下发的记录未通过签名核验，已拒收，同步停在该记录之前；"
                                   f"请联系{self.peer_label_zh}信息化人员核查（{exc}）")
                log.error("sync to %s: %s", self.target, exc)
                self._stop.wait(self.backoff.next_delay())
                continue
            except Exception:
                self.last_error = "同步出错（内部错误，详情见日志），稍后自动重试"
                log.exception("sync to %s crashed; backing off", self.target)
                self._stop.wait(self.backoff.next_delay())
                continue
            self.last_result = result
            if result.skipped:
                self._stop.wait(0.05)
                continue
            self.last_error = ""   # answered: an earlier outage no longer describes the link
            if not result.drained:
                # Answered but not drained: waiting for approval, or refused. Do not spin.
                self._stop.wait(self.backoff.next_delay())
                continue
            self.backoff.reset()
            self._wake.wait(self.limits.idle_poll_s)

    # ------------------------------------------------------------ one pass

    def sync_once(self) -> SyncResult:
        """Push everything queued, then pull what is waiting. Raises `PeerUnavailable` or `SyncRefused`."""
        lock = _flight_lock(self.target, self.signer.key_id)
        if not lock.acquire(blocking=False):
            self._wake.set()
            return SyncResult(skipped=True)
        try:
            result = SyncResult()
            channel = self._stub_channel()
            pushing = True
            try:
                if isinstance(self.outbox, RecoveryLog) and self.outbox.recovering():
                    # Restored from a backup: nothing is pushed (and nothing can be signed) until
                    # the ledger has caught up with what the receiver already holds of ours.
                    pushing = False
                    self._recover_all(channel, result)
                    pushing = True
                self._push_all(channel, result)
                pushing = False
                if any(r.reason in _NEEDS_ENROLLMENT for r in result.refusals):
                    self._enroll(channel, result)
                elif result.key_status != relay_pb2.KEY_STATUS_REVOKED:
                    # A revoked key gets nothing down (docs/wire-v1.md §5): the refusals already say why.
                    self._pull_all(channel, result)
            except grpc.RpcError as exc:
                self._raise_for(exc, pushing=pushing)
            return result
        finally:
            lock.release()

    def _raise_for(self, exc: grpc.RpcError, *, pushing: bool = False) -> None:
        """Turn a failed call into `PeerUnavailable` (retry with backoff) or `SyncRefused` (staff must
        act), with a Chinese message; a size refusal while pushing halves the batch first."""
        code = exc.code() if hasattr(exc, "code") else None
        detail = exc.details() if hasattr(exc, "details") else str(exc)
        reason, metadata = call_refusal(exc)
        log.info("call to %s refused: %s %s %s", self.target, code.name if code else "?", reason or "-", detail)
        if pushing and (reason in _SIZE or (not reason and is_size_refusal(code, detail))):
            if self.limits.batch_size <= 1:
                raise SyncRefused(f"单条记录超过{self.peer_label_zh}的大小上限，无法发送，请联系信息化人员") from exc
            # The receiver's batch or message bound is lower than ours: halve and retry, rather than
            # resending the same oversized batch forever.
            wanted = int(metadata.get("max_batch", "0") or 0)
            smaller = min(wanted, self.limits.batch_size - 1) if wanted > 0 else self.limits.batch_size // 2
            self.limits = replace(self.limits, batch_size=max(1, smaller))
            log.warning("receiver refused the batch size (%s); now sending %d per batch", reason or detail, self.limits.batch_size)
            raise PeerUnavailable(f"{self.peer_label_zh}要求减小每批条数，改为每批 {self.limits.batch_size} 条后重试") from exc
        if reason == "CLOCK_SKEW":
            server_ms = int(metadata.get("server_time_ms", "0") or 0)
            if server_ms:
                self._clock_offset_ms = server_ms - to_unix_ms(self.clock.now())
            raise PeerUnavailable(refusal_zh(reason, metadata, self.peer_label_zh)) from exc
        if reason in _LOAD or reason == "NONCE_REPLAYED":
            raw = metadata.get("retry_after_ms", "")
            raise PeerUnavailable(refusal_zh(reason, metadata, self.peer_label_zh),
                                  retry_after_s=int(raw) / 1000 if raw.isdigit() else 0.0) from exc
        if reason:
            raise SyncRefused(refusal_zh(reason, metadata, self.peer_label_zh)) from exc
        if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
            # Untyped and not about size: the receiver is busy. Same batch size, after a backoff.
            raise PeerUnavailable(f"{self.peer_label_zh}繁忙，稍后自动重试") from exc
        self._raise_if_tls_failure(code, detail, exc)
        if code in _RETRYABLE:
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED):
                # A fresh channel next time: do not trust a connection that just failed.
                self._drop_channel()
            why = _CODE_ZH.get(code, "通信出错") if code is not None else "通信出错"
            raise PeerUnavailable(f"无法连接{self.peer_label_zh}（{why}），稍后自动重试") from exc
        raise SyncRefused(f"{self.peer_label_zh}拒绝了请求，请联系信息化人员（详情见日志）") from exc

    def _requested_at_ms(self) -> int:
        return to_unix_ms(self.clock.now()) + self._clock_offset_ms

    def _signed_call(self, call: Callable[[Any], _T], build: Callable[[bytes, int], Any]) -> _T:
        """A Pull or Recover signed with a fresh nonce and the receiver's time as best known; on a
        CLOCK_SKEW refusal, learn the receiver's time and sign once more."""
        for attempt in range(2):
            nonce = os.urandom(16)
            try:
                return call(build(nonce, self._requested_at_ms()))
            except grpc.RpcError as exc:
                reason, metadata = call_refusal(exc)
                server_ms = int(metadata.get("server_time_ms", "0") or 0) if reason == "CLOCK_SKEW" else 0
                if attempt == 0 and server_ms:
                    self._clock_offset_ms = server_ms - to_unix_ms(self.clock.now())
                    log.warning("receiver %s says our clock is %d s off; signing with its time", self.target,
                                self._clock_offset_ms // 1000)
                    continue
                raise
        raise AssertionError("unreachable")

    def _raise_if_tls_failure(self, code: grpc.StatusCode | None, detail: str | None, exc: grpc.RpcError) -> None:
        """gRPC reports a failed handshake as a bare UNAVAILABLE; say what is wrong, in Chinese."""
        if code is not grpc.StatusCode.UNAVAILABLE:
            return
        problem = handshake_problem_zh(detail, tls=self.tls is not None, peer_label_zh=self.peer_label_zh)
        if problem is not None:
            self._drop_channel()
            log.warning("TLS link to %s failed: %s", self.target, detail)
            raise TlsHandshakeFailed(problem) from exc

    def recover(self) -> SyncResult:
        """Only the recovery step of a pass (`sync_once` runs it first anyway while the outbox's
        ledger is recovering). Raises `PeerUnavailable` or `SyncRefused`."""
        result = SyncResult()
        if not (isinstance(self.outbox, RecoveryLog) and self.outbox.recovering()):
            return result
        lock = _flight_lock(self.target, self.signer.key_id)
        if not lock.acquire(blocking=False):
            return SyncResult(skipped=True)
        try:
            self._recover_all(self._stub_channel(), result)
        except grpc.RpcError as exc:
            self._raise_for(exc)
        finally:
            lock.release()
        return result

    def _recover_all(self, channel: grpc.Channel, result: SyncResult) -> None:
        """Fetch our own records after the ledger's tip back from the receiver, page by page (the
        log verifies every signature, the chain and the receipts before appending), then hand the
        receiver's signed tip to the log, which lifts the signing block only if the ledger agrees."""
        assert isinstance(self.outbox, RecoveryLog)
        recovery: RecoveryLog = self.outbox
        recover = channel.unary_unary(f"/{SERVICE_NAME}/Recover", request_serializer=relay_pb2.RecoverRequest.SerializeToString,
                                      response_deserializer=relay_pb2.RecoverResponse.FromString)
        after = recovery.own_tip().seq
        for _ in range(10_000):   # bounded: at most this many pages per pass
            if self._stop.is_set():
                return
            limit = self.limits.pull_batch
            sent: list[bytes] = []

            def build(nonce: bytes, at_ms: int) -> relay_pb2.RecoverRequest:
                sent[:] = [nonce]
                return relay_pb2.RecoverRequest(
                    key_id=self.signer.key_id, after_seq=after, max_records=limit, nonce=nonce, requested_at_ms=at_ms,
                    signature=self.signer.sign(recover_signing_bytes(self.signer.key_id, after, limit, nonce, at_ms)))

            response = self._signed_call(lambda r: recover(r, timeout=self.limits.unary_deadline_s), build)
            nonce = sent[0]
            if response.records:
                tip = self._refused_on_error(recovery.append_recovered, list(response.records), list(response.receipts))
                if tip.seq <= after:
                    raise SyncRefused(f"{self.peer_label_zh}返回的本机记录无法接续本机台账，已停止取回")
                result.recovered += tip.seq - after
                after = tip.seq
                log.info("recovered own records up to seq %d from %s", after, self.target)
            if not response.more:
                self._refused_on_error(lambda: recovery.finish_recovery(
                    ChainTip(response.tip_seq, bytes(response.tip_hash)), receiver_key_id=response.receiver_key_id,
                    signature=bytes(response.tip_signature), nonce=nonce))
                return
        raise PeerUnavailable(f"从{self.peer_label_zh}取回的记录过多，下次同步时继续")

    @staticmethod
    def _refused_on_error(step: Callable[..., _T], *args: object) -> _T:
        # The log's own errors (a record or receipt that does not verify, a ledger that disagrees with
        # the receiver's tip) are refusals of what the receiver sent: the run loop shows them and backs off.
        try:
            return step(*args)
        except RelayError:
            raise
        except Exception as exc:
            log.warning("recovery step refused: %s", exc)
            raise SyncRefused(str(exc)) from exc

    def _push_all(self, channel: grpc.Channel, result: SyncResult) -> None:
        push = channel.stream_stream(f"/{SERVICE_NAME}/Push", request_serializer=relay_pb2.PushRequest.SerializeToString,
                                     response_deserializer=relay_pb2.PushResponse.FromString)
        lim = self.limits
        while not self._stop.is_set():
            pending = self.outbox.pending(lim.batch_size * lim.window)
            if not pending:
                result.drained = True
                return
            batches = [relay_pb2.PushRequest(envelopes=pending[i:i + lim.batch_size])
                       for i in range(0, len(pending), lim.batch_size)]
            progress = 0
            try:
                progress = self._push_stream(push, batches, result)
            except _EndedAfterProgress as ended:
                # The receiver ended the stream after answering (an idle device gives way when every
                # slot is taken): what was receipted is kept; the rest goes on a new stream at once.
                result.confirmed += ended.progress
                log.info("push stream to %s ended after %d confirmed (%s); continuing", self.target, ended.progress,
                         ended.code_name)
                continue
            result.confirmed += progress
            if progress == 0:
                return   # refused or stuck: the run loop backs off

    def _push_stream(self, push: Callable[..., Any], batches: list[relay_pb2.PushRequest], result: SyncResult) -> int:
        """One Push stream; returns how many rows left the outbox. A stream cancelled by the receiver
        after some receipts arrived raises `_EndedAfterProgress` (not a failure); any other failure
        raises the gRPC error."""
        progress = 0
        try:
            for response in push(iter(batches), timeout=self.limits.push_deadline_s):
                if response.receipts:
                    progress += self.outbox.confirm(list(response.receipts), now_ms=to_unix_ms(self.clock.now()))
                if response.gap.from_seq and response.gap.author_key_id == self.signer.key_id:
                    resent = self.outbox.resend_from(response.gap.from_seq, now_ms=to_unix_ms(self.clock.now()))
                    result.resent += resent
                    progress += resent
                    log.info("township asked to resend from seq %d (%d queued again)", response.gap.from_seq, resent)
                if response.refusals:
                    result.refusals.extend(response.refusals)
                    for r in response.refusals:
                        # The key's standing, as the push tells it (Enroll only says so for seq 1).
                        result.key_status = _KEY_STATUS_OF_REFUSAL.get(r.reason, result.key_status)
                    for r in response.refusals[:3]:
                        log.warning("record seq %d refused: %s (%s)", r.seq, relay_pb2.RefusalReason.Name(r.reason), r.message)
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else None
            if progress and code is grpc.StatusCode.CANCELLED:
                raise _EndedAfterProgress(progress, code.name) from exc
            raise
        return progress

    def _enroll(self, channel: grpc.Channel, result: SyncResult) -> None:
        first = self.outbox.pending(1)
        if not first:
            return
        try:
            seq = open_record(first[0]).header.seq
        except EnvelopeError:
            return
        if seq != 1:
            return
        enroll = channel.unary_unary(f"/{SERVICE_NAME}/Enroll", request_serializer=relay_pb2.EnrollRequest.SerializeToString,
                                     response_deserializer=relay_pb2.EnrollResponse.FromString)
        response = enroll(relay_pb2.EnrollRequest(enrollment=first[0]), timeout=self.limits.unary_deadline_s)
        result.key_status = response.status
        log.info("enrollment status %s: %s", relay_pb2.KeyStatus.Name(response.status), response.message)
        if response.HasField("receipt"):
            result.confirmed += self.outbox.confirm([response.receipt], now_ms=to_unix_ms(self.clock.now()))

    def _pull_all(self, channel: grpc.Channel, result: SyncResult) -> None:
        pull = channel.unary_unary(f"/{SERVICE_NAME}/Pull", request_serializer=relay_pb2.PullRequest.SerializeToString,
                                   response_deserializer=relay_pb2.PullResponse.FromString)
        cursor = self.outbox.pull_cursor()
        for _ in range(10_000):   # bounded: at most this many pages per pass
            if self._stop.is_set():
                return
            limit = self.limits.pull_batch

            def build(nonce: bytes, at_ms: int) -> relay_pb2.PullRequest:
                return relay_pb2.PullRequest(
                    key_id=self.signer.key_id, after_cursor=cursor, max_records=limit, nonce=nonce, requested_at_ms=at_ms,
                    signature=self.signer.sign(pull_signing_bytes(self.signer.key_id, cursor, limit, nonce, at_ms)))

            response = self._signed_call(lambda r: pull(r, timeout=self.limits.unary_deadline_s), build)
            if response.records or response.next_cursor != cursor:
                # apply_down verifies the township's signature on every record before applying any.
                result.pulled += self.outbox.apply_down(list(response.records), response.next_cursor)
                cursor = response.next_cursor
            if not response.more:
                return
