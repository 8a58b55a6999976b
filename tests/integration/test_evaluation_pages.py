"""The 好差评 pages over a real HTTP server (uvicorn on a free loopback port, the console's own
Host/Origin/security middleware) and a real SQLite file: the villager rates with the token from the
QR code on the public page without signing in; the rated operator sees his own figures but not who
rated; the director and the supervisor see the evaluator."""
from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from shared.console import ConsoleAuth, RateLimiter, ScryptParams, create_console_tables
from shared.domain.catalog import MatterKind
from shared.domain.handling import Role
from shared.wire.v1 import records_pb2
from tests.town_fixtures import OPERATOR, VillageDevice, township
from town_center.bootstrap import TownApp
from town_center.console import create_console_app, start_console_server
from village_agent.services import lookup_code_hash

PASSWORD = "青石镇窗口2026春季值班"
CODE = "HK7PM-3QW9X"


@dataclass
class Running:
    base: str
    town: TownApp
    matter_id: str
    evaluations: object
    village: VillageDevice


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    town = township(f"sqlite:///{tmp_path / 'town.db'}")
    create_console_tables(town.store.engine)
    auth = ConsoleAuth(town.store.engine, town.clock, kdf=ScryptParams(n=2**10, r=8, p=1))
    auth.create_staff("wang", "王芳", Role.OPERATOR, PASSWORD)
    auth.create_staff("zhao", "赵主任", Role.DIRECTOR, PASSWORD)
    auth.create_staff("qian", "钱督查", Role.SUPERVISOR, PASSWORD)
    web = create_console_app(town, auth, public_limiter=RateLimiter(capacity=20, refill_per_second=1, clock=town.clock))
    village = VillageDevice(town)
    matter_id = village.file("MZ-003", lookup_hash=lookup_code_hash(CODE), phone="13800001111")
    town.handling.classify(matter_id, MatterKind.IMMEDIATE, actor=OPERATOR)
    town.handling.record_result(matter_id, approved=True, summary="已发放临时救助金", actor=OPERATOR)
    server = start_console_server(web, "127.0.0.1:0")
    try:
        yield Running(f"http://127.0.0.1:{server.port}", town, matter_id, web.state.evaluations, village)
    finally:
        server.stop()
        town.close()


def signed_in(base: str, staff_id: str) -> httpx.Client:
    client = httpx.Client(base_url=base, follow_redirects=False, timeout=10)
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    answer = client.post("/login", data={"staff_id": staff_id, "password": PASSWORD, "next": "/",
                                         "csrf_token": token.group(1)})
    assert answer.status_code == 303, answer.text
    return client


def rate_from_qr(running: Running, **fields: str) -> httpx.Response:
    link = running.evaluations.evaluation_link(running.matter_id, running.base, by="wang", code=CODE)
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(link.url).query))
    with httpx.Client(timeout=10) as phone:
        form_page = phone.get(link.url)
        assert form_page.status_code == 200 and link.token in form_page.text and CODE in form_page.text
        return phone.post(f"{running.base}/evaluate", data={**query, **fields})


def test_a_villager_rates_through_the_public_page_with_the_token_once(running: Running) -> None:
    answer = rate_from_qr(running, level="2", comment="办得快")
    assert answer.status_code == 200 and "谢谢您的评价" in answer.text and "满意" in answer.text
    assert answer.headers["cache-control"] == "no-store" and "content-security-policy" in answer.headers
    with httpx.Client(base_url=running.base, timeout=10) as phone:
        token = running.evaluations.issue_token
        again = phone.post("/evaluate", data={"t": "ABCDE-FGHJK", "level": "1"})
        assert again.status_code == 400 and "评价码不正确" in again.text
    with pytest.raises(Exception, match="一次一评"):
        token(running.matter_id, by="wang")


def test_a_bad_review_without_a_reason_is_refused_and_keeps_what_was_typed(running: Running) -> None:
    answer = rate_from_qr(running, level="5", comment="跑了三趟")
    assert answer.status_code == 400 and "请选择一个原因" in answer.text and "跑了三趟" in answer.text
    assert 'value="5"' in answer.text and re.search(r'value="5" required\s+checked', answer.text)


def test_a_cross_site_post_to_the_public_page_is_refused(running: Running) -> None:
    with httpx.Client(base_url=running.base, timeout=10) as phone:
        answer = phone.post("/evaluate", data={"t": "ABCDE-FGHJK", "level": "1"},
                            headers={"Origin": "https://evil.example"})
    assert answer.status_code == 403


def test_the_rated_operator_cannot_see_who_rated_but_the_director_and_supervisor_can(running: Running) -> None:
    assert rate_from_qr(running, level="4", reason="efficiency", comment="等太久").status_code == 200
    operator = signed_in(running.base, "wang")
    own = operator.get("/evaluations")
    assert own.status_code == 200 and 'id="own-figures"' in own.text
    for private in ("测试村民", "13800001111", running.matter_id, 'id="evaluations"'):
        assert private not in own.text
    director = signed_in(running.base, "zhao")
    listing = director.get("/evaluations")
    assert "测试村民" in listing.text and "13800001111" in listing.text
    evaluation_id = re.search(r'/evaluations/([0-9a-f]{24})"', listing.text)
    assert evaluation_id
    assert operator.get(f"/evaluations/{evaluation_id.group(1)}").status_code == 403
    supervisor = signed_in(running.base, "qian")
    detail = supervisor.get(f"/evaluations/{evaluation_id.group(1)}")
    assert detail.status_code == 200 and "测试村民" in detail.text and "复核（主任决定）" not in detail.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', detail.text)
    assert csrf
    refused = supervisor.post(f"/evaluations/{evaluation_id.group(1)}/invalidate",
                              data={"csrf_token": csrf.group(1), "reason": "申请人恶意差评的事实"})
    assert refused.status_code == 403
    assigned = supervisor.post(f"/evaluations/{evaluation_id.group(1)}/assign",
                               data={"csrf_token": csrf.group(1), "owner": "wang"})
    assert assigned.status_code == 303
    tasks = operator.get("/evaluations").text
    assert "等太久" in tasks and "登记整改" in tasks and running.matter_id not in tasks


def test_the_laptop_rating_shows_on_the_matter_page_only_to_the_director_and_the_supervisor_who_cannot_act(running: Running) -> None:
    running.village.village_record("result_handed_over", running.matter_id)
    running.village.village_record("signed_off", running.matter_id, rating=records_pb2.RATING_VERY_DISSATISFIED,
                                   comment="窗口态度差")
    operator = signed_in(running.base, "wang").get(f"/matters/{running.matter_id}").text
    assert "窗口态度差" not in operator and "非常不满意" not in operator and "代为录入" in operator
    director = signed_in(running.base, "zhao").get(f"/matters/{running.matter_id}").text
    assert "非常不满意" in director and "窗口态度差" in director
    supervisor = signed_in(running.base, "qian").get(f"/matters/{running.matter_id}")
    assert supervisor.status_code == 200 and "窗口态度差" in supervisor.text
    assert 'name="expected_version"' not in supervisor.text    # 督查 reads matters, takes no action on them


def test_a_bad_review_is_called_back_with_the_five_findings_by_someone_who_did_not_handle_it(running: Running) -> None:
    assert rate_from_qr(running, level="4", reason="quality", comment="材料要了三次").status_code == 200
    handler = signed_in(running.base, "wang")
    own = handler.get("/evaluations/follow-ups").text
    assert "本人经办，须由他人回访" in own and "13800001111" not in own
    supervisor = signed_in(running.base, "qian")
    listing = supervisor.get("/evaluations/follow-ups").text
    assert "差评" in listing and "测试村民 13800001111" in listing
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', listing)
    assert csrf
    answer = supervisor.post(f"/evaluations/follow-ups/{running.matter_id}", data={
        "csrf_token": csrf.group(1), "reached": "yes", "rules": "problem", "satisfaction": "3",
        "suggestion": "希望一次讲清楚要带的材料"})
    assert answer.status_code == 303
    done = supervisor.get("/evaluations/follow-ups").text
    assert "已回访" in done and 'action="/evaluations/follow-ups/' + running.matter_id not in done
    from sqlalchemy import select

    from town_center.store.evaluation_tables import follow_up_finding
    with running.town.store.engine.connect() as conn:
        found = conn.execute(select(follow_up_finding)).one()
    assert (found.by_the_rules_ok, found.attitude_ok, found.satisfaction, found.recorded_by) == (False, True, 3, "qian")
    assert found.suggestion == "希望一次讲清楚要带的材料" and found.evaluation_id is not None
