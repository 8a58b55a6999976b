"""A reconnect storm at small scale: more villages than the township admits Push streams, on a real
gRPC server on port 0 with the real township store. Every batch takes a while to verify and store (as
it does when sixty-four streams share two cores), so newcomers keep arriving while every slot is busy.

Before docs/performance.md "Reconnect storm", a newcomer at the cap evicted the oldest stream that had
not yet been *answered* — one whose first batch was being verified and stored — so every batch was
stored and then cancelled before its receipts left: the villages resent, got cancelled again, and no
outbox ever drained."""
from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path
from typing import Any

from shared.clock import FakeClock, to_unix_ms
from shared.relay.client import ClientLimits, RelayClient
from shared.relay.ports import EnrollmentInfo
from shared.relay.server import PushSession, RelayLimits
from shared.retry import RetryPolicy
from shared.signing import Signer
from shared.wire.v1 import envelope_pb2
from tests.relay_fakes import SqliteOutbox, enrollment_record, note_record
from town_center.bootstrap import build_app
from town_center.grpc_server import create_server

START = dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC)
VILLAGES = 10
RECORDS = 300


def test_more_villages_than_stream_slots_all_deliver_every_record_when_batches_are_slow(tmp_path: Path) -> None:
    clock = FakeClock(START)
    town_signer = Signer.generate()
    limits = RelayLimits(max_concurrent_streams=3, retry_after_ms=100)
    app = build_app(f"sqlite:///{tmp_path / 'town.db'}", town_signer, clock=clock, limits=limits)
    storing = app.core.push
    working = [0]
    most_working = [0]
    guard = threading.Lock()

    def slow_batch(envelopes: Any, session: PushSession | None = None) -> Any:
        # The township is saturated: each batch takes a fifth of a second, so a newcomer always
        # finds every admitted stream mid-batch.
        with guard:
            working[0] += 1
            most_working[0] = max(most_working[0], working[0])
        try:
            time.sleep(0.2)
            return storing(envelopes, session)
        finally:
            with guard:
                working[0] -= 1

    app.core.push = slow_batch
    server, port = create_server(app.core, "127.0.0.1:0")
    server.start()
    clients: list[tuple[RelayClient, SqliteOutbox, Signer]] = []
    try:
        for v in range(VILLAGES):
            agent = Signer.generate()
            app.store.register_approved(agent.public_key, EnrollmentInfo(village_code=f"V{v}"), by="测试", now_ms=0)
            outbox = SqliteOutbox(tmp_path / f"v{v}.sqlite", own_key_id=agent.key_id,
                                  township_public_key=town_signer.public_key, township_key_id=town_signer.key_id)
            for i in range(RECORDS):
                outbox.record(agent, enrollment_record(agent, f"V{v}") if i == 0 else note_record(i + 1), to_unix_ms(START))
            client = RelayClient(f"127.0.0.1:{port}", outbox, agent, clock,
                                 limits=ClientLimits(batch_size=100, window=1, push_deadline_s=10, idle_poll_s=3600),
                                 policy=RetryPolicy(initial_s=0.05, cap_s=0.4))
            clients.append((client, outbox, agent))
        for client, _, _ in clients:
            client.start()
        # A bound on the test, not a speed goal: the livelock never drained a single outbox.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and any(o.pending_count() for _, o, _ in clients):
            time.sleep(0.1)
        left = {a.key_id[:8]: o.pending_count() for _, o, a in clients if o.pending_count()}
        assert not left, f"records still waiting for a receipt: {left}"
        for _, outbox, agent in clients:
            held = app.store.ingested(agent.key_id)
            assert [r[0] for r in held] == list(range(1, RECORDS + 1))
            assert len(outbox.receipts()) == RECORDS
            for receipt in outbox.receipts():
                assert envelope_pb2.Receipt.FromString(receipt.payload).author_key_id == agent.key_id
        assert most_working[0] <= limits.max_concurrent_streams
        # A stream that was storing a batch was never cut off for a newcomer: nothing stored had to be
        # sent again only because its receipts were cancelled.
        assert app.core.stats.snapshot()["duplicates"] == 0
    finally:
        for client, outbox, _ in clients:
            client.stop(5)
            outbox.close()
        server.stop(0).wait()
        app.close()
