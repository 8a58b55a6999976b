"""Schema migrations of every store (township, county, the village laptop), on SQLite files and on a
real PostgreSQL (township and county; the laptop is SQLite only).

* the head revision is what the models say (a table changed without a migration fails here), and a
  migrated database is exactly what `create_all` of the models made before migrations existed — which
  is what makes stamping such a database correct;
* a township at revision town_0001 (the released schema, before the county hub), full of matters the real
  code filed, upgrades, keeps every row, and then works: its villages go on filing, it links to a county;
* databases made before migrations (the 3686c89 township, the county, the laptop) are stamped with the
  revision their tables match and upgraded; the deadline and console tables' own create calls still work;
* two township processes opening one fresh PostgreSQL database at once both succeed, one migrating;
* a database from a newer version, or another tier's database, is refused and left as it was.
"""
from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, MetaData, func, inspect, select, text

import hub.bootstrap
import town_center.bootstrap
import village_agent.store as village_store
from hub.store import HubStore
from hub.store.migrations import HUB_MIGRATIONS
from shared.calendar import WorkingCalendar
from shared.catalog import load_catalog
from shared.clock import FakeClock
from shared.console import create_console_tables
from shared.console.store import staff
from shared.domain.catalog import MatterKind
from shared.domain.id_number import with_check_char
from shared.errors import MigrationError
from shared.migrations import StoreMigrations, alembic_config, head_revision, upgrade_to_head
from shared.relay.client import ClientLimits, RelayClient
from shared.relay.ports import KeyState
from shared.relay.sql_store import relay_engine
from shared.retry import RetryPolicy
from shared.signing import Signer
from tests.county_fixtures import County, county
from tests.pg import PostgresCluster
from tests.town_fixtures import MONDAY_9AM, OPERATOR, VillageDevice, township
from tests.village_fixtures import PASSPHRASE, SIGNATURE_PNG, make_agent
from town_center.bootstrap import TownApp, link_county
from town_center.bootstrap import build_app as build_town
from town_center.store import TownStore, open_town_store
from town_center.store.migrations import TOWN_MIGRATIONS
from town_center.store.tables import metadata as town_metadata
from village_agent.bootstrap import open_agent
from village_agent.config import Paths
from village_agent.migrations import VILLAGE_MIGRATIONS
from village_agent.services import RequestForm

STORES: dict[str, StoreMigrations] = {"town": TOWN_MIGRATIONS, "hub": HUB_MIGRATIONS, "village": VILLAGE_MIGRATIONS}
STORE_BACKENDS = [("town", "sqlite"), ("town", "postgres"), ("hub", "sqlite"), ("hub", "postgres"), ("village", "sqlite")]
# What revision town_0002 added: the township's county link and the county's 督办 notices.
COUNTY_ERA_TABLES = {"county_ledger", "county_outbox", "county_receipt", "county_inbox", "county_state", "county_notice"}
# The tables the township of 3686c89 (the last release) had; deadline and console tables on the same database.
RELEASED_TOWN_TABLES = {
    "agent_key", "ingest_log", "fork_evidence", "claimed_time_flag", "down_log", "town_meta",
    "town_matter", "matter_event", "refusal_register", "follow_up_call", "intake_cursor",
    "hop_deadline", "deadline_event", "notification_outbox", "staff", "staff_session", "login_failure",
}

UrlFactory = Callable[[str], str]


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _url_factory(request: pytest.FixtureRequest, tmp_path: Path, backend: str) -> UrlFactory:
    def new_url(name: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path / name}.db"
        cluster = request.getfixturevalue("postgres_cluster")
        return str(cluster.create_database(f"mig_{name}_{uuid.uuid4().hex[:8]}"))
    return new_url


@pytest.fixture
def new_url(request: pytest.FixtureRequest, tmp_path: Path, backend: str) -> UrlFactory:
    """A fresh, empty database on the test's backend, per call."""
    return _url_factory(request, tmp_path, backend)



@pytest.fixture
def engines() -> Iterator[list[Engine]]:
    """Engines the test makes itself; disposed at the end so PostgreSQL connections do not pile up."""
    made: list[Engine] = []
    yield made
    for engine in made:
        engine.dispose()


def _engine(engines: list[Engine], url: str) -> Engine:
    engine = relay_engine(url)
    engines.append(engine)
    return engine


def _migrate_to(engine: Engine, store: StoreMigrations, revision: str) -> None:
    with engine.connect() as conn, conn.begin():
        command.upgrade(alembic_config(store, conn), revision)


def _models(store: StoreMigrations) -> MetaData:
    combined = MetaData()
    for md in store.models():
        for table in md.sorted_tables:
            table.to_metadata(combined)
    return combined


def _model_diff(engine: Engine, store: StoreMigrations) -> list[object]:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": False})
        return list(compare_metadata(context, _models(store)))


def _version(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [str(v) for v in conn.execute(text("SELECT version_num FROM alembic_version")).scalars()]


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def _row_counts(engine: Engine) -> dict[str, int]:
    md = MetaData()
    md.reflect(engine)
    with engine.connect() as conn:
        return {name: int(conn.execute(select(func.count()).select_from(t)).scalar() or 0)
                for name, t in md.tables.items() if name != "alembic_version"}


def _schema(engine: Engine) -> dict[str, object]:
    """Everything reflection says about every table (types, nullability, defaults such as PostgreSQL
    sequences, keys, indexes with their partial WHERE, unique and foreign keys); on SQLite the DDL text too."""
    insp = inspect(engine)
    out: dict[str, object] = {}
    for name in sorted(insp.get_table_names()):
        if name == "alembic_version":
            continue
        out[name] = (
            [(c["name"], str(c["type"]), c["nullable"], str(c.get("default")), c.get("autoincrement")) for c in insp.get_columns(name)],
            insp.get_pk_constraint(name)["constrained_columns"],
            sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]),
                    repr(sorted((k, str(v)) for k, v in i.get("dialect_options", {}).items())))
                   for i in insp.get_indexes(name)),
            sorted((str(u["name"]), tuple(u["column_names"])) for u in insp.get_unique_constraints(name)),
            sorted((tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]), repr(f.get("options")))
                   for f in insp.get_foreign_keys(name)),
        )
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            out["sqlite_master"] = sorted(
                (str(r.type), str(r.name), " ".join(str(r.sql).split()) if r.sql else "")
                for r in conn.execute(text("SELECT type, name, sql FROM sqlite_master WHERE tbl_name != 'alembic_version'")))
    return out


def _town_0002_metadata(*, county_era: bool = True) -> MetaData:
    """The township's tables as town_0002 left them: today's models without what town_0003 added (the
    refusal's kind and approver, the inbox's receipt-time index); without the county era's tables too
    when `county_era` is False (the 3686c89 release)."""
    old = MetaData()
    for table in _without_relay_contract(town_metadata).sorted_tables:
        if table.name in TOWN_0004_TABLES:
            continue
        if county_era or table.name not in COUNTY_ERA_TABLES:
            copy = table.to_metadata(old)
            for column in [c for c in copy.columns if (copy.name, c.name) in TOWN_0003_COLUMNS | TOWN_0004_COLUMNS]:
                copy._columns.remove(column)
            for index in [i for i in copy.indexes if i.name == "ix_town_matter_received"]:
                copy.indexes.discard(index)
    return old


# What the relay-contract revisions (town_0006, hub_0005) added to the relay tables.
RELAY_CONTRACT_TABLES = frozenset({"request_nonce"})
RELAY_CONTRACT_COLUMNS = frozenset({("agent_key", "enrolled_from"), ("agent_key", "last_claimed_ms"),
                                    ("agent_key", "claim_floor_ms")})
RELAY_CONTRACT_INDEXES = frozenset({"ix_agent_key_state", "ix_ingest_record_id"})


def _add_relay_contract(engine: Engine) -> None:
    """Today's relay code reads what the relay-contract revisions added; a test that runs it on an
    older schema adds those first (the revisions skip what is there)."""
    from shared.relay.sql_tables import relay_tables

    contract = relay_tables(MetaData(), meta_table_name="unused_meta")
    with engine.begin() as conn:
        present = {c["name"] for c in inspect(conn).get_columns("agent_key")}
        for table, column in sorted(RELAY_CONTRACT_COLUMNS):
            if column not in present:
                conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} "
                                  f"{'VARCHAR(64)' if column == 'enrolled_from' else 'BIGINT'} NOT NULL DEFAULT "
                                  f"{chr(39) * 2 if column == 'enrolled_from' else '0'}"))
    contract.request_nonce.create(engine, checkfirst=True)


def _without_relay_contract(models: MetaData) -> MetaData:
    """`models` as they were before the relay-contract revisions."""
    old = MetaData()
    for table in models.sorted_tables:
        if table.name in RELAY_CONTRACT_TABLES:
            continue
        copy = table.to_metadata(old)
        for column in [c for c in copy.columns if (copy.name, c.name) in RELAY_CONTRACT_COLUMNS]:
            copy._columns.remove(column)
        for index in [i for i in copy.indexes if i.name in RELAY_CONTRACT_INDEXES]:
            copy.indexes.discard(index)
    return old


def _released_town_metadata() -> MetaData:
    """The township's own tables as the 3686c89 release created them (`test_revision_town_0001_…` checks)."""
    return _town_0002_metadata(county_era=False)


TOWN_0003_COLUMNS = frozenset({("refusal_register", "refusal_kind"), ("refusal_register", "approved_by")})
# What town_0004 added: sign-in throttled by login name and address together.
TOWN_0004_COLUMNS = frozenset({("login_failure", "client_address"), ("login_failure", "account_locked_until_ms")})
TOWN_0004_TABLES = frozenset({"login_success"})
# What town_0005 (and hub_0004) added: the written documents' numbering and archive.
DOCUMENT_TABLES = frozenset({"document_sequence", "issued_document"})
RECEIVED_DOCUMENT_TABLES = frozenset({"received_document"})
# town_0010: the front desk (window intake, registers, appointments, AB posts, the queue).
FRONT_DESK_TABLES = frozenset({"window_intake", "desk_case", "desk_event", "appointment", "post", "absence", "queue_ticket"})
# town_0009: 好差评 and 督查 (evaluations, tokens, 回访 findings, overdue records, staff notices).
EVALUATION_TABLES = frozenset({"evaluation", "evaluation_token", "follow_up_finding", "overdue_record", "staff_notice"})


def _create_console_tables_before_0004(engine: Engine) -> None:
    """The console's tables as `create_console_tables` made them before town_0004 (no address throttle)."""
    from shared.console.store import metadata as console_metadata

    old = MetaData()
    for table in console_metadata.sorted_tables:
        if table.name not in TOWN_0004_TABLES:
            copy = table.to_metadata(old)
            for column in [c for c in copy.columns if (copy.name, c.name) in TOWN_0004_COLUMNS]:
                copy._columns.remove(column)
    old.create_all(engine)


# What the clock-count revisions (town_0007, hub_0006) added to the deadline tables.
CLOCK_COUNT_TABLES = frozenset({"hop_clock_count", "hop_clock_count_change"})
CLOCK_COUNT_COLUMNS = frozenset({("hop_deadline", "phase"), ("hop_deadline", "phase_until_ms")})
# Added after the release by town_0012 / hub_0012 (applicants' numbers sealed in the SMS queue).
SEALED_SMS_COLUMNS = frozenset({("notification_outbox", "sealed_recipient")})
# What town_0008 (and hub_0007) added: the JSON API's per-staff tokens.
API_TOKEN_TABLES = frozenset({"api_token"})


def _create_deadline_tables_before_clock_counts(engine: Engine) -> None:
    """The deadline tables as `DeadlineStore.create_schema` made them before the kept clock counts (and
    before the SMS queue's sealed numbers)."""
    from shared.deadline_watch.store import metadata as deadline_metadata

    old = MetaData()
    for table in deadline_metadata.sorted_tables:
        if table.name not in CLOCK_COUNT_TABLES:
            copy = table.to_metadata(old)
            for column in [c for c in copy.columns
                           if (copy.name, c.name) in CLOCK_COUNT_COLUMNS | SEALED_SMS_COLUMNS]:
                copy._columns.remove(column)
            for index in [i for i in copy.indexes if i.name == "ix_hop_deadline_phase_until"]:
                copy.indexes.remove(index)
    old.create_all(engine)


def _open_as_released(url: str) -> TownStore:
    """What `open_town_store` did before migrations: `create_all` of the released tables."""
    engine = relay_engine(url)
    _released_town_metadata().create_all(engine)
    _add_relay_contract(engine)
    return TownStore(engine)


def _file_and_handle(app: TownApp, village: VillageDevice) -> list[str]:
    """Real rows through the real code: matters filed, classified, a sign-off; clocks and history."""
    app.handling.documents = None   # the releases these databases stand for issued no written documents (town_0005)
    first = village.file("MZ-003")
    app.handling.classify(first, MatterKind.PROMISED, actor=OPERATOR)
    second = village.file("MZ-001")
    app.handling.classify(second, MatterKind.REPORTED, actor=OPERATOR)
    third = village.file("MZ-003")
    return [first, second, third]


def _link_and_sync(url: str, signer: Signer, clock: FakeClock, county_: County) -> TownApp:
    """Link the township at `url` to `county_` and sync until its link key is approved (the county-era tables at work)."""
    link_signer = Signer.generate()
    link_county(url, link_signer, address=county_.address, county_public_key=county_.app.signer.public_key,
                township_code="T01", township_name="青石镇")
    app = build_town(url, signer, clock=clock, calendar=WorkingCalendar(), link_signer=link_signer)
    assert app.county_link is not None
    client = RelayClient(county_.address, app.county_link.outbox, link_signer, clock,
                         limits=ClientLimits(push_deadline_s=5, unary_deadline_s=3),
                         policy=RetryPolicy(initial_s=0.05, cap_s=0.5), peer_label_zh="县级服务器")
    app.county_link.client = client
    try:
        client.sync_once()
        county_.app.store.approve(link_signer.key_id, by="chen", now_ms=0)
        client.sync_once()
        app.county_link.fold()
    finally:
        client.stop()
    assert app.county_link.outbox.pending_count() == 0
    return app


# ---------------------------------------------------------------- models == head == create_all


@pytest.mark.parametrize(("store_name", "db"), STORE_BACKENDS)
def test_the_head_revision_is_what_the_models_say(request: pytest.FixtureRequest, tmp_path: Path,
                                                 engines: list[Engine], store_name: str, db: str) -> None:
    store = STORES[store_name]
    engine = _engine(engines, _url_factory(request, tmp_path, db)(store_name))
    result = upgrade_to_head(engine, store)
    assert result.before is None and result.after == head_revision(store) and result.stamped is None
    diff = _model_diff(engine, store)
    assert diff == [], (f"the models and the head migration of the {store_name} store differ; add a revision "
                        f"under {store.script_location / 'versions'} with these changes: {diff}")


@pytest.mark.parametrize(("store_name", "db"), STORE_BACKENDS)
def test_a_migrated_database_is_exactly_what_create_all_made_before_migrations(
        request: pytest.FixtureRequest, tmp_path: Path, engines: list[Engine], store_name: str, db: str) -> None:
    store = STORES[store_name]
    new_url = _url_factory(request, tmp_path, db)
    migrated, created = _engine(engines, new_url("migrated")), _engine(engines, new_url("created"))
    upgrade_to_head(migrated, store)
    _models(store).create_all(created)
    assert _schema(migrated) == _schema(created)


def test_revision_town_0001_is_the_released_township_schema(new_url: UrlFactory, engines: list[Engine]) -> None:
    at_0001, released = _engine(engines, new_url("at_0001")), _engine(engines, new_url("released"))
    _migrate_to(at_0001, TOWN_MIGRATIONS, "town_0001")
    _released_town_metadata().create_all(released)
    _create_deadline_tables_before_clock_counts(released)
    _create_console_tables_before_0004(released)
    assert _tables(at_0001) - {"alembic_version"} == RELEASED_TOWN_TABLES
    assert _schema(at_0001) == _schema(released)


# ---------------------------------------------------------------- the township


def test_a_township_at_town_0001_with_matters_upgrades_keeps_every_row_and_works(
        new_url: UrlFactory, engines: list[Engine], clock: FakeClock, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    url = new_url("town")
    signer = Signer.generate()

    def open_at_0001(db_url: str) -> TownStore:
        engine = relay_engine(db_url)
        _migrate_to(engine, TOWN_MIGRATIONS, "town_0001")
        _add_relay_contract(engine)
        return TownStore(engine)

    with monkeypatch.context() as patched:
        patched.setattr(town_center.bootstrap, "open_town_store", open_at_0001)
        app = township(url, signer=signer)
        village = VillageDevice(app)
        matters = _file_and_handle(app, village)
        create_console_tables(app.store.engine)
        with app.store.engine.begin() as conn:
            conn.execute(staff.insert().values(staff_id="wang", display_name="王芳", role="operator", password_hash="x",
                                               disabled=False, created_at_ms=1, password_changed_at_ms=1))
        app.close()
    probe = _engine(engines, url)
    assert _version(probe) == ["town_0001"] and not COUNTY_ERA_TABLES & _tables(probe)
    before = _row_counts(probe)
    assert before["town_matter"] == 3 and before["hop_deadline"] >= 2 and before["staff"] == 1 and before["ingest_log"] == 3

    app = township(url, signer=signer, start_at=clock.now())
    try:
        assert _version(probe) == [head_revision(TOWN_MIGRATIONS)] and COUNTY_ERA_TABLES <= _tables(probe)
        assert ({name: n for name, n in _row_counts(probe).items() if name in before and name not in CLOCK_COUNT_TABLES}
                == {name: n for name, n in before.items() if name not in CLOCK_COUNT_TABLES})
        assert _model_diff(probe, TOWN_MIGRATIONS) == []
        # The same laptop goes on with its chain; the old matters are all there and can be handled.
        village.app = app
        matters.append(village.file("MZ-003"))
        assert {line.matter_id for line in app.handling.inbox()} >= {matters[2], matters[3]}
        app.handling.classify(matters[2], MatterKind.IMMEDIATE, actor=OPERATOR)
        assert app.handling.page(matters[0]).matter.kind is MatterKind.PROMISED
    finally:
        app.close()

    # And the tables town_0002 added carry the township's new link to a county.
    hub_ = county(f"sqlite:///{tmp_path / 'county.db'}", clock)
    try:
        linked = _link_and_sync(url, signer, clock, hub_)
        try:
            [key] = [k for k in hub_.app.store.keys() if k.info.township_code == "T01"]
            assert key.state is KeyState.APPROVED
            counts = _row_counts(probe)
            assert counts["county_ledger"] >= 1 and counts["county_receipt"] >= 1
        finally:
            linked.close()
    finally:
        hub_.close()


def test_a_township_made_before_migrations_is_stamped_upgraded_and_keeps_working(
        new_url: UrlFactory, engines: list[Engine], clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    url = new_url("town")
    signer = Signer.generate()
    with monkeypatch.context() as patched:
        patched.setattr(town_center.bootstrap, "open_town_store", _open_as_released)
        app = township(url, signer=signer)     # the released township never opened its console here
        village = VillageDevice(app)
        matters = _file_and_handle(app, village)
        app.close()
    probe = _engine(engines, url)
    assert "alembic_version" not in _tables(probe)
    assert _tables(probe) - CLOCK_COUNT_TABLES - RELAY_CONTRACT_TABLES == RELEASED_TOWN_TABLES - {"staff", "staff_session", "login_failure"}
    before = _row_counts(probe)

    app = township(url, signer=signer, start_at=clock.now())
    try:
        assert _version(probe) == [head_revision(TOWN_MIGRATIONS)]
        assert ({name: n for name, n in _row_counts(probe).items() if name in before and name not in CLOCK_COUNT_TABLES}
                == {name: n for name, n in before.items() if name not in CLOCK_COUNT_TABLES})
        # Stamped, not re-created: the console's tables come from its own create call, as before.
        create_console_tables(app.store.engine)
        app.deadlines.create_schema()
        assert _model_diff(probe, TOWN_MIGRATIONS) == []
        village.app = app
        village.file("MZ-003")
        assert len(app.handling.inbox()) >= 2 and app.handling.page(matters[1]).matter.kind is MatterKind.REPORTED
    finally:
        app.close()


def test_a_township_of_the_county_era_made_before_migrations_is_stamped_then_upgraded_to_head(
        new_url: UrlFactory, engines: list[Engine]) -> None:
    url = new_url("town")
    engine = _engine(engines, url)
    _town_0002_metadata().create_all(engine)        # what open_town_store + create_schema + console did just before
    _create_deadline_tables_before_clock_counts(engine)
    _create_console_tables_before_0004(engine)
    schema = _schema(engine)
    result = upgrade_to_head(engine, TOWN_MIGRATIONS)
    head = head_revision(TOWN_MIGRATIONS)
    assert result.stamped == "town_0002" and result.after == head and _version(engine) == [head]
    assert set(_schema(engine)) == set(schema) | TOWN_0004_TABLES | CLOCK_COUNT_TABLES | RELAY_CONTRACT_TABLES \
        | DOCUMENT_TABLES | API_TOKEN_TABLES | FRONT_DESK_TABLES | EVALUATION_TABLES | RECEIVED_DOCUMENT_TABLES
    again = upgrade_to_head(engine, TOWN_MIGRATIONS)
    assert again.before == again.after and again.stamped is None


def test_two_township_processes_opening_one_fresh_postgres_database_at_once_both_succeed(
        postgres_cluster: PostgresCluster, engines: list[Engine]) -> None:
    script = (
        "import logging, sys\n"
        "logging.basicConfig(level=logging.INFO, stream=sys.stderr)\n"
        "from shared.calendar import WorkingCalendar\n"
        "from shared.console import create_console_tables\n"
        "from shared.deadline_watch.store import DeadlineStore\n"
        "from town_center.store import open_town_store\n"
        "print('ready', flush=True)\n"
        "sys.stdin.readline()\n"
        "store = open_town_store(sys.argv[1])\n"
        "DeadlineStore(store.engine, WorkingCalendar()).create_schema()\n"
        "create_console_tables(store.engine)\n"
        "store.close()\n"
        "print('opened', flush=True)\n"
    )
    for _round in range(3):
        url = postgres_cluster.create_database(f"mig_race_{uuid.uuid4().hex[:8]}")
        procs = [subprocess.Popen([sys.executable, "-c", script, url], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        try:
            for p in procs:       # both have imported everything: now they open at the same moment
                assert p.stdout is not None and p.stdout.readline().strip() == "ready"
            for p in procs:
                assert p.stdin is not None
                p.stdin.write("go\n")
                p.stdin.flush()
            outcomes = [p.communicate(timeout=120) for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
        for p, (out, err) in zip(procs, outcomes, strict=True):
            assert p.returncode == 0 and out.strip() == "opened", err
        assert sum("upgrading schema" in err for _, err in outcomes) == 1     # one migrated, one found head
        engine = _engine(engines, url)
        assert _version(engine) == [head_revision(TOWN_MIGRATIONS)] and _model_diff(engine, TOWN_MIGRATIONS) == []


def test_threads_opening_one_fresh_township_database_at_once_all_succeed(new_url: UrlFactory, engines: list[Engine]) -> None:
    url = new_url("town")
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def open_once() -> None:
        try:
            start.wait()
            open_town_store(url).close()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=open_once) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert _version(_engine(engines, url)) == [head_revision(TOWN_MIGRATIONS)]


# ---------------------------------------------------------------- the county


def test_a_county_made_before_migrations_is_stamped_and_keeps_working(
        new_url: UrlFactory, engines: list[Engine], clock: FakeClock, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    url = new_url("county")
    signer = Signer.generate()

    def open_as_before(db_url: str, *, now_ms=None) -> HubStore:
        engine = relay_engine(db_url)
        from hub.store.tables import metadata as hub_metadata
        hub_metadata.create_all(engine)
        return HubStore(engine, now_ms=now_ms)

    with monkeypatch.context() as patched:
        patched.setattr(hub.bootstrap, "open_hub_store", open_as_before)
        hub_ = county(url, clock, signer=signer)
        try:
            _link_and_sync(f"sqlite:///{tmp_path / 'town.db'}", Signer.generate(), clock, hub_).close()
        finally:
            hub_.close()
    probe = _engine(engines, url)
    assert "alembic_version" not in _tables(probe)
    before = _row_counts(probe)
    assert before["agent_key"] == 1 and before["ingest_log"] >= 1

    hub_ = county(url, clock, signer=signer)
    try:
        assert _version(probe) == [head_revision(HUB_MIGRATIONS)]
        assert ({name: n for name, n in _row_counts(probe).items() if name in before and name not in CLOCK_COUNT_TABLES}
                == {name: n for name, n in before.items() if name not in CLOCK_COUNT_TABLES})
        create_console_tables(hub_.app.store.engine)
        assert _model_diff(probe, HUB_MIGRATIONS) == []
        [key] = hub_.app.store.keys()
        assert key.state is KeyState.APPROVED and key.info.township_code == "T01"
        # A second township links and syncs against the upgraded county.
        _link_and_sync(f"sqlite:///{tmp_path / 'town2.db'}", Signer.generate(), clock, hub_).close()
        assert len(hub_.app.store.keys(KeyState.APPROVED)) == 2
    finally:
        hub_.close()


# ---------------------------------------------------------------- the village laptop


def _request_form() -> RequestForm:
    item = next(i for i in load_catalog() if i.decided_by.value == "township")
    return RequestForm(applicant_name="李桂兰", id_number=with_check_char("43052419480312002"), phone="13907310001",
                       address="东山村三组 12 号", catalog_code=item.code, materials_brought=[m.id for m in item.materials],
                       authorization_method="drawn_signature", authorization_evidence=SIGNATURE_PNG)


def test_a_laptop_database_made_before_migrations_is_stamped_and_keeps_working(
        tmp_path: Path, engines: list[Engine], monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "agent"
    with monkeypatch.context() as patched:
        # What the laptop's store did before migrations: create_all of its tables.
        patched.setattr(village_store, "upgrade_to_head", lambda engine, _store: village_store.metadata.create_all(engine))
        # ... and it issued no numbered documents with a filing (it had no tables for them).
        from village_agent.receipt import VillageDocuments

        patched.setattr(VillageDocuments, "issue_at_filing", lambda self, conn, matter_id: [])
        make_agent(root)
        service = open_agent(root, PASSPHRASE, FakeClock(MONDAY_9AM))
        filed = service.file_request(_request_form())
        service.store.close()
    probe = _engine(engines, f"sqlite:///{Paths(root).database}")
    assert "alembic_version" not in _tables(probe)
    before = _row_counts(probe)
    assert before["ledger"] == 2 and before["matter"] == 1

    service = open_agent(root, PASSPHRASE, FakeClock(MONDAY_9AM + dt.timedelta(hours=1)))
    try:
        assert _version(probe) == [head_revision(VILLAGE_MIGRATIONS)]
        assert ({name: n for name, n in _row_counts(probe).items() if name in before and name not in CLOCK_COUNT_TABLES}
                == {name: n for name, n in before.items() if name not in CLOCK_COUNT_TABLES})
        assert _model_diff(probe, VILLAGE_MIGRATIONS) == []
        assert service.store.matter_state(filed.matter_id).catalog_code == _request_form().catalog_code
        again = service.file_request(_request_form())
        assert again.seq == filed.seq + 1        # the chain goes on where it was
    finally:
        service.store.close()


# ---------------------------------------------------------------- refusals


def test_a_database_from_a_newer_version_is_refused_and_left_as_it_was(new_url: UrlFactory, engines: list[Engine]) -> None:
    url = new_url("town")
    open_town_store(url).close()
    engine = _engine(engines, url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'town_0099'"))
    with pytest.raises(MigrationError, match="town_0099"):
        open_town_store(url)
    assert _version(engine) == ["town_0099"] and _model_diff(engine, TOWN_MIGRATIONS) == []


@pytest.mark.parametrize("stamped", [True, False])
def test_another_tiers_database_is_refused_and_left_as_it_was(new_url: UrlFactory, engines: list[Engine], stamped: bool) -> None:
    url = new_url("county")
    engine = _engine(engines, url)
    if stamped:
        upgrade_to_head(engine, HUB_MIGRATIONS)
    else:
        _models(HUB_MIGRATIONS).create_all(engine)
    schema = _schema(engine)
    with pytest.raises(MigrationError):
        open_town_store(url)
    assert _schema(engine) == schema
