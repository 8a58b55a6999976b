"""What `/metrics` reads from a township's tables, on SQLite and a real PostgreSQL 15: open clocks by
state as time passes, each village's last arrival and sync lag, and the whole scrape as Prometheus
parses it."""
from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from shared.clock import FakeClock, to_unix_ms
from shared.domain.catalog import MatterKind
from shared.domain.deadlines import SuspensionReason
from shared.observability.metrics import metrics_registry
from shared.relay.ports import KeyState
from tests.town_fixtures import OPERATOR, VillageDevice, township
from town_center.bootstrap import TownApp, metric_sources
from town_center.handling import TOWNSHIP_HOP


@pytest.fixture(params=["sqlite", "postgres"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TownApp]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'town.db'}"
    else:
        url = str(request.getfixturevalue("postgres_cluster").create_database(f"metrics_{uuid.uuid4().hex[:10]}"))
    town = township(url)
    yield town
    town.close()


def _clock(app: TownApp) -> FakeClock:
    assert isinstance(app.clock, FakeClock)
    return app.clock


def _samples(app: TownApp) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    sources = metric_sources(app)
    try:
        text = generate_latest(metrics_registry(sources)).decode()
    finally:
        sources.close()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _clocks(app: TownApp, state: str) -> float:
    return _samples(app)[("quancheng_hop_clocks", (("hop", TOWNSHIP_HOP), ("state", state)))]


def test_open_clocks_move_from_on_time_to_warning_to_overdue_to_supervise_as_working_days_pass(app: TownApp) -> None:
    village = VillageDevice(app)
    promised = village.file("MZ-003")
    app.handling.classify(promised, MatterKind.PROMISED, actor=OPERATOR)
    waiting = village.file("YB-001")
    app.handling.classify(waiting, MatterKind.SUPPLEMENT, actor=OPERATOR, missing_materials=["户口簿"])
    assert _clocks(app, "on_time") == 1 and _clocks(app, "waiting") == 1
    row = app.deadlines.load(promised, TOWNSHIP_HOP)
    assert row is not None and row.warn_at and row.due_at and row.escalate_at
    seen = []
    for at in (row.warn_at, row.due_at + dt.timedelta(milliseconds=1), row.escalate_at):
        _clock(app).set(at)
        seen.append({state: _clocks(app, state) for state in ("on_time", "warning", "overdue", "supervise")})
    assert seen == [{"on_time": 0, "warning": 1, "overdue": 0, "supervise": 0},
                    {"on_time": 0, "warning": 0, "overdue": 1, "supervise": 0},
                    {"on_time": 0, "warning": 0, "overdue": 0, "supervise": 1}]
    assert _clocks(app, "waiting") == 1        # a 补办件 waiting for materials is not counting
    app.handling.record_result(promised, actor=OPERATOR, approved=True, summary="已办结")
    assert _clocks(app, "supervise") == 0      # a stopped clock is no longer open


def test_each_villages_last_arrival_and_sync_lag_come_from_its_chain_tip(app: TownApp) -> None:
    east = VillageDevice(app, village_code="V001", clock_off_by=dt.timedelta(minutes=-30))   # recorded offline
    west = VillageDevice(app, village_code="V002")
    east.file("MZ-001")
    _clock(app).advance(dt.timedelta(hours=2))
    west.file("MZ-001")
    by_key = {p.key_id: p for p in app.store.peer_sync()}
    assert by_key[east.signer.key_id].state is KeyState.APPROVED and by_key[east.signer.key_id].place_code == "V001"
    assert by_key[east.signer.key_id].last_receipt_ms == to_unix_ms(app.clock.now()) - 2 * 3_600_000
    samples = _samples(app)
    east_labels = (("key_id", east.signer.key_id), ("place", "V001"))
    west_labels = (("key_id", west.signer.key_id), ("place", "V002"))
    assert samples[("quancheng_peer_last_receipt_age_seconds", east_labels)] == 7200
    assert samples[("quancheng_peer_last_receipt_age_seconds", west_labels)] == 0
    assert samples[("quancheng_peer_sync_lag_seconds", east_labels)] == 1800
    assert samples[("quancheng_peer_sync_lag_seconds", west_labels)] == 0
    assert samples[("quancheng_relay_records_stored_total", ())] == 2


def test_a_scrape_reads_while_a_writer_holds_the_sqlite_write_lock(tmp_path: Path) -> None:
    # Under WAL a deferred read runs beside the writer: a scrape never queues behind village pushes.
    town = township(f"sqlite:///{tmp_path / 'town.db'}")
    try:
        VillageDevice(town).file("MZ-001")
        with town.store.engine.begin() as writer:       # BEGIN IMMEDIATE: the write lock, held
            town.store.set_meta_in(writer, "held", "yes")
            assert _samples(town)[("quancheng_peer_keys", (("state", "approved"),))] == 1
    finally:
        town.close()


def test_kept_clock_counts_equal_a_scan_of_every_clock_as_clocks_start_stop_suspend_and_time_passes(app: TownApp) -> None:
    village = VillageDevice(app)
    deadlines = app.deadlines

    def agree() -> dict[tuple[str, str], int]:
        now = app.clock.now()
        kept, scanned = deadlines.clock_counts(now), deadlines.clock_counts_scanned(now)
        assert kept == scanned
        return kept

    promised = [village.file("MZ-003") for _ in range(3)]        # acceptance clocks start at filing
    agree()
    for matter_id in promised:
        app.handling.classify(matter_id, MatterKind.PROMISED, actor=OPERATOR)   # the township hop starts
    waiting = village.file("YB-001")
    app.handling.classify(waiting, MatterKind.SUPPLEMENT, actor=OPERATOR, missing_materials=["户口簿"])
    assert agree()[(TOWNSHIP_HOP, "on_time")] == 3
    app.handling.suspend(promised[0], SuspensionReason.EXPERT_REVIEW, "专家评审", actor=OPERATOR)
    assert agree()[(TOWNSHIP_HOP, "suspended")] == 1
    row = deadlines.load(promised[1], TOWNSHIP_HOP)
    assert row is not None and row.warn_at and row.due_at and row.escalate_at
    _clock(app).set(row.warn_at)                                   # time alone moves two clocks to warning
    assert agree()[(TOWNSHIP_HOP, "warning")] == 2
    app.handling.resume(promised[0], actor=OPERATOR)
    agree()
    _clock(app).set(row.due_at + dt.timedelta(milliseconds=1))
    agree()
    assert deadlines.advance_phases(app.clock.now()) >= 2          # what the deadline watch does each scan
    assert deadlines.fold_counts() > 0
    assert agree()[(TOWNSHIP_HOP, "overdue")] >= 2
    app.handling.record_result(promised[1], actor=OPERATOR, approved=True, summary="已办结")   # a clock stops
    _clock(app).set(row.escalate_at)
    counts = agree()
    assert counts[(TOWNSHIP_HOP, "supervise")] >= 1
    deadlines.fold_counts()
    assert agree() == counts
    assert _clocks(app, "supervise") == counts[(TOWNSHIP_HOP, "supervise")]
