"""Two township processes on one PostgreSQL database keep every guarantee: villages pushing to either
(and one of them SIGKILLed mid-stream) get every record stored once; and both sharing one county link
chain sign distinct seqs, so the county sees one contiguous chain and no fork."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from shared.calendar import WorkingCalendar
from shared.clock import FakeClock
from shared.domain.catalog import MatterKind
from shared.relay.client import ClientLimits, RelayClient
from shared.relay.ports import KeyState
from shared.retry import RetryPolicy
from shared.signing import Signer
from tests.county_fixtures import county
from tests.relay_fakes import TownProcess, VillageProcess, approve_villages, assert_exactly_once, free_port, init_town
from tests.town_fixtures import MONDAY_9AM, OPERATOR, VillageDevice
from town_center.bootstrap import build_app, link_county
from town_center.store import open_town_store

pytestmark = pytest.mark.postgres


def test_villages_pushing_to_two_township_processes_on_one_postgres_store_everything_once(
        tmp_path: Path, postgres_cluster) -> None:
    url = postgres_cluster.create_database("two_townships_relay")
    home = tmp_path / "town"
    signer = init_town(home, url)
    ports = [free_port(), free_port()]
    villages = [VillageProcess(tmp_path, f"P{i}", signer.public_key, ports[i % 2], records=200, batch_size=20,
                               deadline_s=3, timeout_s=90) for i in range(4)]
    approve_villages(url, villages)
    servers = [TownProcess(home, port, db_url=url) for port in ports]
    try:
        for s in servers:
            s.start().wait_serving()
        for v in villages:
            v.start()
        time.sleep(1.0)
        servers[0].kill()                  # one process dies mid-stream; its villages retry until it is back
        servers[0].start().wait_serving()
        states = [v.wait(120) for v in villages]
        assert all(st["returncode"] == 0 for st in states), states
        assert assert_exactly_once(url, villages) == 800
        store = open_town_store(url)
        try:
            assert store.forks() == [] and all(k.state is KeyState.APPROVED for k in store.keys())
        finally:
            store.close()
    finally:
        for v in villages:
            v.kill()
        for s in servers:
            s.close()


def test_two_township_processes_sharing_one_county_link_sign_one_chain_the_county_accepts_whole(
        tmp_path: Path, postgres_cluster) -> None:
    url = postgres_cluster.create_database("two_townships_link")
    clock = FakeClock(MONDAY_9AM)
    hub = county(f"sqlite:///{tmp_path / 'county.db'}", clock)
    town_signer, link_signer = Signer.generate(), Signer.generate()
    link_county(url, link_signer, address=hub.address, county_public_key=hub.app.signer.public_key,
                township_code="T01", township_name="青石镇")
    apps = [build_app(url, town_signer, clock=clock, calendar=WorkingCalendar(), link_signer=link_signer) for _ in range(2)]
    clients = []
    for app in apps:
        assert app.county_link is not None
        clients.append(RelayClient(hub.address, app.county_link.outbox, link_signer, clock,
                                   limits=ClientLimits(batch_size=5, push_deadline_s=5, unary_deadline_s=3),
                                   policy=RetryPolicy(initial_s=0.05, cap_s=0.3)))
    try:
        clients[0].sync_once()
        hub.app.store.approve(link_signer.key_id, by="chen", now_ms=0)
        village = VillageDevice(apps[0])
        matters = [village.file("MZ-001") for _ in range(12)]
        for i, matter_id in enumerate(matters):
            apps[i % 2].handling.classify(matter_id, MatterKind.REPORTED, actor=OPERATOR)

        def escalate(app, ids: list[str]) -> None:
            for matter_id in ids:
                app.handling.escalate(matter_id, "初审通过", actor=OPERATOR)

        def sync(client: RelayClient) -> None:
            for _ in range(6):
                client.sync_once()

        workers = [threading.Thread(target=escalate, args=(apps[0], matters[0::2])),
                   threading.Thread(target=escalate, args=(apps[1], matters[1::2])),
                   *(threading.Thread(target=sync, args=(c,)) for c in clients)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(60)
        for _ in range(3):
            for app, client in zip(apps, clients, strict=True):
                client.sync_once()
                hub.app.handling.run_once()
                assert app.county_link is not None
                app.county_link.fold()
        link_key = hub.app.store.author(link_signer.key_id)
        assert link_key is not None and link_key.state is KeyState.APPROVED and hub.app.store.forks() == []
        seqs = [s for s, _, _ in hub.app.store.ingested(link_signer.key_id)]
        assert seqs == list(range(1, len(seqs) + 1))
        assert apps[0].county_link is not None and apps[0].county_link.outbox.pending_count() == 0
        assert sorted(v.matter_id for v in hub.app.handling.escalated()) == sorted(matters)
    finally:
        for c in clients:
            c.stop()
        for app in apps:
            app.close()
        hub.close()
