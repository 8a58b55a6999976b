"""我的评价 on the village laptop in real Chromium: the figures a real township signed down for the agent
(counts per month, satisfaction, 差评 with reason and 整改 status), with nothing that says who rated."""
from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import RunningUI


def _township_figures(tmp_path: Path) -> tuple[list[object], list[object]]:
    """A real township rates three of the agent's matters and signs his figures down to his key."""
    from shared.domain.catalog import MatterKind
    from shared.domain.evaluation import BadReason, Level, Rating
    from shared.domain.handling import Role
    from shared.wire.v1 import records_pb2
    from tests.town_fixtures import DIRECTOR, OPERATOR, VillageDevice, township
    from town_center.evaluation import Evaluations
    from town_center.evaluation_figures import FiguresPublisher

    town = township(f"sqlite:///{tmp_path / 'town.db'}")
    try:
        evaluations = Evaluations(town.handling)
        agent = VillageDevice(town)
        for level, reason in ((Level.VERY_SATISFIED, None), (Level.SATISFIED, None),
                              (Level.VERY_DISSATISFIED, BadReason.ATTITUDE)):
            matter_id = agent.file("MZ-003", phone="13800001111")
            town.handling.classify(matter_id, MatterKind.IMMEDIATE, actor=OPERATOR)
            town.handling.record_result(matter_id, approved=True, summary="已发放", actor=OPERATOR)
            evaluations.rate_with_token(evaluations.issue_token(matter_id, by="wang"), Rating(level, reason, "说话太冲"
                                        if reason else ""))
        (bad,) = [v for v in evaluations.views(role=Role.DIRECTOR) if v.level.is_bad]
        evaluations.assign_rectification(bad.evaluation_id, "wang", actor=DIRECTOR)
        assert FiguresPublisher(town).run() == 1
        envelopes, _ = town.store.read(agent.signer.key_id, 0, 10_000)
        records = [records_pb2.Record.FromString(e.payload) for e in envelopes]
        keep = [(e, r) for e, r in zip(envelopes, records, strict=True) if r.WhichOneof("body") == "agent_figures"]
        return [e for e, _ in keep], [r for _, r in keep]
    finally:
        town.close()


def test_the_agent_sees_his_own_figures_and_bad_review_status_but_never_who_rated(
        page, ui_server: RunningUI, artifacts: Path, tmp_path: Path) -> None:
    page.goto(f"{ui_server.base_url}/my-figures")
    assert "还没有收到评价统计" in page.locator("#no-figures").inner_text()
    envelopes, records = _township_figures(tmp_path)
    ui_server.service.store.apply_down(envelopes, records, 0)
    page.goto(f"{ui_server.base_url}/")
    page.click("nav >> text=我的评价")
    page.wait_for_url(f"{ui_server.base_url}/my-figures")
    months = page.locator("#my-months tbody tr")
    assert months.count() == 1
    cells = [c.strip() for c in months.first.locator("td").all_inner_texts()]
    # 非常满意 1, 满意 1, 基本满意 0, 不满意 0, 非常不满意 1; three rated; (100 + 80 + 0) / 3
    assert cells[1:] == ["1", "1", "0", "0", "1", "3", "60.0", "0"]
    bad = [c.strip() for c in page.locator("#my-bad-reviews tbody tr").first.locator("td").all_inner_texts()]
    assert bad[2:4] == ["态度", "待整改"] and bad[4] != "—"
    text = page.locator("main, body").first.inner_text()
    assert "说话太冲" not in text and "138" not in text and "评价人" in text   # the page says the evaluator is kept secret
    page.screenshot(path=str(artifacts / "20-my-figures.png"), full_page=True)
