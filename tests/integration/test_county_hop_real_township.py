"""The real `town-center serve` linked to the real `county-hub serve`, the township SIGKILLed again and
again while its 上报 go up and the county's decisions come down: every escalation is taken in at the
county once, every county receipt and decision is folded into the township's matter once, and the
township's county-hop replica starts exactly at the county's receipt time."""
from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import select

from shared.clock import from_unix_ms
from shared.domain.catalog import MatterKind
from shared.domain.handling import Actor, Role, Stage
from shared.keys import load_key_file
from shared.relay.ports import EnrollmentInfo
from shared.wire.v1 import records_pb2
from tests.relay_fakes import PASSPHRASE, CountyProcess, TownProcess, free_port, init_town
from tests.town_fixtures import OPERATOR, VillageDevice

MATTERS = 120
KILLS = 12


def _prepare(tmp_path: Path, county_port: int) -> tuple[Path, Path, list[str]]:
    """A county and a township linked to it (link key approved), with MATTERS 上报件 signed and queued."""
    from hub.bootstrap import init_home as init_county
    from hub.store import open_hub_store
    from town_center.bootstrap import LINK_KEY_FILE_NAME, build_app, link_county, load_signer

    county_home, town_home = tmp_path / "county", tmp_path / "town"
    county_home.mkdir()
    (county_home / "pass").write_text(PASSPHRASE, encoding="utf-8")
    county_signer = init_county(county_home, PASSPHRASE)
    init_town(town_home)
    db_url = f"sqlite:///{town_home / 'town.db'}"
    link_signer = load_key_file(town_home / LINK_KEY_FILE_NAME, PASSPHRASE)
    link_county(db_url, link_signer, address=f"127.0.0.1:{county_port}", county_public_key=county_signer.public_key,
                township_code="T01", township_name="青石镇")
    hub_store = open_hub_store(f"sqlite:///{county_home / 'county.db'}")
    try:
        hub_store.register_approved(link_signer.public_key, EnrollmentInfo(records_pb2.KEY_ROLE_TOWNSHIP, "青石镇", "",
                                                                           "T01", ""), by="测试", now_ms=0)
    finally:
        hub_store.close()
    app = build_app(db_url, load_signer(town_home, PASSPHRASE), link_signer=link_signer)
    try:
        village = VillageDevice(app)
        matter_ids = []
        for _ in range(MATTERS):
            matter_id = village.file("MZ-001")
            app.handling.classify(matter_id, MatterKind.REPORTED, actor=OPERATOR)
            app.handling.escalate(matter_id, "初审通过", actor=OPERATOR)
            matter_ids.append(matter_id)
    finally:
        app.close()
    return county_home, town_home, matter_ids


def _county_matters(store) -> set[str]:
    from hub.store.tables import county_matter

    with store.engine.connect() as conn:
        return set(conn.execute(select(county_matter.c.matter_id)).scalars())


def _township_stages(store) -> dict[str, str]:
    from town_center.store.matter_tables import town_matter

    with store.engine.connect() as conn:
        return {r.matter_id: r.stage for r in conn.execute(select(town_matter.c.matter_id, town_matter.c.stage))}


def _wait(what: str, done, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not done():
        if time.monotonic() > end:
            raise AssertionError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(0.2)


def test_a_real_township_killed_again_and_again_escalates_each_matter_once_and_folds_each_decision_once(
        tmp_path: Path) -> None:
    county_port, town_port = free_port(), free_port()
    county_home, town_home, matter_ids = _prepare(tmp_path, county_port)
    from hub.store import open_hub_store
    from town_center.store import open_town_store

    # Opened once, before the processes start, and only read: the watchers never race a migration.
    county_reader = open_hub_store(f"sqlite:///{county_home / 'county.db'}")
    town_reader = open_town_store(f"sqlite:///{town_home / 'town.db'}")
    county = CountyProcess(county_home, county_port).start()
    town: TownProcess | None = None
    rng = random.Random(31)
    try:
        # Up: the township is killed at random moments while its queue of 上报 drains to the county.
        for _ in range(KILLS // 2):
            before = county_reader.ingest_count()
            town = TownProcess(town_home, town_port, extra=["--console-listen", "off"]).start()
            town.wait_serving()
            end = time.monotonic() + 5
            while county_reader.ingest_count() == before and time.monotonic() < end:
                time.sleep(0.005)   # records are flowing: kill in the middle of them
            time.sleep(rng.uniform(0, 0.05))
            town.kill()
            town.log.close()
        town = TownProcess(town_home, town_port, extra=["--console-listen", "off"]).start()
        town.wait_serving()
        _wait("every escalation taken in at the county", lambda: _county_matters(county_reader) == set(matter_ids), 90)

        # Down: the county decides half of them (in another process on its database, as its board would)
        # while the township keeps being killed as it pulls and folds.
        from hub.bootstrap import KEY_FILE_NAME
        from hub.bootstrap import build_app as build_hub
        from hub.handling import Outcome

        hub = build_hub(f"sqlite:///{county_home / 'county.db'}", load_key_file(county_home / KEY_FILE_NAME, PASSPHRASE))
        decided = matter_ids[::2]
        try:
            for matter_id in decided:
                hub.handling.decide(matter_id, Outcome.APPROVE, actor=Actor("chen", Role.DIRECTOR), reason="准予")
        finally:
            hub.close()
        for _ in range(KILLS // 2):
            town.kill()
            town.log.close()
            town = TownProcess(town_home, town_port, extra=["--console-listen", "off"]).start()
            town.wait_serving()
            time.sleep(rng.uniform(0.05, 0.6))
        _wait("every decision folded at the township",
              lambda: sum(1 for m, st in _township_stages(town_reader).items() if st == Stage.RESULT_READY.value) == len(decided),
              90)
        from town_center.store.tables import county_up

        def drained() -> bool:
            with town_reader.engine.connect() as conn:
                return not conn.execute(select(county_up.outbox)).first()

        _wait("the township's queue to the county drained (its status lines after each decision)", drained, 60)
        town.stop()
    finally:
        if town is not None:
            town.kill()
            town.log.close()
        county.close()
        county_reader.close()
        town_reader.close()

    from hub.store.tables import county_event, county_matter
    from shared.calendar import WorkingCalendar
    from shared.deadline_watch.store import DeadlineStore
    from town_center.store import open_town_store
    from town_center.store.matter_tables import matter_event, town_matter
    from town_center.store.tables import county_up

    town_store = open_town_store(f"sqlite:///{town_home / 'town.db'}")
    hub_store = open_hub_store(f"sqlite:///{county_home / 'county.db'}")
    try:
        with town_store.engine.connect() as conn:
            events = Counter((r.matter_id, r.action) for r in conn.execute(select(matter_event.c.matter_id, matter_event.c.action)))
            stages = {r.matter_id: r.stage for r in conn.execute(select(town_matter.c.matter_id, town_matter.c.stage))}
            assert conn.execute(select(county_up.outbox)).all() == []
        with hub_store.engine.connect() as conn:
            received = Counter(r.matter_id for r in conn.execute(
                select(county_event.c.matter_id).where(county_event.c.action == "received")))
            receipt_ms = dict(conn.execute(select(county_matter.c.matter_id, county_matter.c.received_at_ms)).all())
        replicas = DeadlineStore(town_store.engine, WorkingCalendar())
        for matter_id in matter_ids:
            assert received[matter_id] == 1, matter_id
            assert events[(matter_id, "escalate")] == 1 and events[(matter_id, "escalated")] == 1, matter_id
            assert replicas.load_clock(matter_id, "county").start_at == from_unix_ms(receipt_ms[matter_id])
            if matter_id in decided:
                assert stages[matter_id] == Stage.RESULT_READY.value
                assert events[(matter_id, "county_decision")] == 1, matter_id
            else:
                assert stages[matter_id] == Stage.ESCALATED.value
    finally:
        town_store.close()
        hub_store.close()
