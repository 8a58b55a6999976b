"""The sending side when the receiver ends a Push stream after answering part of it (an idle device
gives way when every slot is taken, docs/wire-v1.md §8): what was receipted stays confirmed and the
rest goes on a new stream in the same pass, without a failure or a back-off."""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from shared.clock import FakeClock, to_unix_ms
from shared.envelope import open_record, sign_receipt
from shared.relay.client import ClientLimits, RelayClient, SyncResult
from shared.relay.errors import PeerUnavailable
from shared.signing import Signer, payload_hash
from shared.wire.v1 import envelope_pb2, relay_pb2
from tests.relay_fakes import SqliteOutbox, note_record

START = dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC)


class _Ended(grpc.RpcError):
    """What gRPC raises on the sending side when the receiver cancels the stream."""

    def __init__(self, code: grpc.StatusCode) -> None:
        super().__init__()
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return "Cancelled"


class _Receiver:
    """A receiver that answers the first batch of each stream and then, on the first `cut` streams,
    cancels the stream instead of answering the rest (as `StreamAdmission` does to an idle device)."""

    def __init__(self, town: Signer, *, cut: int, code: grpc.StatusCode = grpc.StatusCode.CANCELLED) -> None:
        self.town, self.cut, self.code = town, cut, code
        self.streams = 0

    def stream_stream(self, *_a: Any, **_k: Any) -> Any:
        return self.call

    def call(self, requests: Iterator[relay_pb2.PushRequest], timeout: float) -> Iterator[relay_pb2.PushResponse]:
        self.streams += 1
        ends_early = self.streams <= self.cut
        for n, request in enumerate(requests):
            if ends_early and n == 1:
                raise _Ended(self.code)
            response = relay_pb2.PushResponse()
            for env in request.envelopes:
                header = open_record(env).header
                response.receipts.append(sign_receipt(self.town, envelope_pb2.Receipt(
                    author_key_id=env.key_id, seq=header.seq, record_hash=payload_hash(env.payload),
                    receipt_time_ms=to_unix_ms(START), contiguous_through_seq=header.seq)))
            yield response


def _client(tmp_path: Path, town: Signer, n: int) -> tuple[RelayClient, SqliteOutbox]:
    agent = Signer.generate()
    outbox = SqliteOutbox(tmp_path / "v.sqlite", own_key_id=agent.key_id, township_public_key=town.public_key,
                          township_key_id=town.key_id)
    for i in range(n):
        outbox.record(agent, note_record(i + 1), to_unix_ms(START))
    client = RelayClient("127.0.0.1:1", outbox, agent, FakeClock(START), limits=ClientLimits(batch_size=10, window=3))
    return client, outbox


def test_a_stream_cancelled_after_some_receipts_keeps_them_and_sends_the_rest_on_a_new_stream(tmp_path: Path) -> None:
    town = Signer.generate()
    client, outbox = _client(tmp_path, town, 60)
    receiver = _Receiver(town, cut=2)
    sync = SyncResult()
    client._push_all(receiver, sync)
    assert sync.drained and sync.confirmed == 60 and outbox.pending_count() == 0
    # Two streams cut after their first batch (10 each), then the rest on streams answered whole.
    assert receiver.streams == 2 + 2
    assert [open_record_seq(r) for r in outbox.receipts()] == list(range(1, 61))
    outbox.close()


def test_a_stream_cancelled_before_any_receipt_is_still_a_failure_the_run_loop_backs_off_from(tmp_path: Path) -> None:
    town = Signer.generate()
    client, outbox = _client(tmp_path, town, 5)

    class _Silent(_Receiver):
        def call(self, requests: Iterator[relay_pb2.PushRequest], timeout: float) -> Iterator[relay_pb2.PushResponse]:
            self.streams += 1
            raise _Ended(grpc.StatusCode.CANCELLED)
            yield  # pragma: no cover

    with pytest.raises(grpc.RpcError):
        client._push_all(_Silent(town, cut=0), SyncResult())
    assert outbox.pending_count() == 5
    client._drop_channel()
    with pytest.raises(PeerUnavailable, match="连接被中断"):
        client._raise_for(_Ended(grpc.StatusCode.CANCELLED), pushing=True)
    outbox.close()


def open_record_seq(receipt: envelope_pb2.Envelope) -> int:
    return int(envelope_pb2.Receipt.FromString(receipt.payload).seq)
