"""The county's kept counts (the board's totals, the township comparison's figures) stay equal to a
fresh pass over every matter after a random run of what reaches and happens at the county: escalations
received, township status updates (new and replacing), decisions, 补正 and the materials coming back,
suspensions and resumptions, sign-offs, and acts refused half way; on SQLite and on PostgreSQL. The
county runs the real hub code on a real store; townships sign their records with their own keys."""
from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import delete

from bench.seed_county import open_county, seed
from hub.bootstrap import HubApp, build_app
from hub.evaluation import township_comparison
from hub.handling import Outcome
from hub.store import kept_counts, township_figures
from hub.store.migrations import HUB_MIGRATIONS
from hub.store.tables import hub_meta
from shared.calendar import WorkingCalendar
from shared.clock import FakeClock, to_unix_ms
from shared.domain.catalog import Tier
from shared.domain.deadlines import SuspensionReason
from shared.domain.evaluation import parse_period
from shared.domain.handling import Actor, Role, Stage
from shared.envelope import GENESIS, sign_next
from shared.errors import SharedError
from shared.migrations import alembic_config
from shared.relay.ports import EnrollmentInfo
from shared.relay.server import PushSession
from shared.relay.sql_store import relay_engine
from shared.signing import Signer
from shared.wire.v1 import records_pb2
from tests.pg import PostgresCluster
from tests.town_fixtures import MONDAY_9AM

DIRECTOR = Actor("chen", Role.DIRECTOR)
_HOUR_MS = 3_600_000
_DAY_MS = 24 * _HOUR_MS


@dataclass
class _Township:
    """A township's link key and one village laptop, signing their own chains."""

    app: HubApp
    clock: FakeClock
    code: str
    signer: Signer = field(default_factory=Signer.generate)
    village: Signer = field(default_factory=Signer.generate)
    tip: bytes = GENESIS
    village_tip: bytes = GENESIS
    session: PushSession = field(default_factory=lambda: PushSession(peer="test"))

    def __post_init__(self) -> None:
        self.app.store.register_approved(self.signer.public_key, EnrollmentInfo(
            records_pb2.KEY_ROLE_TOWNSHIP, f"{self.code}乡", "", self.code, ""), by="test", now_ms=0)
        record = records_pb2.Record()
        ka = record.key_approved
        ka.key_id, ka.public_key, ka.role = self.village.key_id, self.village.public_key, records_pb2.KEY_ROLE_VILLAGE_AGENT
        ka.approved_by, ka.village_code, ka.township_code = "test", f"{self.code}V01", self.code
        self.push(record)

    def _now_ms(self) -> int:
        return to_unix_ms(self.clock.now())

    def push(self, *records: records_pb2.Record) -> None:
        envelopes = []
        for record in records:
            signed = sign_next(self.signer, record, self.tip, self._now_ms())
            envelopes.append(signed.envelope)
            self.tip = signed.tip
        response = self.app.core.push(envelopes, self.session)
        assert len(response.receipts) == len(envelopes), response.refusals
        self.app.handling.run_once()

    def _village_signed(self, record: records_pb2.Record) -> object:
        signed = sign_next(self.village, record, self.village_tip, self._now_ms())
        self.village_tip = signed.tip
        return signed.envelope

    def status(self, matter_id: str, catalog_code: str, hops: list[tuple[int, int, int, int]]) -> records_pb2.Record:
        record = records_pb2.Record()
        su = record.status_update
        su.matter_id, su.stage, su.catalog_code, su.village_code = matter_id, records_pb2.STAGE_ESCALATED, catalog_code, \
            f"{self.code}V01"
        su.kind = records_pb2.MATTER_KIND_REPORTED
        for tier, started, due, stopped in hops:
            hop = su.hops.add()
            hop.tier, hop.started_at_ms, hop.due_at_ms, hop.stopped_at_ms = tier, started, due, stopped
        return record

    def escalate(self, matter_id: str, catalog_code: str, hops: list[tuple[int, int, int, int]], elderly: bool) -> None:
        filing = records_pb2.Record()
        body = filing.request_filed
        body.matter_id, body.catalog_code, body.catalog_version = matter_id, catalog_code, "2026.1"
        body.village_code, body.intake_outcome = f"{self.code}V01", records_pb2.INTAKE_OUTCOME_ACCEPT
        body.materials_brought.extend(["身份证", "户口簿"])
        body.applicant.id_number_masked = "3301**********123X"
        body.applicant.elderly_or_disabled = elderly
        escalation = records_pb2.Record()
        esc = escalation.escalation
        esc.matter_id, esc.catalog_code, esc.township_code = matter_id, catalog_code, self.code
        esc.summary, esc.township_received_at_ms = "乡镇初审通过，材料齐全", self._now_ms()
        esc.village_envelopes.append(self._village_signed(filing))
        self.push(self.status(matter_id, catalog_code, hops), escalation)

    def signed_off(self, matter_id: str) -> None:
        handed = records_pb2.Record()
        handed.result_handed_over.matter_id = matter_id
        handed.result_handed_over.handed_over_at_ms = self._now_ms()
        signed = records_pb2.Record()
        signed.signed_off.matter_id, signed.signed_off.rating = matter_id, records_pb2.RATING_SATISFIED
        forwarded = records_pb2.Record()
        forwarded.village_records_forwarded.matter_id = matter_id
        forwarded.village_records_forwarded.village_envelopes.extend(
            [self._village_signed(handed), self._village_signed(signed)])
        self.push(forwarded)

    def materials(self, matter_id: str) -> None:
        record = records_pb2.Record()
        record.materials_added.matter_id = matter_id
        record.materials_added.material_ids.append("户口簿复印件")
        self.push(record)


def _random_hops(rng: random.Random, now_ms: int) -> list[tuple[int, int, int, int]]:
    """A township's and sometimes the county's hop as a township reports them: started in the last
    four months, due after it, stopped or not (a few stopped after the county's now, on a township clock
    running ahead), now and then a hop not started or with no deadline."""
    hops = []
    for tier in (records_pb2.TIER_TOWNSHIP, records_pb2.TIER_COUNTY):
        if tier == records_pb2.TIER_COUNTY and rng.random() < 0.5:
            continue
        started = 0 if rng.random() < 0.05 else now_ms - rng.randrange(120 * _DAY_MS)
        due = 0 if rng.random() < 0.1 else started + rng.randrange(1, 10) * _DAY_MS
        roll = rng.random()
        stopped = 0 if roll < 0.3 else (now_ms + rng.randrange(1, 3 * _DAY_MS) if roll < 0.35
                                        else started + rng.randrange(1, 15 * _DAY_MS))
        hops.append((tier, started, due, min(stopped, now_ms + 3 * _DAY_MS) if stopped else 0))
    return hops


def _county(url: str) -> tuple[HubApp, FakeClock]:
    clock = FakeClock(MONDAY_9AM)
    app = build_app(url, Signer.generate(), clock=clock, calendar=WorkingCalendar())
    assert app.handling.documents is not None
    app.handling.documents.after_commit = lambda: None  # archive PDFs: not counted here
    return app, clock


@pytest.fixture(params=["sqlite", "postgres"])
def county(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[HubApp, FakeClock]]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'county.db'}"
    else:
        cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
        url = str(cluster.create_database(f"kept_{uuid.uuid4().hex[:10]}"))
    app, clock = _county(url)
    yield app, clock
    app.close()


def _act(app: HubApp, rng: random.Random, escalated: list[str]) -> None:
    """One county act on a random escalated matter; one the rules refuse changes nothing."""
    handling = app.handling
    matter_id = rng.choice(escalated)
    what = rng.choice(["approve", "needs_materials", "suspend", "resume", "refuse_request"])
    try:
        if what == "approve":
            handling.decide(matter_id, Outcome.APPROVE, actor=DIRECTOR, reason="准予")
        elif what == "needs_materials":
            handling.decide(matter_id, Outcome.NEEDS_MATERIALS, actor=DIRECTOR, missing=["户口簿复印件"], reason="缺户口簿")
        elif what == "suspend":
            handling.suspend(matter_id, SuspensionReason.APPRAISAL, "等待鉴定结论，约五个工作日", actor=DIRECTOR)
        elif what == "resume":
            handling.resume(matter_id, actor=DIRECTOR)
        else:
            handling.decide(matter_id, Outcome.REFUSE, actor=DIRECTOR, reason="不符合条件")
    except SharedError:
        pass    # not allowed in the matter's state: the transaction rolled back, counts included


def _assert_kept_equals_scan(app: HubApp) -> None:
    handling = app.handling
    now = handling.clock.now()
    with app.store.engine.connect() as conn:
        tx = conn.begin()
        kept = township_figures.kept_rows(conn)
        township_figures.rebuild(conn, handling.calendar)    # a fresh pass, rolled back
        assert township_figures.kept_rows(conn) == kept
        tx.rollback()
    with app.store.engine.connect() as conn:
        assert kept_counts.kept(conn) == kept_counts.scanned(conn)
        names = handling.township_names()
        today = now.date()
        periods = [parse_period(text, today) for text in (
            "", f"{today:%Y-%m}", f"{today - dt.timedelta(days=40):%Y-%m}", f"{today - dt.timedelta(days=75):%Y-%m}",
            f"{today.year}-Q{(today.month - 1) // 3 + 1}", f"{today.year}",
            f"{today - dt.timedelta(days=50)}~{today - dt.timedelta(days=9)}", f"{today - dt.timedelta(days=3)}~{today}",
            f"{today + dt.timedelta(days=40):%Y-%m}")]
        assert township_figures.is_built(conn, handling.calendar)    # so the page below reads the kept rows
        for period in periods:
            kept_figures = township_figures.figures(conn, period, now)
            scanned = {(r.township_code, r.hop): r for r in township_comparison(handling, period, names, now=now)}
            assert set(kept_figures) == set(scanned), period.label
            for key, f in kept_figures.items():
                s = scanned[key]
                assert (f.received, f.completed, f.on_time, f.overdue) == (s.received, s.completed, s.on_time, s.overdue), \
                    (period.label, key)
                assert f.office_ms == s.office_ms, (period.label, key)
            # The page reads the kept figures (it is given the engine) and shows what the scan shows.
            shown = township_comparison(handling, period, names, now=now, engine=app.store.engine)
            assert sorted((r.township_code, r.hop, r.received, r.completed, r.on_time, r.overdue, r.office_ms) for r in shown) == \
                sorted((r.township_code, r.hop, r.received, r.completed, r.on_time, r.overdue, r.office_ms)
                       for r in scanned.values()), period.label
    for township_code in ("", "K01", "K02"):
        for open_only in (False, True):
            page = handling.escalated_page(township_code=township_code, open_only=open_only, page_size=5)
            views = handling.escalated(township_code=township_code or None, open_only=open_only)
            assert page.totals["all"] == len(views)
            assert page.totals["elderly"] == sum(v.elderly_or_disabled for v in views)


def test_kept_counts_equal_a_fresh_scan_after_a_random_run_of_county_work(county: tuple[HubApp, FakeClock]) -> None:
    app, clock = county
    rng = random.Random(20)
    codes = [i.code for i in app.handling.catalog if i.decided_by is Tier.COUNTY]
    townships = [_Township(app, clock, "K01"), _Township(app, clock, "K02")]
    escalated: list[str] = []
    where: dict[str, _Township] = {}
    tracked: dict[str, tuple[_Township, str]] = {}
    for step in range(140):
        clock.advance(dt.timedelta(minutes=rng.randrange(1, 600)))
        now_ms = to_unix_ms(clock.now())
        roll = rng.random()
        if roll < 0.25 or not escalated:
            town = rng.choice(townships)
            matter_id, code = str(uuid.uuid4()), rng.choice(codes)
            town.escalate(matter_id, code, _random_hops(rng, now_ms), elderly=rng.random() < 0.3)
            escalated.append(matter_id)
            where[matter_id] = town
            tracked[matter_id] = (town, code)
        elif roll < 0.5:
            # A new tracked matter, or a later status update replacing what a tracked one said.
            if tracked and rng.random() < 0.6:
                matter_id = rng.choice(sorted(tracked))
                town, code = tracked[matter_id]
            else:
                town, matter_id, code = rng.choice(townships), str(uuid.uuid4()), rng.choice(codes)
                tracked[matter_id] = (town, code)
            town.push(town.status(matter_id, code, _random_hops(rng, now_ms)))
        elif roll < 0.85:
            _act(app, rng, escalated)
        else:
            # The township's part: materials passed on for a 补正, or the villager's sign-off of a result.
            matter_id = rng.choice(escalated)
            stage = app.handling.history(matter_id).matter.stage
            if stage is Stage.WAITING_MATERIALS:
                where[matter_id].materials(matter_id)
            elif stage is Stage.RESULT_READY:
                where[matter_id].signed_off(matter_id)
        if step % 35 == 34:
            _assert_kept_equals_scan(app)
    stages = {app.handling.history(m).matter.stage for m in escalated}
    assert {Stage.IN_PROGRESS, Stage.WAITING_MATERIALS, Stage.RESULT_READY, Stage.SIGNED_OFF} <= stages   # it moved them
    _assert_kept_equals_scan(app)


def test_a_county_upgraded_with_matters_held_has_its_counts_filled_by_the_migration_and_its_first_start(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'county.db'}"
    signer = Signer.generate()
    app = open_county(url, signer)
    seed(app, 30, townships=3, supervised=2)
    app.close()
    # Back to the revision before the kept counts: their tables and the "built" mark are gone.
    engine = relay_engine(url)
    with engine.connect() as conn, conn.begin():
        command.downgrade(alembic_config(HUB_MIGRATIONS, conn), "hub_0013")
        conn.execute(delete(hub_meta).where(hub_meta.c.key == township_figures.BUILT_META))
    engine.dispose()

    app = open_county(url, signer)      # opening upgrades: the board's counts are back-filled by the migration
    try:
        with app.store.engine.connect() as conn:
            assert sum(kept_counts.kept(conn).values()) == 30
            assert kept_counts.kept(conn) == kept_counts.scanned(conn)
            assert not township_figures.is_built(conn)
        app.handling.run_once()         # the first pass fills the comparison's figures with this county's calendar
        _assert_kept_equals_scan(app)
        with app.store.engine.connect() as conn:
            assert township_figures.is_built(conn) and township_figures.kept_rows(conn)
    finally:
        app.close()


CLOSURE_2027 = """format = 1
issued_by = "县政务服务中心"

[year_2027]
confirmed = true
holidays = [
  { name = "抗洪停止对外办公", from = 2027-03-02, to = 2027-03-04 },
]
workdays = []
"""


def test_a_new_calendar_file_refigures_the_office_time_of_hops_already_counted(tmp_path: Path) -> None:
    app, clock = _county(f"sqlite:///{tmp_path / 'county.db'}")
    try:
        town = _Township(app, clock, "K01")
        started = to_unix_ms(dt.datetime(2027, 3, 1, 9, tzinfo=dt.timezone(dt.timedelta(hours=8))))
        town.push(town.status(str(uuid.uuid4()), "MZ-001",
                              [(records_pb2.TIER_TOWNSHIP, started, started + 2 * _DAY_MS, started + 4 * _DAY_MS)]))
        period = parse_period("2027-03", clock.now().date())

        def office_hours() -> float:
            with app.store.engine.connect() as conn:
                return township_figures.figures(conn, period, clock.now())[("K01", "township")].office_ms / 3_600_000

        before = office_hours()
        app.set_calendar_override(CLOSURE_2027, by="chen")
        app.handling.run_once()         # the next intake pass sees the new calendar and refigures
        assert office_hours() < before
        _assert_kept_equals_scan(app)
    finally:
        app.close()
