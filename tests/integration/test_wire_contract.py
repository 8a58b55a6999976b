"""The wire contract (docs/wire-v1.md) held by the township's real relay over real gRPC on loopback:
idle streams cannot lock anyone out, Pull and Recover cannot be replayed, record ids are UUIDs unique
per author, claimed times are judged the same however a device splits its streams, every refused call
says why in a machine-readable reason, and pending enrollments are bounded."""
from __future__ import annotations

import datetime as dt
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import MetaData

from shared.clock import FakeClock, to_unix_ms
from shared.envelope import GENESIS, ChainTip, sign_next
from shared.relay.client import ClientLimits, RelayClient, call_refusal, channel_options
from shared.relay.errors import PeerUnavailable
from shared.relay.ports import EnrollmentBounds, EnrollmentInfo, KeyState
from shared.relay.server import RelayCore, RelayLimits, pull_signing_bytes, recover_signing_bytes
from shared.relay.sql_store import RelayStore, relay_engine
from shared.relay.sql_tables import relay_tables
from shared.retry import RetryPolicy
from shared.signing import Signer, payload_hash
from shared.wire.v1 import envelope_pb2, records_pb2, relay_pb2
from tests.relay_fakes import SqliteOutbox, enrollment_record, note_record
from town_center.bootstrap import TownApp, build_app
from town_center.grpc_server import create_server

START = dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC)
RELAY = "/quancheng.v1.Relay/"


class Township:
    """A township's relay (real store on a SQLite file, real gRPC server on port 0)."""

    def __init__(self, tmp: Path, limits: RelayLimits, clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock(START)
        self.signer = Signer.generate()
        self.app: TownApp = build_app(f"sqlite:///{tmp / 'town.db'}", self.signer, clock=self.clock, limits=limits)
        self.server, self.port = create_server(self.app.core, "127.0.0.1:0")
        self.server.start()
        self.address = f"127.0.0.1:{self.port}"
        self.channel = grpc.insecure_channel(self.address, options=channel_options(ClientLimits()))
        self.tmp = tmp

    def now_ms(self) -> int:
        return to_unix_ms(self.clock.now())

    def agent(self, village: str = "V1") -> Signer:
        signer = Signer.generate()
        self.app.store.register_approved(signer.public_key, EnrollmentInfo(village_code=village), by="测试", now_ms=0)
        return signer

    def unary(self, method: str, response: type) -> grpc.UnaryUnaryMultiCallable:
        return self.channel.unary_unary(RELAY + method, request_serializer=lambda m: m.SerializeToString(),
                                        response_deserializer=response.FromString)

    def push(self, *batches: list[envelope_pb2.Envelope]) -> list[relay_pb2.PushResponse]:
        call = self.channel.stream_stream(RELAY + "Push", request_serializer=relay_pb2.PushRequest.SerializeToString,
                                          response_deserializer=relay_pb2.PushResponse.FromString)
        return list(call(iter([relay_pb2.PushRequest(envelopes=b) for b in batches]), timeout=10))

    def outbox(self, agent: Signer, name: str = "v.sqlite") -> SqliteOutbox:
        return SqliteOutbox(self.tmp / name, own_key_id=agent.key_id, township_public_key=self.signer.public_key,
                            township_key_id=self.signer.key_id)

    def close(self) -> None:
        self.channel.close()
        self.server.stop(0).wait()
        self.app.close()


@pytest.fixture
def town(tmp_path: Path) -> Iterator[Township]:
    t = Township(tmp_path, RelayLimits(max_batch=100, max_message_bytes=256 * 1024))
    yield t
    t.close()


def notes(signer: Signer, n: int, *, tip: ChainTip = GENESIS, claimed_ms: list[int] | int = 0) -> list[envelope_pb2.Envelope]:
    out = []
    for i in range(n):
        at = claimed_ms[i] if isinstance(claimed_ms, list) else claimed_ms or to_unix_ms(START)
        signed = sign_next(signer, note_record(tip.seq + 1), tip, at)
        out.append(signed.envelope)
        tip = signed.tip
    return out


def health_answers(port: int, timeout: float) -> bool:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


# ---------------------------------------------------------------- idle streams


def test_two_hundred_idle_streams_lock_out_neither_an_honest_village_nor_the_health_check(tmp_path: Path) -> None:
    town = Township(tmp_path, RelayLimits(max_batch=100, max_concurrent_streams=16, max_unauthenticated_per_address=8,
                                          first_message_after_ms=1_000, idle_after_ms=2_000))
    stop = threading.Event()
    never = threading.Event()
    attackers = [grpc.insecure_channel(town.address) for _ in range(4)]
    open_calls: list[grpc.Future] = []

    def idle() -> Iterator[relay_pb2.PushRequest]:
        never.wait(30)    # opens the stream, never sends a message
        return
        yield  # pragma: no cover - makes this a generator

    def open_idle(i: int) -> grpc.Future:
        call = attackers[i % len(attackers)].stream_stream(RELAY + "Push", request_serializer=relay_pb2.PushRequest.SerializeToString,
                                                           response_deserializer=relay_pb2.PushResponse.FromString)
        return call(idle(), timeout=30)

    def hold_200() -> None:
        # One unauthenticated host keeps 200 Push streams open: every one the server ends is reopened.
        calls = [open_idle(i) for i in range(200)]
        open_calls.extend(calls)
        while not stop.wait(0.1):
            for i, call in enumerate(calls):
                if not call.is_active():
                    calls[i] = open_idle(i)
                    open_calls.append(calls[i])

    holder = threading.Thread(target=hold_200, daemon=True)
    holder.start()
    try:
        time.sleep(1.5)   # the server is under the idle streams' pressure before the village starts
        agent = town.agent()
        outbox = town.outbox(agent)
        for i in range(300):
            outbox.record(agent, note_record(i + 1), to_unix_ms(START))
        client = RelayClient(town.address, outbox, agent, town.clock, limits=ClientLimits(batch_size=50, push_deadline_s=5),
                             policy=RetryPolicy(initial_s=0.05, cap_s=0.5))
        probes: list[bool] = []
        deadline = time.monotonic() + 60
        while outbox.pending_count() and time.monotonic() < deadline:
            probes.append(health_answers(town.port, timeout=2))
            try:
                client.sync_once()
            except PeerUnavailable:
                time.sleep(0.05)
        probes.append(health_answers(town.port, timeout=2))
        assert outbox.pending_count() == 0, "the honest village could not deliver while idle streams were held"
        assert all(probes), f"the health check went unanswered {probes.count(False)} of {len(probes)} times"
        assert len(town.app.store.ingested(agent.key_id)) == 300
        counts = town.app.core.admission.counts()
        assert counts["evicted"] + counts["timed_out"] >= 200 - 8   # the idle streams were ended, not served
        assert counts["unauthenticated"] <= 8
        client.stop()
        outbox.close()
    finally:
        stop.set()
        never.set()
        holder.join(10)
        for call in open_calls:
            call.cancel()
        for channel in attackers:
            channel.close()
        town.close()


def test_a_stream_that_never_sends_is_cancelled_after_the_first_message_bound(tmp_path: Path) -> None:
    town = Township(tmp_path, RelayLimits(first_message_after_ms=300, idle_after_ms=600))
    never = threading.Event()

    def idle() -> Iterator[relay_pb2.PushRequest]:
        never.wait(20)
        return
        yield  # pragma: no cover

    try:
        call = town.channel.stream_stream(RELAY + "Push", request_serializer=relay_pb2.PushRequest.SerializeToString,
                                          response_deserializer=relay_pb2.PushResponse.FromString)
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as ended:
            list(call(idle(), timeout=20))
        assert ended.value.code() is grpc.StatusCode.CANCELLED and time.monotonic() - started < 10
        assert town.app.core.admission.counts()["timed_out"] == 1
    finally:
        never.set()
        town.close()


# ---------------------------------------------------------------- one batch or many: the same classification


class _Receiver:
    """A relay core over a bare relay store on its own SQLite file (no township handling): cheap
    enough to make two per generated example."""

    def __init__(self, path: Path) -> None:
        metadata = MetaData()
        self.store = RelayStore(relay_engine(str(path)), relay_tables(metadata, meta_table_name="meta"))
        metadata.create_all(self.store.engine)
        self.core = RelayCore(signer=Signer(bytes(range(32))), ingest=self.store, keys=self.store, down=self.store,
                              clock=FakeClock(START), limits=RelayLimits(max_batch=100, verify_threads=1))

    def close(self) -> None:
        self.core.close()
        self.store.close()


def _outcome(app: _Receiver, key_id: str, responses: list[relay_pb2.PushResponse]) -> tuple[object, ...]:
    store = app.store
    receipts = {r.payload for resp in responses for r in resp.receipts}
    refusals = sorted({(r.seq, r.reason) for resp in responses for r in resp.refusals})
    author = store.author(key_id)
    assert author is not None
    return (store.ingested(key_id), sorted((f.seq, f.held_hash, f.hash) for f in store.forks()), author.state,
            author.tip, receipts, refusals, [(f.seq, f.reason) for f in store.time_flags(key_id)])


def test_any_batch_composition_is_classified_exactly_as_one_record_per_batch(tmp_path: Path) -> None:
    author = Signer(bytes([7]) * 32)
    honest = notes(author, 6)
    tip2 = ChainTip(2, payload_hash(honest[1].payload))
    forked = notes(author, 2, tip=tip2, claimed_ms=to_unix_ms(START) + 5)           # seq 3 and 4, other bytes
    reused_record = note_record(6, "again")                                             # seq 2's record id at seq 6
    reused_record.header.record_id = records_pb2.Record.FromString(honest[1].payload).header.record_id
    reused = sign_next(author, reused_record, ChainTip(5, payload_hash(honest[4].payload)), to_unix_ms(START)).envelope
    pool = honest + forked + [reused]
    runs = iter(range(10_000))

    @settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
    @given(picks=st.lists(st.integers(0, len(pool) - 1), min_size=1, max_size=12),
           cuts=st.lists(st.booleans(), min_size=12, max_size=12))
    def check(picks: list[int], cuts: list[bool]) -> None:
        envs = [pool[i] for i in picks]
        batches: list[list[envelope_pb2.Envelope]] = [[]]
        for env, cut in zip(envs, cuts, strict=False):  # fewer picks than cuts: the extra cuts are unused
            if cut and batches[-1]:
                batches.append([])
            batches[-1].append(env)
        n = next(runs)
        one, alone = _Receiver(tmp_path / f"a{n}.db"), _Receiver(tmp_path / f"b{n}.db")
        try:
            for app in (one, alone):
                app.store.register_approved(author.public_key, EnrollmentInfo(village_code="V1"), by="测试", now_ms=0)
            together = [one.core.push(batch) for batch in batches]
            separately = [alone.core.push([env]) for env in envs]
            assert _outcome(one, author.key_id, together) == _outcome(alone, author.key_id, separately)
        finally:
            one.close()
            alone.close()

    check()


def test_the_same_record_twice_in_one_batch_gets_its_receipt_once_and_a_fork_in_one_batch_quarantines(town: Township) -> None:
    agent = town.agent()
    envs = notes(agent, 3)
    [response] = town.push([envs[0], envs[1], envs[1], envs[2]])
    assert [r.seq for r in (envelope_pb2.Receipt.FromString(e.payload) for e in response.receipts)] == [1, 2, 3]
    assert not response.refusals
    other = notes(agent, 2, tip=ChainTip(3, payload_hash(envs[2].payload)))
    fork_of_4 = notes(agent, 1, tip=ChainTip(3, payload_hash(envs[2].payload)),
                      claimed_ms=to_unix_ms(START) + 1)[0]
    [response] = town.push([other[0], fork_of_4, other[1]])
    assert len(response.receipts) == 1
    assert [(r.seq, r.reason) for r in response.refusals] == [(4, relay_pb2.REFUSAL_REASON_FORK),
                                                             (5, relay_pb2.REFUSAL_REASON_QUARANTINED)]
    assert town.app.store.author(agent.key_id).state is KeyState.QUARANTINED
    assert [(f.seq, f.hash) for f in town.app.store.forks()] == [(4, payload_hash(fork_of_4.payload))]


# ---------------------------------------------------------------- Pull and Recover


def _pull(town: Township, signer: Signer, *, at_ms: int | None = None, nonce: bytes | None = None,
          key_id: str | None = None) -> relay_pb2.PullRequest:
    at_ms = town.now_ms() if at_ms is None else at_ms
    nonce = nonce or os.urandom(16)
    key_id = key_id or signer.key_id
    return relay_pb2.PullRequest(key_id=key_id, after_cursor=0, max_records=50, nonce=nonce, requested_at_ms=at_ms,
                                 signature=signer.sign(pull_signing_bytes(key_id, 0, 50, nonce, at_ms)))


def _refusal(call: grpc.UnaryUnaryMultiCallable, request: object) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    with pytest.raises(grpc.RpcError) as refused:
        call(request, timeout=5)
    return (refused.value.code(), *call_refusal(refused.value))


def test_a_captured_pull_or_recover_replayed_is_refused_and_a_stale_one_too(town: Township) -> None:
    agent = town.agent()
    pull = town.unary("Pull", relay_pb2.PullResponse)
    request = _pull(town, agent)
    pull(request, timeout=5)
    assert _refusal(pull, request) == (grpc.StatusCode.UNAUTHENTICATED, "NONCE_REPLAYED", {})
    code, reason, meta = _refusal(pull, _pull(town, agent, at_ms=town.now_ms() - 10 * 60_000))
    assert (code, reason, meta) == (grpc.StatusCode.FAILED_PRECONDITION, "CLOCK_SKEW",
                                    {"server_time_ms": str(town.now_ms()), "window_ms": str(5 * 60_000)})
    recover = town.unary("Recover", relay_pb2.RecoverResponse)
    nonce, at = os.urandom(16), town.now_ms()
    again = relay_pb2.RecoverRequest(key_id=agent.key_id, after_seq=0, max_records=10, nonce=nonce, requested_at_ms=at,
                                     signature=agent.sign(recover_signing_bytes(agent.key_id, 0, 10, nonce, at)))
    recover(again, timeout=5)
    assert _refusal(recover, again)[1] == "NONCE_REPLAYED"
    # Once the window has passed the nonce is forgotten, and the request is refused for its age instead.
    town.clock.advance(dt.timedelta(minutes=11))
    assert _refusal(pull, request)[1] == "CLOCK_SKEW"


def test_a_revoked_key_gets_nothing_and_a_pending_key_only_its_status(town: Township) -> None:
    revoked = town.agent()
    town.push(notes(revoked, 2))
    town.app.services.revoke(revoked.key_id, by="张三", reason="笔记本丢失")
    pull, recover = town.unary("Pull", relay_pb2.PullResponse), town.unary("Recover", relay_pb2.RecoverResponse)
    assert _refusal(pull, _pull(town, revoked))[:2] == (grpc.StatusCode.PERMISSION_DENIED, "KEY_REVOKED")
    nonce, at = os.urandom(16), town.now_ms()
    assert _refusal(recover, relay_pb2.RecoverRequest(
        key_id=revoked.key_id, after_seq=0, max_records=10, nonce=nonce, requested_at_ms=at,
        signature=revoked.sign(recover_signing_bytes(revoked.key_id, 0, 10, nonce, at))))[1] == "KEY_REVOKED"

    pending = Signer.generate()
    enrollment = sign_next(pending, enrollment_record(pending, "V2"), GENESIS, town.now_ms()).envelope
    assert town.unary("Enroll", relay_pb2.EnrollResponse)(relay_pb2.EnrollRequest(enrollment=enrollment), timeout=5).status \
        == relay_pb2.KEY_STATUS_PENDING
    town.app.services.publish(note_record(1), ["*"])      # something is waiting for every device
    assert _refusal(pull, _pull(town, pending))[:2] == (grpc.StatusCode.PERMISSION_DENIED, "KEY_PENDING")
    nonce, at = os.urandom(16), town.now_ms()
    status = recover(relay_pb2.RecoverRequest(key_id=pending.key_id, after_seq=0, max_records=10, nonce=nonce, requested_at_ms=at,
                                              signature=pending.sign(recover_signing_bytes(pending.key_id, 0, 10, nonce, at))),
                     timeout=5)
    assert status.status == relay_pb2.KEY_STATUS_PENDING and not status.records and not status.receipts and status.tip_seq == 0
    assert _refusal(pull, _pull(town, Signer.generate()))[:2] == (grpc.StatusCode.UNAUTHENTICATED, "UNKNOWN_KEY")


def test_a_laptop_whose_clock_is_days_off_learns_the_receivers_time_and_pulls(town: Township) -> None:
    agent = town.agent()
    town.app.services.publish(note_record(1), [agent.key_id])
    outbox = town.outbox(agent)
    laptop_clock = FakeClock(START - dt.timedelta(days=3))
    client = RelayClient(town.address, outbox, agent, laptop_clock)
    try:
        result = client.sync_once()
        assert result.pulled >= 1 and client.last_error == ""
    finally:
        client.stop()
        outbox.close()


# ---------------------------------------------------------------- record ids


def test_a_record_id_that_is_not_a_uuid_or_is_reused_by_the_author_is_refused(town: Township) -> None:
    agent = town.agent()
    first = sign_next(agent, note_record(1), GENESIS, town.now_ms())
    bad = note_record(2)
    bad.header.record_id = "not-a-uuid"
    [response] = town.push([first.envelope, sign_next(agent, bad, first.tip, town.now_ms()).envelope])
    assert [(r.seq, r.reason) for r in response.refusals] == [(2, relay_pb2.REFUSAL_REASON_BAD_RECORD_ID)]
    again = note_record(2)
    again.header.record_id = first.record_id
    second = sign_next(agent, again, first.tip, town.now_ms())
    third = sign_next(agent, note_record(3), second.tip, town.now_ms())
    [response] = town.push([second.envelope, third.envelope])
    assert [(r.seq, r.reason) for r in response.refusals] == [(2, relay_pb2.REFUSAL_REASON_RECORD_ID_REUSED),
                                                             (3, relay_pb2.REFUSAL_REASON_GAP)]
    upper = note_record(2)
    upper.header.record_id = str(uuid.uuid4()).upper()
    [response] = town.push([sign_next(agent, upper, first.tip, town.now_ms()).envelope])
    assert [r.reason for r in response.refusals] == [relay_pb2.REFUSAL_REASON_BAD_RECORD_ID]
    assert [seq for seq, _, _ in town.app.store.ingested(agent.key_id)] == [1]


# ---------------------------------------------------------------- claimed time


def test_claimed_times_are_judged_the_same_however_the_device_splits_its_streams(town: Township) -> None:
    now = town.now_ms()
    # A backlog signed offline over the last two hours, sent one record per stream.
    backlog = town.agent("V1")
    for env in notes(backlog, 60, claimed_ms=[now - 2 * 3_600_000 + i * 60_000 for i in range(60)]):
        town.push([env])
        town.clock.advance(dt.timedelta(seconds=1))
    assert town.app.store.time_flags(backlog.key_id) == []
    # A laptop 60 s slow, syncing as it works: never flagged.
    slow = town.agent("V2")
    envs = notes(slow, 30, claimed_ms=[town.now_ms() + i * 120_000 - 60_000 for i in range(30)])
    for env in envs:
        town.push([env])
        town.clock.advance(dt.timedelta(minutes=2))
    assert town.app.store.time_flags(slow.key_id) == []
    # The same laptop, its clock set back a day after a sync an hour ago: flagged, once per record.
    town.clock.advance(dt.timedelta(hours=1))
    tip = town.app.store.author(slow.key_id).tip
    back = notes(slow, 3, tip=tip, claimed_ms=[town.now_ms() - 86_400_000 + i for i in range(3)])
    town.push(back[:1])
    town.push(back[1:])
    flags = town.app.store.time_flags(slow.key_id)
    assert [f.seq for f in flags] == [31, 32, 33] and "调回" in flags[0].reason


# ---------------------------------------------------------------- typed refusals


def test_every_refused_call_carries_a_machine_readable_reason(town: Township) -> None:
    agent = town.agent()
    push = town.channel.stream_stream(RELAY + "Push", request_serializer=lambda b: b,
                                      response_deserializer=relay_pb2.PushResponse.FromString)

    def push_raw(raw: bytes) -> tuple[grpc.StatusCode, str, dict[str, str]]:
        with pytest.raises(grpc.RpcError) as refused:
            list(push(iter([raw]), timeout=5))
        return (refused.value.code(), *call_refusal(refused.value))

    too_many = relay_pb2.PushRequest(envelopes=notes(agent, 101)).SerializeToString()
    assert push_raw(too_many) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "BATCH_TOO_LARGE", {"max_batch": "100"})
    big = relay_pb2.PushRequest(envelopes=[envelope_pb2.Envelope(payload=os.urandom(300 * 1024), key_id=agent.key_id)])
    assert push_raw(big.SerializeToString()) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "MESSAGE_TOO_LARGE",
                                                 {"max_message_bytes": str(256 * 1024)})
    assert push_raw(b"\xff\xff\xff") == (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED", {})
    enroll = town.unary("Enroll", relay_pb2.EnrollResponse)
    stranger = Signer.generate()
    wrong_role = sign_next(stranger, enrollment_record(stranger, "V9", records_pb2.KEY_ROLE_TOWNSHIP), GENESIS, 0).envelope
    assert _refusal(enroll, relay_pb2.EnrollRequest(enrollment=wrong_role))[:2] == (grpc.StatusCode.INVALID_ARGUMENT, "WRONG_ROLE")
    forged = envelope_pb2.Envelope(payload=wrong_role.payload, signature=bytes(64), key_id=wrong_role.key_id)
    assert _refusal(enroll, relay_pb2.EnrollRequest(enrollment=forged))[:2] == (grpc.StatusCode.UNAUTHENTICATED, "BAD_SIGNATURE")


# ---------------------------------------------------------------- enrollment bounds


def test_pending_enrollments_are_bounded_per_address_and_in_total_and_stale_ones_expire(tmp_path: Path) -> None:
    town = Township(tmp_path, RelayLimits(enrollment=EnrollmentBounds(per_address=3, total=5, expire_after_ms=86_400_000)))
    enroll = town.unary("Enroll", relay_pb2.EnrollResponse)

    def enrol() -> relay_pb2.EnrollResponse:
        signer = Signer.generate()
        env = sign_next(signer, enrollment_record(signer, "V1"), GENESIS, town.now_ms()).envelope
        return enroll(relay_pb2.EnrollRequest(enrollment=env), timeout=5)

    try:
        for _ in range(3):
            assert enrol().status == relay_pb2.KEY_STATUS_PENDING
        code, reason, meta = _refusal(enroll, (lambda s: relay_pb2.EnrollRequest(enrollment=sign_next(
            s, enrollment_record(s, "V1"), GENESIS, 0).envelope))(Signer.generate()))
        assert (code, reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "ENROLLMENT_LIMIT") and "retry_after_ms" in meta
        # Two more from elsewhere fill the total (stored as if another address sent them).
        for _ in range(2):
            s = Signer.generate()
            env = sign_next(s, enrollment_record(s, "V2"), GENESIS, 0).envelope
            town.app.store.enroll(s.public_key, env, EnrollmentInfo(village_code="V2"), now_ms=town.now_ms(),
                                  from_address="10.0.0.9", bounds=town.app.core.limits.enrollment)
        assert len(town.app.store.keys(KeyState.PENDING)) == 5
        town.clock.advance(dt.timedelta(days=2))
        assert enrol().status == relay_pb2.KEY_STATUS_PENDING     # the stale five expired first
        assert len(town.app.store.keys(KeyState.PENDING)) == 1
    finally:
        town.close()


def test_a_newline_in_an_enrollment_name_sent_over_the_wire_cannot_forge_a_log_line(town: Township) -> None:
    import io
    import logging

    from shared.observability.logs import configure_logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    out = io.StringIO()
    configure_logging(fmt="text", stream=out)
    try:
        signer = Signer.generate()
        record = enrollment_record(signer, "V7")
        record.key_enrollment_requested.holder_name = "李四\n2026-12-05 08:00:00,000 WARNING shared.relay.server: 密钥已全部吊销"
        env = sign_next(signer, record, GENESIS, town.now_ms()).envelope
        town.unary("Enroll", relay_pb2.EnrollResponse)(relay_pb2.EnrollRequest(enrollment=env), timeout=5)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    lines = [line for line in out.getvalue().splitlines() if "enrollment pending" in line or "密钥已全部吊销" in line]
    assert len(lines) == 1 and "李四\\n2026-12-05 08:00:00,000 WARNING" in lines[0]
