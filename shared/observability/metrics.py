"""Prometheus metrics for a township or county process, read from its tables at scrape time.

The tables are the truth (two processes may share one database, and a restart loses nothing), so
gauges are computed when Prometheus asks rather than kept in memory; only the relay's counters
(records stored, receipts signed, refusals) are this process's own, since they count its work.
Each process has its own registry: no global state, and tests can build several in one process.

Labels carry key ids, place codes, hop names and states, never a person's name or number.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector
from sqlalchemy import Connection, Engine

from shared.clock import Clock, to_unix_ms
from shared.deadline_watch.store import DeadlineStore
from shared.relay.server import RelayStats
from shared.relay.sql_store import PeerSync
from shared.os_errors import os_error_zh

__all__ = ["MetricSources", "OutboxDepth", "TierCollector", "metrics_registry", "MetricsServer", "serve_metrics"]

log = logging.getLogger("shared.observability")

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
    read-only engine with deferred transactions (`shared.sqlite.reader_engine`)."""

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


class MetricsServer:
    """`/metrics` on its own port (plain HTTP; bind it to loopback or a management network)."""

    def __init__(self, registry: CollectorRegistry, address: str, *, on_stop: Callable[[], None] | None = None) -> None:
        self._on_stop = on_stop
        host, _, port = address.rpartition(":")   # checked by `cli_common.metrics_address` on the way in
        try:
            self._server, self._thread = start_http_server(int(port), addr=host.strip("[]"), registry=registry)
        except OSError as exc:
            raise RuntimeError(f"监控端口 {address} 无法监听：{os_error_zh(exc)}") from exc
        self.host = host
        self.port = int(self._server.server_address[1])

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        if self._on_stop is not None:
            self._on_stop()


def serve_metrics(sources: MetricSources, address: str | None) -> MetricsServer | None:
    """Start `/metrics` when an address is given; a port that is taken is reported, not fatal."""
    if not address or address == "off":
        return None
    try:
        server = MetricsServer(metrics_registry(sources), address, on_stop=sources.close)
    except RuntimeError as exc:
        sources.close()
        log.error("metrics not started: %s", exc)
        print(f"警告：{exc}；同步服务照常运行。", flush=True)
        return None
    print(f"监控指标已启动：http://{server.host}:{server.port}/metrics", flush=True)
    return server


