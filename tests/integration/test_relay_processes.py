"""The relay with real processes: `town-center serve` and test villages, real gRPC on loopback,
real SQLite files, SIGKILL and a chaotic proxy. Every test is bounded and stops itself."""
from __future__ import annotations

import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shared.relay.ports import KeyState
from tests.relay_fakes import (
    REPO,
    ChaosProxy,
    TownProcess,
    VillageProcess,
    approve_villages,
    assert_exactly_once,
    free_port,
    init_town,
)
from town_center.store import open_town_store


@pytest.fixture
def town(tmp_path: Path):
    home = tmp_path / "town"
    signer = init_town(home)
    db_url = f"sqlite:///{home / 'town.db'}"
    procs: list[TownProcess] = []
    villages: list[VillageProcess] = []

    class Town:
        def __init__(self) -> None:
            self.home, self.signer, self.db_url, self.port = home, signer, db_url, free_port()

        def process(self) -> TownProcess:
            p = TownProcess(home, self.port)
            procs.append(p)
            return p

        def village(self, name: str, *, port: int | None = None, **options: object) -> VillageProcess:
            v = VillageProcess(tmp_path, name, signer.public_key, port or self.port, **options)
            villages.append(v)
            return v

    yield Town()
    for v in villages:
        v.kill()
    for p in procs:
        p.kill()
        p.log.close()


def test_three_villages_recording_while_the_township_is_down_deliver_every_record_exactly_once(town) -> None:
    villages = [town.village(f"V{i}", records=300, timeout_s=60) for i in range(3)]
    approve_villages(town.db_url, villages)
    for v in villages:
        v.start()
    time.sleep(2.0)  # they record and fail to reach the township, backing off
    server = town.process().start()
    server.wait_serving()
    states = [v.wait(70) for v in villages]
    assert all(s["returncode"] == 0 for s in states), states
    assert assert_exactly_once(town.db_url, villages) == 900


def test_township_sigkilled_fifty_times_mid_stream_loses_and_duplicates_nothing(town, tmp_path: Path) -> None:
    stop_file = tmp_path / "stop-recording"
    villages = [town.village(f"K{i}", records=0, until_file=stop_file, record_every_ms=20, per_tick=3,
                             batch_size=25, window=2, deadline_s=3, timeout_s=240) for i in range(3)]
    approve_villages(town.db_url, villages)
    for v in villages:
        v.start()
    store = open_town_store(town.db_url)
    rng = random.Random(11)
    kills = 0
    try:
        while kills < 52:
            server = town.process().start()
            server.wait_serving()
            before = store.ingest_count()
            end = time.monotonic() + 5
            while store.ingest_count() == before and time.monotonic() < end:
                time.sleep(0.01)   # wait until batches are flowing, then kill in the middle of them
            time.sleep(rng.uniform(0, 0.05))
            server.kill()
            server.log.close()
            kills += 1
        stop_file.write_text("stop")
        server = town.process().start()
        server.wait_serving()
        states = [v.wait(120) for v in villages]
    finally:
        store.close()
    assert kills >= 50
    assert all(s["returncode"] == 0 for s in states), states
    total = assert_exactly_once(town.db_url, villages)
    assert total > 0


def test_a_laptop_restored_from_an_old_backup_reusing_seqs_is_detected_as_a_fork(town, tmp_path: Path) -> None:
    server = town.process().start()
    server.wait_serving()
    v = town.village("F1", records=10, timeout_s=30)
    approve_villages(town.db_url, [v])
    assert v.start().wait(40)["returncode"] == 0
    backup = tmp_path / "backup.sqlite"
    shutil.copy(v.db, backup)   # WAL was checkpointed on close
    assert v.start(records=20).wait(40)["returncode"] == 0
    shutil.copy(backup, v.db)   # the laptop is restored from the old backup and records again
    for suffix in ("-wal", "-shm"):
        Path(str(v.db) + suffix).unlink(missing_ok=True)
    state = v.start(records=14, salt="after-restore", timeout_s=4).wait(30)
    assert state["returncode"] == 3 and state["pending"] == 4   # refused: never silently overwritten
    store = open_town_store(town.db_url)
    try:
        agent = store.author(v.signer.key_id)
        assert agent is not None and agent.state is KeyState.QUARANTINED
        forks = store.forks()
        # Reused seqs seen before the quarantine are kept as evidence beside the originals.
        assert forks and forks[0].seq == 11 and {f.author_key_id for f in forks} == {v.signer.key_id}
        assert {f.seq for f in forks} <= {11, 12, 13, 14}
        assert len(store.ingested(v.signer.key_id)) == 20     # the original 11..20 are kept as they were
    finally:
        store.close()
    listing = subprocess.run([sys.executable, "-m", "town_center.cli", "agents", "list", "--home", str(town.home)],
                             cwd=REPO, capture_output=True, text=True, timeout=30)
    assert "已隔离" in listing.stdout and "分叉证据：序号 11" in listing.stdout


@pytest.mark.parametrize("days", [3653, -3653])
def test_a_laptop_clock_ten_years_off_still_syncs_and_its_claims_are_flagged(town, days: int) -> None:
    server = town.process().start()
    server.wait_serving()
    v = town.village("C1", records=50, clock_offset_days=days, timeout_s=30)
    approve_villages(town.db_url, [v])
    assert v.start().wait(40)["returncode"] == 0
    assert assert_exactly_once(town.db_url, [v]) == 50
    store = open_town_store(town.db_url)
    try:
        flags = store.time_flags(v.signer.key_id)
        rows = store.ingested(v.signer.key_id)
    finally:
        store.close()
    assert flags, "an implausible claimed time is shown to operators"
    expected = "快" if days > 0 else "早于"
    assert all(expected in f.reason for f in flags)
    # The township's own receipt time is what it keeps for its hop clock, not the claim.
    assert all(abs(f.receipt_time_ms - f.claimed_time_ms) > 300 * 86_400_000 for f in flags)
    assert all(t > 0 for _, _, t in rows)


def test_everything_is_delivered_once_the_flaky_network_heals(town) -> None:
    server = town.process().start()
    server.wait_serving()
    proxy = ChaosProxy(town.port).start()
    proxy.chaos = True
    try:
        villages = [town.village(f"P{i}", port=proxy.port, records=400, record_every_ms=10, per_tick=2,
                                 batch_size=20, window=2, deadline_s=2, timeout_s=90) for i in range(3)]
        approve_villages(town.db_url, villages)
        for v in villages:
            v.start()
        time.sleep(6)
        proxy.heal()
        states = [v.wait(100) for v in villages]
    finally:
        proxy.stop()
    assert sum(proxy.stats[m] for m in ("refused", "cut", "frozen", "blackholed", "delayed")) > 0, proxy.stats
    assert all(s["returncode"] == 0 for s in states), (states, proxy.stats)
    assert assert_exactly_once(town.db_url, villages) == 1200


def test_a_new_agent_key_is_pending_until_an_operator_approves_it(town) -> None:
    server = town.process().start()
    server.wait_serving()
    v = town.village("E1", records=5, timeout_s=60)
    v.start()
    store = open_town_store(town.db_url)
    try:
        end = time.monotonic() + 20
        while store.author(v.signer.key_id) is None and time.monotonic() < end:
            time.sleep(0.05)
        agent = store.author(v.signer.key_id)
        assert agent is not None and agent.state is KeyState.PENDING and agent.tip.seq == 0
    finally:
        store.close()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "town_center.cli", "agents", *args, "--home", str(town.home)],
                              cwd=REPO, capture_output=True, text=True, timeout=30,
                              env={"QUANCHENG_PASSPHRASE": "relay-test-passphrase", "PATH": "/usr/bin:/bin"})

    listing = run("list", "--state", "pending")
    assert v.signer.key_id in listing.stdout and "待审批" in listing.stdout
    approved = run("approve", v.signer.key_id[:10], "--by", "王五")
    assert approved.returncode == 0, approved.stderr
    state = v.wait(60)
    assert state["returncode"] == 0 and state["down"] >= 1   # the signed KeyApproved record came down
    assert assert_exactly_once(town.db_url, [v]) == 5


@pytest.mark.postgres
def test_villages_sync_to_a_township_that_stores_in_postgresql(tmp_path: Path, postgres_cluster) -> None:
    url = postgres_cluster.create_database("relay_serve")
    home = tmp_path / "town"
    signer = init_town(home, url)
    port = free_port()
    villages = [VillageProcess(tmp_path, f"G{i}", signer.public_key, port, records=150, timeout_s=40) for i in range(2)]
    approve_villages(url, villages)
    server = TownProcess(home, port, db_url=url)
    try:
        for v in villages:
            v.start()
        server.start().wait_serving()
        states = [v.wait(60) for v in villages]
        assert all(s["returncode"] == 0 for s in states), states
        assert assert_exactly_once(url, villages) == 300
    finally:
        for v in villages:
            v.kill()
        server.close()
