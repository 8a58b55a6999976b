"""The SMS queue never holds an applicant's mobile number in clear: the township seals it to its own key
(as the applicant details are sealed), the row's JSON carries only the masked number, the relay opens it
to call the gateway, and afterwards the sealed box is dropped. So no row version anywhere, not PostgreSQL's
old versions kept until VACUUM, nor a WAL segment, has the number. Rows queued by an older version (number
in the JSON) are sealed or masked when the township starts, and their old versions rewritten away.

A real township (`town_center.bootstrap.build_app`) on a real SQLite file and on a real PostgreSQL
cluster (`tests/pg.py`); the files are scanned byte by byte after a checkpoint."""
from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from shared.calendar import WorkingCalendar
from shared.deadline_watch.errors import DeadlineStoreError
from shared.deadline_watch.notify import Notification, OutboxRelay, mask_phone, result_ready_sms
from shared.deadline_watch.store import DeadlineStore, make_engine
from shared.domain.catalog import MatterKind
from tests.pg import PostgresCluster
from tests.town_fixtures import OPERATOR, VillageDevice, township
from town_center.bootstrap import TownApp


class Gateway:
    """The SMS gateway's side: what it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[Notification] = []

    def send(self, notification: Notification) -> None:
        self.sent.append(notification)

    def record_supervision(self, notification: Notification) -> None:
        pass


def _number() -> str:
    return "139" + "".join(random.choice("0123456789") for _ in range(8))


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, list[Path], PostgresCluster | None]]:
    """(url, the files that hold the database, the cluster on PostgreSQL)."""
    if request.param == "sqlite":
        path = tmp_path / "town.db"
        yield f"sqlite:///{path}", [path, path.with_name("town.db-wal")], None
    else:
        cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
        yield cluster.create_database(), [cluster.data_dir], cluster


def _files(roots: list[Path]) -> Iterator[Path]:
    for root in roots:
        if root.is_file():
            yield root
        elif root.is_dir():
            yield from (p for p in root.rglob("*") if p.is_file())


def _found_in(roots: list[Path], number: str) -> list[str]:
    needles = (number.encode(), number.encode("utf-16-le"))
    return [str(p) for p in _files(roots) if any(n in p.read_bytes() for n in needles)]


def _flush(app: TownApp, cluster: PostgresCluster | None) -> None:
    """Everything committed reaches the files: PostgreSQL's shared buffers are written out."""
    if cluster is not None:
        with app.store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("CHECKPOINT")


def _rows(app: TownApp) -> list[tuple[str, str, bytes | None]]:
    with app.store.engine.connect() as conn:
        return [(r.status, r.payload_json, r.sealed_recipient) for r in conn.execute(text(
            "SELECT status, payload_json, sealed_recipient FROM notification_outbox WHERE audience = 'applicant'"))]


def test_an_applicants_number_is_sealed_in_the_queue_opened_only_to_send_and_then_dropped(
        backend: tuple[str, list[Path], PostgresCluster | None]) -> None:
    url, files, cluster = backend
    number = _number()
    app = township(url)
    try:
        matter_id = VillageDevice(app).file("MZ-003", phone=number)
        app.intake.run_once()
        app.handling.classify(matter_id, MatterKind.IMMEDIATE, actor=OPERATOR)
        app.handling.record_result(matter_id, approved=True, summary="已办结", actor=OPERATOR)

        [(status, payload, sealed)] = _rows(app)
        assert status == "pending" and sealed and number.encode() not in bytes(sealed)
        assert json.loads(payload)["recipient"] == mask_phone(number) and number not in payload
        _flush(app, cluster)
        assert _found_in(files, mask_phone(number)), "the scan must reach the row it looks in"
        assert _found_in(files, number) == []

        gateway = Gateway()
        report = OutboxRelay(app.deadlines, gateway, gateway, owner="test").drain(app.clock.now())
        assert report.sent == 1 and [n.recipient for n in gateway.sent] == [number]   # the gateway got it whole
        [(status, payload, sealed)] = _rows(app)
        assert status == "sent" and sealed is None and json.loads(payload)["recipient"] == mask_phone(number)
        _flush(app, cluster)
        assert _found_in(files, number) == []
    finally:
        app.close()


def test_numbers_queued_by_an_older_version_are_sealed_or_masked_when_the_township_starts(
        backend: tuple[str, list[Path], PostgresCluster | None]) -> None:
    url, files, cluster = backend
    waiting, sent = _number(), _number()
    app = township(url)
    signer, start = app.signer, app.clock.now()
    # As the previous version queued them: the number in the JSON, nothing sealed.
    with app.store.engine.begin() as conn:
        for key, number, status in (("result-ready:old-1", waiting, "pending"), ("result-ready:old-2", sent, "sent")):
            payload = result_ready_sms(matter_id=key[-5:], phone=number, pickup_place_zh="2号窗口", key=key).to_json_dict()
            conn.execute(text(
                "INSERT INTO notification_outbox (idempotency_key, kind, audience, payload_json, status, attempts,"
                " created_at_ms, next_attempt_at_ms) VALUES (:k, 'result_ready', 'applicant', :p, :s, 0, 0, 0)"),
                {"k": key, "p": json.dumps(payload, ensure_ascii=False), "s": status})
    app.close()

    app = township(url, signer=signer, start_at=start)
    try:
        rows = {json.loads(p)["idempotency_key"]: (s, p, sealed) for s, p, sealed in _rows(app)}
        assert rows["result-ready:old-1"][2] is not None and rows["result-ready:old-2"][2] is None
        assert all(waiting not in p and sent not in p for _s, p, _sealed in rows.values())
        if cluster is None:
            roots = files
        else:
            # The table's own files (the cluster's WAL from before the upgrade recycles with checkpoints).
            with app.store.engine.connect() as conn:
                relation = conn.execute(text("SELECT pg_relation_filepath('notification_outbox')")).scalar_one()
            roots = [cluster.data_dir / str(relation)]
        _flush(app, cluster)
        assert _found_in(roots, mask_phone(waiting)), "the scan must reach the rows it looks in"
        assert _found_in(roots, waiting) == [] and _found_in(roots, sent) == []

        gateway = Gateway()
        OutboxRelay(app.deadlines, gateway, gateway, owner="test").drain(app.clock.now())
        assert [n.recipient for n in gateway.sent] == [waiting]
    finally:
        app.close()


def test_without_the_tiers_key_an_applicants_sms_is_refused_not_kept_in_clear(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'county.db'}")
    try:
        store = DeadlineStore(engine, WorkingCalendar())
        store.create_schema()
        with pytest.raises(DeadlineStoreError, match="加密"):
            store.enqueue_notification(result_ready_sms(matter_id="m-1", phone=_number(), pickup_place_zh="窗口"),
                                       now=dt.datetime(2026, 12, 1, tzinfo=dt.UTC))
        assert store.outbox_counts() == {}
    finally:
        engine.dispose()
