"""The relay servicer over real gRPC on loopback, server in this process: forgeries, replays,
revocation, bounds, gaps, rotation and the pull side. Every test that takes `harness` runs on both
hops: a village sending to the township, and a township's link key sending to the county."""
from __future__ import annotations

import datetime as dt
import logging
import os
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from hub.bootstrap import HubApp
from hub.bootstrap import build_app as build_hub
from shared.clock import FakeClock, to_unix_ms
from shared.envelope import GENESIS, ChainTip, open_receipt, sign_next
from shared.relay.client import ClientLimits, RelayClient, call_refusal, channel_options
from shared.relay.errors import PeerUnavailable
from shared.relay.ports import AgentKey, EnrollmentInfo, KeyState
from shared.relay.server import RelayLimits, pull_signing_bytes
from shared.signing import Signer, payload_hash
from shared.wire.v1 import envelope_pb2, records_pb2, relay_pb2
from tests.relay_fakes import SqliteOutbox, enrollment_record, note_record
from town_center.bootstrap import TownApp, build_app
from town_center.grpc_server import create_server

START = dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC)
PUSH = "/quancheng.v1.Relay/Push"


class Harness:
    def __init__(self, tmp: Path, limits: RelayLimits, receiver: str = "township") -> None:
        self.clock = FakeClock(START)
        self.town_signer = Signer.generate()   # the receiving tier's key (township or county)
        self.receiver = receiver
        # What enrols at this receiver: village agents' devices at a township, townships' link keys at the county.
        self.role = records_pb2.KEY_ROLE_TOWNSHIP if receiver == "county" else records_pb2.KEY_ROLE_VILLAGE_AGENT
        self.app: TownApp | HubApp
        if receiver == "county":
            self.app = build_hub(f"sqlite:///{tmp / 'county.db'}", self.town_signer, clock=self.clock, limits=limits)
        else:
            self.app = build_app(f"sqlite:///{tmp / 'town.db'}", self.town_signer, clock=self.clock, limits=limits)
        self.server, self.port = create_server(self.app.core, "127.0.0.1:0")
        self.server.start()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}", options=channel_options(ClientLimits()))
        self.tmp = tmp

    def agent(self, name: str = "V1", *, approve: bool = True) -> Signer:
        signer = Signer.generate()
        if approve:
            self.app.store.register_approved(signer.public_key, EnrollmentInfo(village_code=name), by="测试", now_ms=0)
        return signer

    def _now_ms(self) -> int:
        return to_unix_ms(self.clock.now())

    def approve(self, key_id: str, *, by: str) -> AgentKey:
        if isinstance(self.app, TownApp):
            return self.app.services.approve(key_id, by=by)
        return self.app.store.approve(key_id, by=by, now_ms=self._now_ms())

    def revoke(self, key_id: str, *, by: str, reason: str) -> AgentKey:
        if isinstance(self.app, TownApp):
            return self.app.services.revoke(key_id, by=by, reason=reason)
        return self.app.store.revoke(key_id, by=by, reason=reason, now_ms=self._now_ms())

    def publish(self, record: records_pb2.Record, audience: list[str]) -> int:
        if isinstance(self.app, TownApp):
            return self.app.services.publish(record, audience)
        return self.app.store.publish(self.town_signer, record, audience, now_ms=self._now_ms())

    def push(self, *batches: list[envelope_pb2.Envelope], timeout: float = 10) -> list[relay_pb2.PushResponse]:
        call = self.channel.stream_stream(PUSH, request_serializer=relay_pb2.PushRequest.SerializeToString,
                                          response_deserializer=relay_pb2.PushResponse.FromString)
        return list(call(iter([relay_pb2.PushRequest(envelopes=b) for b in batches]), timeout=timeout))

    def close(self) -> None:
        self.channel.close()
        self.server.stop(0).wait()
        self.app.close()


@pytest.fixture(params=["township", "county"], ids=["village-to-township", "township-to-county"])
def harness(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Harness]:
    h = Harness(tmp_path, RelayLimits(max_batch=500, max_message_bytes=1024 * 1024, max_concurrent_streams=8), request.param)
    yield h
    h.close()


def chain(signer: Signer, n: int, tip: ChainTip = GENESIS, claimed_ms: int = to_unix_ms(START), salt: str = "",
          role: int = records_pb2.KEY_ROLE_VILLAGE_AGENT) -> list[envelope_pb2.Envelope]:
    out = []
    for i in range(n):
        record = enrollment_record(signer, "V1", role) if tip.seq == 0 else note_record(tip.seq + 1, salt)
        signed = sign_next(signer, record, tip, claimed_ms + i)
        out.append(signed.envelope)
        tip = signed.tip
    return out


def tip_of(envs: list[envelope_pb2.Envelope]) -> ChainTip:
    return ChainTip(len(envs), payload_hash(envs[-1].payload))


def flip(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    i = rng.randrange(len(b))
    b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


def forgeries(honest: Signer, other: Signer, stranger: Signer, stored: list[envelope_pb2.Envelope], n: int) -> list[envelope_pb2.Envelope]:
    """`n` forged or mutated envelopes, none of which a correct township may store."""
    rng = random.Random(5)
    tip = tip_of(stored)
    out: list[envelope_pb2.Envelope] = []
    kinds = ["payload_flip", "signature_flip", "wrong_key", "moved_signature", "bad_prev_hash", "author_swap", "key_id_swap"]
    while len(out) < n:
        kind = kinds[len(out) % len(kinds)]
        fresh = sign_next(honest, note_record(10_000 + len(out)), tip, 1).envelope   # a valid next link
        if kind == "payload_flip":
            env = envelope_pb2.Envelope(payload=flip(fresh.payload, rng), signature=fresh.signature, key_id=fresh.key_id)
        elif kind == "signature_flip":
            env = envelope_pb2.Envelope(payload=fresh.payload, signature=flip(fresh.signature, rng), key_id=fresh.key_id)
        elif kind == "wrong_key":      # same content, signed by an enrolled but different key
            env = envelope_pb2.Envelope(payload=fresh.payload, signature=other.sign(fresh.payload), key_id=fresh.key_id)
        elif kind == "moved_signature":  # a genuine signature taken from another record
            donor = stored[rng.randrange(len(stored))]
            env = envelope_pb2.Envelope(payload=fresh.payload, signature=donor.signature, key_id=fresh.key_id)
        elif kind == "bad_prev_hash":   # validly signed by the honest key, but not chained to what it sent
            wrong = ChainTip(tip.seq, os.urandom(32))
            env = sign_next(honest, note_record(20_000 + len(out)), wrong, 1).envelope
        elif kind == "author_swap":     # a stranger's record relabelled under the honest key id
            s = sign_next(stranger, note_record(len(out)), tip, 1).envelope
            env = envelope_pb2.Envelope(payload=s.payload, signature=s.signature, key_id=honest.key_id)
        else:                           # the honest record presented as the other agent's
            env = envelope_pb2.Envelope(payload=fresh.payload, signature=fresh.signature, key_id=other.key_id)
        out.append(env)
    return out


def test_ten_thousand_forged_or_mutated_envelopes_are_all_refused_with_a_logged_reason(
        harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    honest, other, stranger = harness.agent("V1"), harness.agent("V2"), Signer.generate()
    stored = chain(honest, 50)
    assert len(harness.push(stored)[0].receipts) == 50
    forged = forgeries(honest, other, stranger, stored, 10_000)
    caplog.set_level(logging.WARNING, logger="shared.relay.server")
    responses = harness.push(*[forged[i:i + 500] for i in range(0, len(forged), 500)], timeout=60)
    assert sum(len(r.receipts) for r in responses) == 0
    refusals = [f for r in responses for f in r.refusals]
    assert len(refusals) == 10_000
    assert all(f.reason != relay_pb2.REFUSAL_REASON_UNSPECIFIED and f.message for f in refusals)
    logged = [r for r in caplog.records if r.getMessage().startswith("refused ")]
    assert len(logged) == 10_000
    assert harness.app.store.ingest_count() == 50
    assert harness.app.store.forks() == []
    assert harness.app.store.author(honest.key_id).state is KeyState.APPROVED


def test_replayed_old_envelopes_get_byte_identical_receipts_and_change_nothing(harness: Harness) -> None:
    agent = harness.agent()
    envs = chain(agent, 30)
    first = harness.push(envs)[0].receipts
    harness.clock.advance(dt.timedelta(days=3))
    again = harness.push(envs[:10], envs[10:])
    assert [e.SerializeToString() for r in again for e in r.receipts] == [e.SerializeToString() for e in first]
    assert harness.app.store.ingest_count() == 30
    assert all(open_receipt(e).receipt_time_ms == to_unix_ms(START) for e in first)


def test_different_bytes_for_a_stored_seq_are_refused_as_a_fork_kept_as_evidence_and_quarantine_the_sender(
        harness: Harness) -> None:
    agent = harness.agent()
    envs = chain(agent, 5)
    assert len(harness.push(envs)[0].receipts) == 5
    held = harness.app.store.ingested(agent.key_id)
    # A restored backup signs seq 3 again: validly signed, chained to the same seq 2, different content.
    fork = sign_next(agent, note_record(3, salt="restored"), ChainTip(2, payload_hash(envs[1].payload)), 7).envelope
    assert payload_hash(fork.payload) != payload_hash(envs[2].payload)
    response = harness.push([fork])[0]
    assert not response.receipts
    assert [(r.seq, r.reason) for r in response.refusals] == [(3, relay_pb2.REFUSAL_REASON_FORK)]
    assert harness.app.store.ingested(agent.key_id) == held            # the stored seq 3 is untouched
    [evidence] = harness.app.store.forks()
    assert (evidence.author_key_id, evidence.seq, evidence.held_hash, evidence.hash) == (
        agent.key_id, 3, payload_hash(envs[2].payload), payload_hash(fork.payload))
    assert harness.app.store.author(agent.key_id).state is KeyState.QUARANTINED
    # The honest next link from the quarantined key is refused too, and nothing more is stored.
    honest_next = sign_next(agent, note_record(6), tip_of(envs), 8).envelope
    after = harness.push([honest_next])[0]
    assert not after.receipts
    assert [(r.seq, r.reason) for r in after.refusals] == [(6, relay_pb2.REFUSAL_REASON_QUARANTINED)]
    assert harness.app.store.ingested(agent.key_id) == held and len(harness.app.store.forks()) == 1


def test_a_revoked_agents_new_records_are_refused_and_its_earlier_ones_stay_valid(harness: Harness) -> None:
    agent = harness.agent()
    envs = chain(agent, 8)
    assert len(harness.push(envs[:5])[0].receipts) == 5
    harness.clock.advance(dt.timedelta(minutes=5))
    revoked = harness.revoke(agent.key_id, by="张三", reason="笔记本丢失")
    assert revoked.last_valid_seq == 5
    response = harness.push(envs)[0]
    assert len(response.receipts) == 5   # the earlier records are still answered (duplicates)
    assert [(r.seq, r.reason) for r in response.refusals] == [(s, relay_pb2.REFUSAL_REASON_KEY_REVOKED) for s in (6, 7, 8)]
    assert harness.app.store.ingest_count() == 5


def test_a_gap_is_answered_with_a_request_for_the_missing_range(harness: Harness) -> None:
    agent = harness.agent()
    envs = chain(agent, 10)
    harness.push(envs[:3])
    response = harness.push(envs[6:])[0]
    assert (response.gap.author_key_id, response.gap.from_seq, response.gap.to_seq) == (agent.key_id, 4, 6)
    assert not response.receipts and {r.reason for r in response.refusals} == {relay_pb2.REFUSAL_REASON_GAP}
    assert len(harness.push(envs[3:])[0].receipts) == 7


def test_a_pending_key_is_refused_until_approved_and_enroll_reports_its_status(harness: Harness) -> None:
    agent = Signer.generate()
    envs = chain(agent, 3, role=harness.role)
    enroll = harness.channel.unary_unary("/quancheng.v1.Relay/Enroll", request_serializer=relay_pb2.EnrollRequest.SerializeToString,
                                         response_deserializer=relay_pb2.EnrollResponse.FromString)
    reply = enroll(relay_pb2.EnrollRequest(enrollment=envs[0]), timeout=5)
    assert reply.status == relay_pb2.KEY_STATUS_PENDING and "等待" in reply.message
    assert reply.receiver_public_key == harness.town_signer.public_key
    assert {r.reason for r in harness.push(envs)[0].refusals} == {relay_pb2.REFUSAL_REASON_KEY_PENDING}
    harness.approve(agent.key_id[:12], by="李四")
    assert len(harness.push(envs)[0].receipts) == 3
    reply = enroll(relay_pb2.EnrollRequest(enrollment=envs[0]), timeout=5)
    assert reply.status == relay_pb2.KEY_STATUS_APPROVED and reply.HasField("receipt")


def test_a_key_of_the_wrong_kind_cannot_ask_to_enrol(harness: Harness) -> None:
    wrong = records_pb2.KEY_ROLE_VILLAGE_AGENT if harness.role == records_pb2.KEY_ROLE_TOWNSHIP else records_pb2.KEY_ROLE_TOWNSHIP
    agent = Signer.generate()
    envs = chain(agent, 1, role=wrong)
    enroll = harness.channel.unary_unary("/quancheng.v1.Relay/Enroll", request_serializer=relay_pb2.EnrollRequest.SerializeToString,
                                         response_deserializer=relay_pb2.EnrollResponse.FromString)
    with pytest.raises(grpc.RpcError) as refused:
        enroll(relay_pb2.EnrollRequest(enrollment=envs[0]), timeout=5)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "只受理" in refused.value.details()
    assert harness.app.store.author(agent.key_id) is None      # nothing waits for approval


def test_a_rotation_signed_by_the_old_key_approves_the_new_key_and_closes_the_old_chain(harness: Harness) -> None:
    old, new = harness.agent(), Signer.generate()
    envs = chain(old, 4)
    rotation = records_pb2.Record()
    rotation.key_rotated.new_key_id, rotation.key_rotated.new_public_key = new.key_id, new.public_key
    rot = sign_next(old, rotation, tip_of(envs), 1)
    after = sign_next(old, note_record(6), rot.tip, 2).envelope
    response = harness.push([*envs, rot.envelope, after])[0]
    assert len(response.receipts) == 5 and [r.seq for r in response.refusals] == [6]
    assert harness.app.store.author(old.key_id).state is KeyState.REVOKED
    assert len(harness.push(chain(new, 3))[0].receipts) == 3


def test_oversized_or_malformed_requests_get_a_clear_status_and_the_server_keeps_serving(harness: Harness) -> None:
    agent = harness.agent()
    raw = harness.channel.stream_stream(PUSH)   # bytes in, bytes out
    with pytest.raises(grpc.RpcError) as garbage:
        list(raw(iter([b"\xff\xff\xff\xff not a protobuf"]), timeout=5))
    assert garbage.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "无法解码" in garbage.value.details()
    big = envelope_pb2.Envelope(payload=b"x" * (2 * 1024 * 1024), signature=bytes(64), key_id=agent.key_id)
    with pytest.raises(grpc.RpcError) as oversized:
        harness.push([big])
    assert oversized.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    envs = chain(agent, 501)
    with pytest.raises(grpc.RpcError) as too_many:
        harness.push(envs)
    assert too_many.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED and "500" in too_many.value.details()
    assert len(harness.push(envs[:500])[0].receipts) == 500


def test_stalled_streams_do_not_block_other_villages(harness: Harness) -> None:
    agent = harness.agent()
    never = threading.Event()
    call = harness.channel.stream_stream(PUSH, request_serializer=relay_pb2.PushRequest.SerializeToString,
                                         response_deserializer=relay_pb2.PushResponse.FromString)

    def silent() -> Iterator[relay_pb2.PushRequest]:
        never.wait(20)
        return
        yield  # pragma: no cover

    stalled = [call(silent(), timeout=20) for _ in range(4)]   # half of the admitted streams, sending nothing
    try:
        assert len(harness.push(chain(agent, 20), timeout=5)[0].receipts) == 20
    finally:
        never.set()
        for s in stalled:
            s.cancel()


def test_the_sync_loop_drains_the_outbox_and_applies_only_verified_township_records(harness: Harness, tmp_path: Path) -> None:
    agent = harness.agent()
    outbox = SqliteOutbox(tmp_path / "v.sqlite", own_key_id=agent.key_id, township_public_key=harness.town_signer.public_key,
                          township_key_id=harness.town_signer.key_id)
    for i in range(250):
        outbox.record(agent, enrollment_record(agent, "V1", harness.role) if i == 0 else note_record(i + 1), to_unix_ms(START))
    status = records_pb2.Record()
    status.status_update.matter_id, status.status_update.message = "m-1", "已受理"
    harness.publish(status, [agent.key_id])
    client = RelayClient(f"127.0.0.1:{harness.port}", outbox, agent, harness.clock, limits=ClientLimits(batch_size=40, window=3))
    result = client.sync_once()
    assert result.drained and result.confirmed == 250 and result.pulled == 1
    assert outbox.pending_count() == 0 and len(outbox.receipts()) == 250
    assert outbox.down_records()[0].status_update.message == "已受理"
    # A down record not signed by the township is refused whole, and the cursor does not move.
    forged = sign_next(agent, status, GENESIS, 0).envelope
    with pytest.raises(Exception, match="签名无效"):
        outbox.apply_down([forged], 99)
    assert outbox.pull_cursor() == 1
    outbox.close()


def _queued_outbox(h: Harness, agent: Signer, path: Path, n: int) -> SqliteOutbox:
    """A village outbox holding an enrollment and then `n - 1` notes, all queued."""
    outbox = SqliteOutbox(path, own_key_id=agent.key_id, township_public_key=h.town_signer.public_key,
                          township_key_id=h.town_signer.key_id)
    for i in range(n):
        outbox.record(agent, enrollment_record(agent, "V1", h.role) if i == 0 else note_record(i + 1), to_unix_ms(START))
    return outbox


def test_a_client_whose_batches_exceed_the_township_bound_halves_them_and_still_delivers(tmp_path: Path) -> None:
    h = Harness(tmp_path, RelayLimits(max_batch=50))
    try:
        agent = h.agent()
        outbox = _queued_outbox(h, agent, tmp_path / "v.sqlite", 120)
        client = RelayClient(f"127.0.0.1:{h.port}", outbox, agent, h.clock, limits=ClientLimits(batch_size=200, window=1))
        for _ in range(4):   # 200 -> 100 -> 50: refused twice, then accepted
            try:
                result = client.sync_once()
                break
            except PeerUnavailable as exc:
                assert "减小每批条数" in str(exc)
        assert result.drained and client.limits.batch_size == 50 and outbox.pending_count() == 0
        outbox.close()
    finally:
        h.close()


def test_a_client_whose_batches_exceed_the_township_message_size_halves_them_and_still_delivers(tmp_path: Path) -> None:
    h = Harness(tmp_path, RelayLimits(max_batch=500, max_message_bytes=24 * 1024))
    try:
        agent = h.agent()
        outbox = SqliteOutbox(tmp_path / "v.sqlite", own_key_id=agent.key_id, township_public_key=h.town_signer.public_key,
                              township_key_id=h.town_signer.key_id)
        for i in range(120):   # ~250 bytes each: 120 in one message is over 24 KiB, 30 is under
            outbox.record(agent, enrollment_record(agent, "V1", h.role) if i == 0 else note_record(i + 1), to_unix_ms(START))
        client = RelayClient(f"127.0.0.1:{h.port}", outbox, agent, h.clock, limits=ClientLimits(batch_size=200, window=1))
        refusals = []
        for _ in range(8):
            try:
                result = client.sync_once()
                break
            except PeerUnavailable as exc:
                refusals.append(str(exc))
        assert refusals and all("减小每批条数" in r for r in refusals)
        assert result.drained and client.limits.batch_size < 200 and outbox.pending_count() == 0
        outbox.close()
    finally:
        h.close()


def test_a_township_refusing_streams_over_its_concurrency_bound_does_not_shrink_the_clients_batch(tmp_path: Path) -> None:
    # Two authenticated streams, each mid-way through its second batch (a device at work is never
    # evicted), fill a bound of two: a third device is refused with the typed load reason, not a size one.
    h = Harness(tmp_path, RelayLimits(max_batch=500, max_concurrent_streams=2))
    release = threading.Event()
    call = h.channel.stream_stream(PUSH, request_serializer=relay_pb2.PushRequest.SerializeToString,
                                   response_deserializer=relay_pb2.PushResponse.FromString)
    storing = h.app.core.push

    def slow_second_batch(envelopes: Any, session: Any) -> Any:
        if session.verified_keys:     # a held device's second batch: the township is still storing it
            release.wait(20)
        return storing(envelopes, session)

    h.app.core.push = slow_second_batch

    def hold(signer: Signer) -> Iterator[relay_pb2.PushRequest]:
        first = sign_next(signer, note_record(1), GENESIS, to_unix_ms(START))
        yield relay_pb2.PushRequest(envelopes=[first.envelope])
        yield relay_pb2.PushRequest(envelopes=[sign_next(signer, note_record(2), first.tip, to_unix_ms(START)).envelope])

    held = [call(hold(h.agent(f"V{i}")), timeout=20) for i in range(2)]
    try:
        for stream in held:
            assert len(next(stream).receipts) == 1
        agent = h.agent()
        outbox = _queued_outbox(h, agent, tmp_path / "v.sqlite", 120)
        client = RelayClient(f"127.0.0.1:{h.port}", outbox, agent, h.clock, limits=ClientLimits(batch_size=200, window=1))
        for _ in range(3):
            with pytest.raises(PeerUnavailable, match="连接已满") as busy:
                client.sync_once()
            assert isinstance(busy.value.__cause__, grpc.RpcError)
            assert busy.value.__cause__.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert call_refusal(busy.value.__cause__) == ("TOO_MANY_STREAMS", {"retry_after_ms": "2000", "scope": "server"})
            assert busy.value.retry_after_s == 2.0     # the run loop waits at least this long
            assert client.limits.batch_size == 200
        assert outbox.pending_count() == 120
        release.set()
        for stream in held:
            list(stream)
        result = None
        for _ in range(50):   # the server frees the slots as the held streams finish
            try:
                result = client.sync_once()
                break
            except PeerUnavailable as exc:
                assert "连接已满" in str(exc)
                release.wait(0.05)
        assert result is not None and result.drained and result.confirmed == 120
        assert client.limits.batch_size == 200 and outbox.pending_count() == 0
        outbox.close()
    finally:
        release.set()
        for stream in held:
            stream.cancel()
        h.close()


def test_a_pull_request_with_a_bad_signature_is_refused(harness: Harness) -> None:
    agent = harness.agent()
    pull = harness.channel.unary_unary("/quancheng.v1.Relay/Pull", request_serializer=relay_pb2.PullRequest.SerializeToString,
                                       response_deserializer=relay_pb2.PullResponse.FromString)
    nonce = os.urandom(16)
    other = Signer.generate()
    at_ms = harness._now_ms()
    request = relay_pb2.PullRequest(key_id=agent.key_id, after_cursor=0, max_records=10, nonce=nonce, requested_at_ms=at_ms,
                                    signature=other.sign(pull_signing_bytes(agent.key_id, 0, 10, nonce, at_ms)))
    with pytest.raises(grpc.RpcError) as refused:
        pull(request, timeout=5)
    assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert call_refusal(refused.value) == ("BAD_SIGNATURE", {})
