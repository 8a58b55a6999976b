"""好差评 at the township on a real SQLite file: the token printed on the 交付签收单, the villager's one
rating (page or SMS), 代为录入 kept apart, who may see the evaluator, the 差评 loop through 整改, 回访
and 办结, 复核 by the director only, and the provincial feed without personal data."""
from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.domain.catalog import MatterKind
from shared.domain.evaluation import (
    BadReason,
    Channel,
    EvaluationError,
    FollowUpFindings,
    Level,
    Rating,
    RectificationState,
    normalise_token,
)
from shared.domain.handling import Actor, Role
from shared.wire.v1 import records_pb2
from tests.town_fixtures import BACKUP, DIRECTOR, OPERATOR, VillageDevice, township
from town_center.bootstrap import TownApp
from town_center.evaluation import Evaluations
from village_agent.services import lookup_code_hash

SUPERVISOR = Actor("qian", Role.SUPERVISOR)
CODE = "HK7PM-3QW9X"


class Staff:
    """The console's accounts as the handling service sees them: active colleagues by id."""

    names = {"wang": "王芳", "li": "李强", "zhao": "赵主任", "qian": "钱督查"}

    def active_name(self, staff_id: str) -> str | None:
        return self.names.get(staff_id)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'town.db'}"
    cluster = request.getfixturevalue("postgres_cluster")
    return str(cluster.create_database(f"town_{uuid.uuid4().hex[:10]}"))


@pytest.fixture
def town(db_url: str) -> Iterator[TownApp]:
    app = township(db_url)
    app.handling.staff = Staff()
    yield app
    app.close()


@pytest.fixture
def evaluations(town: TownApp) -> Evaluations:
    return Evaluations(town.handling)


def done_matter(town: TownApp, village: VillageDevice, *, code: str = CODE, phone: str = "13800001111") -> str:
    matter_id = village.file("MZ-003", lookup_hash=lookup_code_hash(code), phone=phone)
    town.handling.classify(matter_id, MatterKind.IMMEDIATE, actor=OPERATOR)
    town.handling.record_result(matter_id, approved=True, summary="已发放临时救助金", actor=OPERATOR)
    return matter_id


def test_the_villager_rates_once_with_the_token_and_a_second_rating_is_refused(town: TownApp, evaluations: Evaluations) -> None:
    matter_id = done_matter(town, VillageDevice(town))
    token = evaluations.issue_token(matter_id, by="wang")
    assert normalise_token(token) == token
    rated = evaluations.rate_with_token(token.lower().replace("-", ""), Rating(Level.SATISFIED), raw_code=CODE)
    assert rated.level is Level.SATISFIED and rated.catalog_name
    with pytest.raises(EvaluationError, match="一次一评"):
        evaluations.rate_with_token(token, Rating(Level.VERY_DISSATISFIED, BadReason.ATTITUDE))
    with pytest.raises(EvaluationError, match="一次一评"):
        evaluations.issue_token(matter_id, by="wang")


def test_a_reprinted_slip_replaces_the_token_and_a_wrong_code_is_refused(town: TownApp, evaluations: Evaluations) -> None:
    matter_id = done_matter(town, VillageDevice(town))
    first = evaluations.issue_token(matter_id, by="wang")
    second = evaluations.issue_token(matter_id, by="wang")
    with pytest.raises(EvaluationError, match="取代"):
        evaluations.rate_with_token(first, Rating(Level.SATISFIED))
    with pytest.raises(EvaluationError, match="查询码"):
        evaluations.rate_with_token(second, Rating(Level.SATISFIED), raw_code="ABCDE-FGHJK")
    evaluations.rate_with_token(second, Rating(Level.SATISFIED), raw_code=CODE)


def test_no_token_before_the_result_exists(town: TownApp, evaluations: Evaluations) -> None:
    matter_id = VillageDevice(town).file("MZ-003")
    with pytest.raises(EvaluationError, match="办理结果"):
        evaluations.issue_token(matter_id, by="wang")


def test_the_link_carries_the_token_and_a_qr_code_of_itself(town: TownApp, evaluations: Evaluations) -> None:
    matter_id = done_matter(town, VillageDevice(town))
    link = evaluations.evaluation_link(matter_id, "https://qingshi.example.cn/", by="wang", code=CODE.lower())
    assert link.url == f"https://qingshi.example.cn/evaluate?t={link.token}&c={CODE}"
    assert link.qr_svg.startswith("<?xml") and "<svg" in link.qr_svg
    evaluations.rate_with_token(link.token, Rating(Level.VERY_SATISFIED))
    other = done_matter(town, VillageDevice(town), code="AB3CD-EF4GH")
    with pytest.raises(EvaluationError, match="评价网址"):
        evaluations.evaluation_link(other, by="wang")
    evaluations.configure(public_url="https://qingshi.example.cn/")
    assert evaluations.evaluation_link(other, by="wang").url.startswith("https://qingshi.example.cn/evaluate?t=")


def test_an_sms_reply_rates_by_token_or_by_lookup_code_only_from_the_applicants_phone(town: TownApp, evaluations: Evaluations) -> None:
    village = VillageDevice(town)
    by_token = done_matter(town, village, code="AB3CD-EF4GH")
    token = evaluations.issue_token(by_token, by="wang")
    assert "感谢" in evaluations.rate_by_sms("+86 139 0000 9999", f"评价 {token} 2")
    by_code = done_matter(town, village, code="HK7PM-3QW9X", phone="138-0000-1111")
    refused = evaluations.rate_by_sms("13900009999", "HK7PM3QW9X 1")
    assert "不正确" in refused
    assert "原因" in evaluations.rate_by_sms("13800001111", "HK7PM-3QW9X 5")
    reply = evaluations.rate_by_sms("13800001111", "HK7PM-3QW9X 5 态度很差")
    assert "整改" in reply
    views = {v.matter_id: v for v in evaluations.views(role=Role.DIRECTOR)}
    assert views[by_code].channel is Channel.SMS and views[by_code].reason is BadReason.ATTITUDE
    assert views[by_code].sms_from_masked == "138****1111"
    assert views[by_token].level is Level.SATISFIED


def test_the_agents_laptop_rating_is_kept_apart_as_entered_on_the_villagers_behalf(town: TownApp, evaluations: Evaluations) -> None:
    village = VillageDevice(town)
    matter_id = done_matter(town, village)
    village.village_record("result_handed_over", matter_id)
    village.village_record("signed_off", matter_id, rating=records_pb2.RATING_VERY_SATISFIED, comment="办得快")
    assert evaluations.import_agent_entered() == 1
    assert evaluations.import_agent_entered() == 0
    token = evaluations.issue_token(matter_id, by="wang")     # the villager's own rating is still open
    evaluations.rate_with_token(token, Rating(Level.BASICALLY_SATISFIED))
    channels = sorted(v.channel.value for v in evaluations.views(role=Role.SUPERVISOR))
    assert channels == ["agent_entered", "qr"]
    mine = evaluations.own_figures("wang")
    assert mine.agent_entered == 1 and mine.by_level[Level.BASICALLY_SATISFIED] == 1
    assert sum(mine.by_level.values()) == 1


def test_only_the_director_and_the_supervisor_see_who_rated(town: TownApp, evaluations: Evaluations) -> None:
    matter_id = done_matter(town, VillageDevice(town))
    evaluations.rate_with_token(evaluations.issue_token(matter_id, by="wang"),
                                Rating(Level.DISSATISFIED, BadReason.EFFICIENCY, "等了很久"))
    for role in (Role.OPERATOR, Role.ADMINISTRATOR):
        with pytest.raises(EvaluationError, match="仅中心主任和督查"):
            evaluations.views(role=role)
    seen = evaluations.views(role=Role.SUPERVISOR)[0]
    assert seen.evaluator_name == "测试村民" and seen.evaluator_phone == "13800001111"
    mine = evaluations.own_figures("wang")
    assert mine.by_level[Level.DISSATISFIED] == 1 and mine.bad_reasons[BadReason.EFFICIENCY] == 1
    text = repr(mine)
    assert matter_id not in text and "测试村民" not in text and "13800001111" not in text


def test_a_bad_review_goes_through_rectification_follow_up_and_closure(town: TownApp, evaluations: Evaluations) -> None:
    matter_id = done_matter(town, VillageDevice(town))
    evaluations.rate_with_token(evaluations.issue_token(matter_id, by="wang"),
                                Rating(Level.VERY_DISSATISFIED, BadReason.ATTITUDE, "窗口态度生硬"))
    (bad,) = evaluations.views(role=Role.DIRECTOR, bad_only=True)
    with pytest.raises(EvaluationError, match="中心主任或督查"):
        evaluations.assign_rectification(bad.evaluation_id, "wang", actor=OPERATOR)
    rect = evaluations.assign_rectification(bad.evaluation_id, "wang", actor=SUPERVISOR)
    # The county's default: 5 working days from Monday 09:00 is the next Monday 09:00.
    assert rect.due_at == town.clock.now() + dt.timedelta(days=7)
    (task,) = evaluations.own_figures("wang").tasks
    assert task["comment"] == "窗口态度生硬" and "matter_id" not in task
    with pytest.raises(EvaluationError, match="整改责任人"):
        evaluations.record_fix(bad.evaluation_id, "已经批评教育", actor=BACKUP)
    evaluations.record_fix(bad.evaluation_id, "已当面致歉并开展文明用语培训", actor=OPERATOR)
    with pytest.raises(EvaluationError, match="回访"):
        evaluations.close(bad.evaluation_id, actor=DIRECTOR)
    findings = FollowUpFindings(reached=True, attitude_ok=True, satisfaction=Level.SATISFIED, suggestion="希望保持")
    with pytest.raises(EvaluationError, match="自己经办"):
        evaluations.record_follow_up(matter_id, findings, actor=OPERATOR)
    evaluations.record_follow_up(matter_id, findings, actor=BACKUP)
    closed = evaluations.close(bad.evaluation_id, actor=DIRECTOR)
    assert closed.state is RectificationState.CLOSED
    # The matter's history (every operator reads it beside the applicant) tells nothing of the rating.
    history = " ".join(e.text_zh for e in town.handling.page(matter_id).events)
    for word in ("差评", "不满意", "态度生硬", "整改", "满意程度"):
        assert word not in history


def test_a_review_marks_a_bad_review_invalid_only_by_the_directors_decision(town: TownApp, evaluations: Evaluations) -> None:
    matter_id = done_matter(town, VillageDevice(town))
    evaluations.rate_with_token(evaluations.issue_token(matter_id, by="wang"),
                                Rating(Level.VERY_DISSATISFIED, BadReason.OTHER, "就是不满意"))
    (bad,) = evaluations.views(role=Role.DIRECTOR, bad_only=True)
    for who in (SUPERVISOR, OPERATOR):
        with pytest.raises(EvaluationError, match="中心主任决定"):
            evaluations.invalidate(bad.evaluation_id, "申请人要求违规办理未果后恶意差评", actor=who)
    with pytest.raises(EvaluationError, match="理由"):
        evaluations.invalidate(bad.evaluation_id, "恶意", actor=DIRECTOR)
    evaluations.invalidate(bad.evaluation_id, "申请人要求违规办理未果后恶意差评", actor=DIRECTOR)
    after = evaluations.view(bad.evaluation_id, role=Role.DIRECTOR)
    assert not after.valid and after.rectification is not None
    assert after.rectification.review_reason == "申请人要求违规办理未果后恶意差评"
    assert after.rectification.reviewed_by == "zhao"
    assert evaluations.own_figures("wang").by_level[Level.VERY_DISSATISFIED] == 0


def test_the_provincial_feed_has_no_personal_data_and_resumes_from_its_cursor(town: TownApp, evaluations: Evaluations) -> None:
    village = VillageDevice(town)
    first = done_matter(town, village, code="AB3CD-EF4GH")
    second = done_matter(town, village, code="HK7PM-3QW9X")
    evaluations.rate_with_token(evaluations.issue_token(first, by="wang"), Rating(Level.VERY_SATISFIED))
    evaluations.rate_with_token(evaluations.issue_token(second, by="wang"),
                                Rating(Level.DISSATISFIED, BadReason.EFFICIENCY, "办理太慢，跑了三趟"))
    rows, cursor = evaluations.feed(0)
    assert [r["level"] for r in rows] == [1, 4] and rows[1]["rectification"] == "pending"
    text = json.dumps(rows, ensure_ascii=False)
    for private in ("测试村民", "13800001111", first, second, "wang", "comment"):
        assert private not in text
    assert evaluations.feed(cursor) == ([], cursor)
    (bad,) = evaluations.views(role=Role.DIRECTOR, bad_only=True)
    evaluations.assign_rectification(bad.evaluation_id, "wang", actor=DIRECTOR)
    moved, cursor2 = evaluations.feed(cursor)
    assert [(r["evaluation_ref"], r["rectification"]) for r in moved] == [(bad.evaluation_id, "open")]
    assert cursor2 > cursor


def test_ratings_arriving_at_once_get_distinct_feed_cursors_in_commit_order(town: TownApp, evaluations: Evaluations) -> None:
    village = VillageDevice(town)
    codes = ["AB3CD-EF4GH", "HK7PM-3QW9X", "JK2MN-PQ3RS", "TU4VW-XY5Z2", "CD6EF-GH7JK", "MN8PQ-RS9TU"]
    tokens = [evaluations.issue_token(done_matter(town, village, code=c), by="wang") for c in codes]
    errors: list[BaseException] = []

    def rate(token: str) -> None:
        try:
            Evaluations(town.handling).rate_with_token(token, Rating(Level.SATISFIED))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=rate, args=(t,)) for t in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    rows, cursor = evaluations.feed(0)
    assert [r["cursor"] for r in rows] == list(range(1, len(codes) + 1)) and cursor == len(codes)


def test_a_bad_review_joins_the_call_back_list_at_once_and_the_weekly_sample_is_still_drawn(
        town: TownApp, evaluations: Evaluations) -> None:
    village = VillageDevice(town)
    codes = ["AB3CD-EF4GH", "HK7PM-3QW9X", "JK2MN-PQ3RS", "TU4VW-XY5Z2"]
    matters = [done_matter(town, village, code=c) for c in codes]
    evaluations.rate_with_token(evaluations.issue_token(matters[0], by="wang"),
                                Rating(Level.DISSATISFIED, BadReason.EFFICIENCY))
    from sqlalchemy import select

    from town_center.store.matter_tables import follow_up_call
    with town.store.engine.connect() as conn:
        listed = set(conn.execute(select(follow_up_call.c.matter_id)).scalars())
    assert listed == {matters[0]}
    count, week = evaluations.draw_follow_ups()
    assert (count, week) == (3, "2026-11-23")          # the sample of the other three, at least 3
    assert evaluations.draw_follow_ups() == (0, "2026-11-23")
