"""The webhook notifier against a real local HTTP server (http.server on 127.0.0.1, port 0)."""
from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from shared.calendar import WorkingCalendar
from shared.clock import FakeClock
from shared.deadline_watch.errors import DeliveryRejectedError, DeliveryRetryableError
from shared.deadline_watch.notify import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Audience,
    LogNotifier,
    Notification,
    NotificationKind,
    OutboxRelay,
    WebhookNotifier,
    result_ready_sms,
    verify_signature,
)
from shared.deadline_watch.store import DeadlineStore, make_engine
from shared.retry import RetryPolicy

SECRET = b"test-secret-not-for-production"
PHONE = "13812345678"


@dataclass
class Request:
    key: str
    timestamp: str
    signature: str
    body: bytes


@dataclass
class Receiver:
    """A gateway that dedups on the idempotency key: `acted` grows only for an unseen key."""

    script: list[str]  # per request: "slow" (sleep past the client's timeout, then act), "500", "429", "400", "ok"
    slow_after: float = 1.0
    requests: list[Request] = field(default_factory=list)
    acted: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    slow_done: threading.Event = field(default_factory=threading.Event)

    def act(self, key: str) -> None:
        with self.lock:
            if key not in self.acted:
                self.acted.append(key)

    def next_action(self) -> str:
        with self.lock:
            index = len(self.requests) - 1
        return self.script[index] if index < len(self.script) else "ok"


def _handler_for(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # keep test output clean
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            req = Request(
                self.headers[IDEMPOTENCY_HEADER], self.headers[TIMESTAMP_HEADER], self.headers[SIGNATURE_HEADER], body
            )
            with receiver.lock:
                receiver.requests.append(req)
            action = receiver.next_action()
            if not verify_signature(SECRET, req.timestamp, body, req.signature):
                self._answer(401)
                return
            if action == "slow":
                time.sleep(receiver.slow_after)
                receiver.act(req.key)  # the work happens even though the client gave up
                receiver.slow_done.set()
                self._answer(200)
            elif action in ("500", "429", "400"):
                self._answer(int(action), retry_after="0.05" if action == "429" else None)
            else:
                receiver.act(req.key)
                self._answer(200)

        def _answer(self, status: int, retry_after: str | None = None) -> None:
            try:
                self.send_response(status)
                if retry_after:
                    self.send_header("Retry-After", retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client timed out and left

    return Handler


@pytest.fixture
def serve() -> Iterator[Callable[[Receiver], str]]:
    servers: list[ThreadingHTTPServer] = []

    def start(receiver: Receiver) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(receiver))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/notify"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _notifier(url: str, **kw: object) -> WebhookNotifier:
    options: dict[str, object] = {
        "timeout_after": 0.3,
        "max_attempts": 5,
        "backoff": RetryPolicy(initial_s=0.05, cap_s=0.2, jitter=0),
    }
    options.update(kw)
    return WebhookNotifier(url, SECRET, **options)


def _staff_notice(key: str = "deadline:M-1:township:warning") -> Notification:
    return Notification(key, NotificationKind.DEADLINE_WARNING, Audience.STAFF, "op-07", "【临期预警】办件 M-1 将到期",
                        {"matter_id": "M-1"})


def test_a_timeout_then_a_500_then_success_delivers_exactly_once(serve: Callable[[Receiver], str]) -> None:
    receiver = Receiver(script=["slow", "500", "ok"], slow_after=1.0)
    with _notifier(serve(receiver)) as notifier:
        notifier.send(_staff_notice())
    assert receiver.slow_done.wait(timeout=5), "the slow request never finished"
    assert len(receiver.requests) == 3
    assert {r.key for r in receiver.requests} == {"deadline:M-1:township:warning"}
    assert len({r.body for r in receiver.requests}) == 1  # every retry carries the same bytes
    assert receiver.acted == ["deadline:M-1:township:warning"]  # acted once, though asked three times


def test_the_request_is_signed_over_timestamp_and_body_and_carries_the_notification(serve: Callable[[Receiver], str]) -> None:
    receiver = Receiver(script=["ok"])
    with _notifier(serve(receiver)) as notifier:
        notifier.send(result_ready_sms(matter_id="M-9", phone=PHONE, pickup_place_zh="乡镇便民服务中心2号窗口"))
    (req,) = receiver.requests
    assert verify_signature(SECRET, req.timestamp, req.body, req.signature)
    assert not verify_signature(b"other-secret", req.timestamp, req.body, req.signature)
    assert not verify_signature(SECRET, str(int(req.timestamp) + 1), req.body, req.signature)
    payload = json.loads(req.body)
    assert payload["recipient"] == PHONE and payload["kind"] == "result_ready"
    assert "已办结" in payload["text"] and req.key == "result-ready:M-9"


def test_a_client_error_is_not_retried(serve: Callable[[Receiver], str]) -> None:
    receiver = Receiver(script=["400"])
    with _notifier(serve(receiver)) as notifier, pytest.raises(DeliveryRejectedError, match="400"):
        notifier.send(_staff_notice())
    assert len(receiver.requests) == 1 and receiver.acted == []


def test_too_many_requests_is_retried_after_the_advertised_wait(serve: Callable[[Receiver], str]) -> None:
    receiver = Receiver(script=["429", "ok"])
    waits: list[float] = []
    with _notifier(serve(receiver), backoff=RetryPolicy(initial_s=0.01, cap_s=1.0, floor_s=0.01, jitter=0), sleep=waits.append) as notifier:
        notifier.send(_staff_notice())
    assert waits == [0.05] and len(receiver.acted) == 1


def test_a_refused_connection_is_retryable() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with _notifier(f"http://127.0.0.1:{port}/", max_attempts=2, sleep=lambda _s: None) as notifier:
        with pytest.raises(DeliveryRetryableError, match="连接失败"):
            notifier.send(_staff_notice())


def test_an_endpoint_down_for_a_while_gets_the_notification_later_from_the_outbox_exactly_once(
    serve: Callable[[Receiver], str], tmp_path: Path
) -> None:
    store = DeadlineStore(make_engine(f"sqlite:///{tmp_path / 'outbox.db'}"), WorkingCalendar())
    store.create_schema()
    clock = FakeClock(dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC))
    receiver = Receiver(script=["500", "500", "500"])
    with _notifier(serve(receiver), max_attempts=3, sleep=lambda _s: None, clock=clock) as notifier:
        relay = OutboxRelay(store, notifier, owner="relay-a", retry_backoff=RetryPolicy(initial_s=60, cap_s=60, jitter=0))
        assert store.enqueue_notification(_staff_notice(), now=clock.now())
        assert not store.enqueue_notification(_staff_notice(), now=clock.now())  # same key: queued once
        first = relay.drain(clock.now())
        assert (first.sent, first.retried) == (0, 1)
        assert relay.drain(clock.advance(dt.timedelta(seconds=30))).sent == 0  # not yet time to retry
        second = relay.drain(clock.advance(dt.timedelta(seconds=31)))
        assert second.sent == 1
        assert relay.drain(clock.advance(dt.timedelta(hours=1))).sent == 0
    assert len(receiver.requests) == 4
    assert receiver.acted == ["deadline:M-1:township:warning"]
    assert store.outbox_counts() == {"sent": 1}
    store.engine.dispose()


def test_the_log_notifier_never_writes_an_applicants_number_or_message(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    LogNotifier().send(result_ready_sms(matter_id="M-9", phone=PHONE, pickup_place_zh="2号窗口"))
    LogNotifier().send(_staff_notice())
    text = caplog.text
    assert PHONE not in text and "138****5678" in text
    assert "已办结" not in text
    assert "临期预警" in text  # staff notices are logged in full
