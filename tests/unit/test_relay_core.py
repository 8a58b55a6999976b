"""`RelayCore` without gRPC, over a real SQLite township store."""
from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest

from shared.clock import FakeClock, to_unix_ms
from shared.envelope import GENESIS, sign_next
from shared.relay.client import RelayClient
from shared.relay.errors import LimitExceeded, PeerUnavailable
from shared.relay.ports import EnrollmentInfo
from shared.relay.server import PushSession, RelayCore, RelayLimits
from shared.retry import Backoff, RetryPolicy
from shared.signing import Signer
from shared.wire.v1 import relay_pb2
from tests.relay_fakes import SqliteOutbox, free_port, note_record
from town_center.bootstrap import build_app

NOW = dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC)


@pytest.fixture
def core(tmp_path: Path):
    app = build_app(f"sqlite:///{tmp_path / 't.db'}", Signer.generate(), clock=FakeClock(NOW),
                    limits=RelayLimits(max_batch=50, claimed_time_tolerance_ms=60_000))
    yield app.core
    app.close()


def agent(core: RelayCore) -> Signer:
    s = Signer.generate()
    core.keys.register_approved(s.public_key, EnrollmentInfo(), by="t", now_ms=0)
    return s


def envs(signer: Signer, claimed_ms: list[int]):
    tip, out = GENESIS, []
    for ms in claimed_ms:
        signed = sign_next(signer, note_record(tip.seq + 1), tip, ms)
        out.append(signed.envelope)
        tip = signed.tip
    return out


def test_a_batch_above_the_limit_is_refused_before_any_work(core: RelayCore) -> None:
    with pytest.raises(LimitExceeded, match="50"):
        core.push(envs(agent(core), [0] * 51))


def test_claimed_times_ahead_of_now_or_before_the_previous_receipt_are_flagged(core: RelayCore) -> None:
    s = agent(core)
    now = to_unix_ms(NOW)
    batch = envs(s, [now - 5_000, now + 30_000, now + 3_600_000, now - 86_400_000])
    core.push(batch[:3], PushSession())
    core.clock.advance(dt.timedelta(minutes=1))
    core.push(batch[3:], PushSession())         # a new connection: judged against the last receipt
    flags = core.ingest.time_flags(s.key_id)
    assert [(f.seq, "快" in f.reason) for f in flags] == [(3, True), (4, False)]
    assert "早于" in flags[1].reason


def test_a_backlog_sent_in_several_batches_of_one_stream_is_not_flagged(core: RelayCore) -> None:
    s = agent(core)
    old = to_unix_ms(NOW) - 86_400_000
    batch = envs(s, [old + i for i in range(40)])
    session = PushSession()
    for i in range(0, 40, 10):
        core.push(batch[i:i + 10], session)
        core.clock.advance(dt.timedelta(seconds=1))
    assert core.ingest.time_flags(s.key_id) == []


def test_records_of_an_unknown_key_are_refused_as_unknown(core: RelayCore) -> None:
    response = core.push(envs(Signer.generate(), [0, 1]))
    assert [r.reason for r in response.refusals] == [relay_pb2.REFUSAL_REASON_UNKNOWN_KEY] * 2


class RecordingBackoff(Backoff):
    """Real policy, but remembers each ceiling and sleeps only briefly so the test stays fast."""

    def __init__(self) -> None:
        super().__init__(RetryPolicy(initial_s=0.5, cap_s=4.0))
        self.ceilings: list[float] = []

    def next_delay(self) -> float:
        super().next_delay()
        self.ceilings.append(self.policy.ceiling(self.failures))
        return 0.01


def test_the_sync_loop_backs_off_exponentially_while_the_township_is_unreachable(tmp_path: Path) -> None:
    signer, town = Signer.generate(), Signer.generate()
    outbox = SqliteOutbox(tmp_path / "v.sqlite", own_key_id=signer.key_id, township_public_key=town.public_key,
                          township_key_id=town.key_id)
    outbox.record(signer, note_record(1), 0)
    backoff = RecordingBackoff()
    client = RelayClient(f"127.0.0.1:{free_port()}", outbox, signer, FakeClock(NOW), backoff=backoff)
    with pytest.raises(PeerUnavailable, match="无法连接"):
        client.sync_once()
    client.start()
    try:
        waited = threading.Event()
        for _ in range(200):
            if len(backoff.ceilings) >= 6:
                break
            waited.wait(0.05)
    finally:
        client.stop()
    assert backoff.ceilings[:6] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert outbox.pending_count() == 1   # nothing is dropped while unreachable
    outbox.close()


def test_only_one_sync_pass_runs_per_destination(tmp_path: Path) -> None:
    signer, town = Signer.generate(), Signer.generate()
    outbox = SqliteOutbox(tmp_path / "v.sqlite", own_key_id=signer.key_id, township_public_key=town.public_key,
                          township_key_id=town.key_id)
    target = f"127.0.0.1:{free_port()}"
    a = RelayClient(target, outbox, signer, FakeClock(NOW))
    b = RelayClient(target, outbox, signer, FakeClock(NOW))
    from shared.relay import client as client_module

    lock = client_module._flight_lock(target, signer.key_id)
    with lock:   # as if `a` were mid-pass
        assert b.sync_once().skipped and a.sync_once().skipped
    outbox.close()


class _Call:
    """A stand-in for a gRPC server context: records that the admission cancelled it."""

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


def test_stream_admission_evicts_per_address_and_per_key_and_times_out_idle_streams() -> None:
    from shared.relay.server import StreamAdmission

    now = [0.0]
    admission = StreamAdmission(RelayLimits(max_concurrent_streams=4, max_unauthenticated_per_address=2, max_streams_per_key=1,
                                            first_message_after_ms=1_000, idle_after_ms=5_000), now=lambda: now[0])
    try:
        calls = [_Call() for _ in range(3)]
        streams = [admission.open(c, "10.0.0.1") for c in calls]
        assert calls[0].cancelled and not calls[1].cancelled and not calls[2].cancelled   # oldest of the address
        other = _Call()
        honest = admission.open(other, "10.0.0.2")
        assert honest is not None and not other.cancelled
        admission.authenticated(honest, "k1")
        again = _Call()
        newer = admission.open(again, "10.0.0.2")
        assert newer is not None
        admission.authenticated(newer, "k1")           # the same key reconnects: its stale stream goes
        assert other.cancelled and not again.cancelled
        # Full of authenticated streams: a new one evicts the oldest unauthenticated one, never an authenticated one.
        for s, k in ((streams[1], "k2"), (streams[2], "k3")):
            admission.authenticated(s, k)
        late = _Call()
        assert admission.open(late, "10.0.0.3") is not None and admission.counts()["streams"] == 4
        last = _Call()
        assert admission.open(last, "10.0.0.4") is not None and late.cancelled
        for s in (streams[1], streams[2], newer):
            admission.phase(s, "waiting")
        now[0] = 2.0
        assert admission.sweep() == 1 and last.cancelled      # no first message within 1 s
        admission.phase(newer, "working")
        now[0] = 8.0
        assert admission.sweep() == 2 and not again.cancelled  # idle 5 s after a message; a working stream is not
        full = StreamAdmission(RelayLimits(max_concurrent_streams=1), now=lambda: now[0])
        only = full.open(_Call(), "10.0.0.5")
        assert only is not None
        full.authenticated(only, "k9")
        assert full.open(_Call(), "10.0.0.6") is None and full.counts()["refused"] == 1
        full.close()
    finally:
        admission.close()


def test_a_resend_on_a_second_stream_racing_the_first_is_receipted_as_duplicates_not_refused_as_reused_ids(
        core: RelayCore) -> None:
    s = agent(core)
    batch = envs(s, [to_unix_ms(NOW)] * 5)
    stale = core.ingest.author(s.key_id)
    reads = {"n": 0}
    real_author = core.ingest.author

    def author_read_before_the_other_stream_stored(key_id: str):
        # The second stream read the tip just before the first stream committed the same records.
        reads["n"] += 1
        return stale if reads["n"] == 1 else real_author(key_id)

    core.push(batch, PushSession())                       # the first stream stores them
    core.ingest.author = author_read_before_the_other_stream_stored
    try:
        again = core.push(batch, PushSession())           # the reconnect's resend, classified on a stale tip
    finally:
        core.ingest.author = real_author
    from shared.wire.v1 import envelope_pb2
    receipted = [envelope_pb2.Receipt.FromString(r.payload).seq for r in again.receipts]
    assert receipted == [1, 2, 3, 4, 5] and not again.refusals


def test_a_stream_whose_first_batch_is_being_verified_is_not_evicted_for_its_address() -> None:
    from shared.relay.server import StreamAdmission

    admission = StreamAdmission(RelayLimits(max_concurrent_streams=10, max_unauthenticated_per_address=1), now=lambda: 0.0)
    try:
        working_call, newcomer = _Call(), _Call()
        working = admission.open(working_call, "10.0.0.9")
        admission.phase(working, "working")
        assert admission.open(newcomer, "10.0.0.9") is not None and not working_call.cancelled
        third = _Call()
        admission.open(third, "10.0.0.9")
        assert newcomer.cancelled and not working_call.cancelled   # the silent one makes room
    finally:
        admission.close()


def test_when_every_slot_is_taken_a_device_idle_after_its_batch_gives_way_but_one_mid_batch_does_not() -> None:
    from shared.relay.server import StreamAdmission

    now = [0.0]
    admission = StreamAdmission(RelayLimits(max_concurrent_streams=2), now=lambda: now[0])
    try:
        busy_call, idle_call = _Call(), _Call()
        busy, idle = admission.open(busy_call, "10.0.1.1"), admission.open(idle_call, "10.0.1.2")
        admission.authenticated(busy, "k1")
        admission.authenticated(idle, "k2")
        admission.phase(busy, "working")
        admission.phase(idle, "waiting")
        assert admission.open(_Call(), "10.0.1.3") is not None
        assert idle_call.cancelled and not busy_call.cancelled
    finally:
        admission.close()


def test_at_the_stream_cap_a_first_batch_being_stored_is_never_evicted_but_an_unproven_stream_being_answered_is() -> None:
    from shared.relay.server import StreamAdmission

    admission = StreamAdmission(RelayLimits(max_concurrent_streams=2), now=lambda: 0.0)
    try:
        storing_call, answering_call = _Call(), _Call()
        storing = admission.open(storing_call, "10.0.2.1")
        answering = admission.open(answering_call, "10.0.2.2")
        admission.phase(storing, "working")
        admission.phase(answering, "answering")                   # nothing on it verified
        newcomer = admission.open(_Call(), "10.0.2.3")
        assert newcomer is not None and answering_call.cancelled and not storing_call.cancelled
        admission.phase(newcomer, "working")
        # Both slots mid-batch (their records may already be stored): the next one is refused, not let in.
        assert admission.open(_Call(), "10.0.2.4") is None
        assert not storing_call.cancelled and admission.counts()["refused"] == 1
    finally:
        admission.close()
