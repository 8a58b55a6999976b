"""The whole chain as separate processes on loopback: `county-hub serve`, `town-center serve` linked to
it, and the real `village-agent` command. For each of the six kinds a matter goes village → township
(→ county for 上报件) → back → hand-over and sign-off, driven through the consoles' own forms; then all
three tiers' stores are read and must agree on the matter's stage and on every hop's times."""
from __future__ import annotations

import json
import random
import time
from pathlib import Path

from sqlalchemy import select

from shared.calendar import WorkingCalendar
from shared.clock import from_unix_ms, to_unix_ms
from shared.deadline_watch.store import DeadlineStore
from shared.domain.handling import matter_from_json_dict
from shared.keys import enrollment_uri, load_key_file
from shared.wire.v1 import records_pb2
from tests.process_fixtures import BIN, ConsoleClient, Served, free_port, run, village
from tests.village_fixtures import PASSPHRASE, SIGNATURE_PNG, villager

# case → (kind, catalog item, the classify form, what happens after classifying). The 上报件 go round
# three times: the county approves one, refuses one, and asks for materials on the third before approving.
CASES = {
    "immediate": ("immediate", "RS-001", {}, "result"),
    "promised": ("promised", "MZ-003", {"promise_amount": "3", "promise_unit": "working_days"}, "result"),
    "supplement": ("supplement", "YB-001", {"missing_materials": "户口簿"}, "materials_then_result"),
    "returned": ("returned", "WJ-001", {"return_reason": "不符合申请条件"}, "none"),
    "joint": ("joint", "NY-001", {"lead_window": "农业窗口", "departments": "农业站\n自然资源所"}, "result"),
    "reported": ("reported", "MZ-001", {}, "approve"),
    "reported_refused": ("reported", "MZ-001", {}, "refuse"),
    "reported_materials": ("reported", "MZ-001", {}, "needs_materials"),
}
REPORTED = [case for case, (kind, *_rest) in CASES.items() if kind == "reported"]


def _request(code: str, rng: random.Random) -> str:
    import base64

    from shared.catalog import load_catalog

    item = load_catalog().item(code)
    return json.dumps(dict(villager(rng), action="request", matter=code, materials=[m.id for m in item.main_materials],
                           commitments={m.id: "2026-12-30" for m in item.auxiliary_materials},
                           authorization="drawn_signature", evidence_b64=base64.b64encode(SIGNATURE_PNG).decode()),
                      ensure_ascii=False) + "\n"


def _wait_listed(cmd: list[str], needle: str, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while needle not in run(cmd).stdout:
        if time.monotonic() > end:
            raise AssertionError(f"{needle} never appeared in {' '.join(cmd)}")
        time.sleep(0.5)


def _sync_until(data: Path, matter_id: str, status: str, timeout: float = 60) -> dict:
    end = time.monotonic() + timeout
    while True:
        village(data, "sync", check=False)
        shown = village(data, "show", "--matter-id", matter_id)
        if shown["status"] == status:
            return shown
        if time.monotonic() > end:
            raise AssertionError(f"matter {matter_id} at the village is {shown['status']}, never {status}")
        time.sleep(0.5)


def _wait_tracked_final(db: Path, matters: dict[str, str], timeout: float = 60) -> None:
    """The township's last status of each matter has travelled up and been folded at the county."""
    from hub.store import open_hub_store
    from hub.store.tables import tracked_matter

    final = {records_pb2.STAGE_SIGNED_OFF, records_pb2.STAGE_RETURNED}
    store = open_hub_store(str(db))
    try:
        end = time.monotonic() + timeout
        while True:
            with store.engine.connect() as conn:
                stages = {r.matter_id: int(r.stage) for r in conn.execute(select(tracked_matter))}
            if all(stages.get(m) in final for m in matters.values()):
                return
            if time.monotonic() > end:
                raise AssertionError(f"county tracking never settled: {stages}")
            time.sleep(0.3)
    finally:
        store.close()


def test_every_kind_goes_round_the_three_tiers_and_all_agree_on_its_history_and_hop_times(tmp_path: Path) -> None:
    county_home, town_home, data = tmp_path / "county", tmp_path / "town", tmp_path / "village"
    grpc_county, web_county, grpc_town, web_town = free_port(), free_port(), free_port(), free_port()
    run([BIN / "county-hub", "init", "--home", county_home])
    run([BIN / "county-hub", "staff", "add", "chen", "--name", "陈主任", "--role", "director", "--home", county_home])
    run([BIN / "town-center", "init", "--home", town_home])
    for staff_id, name, role in (("wang", "王芳", "operator"), ("zhao", "赵主任", "director")):
        run([BIN / "town-center", "staff", "add", staff_id, "--name", name, "--role", role, "--home", town_home])
    linked = run([BIN / "town-center", "county", "link", "--home", town_home, "--address", f"127.0.0.1:{grpc_county}",
                  "--county-key", county_home / "county.pub", "--code", "T01", "--name", "青石镇"])
    assert "指纹" in linked.stdout
    town_key = load_key_file(town_home / "town.key", PASSPHRASE)
    link_key = load_key_file(town_home / "county_link.key", PASSPHRASE)
    run([BIN / "village-agent", "init", "--data", data, "--agent-name", "王代办", "--village-code", "V001",
         "--village-name", "东山村", "--township-code", "T01", "--township-name", "青石镇",
         "--township-address", f"127.0.0.1:{grpc_town}", "--township-key", enrollment_uri(town_key.public_key)])

    county = Served([BIN / "county-hub", "serve", "--home", county_home, "--listen", f"127.0.0.1:{grpc_county}",
                     "--console-listen", f"127.0.0.1:{web_county}"], tmp_path / "county.log", [grpc_county, web_county]).start()
    town = Served([BIN / "town-center", "serve", "--home", town_home, "--listen", f"127.0.0.1:{grpc_town}",
                   "--console-listen", f"127.0.0.1:{web_town}"], tmp_path / "town.log", [grpc_town, web_town]).start()
    try:
        # Keys: the township's link key is approved at the county, the laptop's at the township.
        _wait_listed([BIN / "county-hub", "townships", "list", "--home", county_home], link_key.key_id)
        run([BIN / "county-hub", "townships", "approve", link_key.key_id, "--home", county_home, "--by", "陈主任"])
        village(data, "sync", check=False)
        agent_key = village(data, "status")["key_id"]
        run([BIN / "town-center", "agents", "approve", agent_key, "--home", town_home, "--by", "赵主任"])

        rng = random.Random(7)
        matters = {}
        for case, (_kind, code, _, _) in CASES.items():
            out = run([BIN / "village-agent", "batch", "--data", data], stdin=_request(code, rng)).stdout
            matters[case] = json.loads(out.splitlines()[0])["matter_id"]
        village(data, "sync")

        wang = ConsoleClient(f"http://127.0.0.1:{web_town}", "wang")
        chen = ConsoleClient(f"http://127.0.0.1:{web_county}", "chen")
        for case, (kind, _code, form, then) in CASES.items():
            page = f"/matters/{matters[case]}"
            wang.wait_for(page, "分类")
            wang.post(f"{page}/classify", {"kind": kind, **form}, version_from=page)
            if then == "materials_then_result":
                village(data, "materials", "--matter-id", matters[case], "--materials", "household_register", check=False)
                wang.post(f"{page}/materials_completed", {}, version_from=page)
            if then in ("result", "materials_then_result"):
                wang.post(f"{page}/record_result", {"approved": "yes", "summary": "办理完成"}, version_from=page)
            if kind == "reported":
                wang.post(f"{page}/escalate", {"summary": "初审通过，请县级审批", "confirm": "yes"}, version_from=page)
                chen.wait_for(page, "县级开始计时")
                decision = {"approve": {"outcome": "approve", "reason": "准予纳入最低生活保障"},
                            "refuse": {"outcome": "refuse", "reason": "家庭收入超过当地低保标准"},
                            "needs_materials": {"outcome": "needs_materials", "reason": "请补充收入证明",
                                                "missing": "收入证明"}}[then]
                chen.post(f"{page}/decide", decision, version_from=page)
        # The county asked for materials: the village is told, the applicant brings them, the township
        # checks them and passes them up; the county's clock, which waited, runs again and it approves.
        asked = matters["reported_materials"]
        shown = _sync_until(data, asked, "waiting_materials")
        assert "收入证明" in shown["message"]
        village(data, "materials", "--matter-id", asked, "--materials", "income_proof", check=False)
        village(data, "sync")
        page = f"/matters/{asked}"
        wang.wait_for(page, "补正")
        wang.post(f"{page}/materials_completed", {}, version_from=page)
        chen.wait_for(page, "县级恢复计时")
        chen.post(f"{page}/decide", {"outcome": "approve", "reason": "补正后准予"}, version_from=page)
        for kind, mid in matters.items():
            if kind == "returned":
                _sync_until(data, mid, "returned")
                continue
            shown = _sync_until(data, mid, "result_ready")
            if kind == "reported_refused":     # the county's own words reach the villager
                assert "家庭收入超过当地低保标准" in shown["message"], shown
            elif kind == "reported":
                assert "准予纳入最低生活保障" in shown["message"], shown
            village(data, "handover", "--matter-id", mid, "--result", "已领取")
            village(data, "signoff", "--matter-id", mid, "--rating", "very_satisfied", "--method", "witness",
                    "--witness-name", "村委会 张主任", "--witness-statement", "群众确认已收到")
        village(data, "sync")
        for case in REPORTED:
            chen.wait_for(f"/matters/{matters[case]}", "办结", timeout=60)
        _wait_tracked_final(county_home / "county.db", matters)
        wang.close()
        chen.close()
    finally:
        town_rc = town.stop()
        county_rc = county.stop()
    assert town_rc == 0 and county_rc == 0

    # ------------------------------------------------------------ all three tiers agree
    from hub.store import open_hub_store
    from hub.store.tables import county_event, county_matter, tracked_matter
    from town_center.store import open_town_store
    from town_center.store.matter_tables import town_matter

    town_store, hub_store = open_town_store(str(town_home / "town.db")), open_hub_store(str(county_home / "county.db"))
    town_deadlines = DeadlineStore(town_store.engine, WorkingCalendar())
    hub_deadlines = DeadlineStore(hub_store.engine, WorkingCalendar())
    try:
        with town_store.engine.connect() as conn:
            town_rows = {r.matter_id: r for r in conn.execute(select(town_matter))}
        with hub_store.engine.connect() as conn:
            tracked = {r.matter_id: r for r in conn.execute(select(tracked_matter))}
            county_rows = {r.matter_id: r for r in conn.execute(select(county_matter))}
        for kind, mid in matters.items():
            expected = "returned" if kind == "returned" else "signed_off"
            assert town_rows[mid].stage == expected, kind
            shown = village(data, "show", "--matter-id", mid)
            assert shown["status"] == expected, kind
            # The county tracks the township's own view of every matter, hop times included.
            wire_stage = records_pb2.STAGE_RETURNED if kind == "returned" else records_pb2.STAGE_SIGNED_OFF
            assert int(tracked[mid].stage) == wire_stage, kind
            town_clock = matter_from_json_dict(json.loads(town_rows[mid].state_json)).clock
            if town_clock is not None and town_clock.start_at is not None:
                hops = {h["tier"]: h for h in json.loads(tracked[mid].hops_json)}
                own = hops[records_pb2.TIER_TOWNSHIP]
                # The wire carries Unix milliseconds: the tiers agree to the millisecond.
                assert own["started_at_ms"] == to_unix_ms(town_clock.start_at), kind
                assert own["due_at_ms"] == to_unix_ms(town_clock.due_at(town_deadlines.calendar)), kind
        # 上报件: the township hop stops at the county's receipt, which starts the county hop at both tiers;
        # the county's decision stops both copies of the county hop at one instant.
        for case in REPORTED:
            reported = matters[case]
            row = county_rows[reported]
            # The villager's rating stays with the township's evaluation (docs/evaluation.md): the county's
            # row keeps only that the matter was signed off, never who rated what.
            assert row.stage == "signed_off" and row.rating == records_pb2.RATING_UNSPECIFIED, case
            town_matter_state = matter_from_json_dict(json.loads(town_rows[reported].state_json))
            assert town_matter_state.approved is (case != "reported_refused"), case
            town_clock = town_matter_state.clock
            replica = town_deadlines.load_clock(reported, "county")
            own = hub_deadlines.load_clock(reported, "county")
            assert town_clock.stop_at == from_unix_ms(row.received_at_ms) == replica.start_at == own.start_at, case
            assert replica.stop_at == own.stop_at is not None, case
            assert [(p.start_at, p.end_at) for p in replica.suspensions] == \
                [(p.start_at, p.end_at) for p in own.suspensions], case
            assert replica.due_at(town_deadlines.calendar) == own.due_at(hub_deadlines.calendar), case
        # The villager's own signed hand-over and sign-off are in the county's history once each, as the
        # laptop recorded them.
        with hub_store.engine.connect() as conn:
            county_events = [(r.matter_id, r.action) for r in conn.execute(select(county_event))]
        for case in REPORTED:
            mid = matters[case]
            laptop = village(data, "show", "--matter-id", mid)["history"]
            own = [k for k in laptop if k in ("request_filed", "materials_added", "result_handed_over", "signed_off")]
            assert own[0] == "request_filed" and own[-2:] == ["result_handed_over", "signed_off"], (case, laptop)
            assert "result_ready" in laptop, (case, laptop)
            actions = [a for m, a in county_events if m == mid]
            assert actions.count("result_handed_over") == 1 and actions.count("signed_off") == 1, (case, actions)
        # The county waited while the applicant fetched the income certificate, at both tiers.
        assert len(hub_deadlines.load_clock(matters["reported_materials"], "county").suspensions) == 1
    finally:
        town_store.close()
        hub_store.close()
