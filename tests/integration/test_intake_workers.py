"""The intake folds several villages at once (a batch per author per turn, on several threads) and
still applies each village's records exactly once and in its chain order."""
from __future__ import annotations

import uuid
from pathlib import Path

from sqlalchemy import func, select

from shared.clock import to_unix_ms
from shared.envelope import sign_next
from shared.wire.v1 import records_pb2
from tests.town_fixtures import VillageDevice, township
from town_center.intake import Intake
from town_center.store.matter_tables import intake_cursor, matter_event, town_matter
from town_center.store.tables import agent_key


def _filing(village: VillageDevice) -> tuple[str, records_pb2.Record]:
    record = records_pb2.Record()
    body = record.request_filed
    body.matter_id, body.catalog_code, body.village_code = str(uuid.uuid4()), "MZ-001", village.village_code
    body.intake_outcome = records_pb2.INTAKE_OUTCOME_ACCEPT
    return body.matter_id, record


def _withdrawal(matter_id: str) -> records_pb2.Record:
    record = records_pb2.Record()
    record.withdrawn.matter_id, record.withdrawn.reason = matter_id, "申请人不再办理"
    return record


def _push(village: VillageDevice, records: list[records_pb2.Record]) -> None:
    """One push of many records, as a laptop's batch arrives (no intake run in between)."""
    envelopes = []
    for record in records:
        signed = sign_next(village.signer, record, village.tip, to_unix_ms(village.app.clock.now()))
        envelopes.append(signed.envelope)
        village.tip = signed.tip
    response = village.app.core.push(envelopes)
    assert len(response.receipts) == len(envelopes), response.refusals[:1]


def _villages_with_backlog(app, count: int, filings: int) -> tuple[list[VillageDevice], list[str], list[str]]:
    """`count` villages, each with `filings` filings (more than one intake batch) and then the
    withdrawal of its first matter, none folded yet."""
    villages, matter_ids, withdrawn = [], [], []
    for v in range(count):
        village = VillageDevice(app, village_code=f"V{v + 1:03d}")
        made = [_filing(village) for _ in range(filings)]
        _push(village, [r for _, r in made] + [_withdrawal(made[0][0])])
        villages.append(village)
        matter_ids += [m for m, _ in made]
        withdrawn.append(made[0][0])
    return villages, matter_ids, withdrawn


def test_a_pass_on_several_threads_makes_every_matter_once_and_applies_each_villages_records_in_order(tmp_path: Path) -> None:
    app = township(f"sqlite:///{tmp_path / 'town.db'}")
    try:
        villages, matter_ids, withdrawn = _villages_with_backlog(app, 5, 260)   # 260 > one 250-record batch
        intake = Intake(app.handling, workers=4)
        assert intake.run_once() == 5 * 261
        with app.store.engine.connect() as conn:
            made = [m for (m,) in conn.execute(select(town_matter.c.matter_id))]
            assert sorted(made) == sorted(matter_ids)
            # Each withdrawal came after its filing in the chain: it applied, and was not noted as failed.
            actions = {m: [a for (a,) in conn.execute(select(matter_event.c.action).where(matter_event.c.matter_id == m)
                                                      .order_by(matter_event.c.event_id))] for m in withdrawn}
            assert all(a == ["filed", "withdrawn"] for a in actions.values()), actions
            cursors = dict(conn.execute(select(intake_cursor.c.author_key_id, intake_cursor.c.seq)).all())
            tips = dict(conn.execute(select(agent_key.c.key_id, agent_key.c.tip_seq)).all())
        assert cursors == {v.signer.key_id: 261 for v in villages} == tips
        assert intake.run_once() == 0   # nothing left: a second pass repeats nothing
    finally:
        app.close()


def test_several_threads_and_one_thread_fold_the_same_records_into_the_same_matters(tmp_path: Path) -> None:
    outcomes = []
    for workers in (1, 3):
        app = township(f"sqlite:///{tmp_path / f'town{workers}.db'}")
        try:
            _villages_with_backlog(app, 4, 30)
            assert Intake(app.handling, workers=workers).run_once() == 4 * 31
            with app.store.engine.connect() as conn:
                outcomes.append((
                    int(conn.execute(select(func.count()).select_from(town_matter)).scalar_one()),
                    sorted(conn.execute(select(matter_event.c.action, func.count()).group_by(matter_event.c.action)).all()),
                    sorted(conn.execute(select(town_matter.c.stage, func.count()).group_by(town_matter.c.stage)).all())))
        finally:
            app.close()
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0] == 4 * 30


def test_villages_that_push_later_are_folded_from_where_their_cursor_stopped(tmp_path: Path) -> None:
    app = township(f"sqlite:///{tmp_path / 'town.db'}")
    try:
        villages, _, _ = _villages_with_backlog(app, 3, 10)
        intake = Intake(app.handling, workers=4)
        assert intake.run_once() == 3 * 11
        _push(villages[1], [_filing(villages[1])[1] for _ in range(7)])   # only one village has news
        late = VillageDevice(app, village_code="V009")                   # and a village seen for the first time
        _push(late, [_filing(late)[1] for _ in range(4)])
        assert intake.run_once() == 7 + 4
        with app.store.engine.connect() as conn:
            assert int(conn.execute(select(func.count()).select_from(town_matter)).scalar_one()) == 3 * 10 + 7 + 4
            assert conn.execute(select(intake_cursor.c.seq).where(intake_cursor.c.author_key_id == late.signer.key_id)
                                ).scalar_one() == 4
    finally:
        app.close()
