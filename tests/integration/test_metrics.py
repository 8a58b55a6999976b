"""`/metrics` of the township and the county, computed from their real tables (SQLite files, a
real county gRPC server, the shared relay client), read through Prometheus's own text parser."""
from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from hub.bootstrap import metric_sources as county_sources
from shared.clock import FakeClock
from shared.domain.catalog import MatterKind
from shared.observability.metrics import MetricSources, MetricsServer, metrics_registry
from tests.county_fixtures import County, LinkedTownship, advance
from tests.town_fixtures import OPERATOR, VillageDevice
from town_center.bootstrap import metric_sources as town_sources


def _serve(sources: MetricSources, address: str = "127.0.0.1:0") -> MetricsServer:
    try:
        return MetricsServer(metrics_registry(sources), address, on_stop=sources.close)
    except RuntimeError:
        sources.close()
        raise


def scrape(server: MetricsServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample by (name, sorted labels)."""
    text = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_the_township_reports_records_receipts_queue_depth_sync_lag_and_clock_states(
        town: LinkedTownship, hub: County, clock: FakeClock) -> None:
    server = _serve(town_sources(town.app))
    try:
        village = VillageDevice(town.app)
        matter_id = village.file("MZ-001")
        town.app.intake.run_once()
        town.app.handling.classify(matter_id, MatterKind.REPORTED, actor=OPERATOR)
        town.app.handling.escalate(matter_id, "需县级审批", actor=OPERATOR)
        advance(clock, minutes=30)

        before = scrape(server)
        # The 上报 is signed and queued for the county, not yet receipted: the queue shows it and its age.
        assert before[("quancheng_outbox_pending_records", (("destination", "county"),))] >= 1
        assert before[("quancheng_outbox_oldest_pending_age_seconds", (("destination", "county"),))] >= 30 * 60
        stored = before[("quancheng_relay_records_stored_total", ())]
        assert stored == before[("quancheng_relay_receipts_total", ())] >= 1
        labels = (("key_id", village.signer.key_id), ("place", village.village_code))
        assert before[("quancheng_peer_last_receipt_age_seconds", labels)] >= 30 * 60
        assert before[("quancheng_peer_keys", (("state", "approved"),))] >= 1
        assert before[("quancheng_process_info", (("key_id", town.app.signer.key_id), ("tier", "township")))] == 1

        # Pushed and receipted (the county hop's clock starts at its receipt); the county's clock record
        # comes down and the township's status lines go up in the next rounds.
        for _ in range(4):
            town.sync()
            hub.app.handling.run_once()
        after = scrape(server)
        assert after[("quancheng_outbox_pending_records", (("destination", "county"),))] == 0
        assert after[("quancheng_outbox_oldest_pending_age_seconds", (("destination", "county"),))] == 0
        # The county hop's clock as the township keeps it: open and on time right after the county's receipt.
        assert after[("quancheng_hop_clocks", (("hop", "county"), ("state", "on_time")))] == 1

        advance(clock, days=60)   # far past every limit: the county hop is now beyond 督办 at the township too
        late = scrape(server)
        assert late[("quancheng_hop_clocks", (("hop", "county"), ("state", "on_time")))] == 0
        assert late[("quancheng_hop_clocks", (("hop", "county"), ("state", "supervise")))] == 1
    finally:
        server.stop()


def test_the_county_counts_duplicates_refusals_and_each_townships_sync(
        town: LinkedTownship, hub: County, clock: FakeClock) -> None:
    from shared.wire.v1 import envelope_pb2

    server = _serve(county_sources(hub.app))
    try:
        first = scrape(server)
        stored = first[("quancheng_relay_records_stored_total", ())]
        assert stored >= 1    # the link key's enrollment and the township's first records
        # The same envelopes again (a replay): receipted again, nothing stored.
        link_key = town.app.county_link.signer.key_id
        held = hub.app.store.authored(link_key, 0, 100)
        again = [envelope_pb2.Envelope(payload=h.payload, signature=h.signature, key_id=link_key) for h in held]
        hub.app.core.push(again)
        # A forged one: right author, wrong signature.
        refused_before = sum(v for (name, _), v in first.items() if name == "quancheng_relay_refusals_total")
        forged = envelope_pb2.Envelope(payload=held[-1].payload, signature=bytes(64), key_id=link_key)
        hub.app.core.push([forged])
        second = scrape(server)
        assert second[("quancheng_relay_records_stored_total", ())] == stored
        assert second[("quancheng_relay_records_duplicate_total", ())] == len(again)
        refused = {labels: v for (name, labels), v in second.items() if name == "quancheng_relay_refusals_total"}
        assert sum(refused.values()) == refused_before + 1, refused
        township = (("key_id", town.app.county_link.signer.key_id), ("place", "T01"))
        assert ("quancheng_peer_sync_lag_seconds", township) in second
        assert second[("quancheng_hop_clocks", (("hop", "county"), ("state", "overdue")))] == 0
    finally:
        server.stop()


def test_a_metrics_port_already_taken_is_reported_in_chinese(tmp_path: Path, hub: County) -> None:
    first = _serve(county_sources(hub.app))
    try:
        import pytest

        with pytest.raises(RuntimeError, match="监控端口"):
            _serve(county_sources(hub.app), f"127.0.0.1:{first.port}")
    finally:
        first.stop()
