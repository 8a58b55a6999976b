"""The township operator console through FastAPI's TestClient, on a real SQLite file: a township
with a fake clock, a village device filing real signed requests, and staff signed in by the
console foundation."""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shared.console import ConsoleAuth, RateLimiter, ScryptParams, create_console_tables
from shared.domain.catalog import MatterKind
from shared.domain.handling import Role, Stage
from tests.town_fixtures import OPERATOR, VillageDevice, township
from town_center.bootstrap import TownApp
from town_center.console import create_console_app
from village_agent.services import lookup_code_hash

FAST_KDF = ScryptParams(n=2**10, r=8, p=1)
PASSWORD = "青石镇窗口2026春季值班"
CODE = "AB3CD-EF4GH"


@pytest.fixture
def town(tmp_path: Path) -> Iterator[TownApp]:
    app = township(f"sqlite:///{tmp_path / 'town.db'}")
    yield app
    app.close()


@pytest.fixture
def auth(town: TownApp) -> ConsoleAuth:
    create_console_tables(town.store.engine)
    auth = ConsoleAuth(town.store.engine, town.clock, kdf=FAST_KDF)
    auth.create_staff("wang", "王芳", Role.OPERATOR, PASSWORD)
    auth.create_staff("li", "李强", Role.OPERATOR, PASSWORD)
    auth.create_staff("zhao", "赵主任", Role.DIRECTOR, PASSWORD)
    auth.create_staff("admin", "系统管理员", Role.ADMINISTRATOR, PASSWORD)
    return auth


@pytest.fixture
def web(town: TownApp, auth: ConsoleAuth):
    return create_console_app(town, auth, public_limiter=RateLimiter(capacity=3, refill_per_second=0.001, clock=town.clock))


@pytest.fixture
def village(town: TownApp) -> VillageDevice:
    return VillageDevice(town, village_code="V001")


def client_for(web, staff_id: str | None) -> TestClient:
    client = TestClient(web, follow_redirects=False)
    if staff_id is not None:
        page = client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token
        response = client.post("/login", data={"staff_id": staff_id, "password": PASSWORD, "next": "/",
                                               "csrf_token": token.group(1)})
        assert response.status_code == 303, response.text
    return client


def csrf(client: TestClient, path: str = "/") -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
    assert match
    return match.group(1)


def version_on(client: TestClient, matter_id: str) -> str:
    match = re.search(r'name="expected_version" value="(\d+)"', client.get(f"/matters/{matter_id}").text)
    assert match
    return match.group(1)


def test_no_console_page_opens_without_signing_in(web) -> None:
    client = client_for(web, None)
    for path in ("/", "/matters/x", "/supervision", "/extensions", "/agents", "/figures", "/figures.csv", "/follow-ups"):
        response = client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login"), path
    assert client.post("/matters/x/classify", data={"kind": "immediate"}).status_code == 303


def test_the_inbox_lists_a_new_matter_with_its_stage_and_filters_by_village(web, town: TownApp, village: VillageDevice) -> None:
    matter_id = village.file("MZ-003")
    VillageDevice(town, village_code="V002").file("MZ-003")
    client = client_for(web, "wang")
    page = client.get("/")
    assert page.status_code == 200
    assert "收件箱" in page.text and "待受理" in page.text and matter_id in page.text
    filtered = client.get("/", params={"village": "V002"})
    assert matter_id not in filtered.text and "V002" in filtered.text
    assert matter_id not in client.get("/", params={"stage": Stage.IN_PROGRESS.value}).text


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(web, town: TownApp, village: VillageDevice) -> None:
    matter_id = village.file("MZ-003")
    client = client_for(web, "wang")
    response = client.post(f"/matters/{matter_id}/classify", data={"kind": "promised",
                                                                  "expected_version": "0"})
    assert response.status_code == 403
    assert town.handling.page(matter_id).matter.stage is Stage.RECEIVED


def test_classifying_through_the_form_makes_the_operator_owner_and_starts_the_clock(web, town: TownApp, village: VillageDevice) -> None:
    matter_id = village.file("MZ-003")
    client = client_for(web, "wang")
    page = client.get(f"/matters/{matter_id}")
    assert "测试村民" in page.text and "13800001111" in page.text   # staff see the applicant on the matter page
    response = client.post(f"/matters/{matter_id}/classify", data={
        "csrf_token": csrf(client), "expected_version": version_on(client, matter_id),
        "kind": "promised"})
    assert response.status_code == 303
    matter = town.handling.page(matter_id).matter
    assert matter.kind is MatterKind.PROMISED and matter.owner == "wang" and matter.stage is Stage.IN_PROGRESS
    after = client.get(response.headers["location"])
    assert "已受理，按承诺件办理" in after.text and "办理中" in after.text and "内办结，即" in after.text
    assert "乡镇环节时限" in after.text and "计时中" in after.text


def test_a_supplement_list_waits_for_materials_and_then_starts_the_clock(web, town: TownApp, village: VillageDevice) -> None:
    matter_id = village.file("MZ-003")
    client = client_for(web, "wang")
    client.post(f"/matters/{matter_id}/classify", data={
        "csrf_token": csrf(client), "expected_version": version_on(client, matter_id),
        "kind": "supplement", "missing_materials": "户口簿复印件\n收入证明"})
    matter = town.handling.page(matter_id).matter
    assert matter.stage is Stage.WAITING_MATERIALS and matter.missing_materials == ("户口簿复印件", "收入证明")
    page = client.get(f"/matters/{matter_id}")
    assert "户口簿复印件、收入证明" in page.text and "登记材料补齐" in page.text
    client.post(f"/matters/{matter_id}/materials_completed", data={
        "csrf_token": csrf(client), "expected_version": version_on(client, matter_id)})
    assert town.handling.page(matter_id).matter.stage is Stage.IN_PROGRESS


def test_a_refused_action_re_renders_the_page_with_the_chinese_reason_and_keeps_what_was_typed(web, village: VillageDevice) -> None:
    matter_id = village.file("MZ-003")
    client = client_for(web, "wang")
    response = client.post(f"/matters/{matter_id}/classify", data={
        "csrf_token": csrf(client), "expected_version": version_on(client, matter_id),
        "kind": "joint", "lead_window": "民政窗口", "departments": "民政办"})
    assert response.status_code == 400
    assert "联办件须至少有" in response.text
    assert 'value="民政窗口"' in response.text and ">民政办</textarea>" in response.text


def test_a_stale_expected_version_shows_the_concurrency_message_and_keeps_the_other_edit(
        web, town: TownApp, village: VillageDevice) -> None:
    matter_id = village.file("MZ-003")
    client = client_for(web, "wang")
    stale = version_on(client, matter_id)
    town.handling.classify(matter_id, MatterKind.PROMISED, actor=OPERATOR)
    response = client.post(f"/matters/{matter_id}/classify", data={
        "csrf_token": csrf(client), "expected_version": stale, "kind": "returned", "return_reason": "不符合条件"})
    assert response.status_code == 409
    assert "本件刚被其他人修改过" in response.text and "不符合条件" in response.text
    assert town.handling.page(matter_id).matter.kind is MatterKind.PROMISED


def _with_pending_extension(town: TownApp, village: VillageDevice) -> str:
    matter_id = village.file("MZ-003")
    town.handling.classify(matter_id, MatterKind.PROMISED, actor=OPERATOR)
    limit = town.handling.page(matter_id).matter.clock.statutory
    town.handling.request_extension(matter_id, limit, "需现场核实", actor=OPERATOR)
    return matter_id


def test_an_operator_cannot_approve_an_extension(web, town: TownApp, village: VillageDevice) -> None:
    matter_id = _with_pending_extension(town, village)
    client = client_for(web, "wang")
    version = str(town.handling.page(matter_id).matter.version)
    for path in (f"/extensions/{matter_id}", f"/matters/{matter_id}/decide_extension"):
        response = client.post(path, data={"csrf_token": csrf(client), "expected_version": version, "decision": "approve"})
        assert response.status_code == 403
        assert "仅限中心主任" in response.text
    assert town.handling.page(matter_id).matter.pending_extension is not None


def test_the_director_approves_an_extension_from_the_list(web, town: TownApp, village: VillageDevice) -> None:
    matter_id = _with_pending_extension(town, village)
    client = client_for(web, "zhao")
    listing = client.get("/extensions")
    assert "需现场核实" in listing.text and "批准" in listing.text
    version = re.search(r'name="expected_version" value="(\d+)"', listing.text).group(1)
    response = client.post(f"/extensions/{matter_id}", data={"csrf_token": csrf(client), "expected_version": version,
                                                             "decision": "approve"})
    assert response.status_code == 303 and "已批准延期" in client.get(response.headers["location"]).text
    matter = town.handling.page(matter_id).matter
    assert matter.pending_extension is None and len(matter.clock.extensions) == 1
    assert "尚未告知" in client.get(f"/matters/{matter_id}").text


def test_an_operator_cannot_approve_or_revoke_agent_devices(web, village: VillageDevice) -> None:
    client = client_for(web, "wang")
    assert "代办员V001" in client.get("/agents").text
    response = client.post(f"/agents/{village.signer.key_id}/revoke", data={"csrf_token": csrf(client), "reason": "丢失"})
    assert response.status_code == 403


def test_the_administrator_revokes_an_agent_device_with_a_reason(web, town: TownApp, village: VillageDevice) -> None:
    client = client_for(web, "admin")
    response = client.post(f"/agents/{village.signer.key_id}/revoke", data={"csrf_token": csrf(client), "reason": "笔记本丢失"})
    assert response.status_code == 303
    agent = next(a for a in town.services.list_agents() if a.key_id == village.signer.key_id)
    assert agent.state.value == "revoked" and agent.status_reason == "笔记本丢失"


def test_figures_show_a_chart_and_download_as_csv(web, village: VillageDevice) -> None:
    village.file("MZ-003")
    client = client_for(web, "zhao")
    page = client.get("/figures", params={"by": "village"})
    assert "<svg" in page.text and "V001" in page.text
    csv = client.get("/figures.csv", params={"by": "operator"})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert csv.text.lstrip("\ufeff").startswith("对象,受理件数")


def test_the_public_page_shows_the_stage_but_never_the_applicants_name_or_phone(web, town: TownApp, village: VillageDevice) -> None:
    matter_id = village.file("MZ-003", lookup_hash=lookup_code_hash(CODE))
    town.handling.classify(matter_id, MatterKind.PROMISED, actor=OPERATOR)
    client = client_for(web, None)
    assert client.get("/public").status_code == 200
    found = client.post("/public", data={"code": CODE.lower().replace("-", "")})
    assert found.status_code == 200
    assert "办理中" in found.text and "承诺件" in found.text
    for secret in ("测试村民", "13800001111", "110101199003070011", "一组", matter_id):
        assert secret not in found.text


def test_an_unknown_and_a_malformed_code_get_the_same_answer(web, village: VillageDevice) -> None:
    village.file("MZ-003", lookup_hash=lookup_code_hash(CODE))
    client = client_for(web, None)
    unknown = client.post("/public", data={"code": "ZZZZZ-ZZZZZ"})
    malformed = client.post("/public", data={"code": "' OR 1=1 --"})
    assert unknown.status_code == malformed.status_code == 404
    assert unknown.text == malformed.text and "未查到" in unknown.text


def test_the_public_lookup_answers_429_after_too_many_lookups(web) -> None:
    client = client_for(web, None)
    for _ in range(3):
        assert client.post("/public", data={"code": "ZZZZZ-ZZZZZ"}).status_code == 404
    limited = client.post("/public", data={"code": "ZZZZZ-ZZZZZ"})
    assert limited.status_code == 429
    assert "稍后" in limited.text or "频繁" in limited.text
    assert "retry-after" in limited.headers


def test_the_calendar_warning_shows_on_every_page_when_a_year_in_view_is_unconfirmed(web, town: TownApp) -> None:
    import datetime as dt

    today = town.clock.now().date()
    warning = town.deadlines.calendar.warning_zh(today, today + dt.timedelta(days=60))
    client = client_for(web, "wang")
    for path in ("/", "/supervision", "/figures"):
        text = client.get(path).text
        if warning:
            assert warning in text
        else:
            assert 'id="calendar-warning"' not in text


def test_the_director_draws_the_weekly_follow_up_sample_and_an_operator_records_the_call(
        web, town: TownApp, village: VillageDevice) -> None:
    done = village.file("MZ-003")
    town.handling.classify(done, MatterKind.IMMEDIATE, actor=OPERATOR)
    town.handling.record_result(done, approved=True, summary="已发放临时救助金", actor=OPERATOR)
    director = client_for(web, "zhao")
    drawn = director.post("/follow-ups/draw", data={"csrf_token": csrf(director)})
    assert "已抽取本周" in director.get(drawn.headers["location"]).text
    again = director.post("/follow-ups/draw", data={"csrf_token": csrf(director)})
    assert "已经抽取过" in director.get(again.headers["location"]).text
    handler = client_for(web, "wang")   # classified it: may not call back about his own case
    refused = handler.post(f"/follow-ups/{done}", data={"csrf_token": csrf(handler), "reached": "yes", "rating": "1",
                                                        "outcome": "很好"})
    assert "不能回访自己经办的办件" in handler.get(refused.headers["location"]).text
    operator = client_for(web, "li")
    assert "待回访" in operator.get("/follow-ups").text
    assert operator.post("/follow-ups/draw", data={"csrf_token": csrf(operator)}).status_code == 403
    response = operator.post(f"/follow-ups/{done}", data={"csrf_token": csrf(operator), "reached": "yes", "rating": "2",
                                                          "outcome": "村民表示满意"})
    assert response.status_code == 303
    page = operator.get("/follow-ups").text
    assert "已接通" in page and "村民表示满意" in page
    assert any(e.action == "follow_up" for e in town.handling.page(done).events)


def test_an_overdue_matter_appears_on_the_supervision_list_in_the_supervise_colour(web, town: TownApp, village: VillageDevice) -> None:
    import datetime as dt

    late = village.file("MZ-003")
    town.handling.classify(late, MatterKind.IMMEDIATE, actor=OPERATOR)
    town.clock.advance(dt.timedelta(days=7))
    client = client_for(web, "wang")
    page = client.get("/supervision").text
    assert late in page and "超期督办" in page and 'data-state="supervise"' in page
    assert 'data-state="supervise"' in client.get("/").text


def test_an_administrator_sees_matters_but_cannot_act_on_them(web, town: TownApp, village: VillageDevice) -> None:
    matter_id = village.file("MZ-003")
    client = client_for(web, "admin")
    page = client.get(f"/matters/{matter_id}").text
    assert "本件当前没有可办理的操作" in page and "系统管理员不查看申请人信息" in page
    assert "测试村民" not in page and "13800001111" not in page
    response = client.post(f"/matters/{matter_id}/classify", data={"csrf_token": csrf(client), "expected_version": "0",
                                                                  "kind": "immediate"})
    assert response.status_code == 403
    assert town.handling.page(matter_id).matter.stage is Stage.RECEIVED


def test_town_center_staff_commands_manage_accounts_and_serve_opens_the_console_on_loopback_by_default(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from shared.console.cli import STAFF_PASSWORD_ENV
    from town_center import cli

    monkeypatch.setenv(STAFF_PASSWORD_ENV, PASSWORD)
    home = tmp_path / "home"
    assert cli.main(["staff", "list", "--home", str(home)]) != 0   # no township here yet: refused, in Chinese
    assert "town-center init" in capsys.readouterr().err
    home.mkdir()
    assert cli.main(["staff", "add", "wangfang", "--name", "王芳", "--role", "operator", "--home", str(home)]) == 0
    assert cli.main(["staff", "list", "--home", str(home)]) == 0
    assert "王芳" in capsys.readouterr().out
    args = cli.build_parser().parse_args(["serve", "--home", str(home)])
    assert args.console_listen == "127.0.0.1:8700"


def test_every_returned_matter_is_listed_in_the_refusal_register_with_its_reason(web, town: TownApp, village: VillageDevice) -> None:
    matter_id = village.file("MZ-003")
    town.handling.classify(matter_id, MatterKind.RETURNED, actor=OPERATOR, return_reason="申请人不属于本乡镇户籍")
    page = client_for(web, "wang").get("/refusals")
    assert page.status_code == 200
    assert "申请人不属于本乡镇户籍" in page.text and matter_id in page.text and "wang" in page.text
    assert client_for(web, None).get("/refusals", follow_redirects=False).status_code in (303, 401)
