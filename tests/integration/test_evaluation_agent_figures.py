"""Each village agent's own 好差评 figures go down to his laptop only (audience: his key), signed by the
township, as counts and 差评 with reason and 整改 status — never the evaluator or the matter — and again
only when they change. Real SQLite file, the township's real relay core."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.domain.catalog import MatterKind
from shared.domain.evaluation import BadReason, Level, Rating
from shared.domain.handling import Role
from shared.wire.v1 import records_pb2
from tests.town_fixtures import DIRECTOR, OPERATOR, VillageDevice, township
from town_center.bootstrap import TownApp
from town_center.evaluation import Evaluations
from town_center.evaluation_figures import FiguresPublisher


@pytest.fixture
def town(tmp_path: Path) -> Iterator[TownApp]:
    app = township(f"sqlite:///{tmp_path / 'town.db'}")
    yield app
    app.close()


def done(town: TownApp, village: VillageDevice, *, phone: str = "13800001111") -> str:
    matter_id = village.file("MZ-003", phone=phone)
    town.handling.classify(matter_id, MatterKind.IMMEDIATE, actor=OPERATOR)
    town.handling.record_result(matter_id, approved=True, summary="已发放临时救助金", actor=OPERATOR)
    return matter_id


def figures_of(village: VillageDevice) -> list[records_pb2.AgentFigures]:
    return [r.agent_figures for r in village.down_records() if r.WhichOneof("body") == "agent_figures"]


def test_an_agent_gets_his_own_counts_and_bad_reviews_without_who_rated_and_again_only_when_they_change(
        town: TownApp) -> None:
    evaluations = Evaluations(town.handling)
    agent, other = VillageDevice(town, village_code="V001"), VillageDevice(town, village_code="V002")
    good = done(town, agent)
    evaluations.rate_with_token(evaluations.issue_token(good, by="wang"), Rating(Level.VERY_SATISFIED))
    bad = done(town, agent, phone="13900002222")
    evaluations.rate_with_token(evaluations.issue_token(bad, by="wang"),
                                Rating(Level.DISSATISFIED, BadReason.EFFICIENCY, "跑了三趟才办好"))
    entered = done(town, agent)
    agent.village_record("result_handed_over", entered)
    agent.village_record("signed_off", entered, rating=records_pb2.RATING_SATISFIED)
    done(town, other)                                 # the other village has nothing rated

    publisher = FiguresPublisher(town)
    assert publisher.run() == 1
    (mine,) = figures_of(agent)
    assert figures_of(other) == []
    (month,) = mine.months
    assert list(month.level_counts) == [1, 0, 0, 1, 0] and month.agent_entered == 1
    assert month.satisfaction_points == 100 + 30
    (review,) = mine.bad_reviews
    assert (review.catalog_code, review.reason, review.rectification, review.due_at_ms) == ("MZ-003", "efficiency", "pending", 0)
    down = [r for r in agent.down_records() if r.WhichOneof("body") == "agent_figures"][0]
    assert list(down.audience.key_ids) == [agent.signer.key_id]
    wire = down.SerializeToString()
    for secret in (good, bad, entered, "跑了三趟", "13900002222", "13800001111"):
        assert secret.encode() not in wire

    assert publisher.run() == 0 and len(figures_of(agent)) == 1     # nothing changed, nothing sent

    (view,) = [v for v in evaluations.views(role=Role.DIRECTOR) if v.matter_id == bad]
    rect = evaluations.assign_rectification(view.evaluation_id, "wang", actor=DIRECTOR)
    assert publisher.run() == 1
    latest = figures_of(agent)[-1].bad_reviews[0]
    assert latest.rectification == "open" and latest.due_at_ms == int(rect.due_at.timestamp() * 1000)


def test_the_laptops_figures_follow_the_agent_to_his_rotated_key(town: TownApp) -> None:
    evaluations = Evaluations(town.handling)
    agent = VillageDevice(town)
    matter_id = done(town, agent)
    evaluations.rate_with_token(evaluations.issue_token(matter_id, by="wang"), Rating(Level.SATISFIED))
    laptop = agent.rotated()
    assert FiguresPublisher(town).run() >= 1
    (month,) = figures_of(laptop)[-1].months
    assert list(month.level_counts) == [0, 1, 0, 0, 0]


def test_the_intake_loops_pass_runs_at_most_every_fifteen_minutes(town: TownApp) -> None:
    import datetime as dt

    evaluations = Evaluations(town.handling)
    agent = VillageDevice(town)
    first = done(town, agent)
    evaluations.rate_with_token(evaluations.issue_token(first, by="wang"), Rating(Level.SATISFIED))
    publisher = FiguresPublisher(town)
    assert publisher.run_due() == 1
    second = done(town, agent)
    evaluations.rate_with_token(evaluations.issue_token(second, by="wang"), Rating(Level.VERY_SATISFIED))
    assert publisher.run_due() == 0                                    # too soon: waits for the next pass
    town.clock.advance(dt.timedelta(minutes=16))
    assert FiguresPublisher(town).run_due() == 1                       # another process sees the same pace
    assert list(figures_of(agent)[-1].months[0].level_counts) == [1, 1, 0, 0, 0]
