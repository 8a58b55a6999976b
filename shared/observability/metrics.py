"""Prometheus metrics for a township or county process, read from its tables at scrape time.

The tables are the truth (two processes may share one database, and a restart loses nothing), so
gauges are computed when Prometheus asks rather than kept in memory; only the relay's counters
(records stored, receipts signed, refusals) are this process's own, since they count its work.
Each process has its own registry: no global state, and tests can build several in one process.

Labels carry key ids, place codes, hop names and states, never a person's name or number.
"""
from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import ThreadingWSGIServer, make_wsgi_app
from prometheus_client.registry import Collector
from sqlalchemy import Connection, Engine

from shared.clock import Clock, to_unix_ms
from shared.console.guard import FOREIGN_HOST_ZH, SECURITY_HEADERS, WebSecurity
from shared.deadline_watch.store import DeadlineStore
from shared.os_errors import os_error_zh
from shared.relay.server import RelayStats
from shared.relay.sql_store import PeerSync

__all__ = ["MetricSources", "OutboxDepth", "TierCollector", "metrics_registry", "MetricsServer", "serve_metrics"]

log = logging.getLogger(__name__)

# Every state a hop clock is reported in, so a state with no clocks shows 0 rather than vanishing.
CLOCK_STATES = ("on_time", "warning", "overdue", "supervise", "waiting", "suspended")


@dataclass(frozen=True)
class OutboxDepth:
    """A sender-side queue: how many signed records wait for a receipt, and since when."""

    pending: int
    oldest_pending_ms: int | None


@dataclass
class MetricSources:
    """What a tier's collector reads, all through one connection of `reader` per scrape. `peers`
    are the devices that send to this tier (villages' laptops at a township, townships' link keys
    at the county); `outboxes` the queues this tier sends from, by destination; `hops` the hop
    names to report even when no clock is open. `reader` should not hold up writers: on SQLite a
    read-only engine with deferred transactions (`shared.db.reader_engine`)."""

    tier: str
    key_id: str
    clock: Clock
    relay_stats: RelayStats
    reader: Engine
    peers: Callable[[Connection], list[PeerSync]]
    deadlines: DeadlineStore
    outboxes: Callable[[Connection], Mapping[str, OutboxDepth]] = field(default=lambda _conn: {})
    hops: tuple[str, ...] = ()

    def close(self) -> None:
        if self.reader is not self.deadlines.engine:
            self.reader.dispose()


class TierCollector(Collector):
    def __init__(self, sources: MetricSources) -> None:
        self.s = sources

    def collect(self) -> Iterable[Metric]:
        with self.s.reader.connect() as conn:
            # Gathered before yielding, so the read transaction is short and closed before the reply.
            yield from list(self._families(conn))

    def _families(self, conn: Connection) -> Iterable[Metric]:
        s = self.s
        now = s.clock.now()
        now_ms = to_unix_ms(now)

        info = GaugeMetricFamily("quancheng_process_info", "This process: its tier and signing key.",
                                 labels=["tier", "key_id"])
        info.add_metric([s.tier, s.key_id], 1)
        yield info

        stats = s.relay_stats.snapshot()
        for name, key, text in (
            ("quancheng_relay_batches", "batches", "Batches of records received from senders."),
            ("quancheng_relay_records_stored", "stored", "New records verified and committed."),
            ("quancheng_relay_records_duplicate", "duplicates", "Records received again (same bytes): receipted, nothing written."),
            ("quancheng_relay_receipts", "receipts", "Signed receipts sent after commit (rate() gives receipts per second)."),
        ):
            counter = CounterMetricFamily(name, text)
            counter.add_metric([], stats[key])
            yield counter
        refusals = CounterMetricFamily("quancheng_relay_refusals", "Records refused, by reason.", labels=["reason"])
        for reason, n in sorted(stats["refusals"].items()):
            refusals.add_metric([reason], n)
        yield refusals

        depth = GaugeMetricFamily("quancheng_outbox_pending_records",
                                  "Signed records waiting for the destination's receipt.", labels=["destination"])
        age = GaugeMetricFamily("quancheng_outbox_oldest_pending_age_seconds",
                                "Age of the oldest record still waiting for a receipt (0 when none).",
                                labels=["destination"])
        for destination, queue in sorted(s.outboxes(conn).items()):
            depth.add_metric([destination], queue.pending)
            oldest = queue.oldest_pending_ms
            age.add_metric([destination], max(0, now_ms - oldest) / 1000 if queue.pending and oldest else 0.0)
        yield depth
        yield age

        notices = GaugeMetricFamily("quancheng_notifications", "SMS and webhook notifications by status.",
                                    labels=["status"])
        counts = s.deadlines.outbox_counts(conn=conn)
        for status in sorted(set(counts) | {"pending", "sent", "rejected"}):
            notices.add_metric([status], counts.get(status, 0))
        yield notices

        peers = s.peers(conn)
        keys = GaugeMetricFamily("quancheng_peer_keys", "Sending devices' keys by state.", labels=["state"])
        by_state: dict[str, int] = {}
        for p in peers:
            by_state[p.state.value] = by_state.get(p.state.value, 0) + 1
        for state in sorted(by_state):
            keys.add_metric([state], by_state[state])
        yield keys
        since = GaugeMetricFamily("quancheng_peer_last_receipt_age_seconds",
                                  "Seconds since this tier last stored a record from the device.",
                                  labels=["key_id", "place"])
        lag = GaugeMetricFamily("quancheng_peer_sync_lag_seconds",
                                "For the device's latest record: receipt time minus the time the device claims "
                                "it signed it (how long records wait on the device; the claim is the device's clock).",
                                labels=["key_id", "place"])
        for p in peers:
            if p.last_receipt_ms is None:
                continue
            labels = [p.key_id, p.place_code]
            since.add_metric(labels, max(0, now_ms - p.last_receipt_ms) / 1000)
            if p.last_claimed_ms is not None:
                lag.add_metric(labels, max(0, p.last_receipt_ms - p.last_claimed_ms) / 1000)
        yield since
        yield lag

        clocks = GaugeMetricFamily("quancheng_hop_clocks",
                                   "Open hop clocks by hop and state (running ones: on_time/warning/overdue/"
                                   "supervise; paused ones: waiting/suspended).", labels=["hop", "state"])
        found = s.deadlines.clock_counts(now, conn=conn)
        for hop in sorted(set(s.hops) | {hop for hop, _ in found}):
            for state in CLOCK_STATES:
                clocks.add_metric([hop, state], found.get((hop, state), 0))
        yield clocks


def metrics_registry(sources: MetricSources) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TierCollector(sources))
    return registry


class _HostAllowList:
    """WSGI in front of the exposition app: the consoles' Host allow-list (`WebSecurity.host_allowed`,
    see `shared.console.guard`), so a page elsewhere that rebinds its name to this port reads nothing."""

    def __init__(self, app: Any, security: WebSecurity) -> None:
        self.app = app
        self.security = security

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not self.security.host_allowed(environ.get("HTTP_HOST")):
            body = FOREIGN_HOST_ZH.encode("utf-8")
            start_response("400 Bad Request", [("Content-Type", "text/plain; charset=utf-8"),
                                               ("Content-Length", str(len(body))), ("Cache-Control", "no-store"),
                                               *SECURITY_HEADERS])
            return [body]
        return self.app(environ, start_response)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged: one line every 15 s per Prometheus says nothing."""


def _listen(host: str, port: int, app: Any) -> WSGIServer:
    """`prometheus_client.start_http_server` without its app: the same threading WSGI server, with the
    Host check in front of the exposition app from the first request on."""
    family, *_rest, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]

    class Server(ThreadingWSGIServer):
        address_family = family

    return make_server(str(sockaddr[0]), port, app, Server, handler_class=_QuietHandler)


class MetricsServer:
    """`/metrics` on its own port (plain HTTP; bind it to loopback or a management network). A request
    naming a host other than the listen address's own names (and `extra_hosts`, the administrator's
    `--allowed-host` names) is refused with 400, as the consoles refuse it."""

    def __init__(self, registry: CollectorRegistry, address: str, *, on_stop: Callable[[], None] | None = None,
                 extra_hosts: Iterable[str] = ()) -> None:
        self._on_stop = on_stop
        host, _, port = address.rpartition(":")   # checked by `cli_common.metrics_address` on the way in
        security = WebSecurity.for_address(address, extra_hosts=extra_hosts)
        try:
            self._server = _listen(host.strip("[]"), int(port), _HostAllowList(make_wsgi_app(registry), security))
        except OSError as exc:
            raise RuntimeError(f"监控端口 {address} 无法监听：{os_error_zh(exc)}") from exc
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-web", daemon=True)
        self._thread.start()
        self.host = host
        self.port = int(self._server.server_address[1])

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        if self._on_stop is not None:
            self._on_stop()


def serve_metrics(sources: MetricSources, address: str | None, *,
                  extra_hosts: Iterable[str] = ()) -> MetricsServer | None:
    """Start `/metrics` when an address is given; a port that is taken is reported, not fatal.
    `extra_hosts`: further names Prometheus may scrape this port by (the serve command's `--allowed-host`)."""
    if not address or address == "off":
        return None
    try:
        server = MetricsServer(metrics_registry(sources), address, on_stop=sources.close, extra_hosts=extra_hosts)
    except RuntimeError as exc:
        sources.close()
        log.error("metrics not started: %s", exc)
        print(f"警告：{exc}；同步服务照常运行。", flush=True)
        return None
    print(f"监控指标已启动：http://{server.host}:{server.port}/metrics", flush=True)
    return server
