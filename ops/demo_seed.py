"""Seeds the demo county once, on a clock set about three weeks back, so the consoles open on a
realistic picture: matters at every stage, some on time, some in warning, some overdue (at the
township and at the county), some signed off at all three tiers, a 督办 notice on its way.

Everything goes through the real code paths in this process: the village agent's services sign
the records, the real relay (gRPC on the demo ports) carries them with signed receipts, the
township and county handle them. Only the clock is moved by hand; it never passes the real now,
so the processes started afterwards carry on from where the history ends.
"""
from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.calendar import WorkingCalendar
from shared.catalog import load_catalog
from shared.clock import FakeClock, SystemClock
from shared.domain.catalog import MatterKind
from shared.domain.handling import Actor, Role
from shared.keys import enrollment_uri, load_key_file
from shared.relay.server import build_server

SHANGHAI = dt.timezone(dt.timedelta(hours=8))


@dataclass(frozen=True)
class TownshipPlan:
    code: str
    name: str
    villages: tuple[tuple[str, str, str], ...]   # (code, name, agent name)


@dataclass
class Seeded:
    town: Any
    villages: dict[str, Any]


def _working_days_back(calendar: WorkingCalendar, today: dt.date, n: int) -> dt.date:
    day, left = today, n
    while left > 0:
        day -= dt.timedelta(days=1)
        if calendar.is_working_day(day):
            left -= 1
    return day


class Timeline:
    """A fake clock walked forward through office hours, never past the real now."""

    def __init__(self, calendar: WorkingCalendar, real_now: dt.datetime, start_working_days_ago: int) -> None:
        self.calendar = calendar
        self.real_now = real_now
        self.today = real_now.astimezone(SHANGHAI).date()
        first = _working_days_back(calendar, self.today, start_working_days_ago)
        self.clock = FakeClock(dt.datetime.combine(first, dt.time(9, 0), SHANGHAI))

    def at(self, working_days_ago: int, hour: int, minute: int = 0) -> dt.datetime:
        day = _working_days_back(self.calendar, self.today, working_days_ago)
        target = min(dt.datetime.combine(day, dt.time(hour, minute), SHANGHAI), self.real_now - dt.timedelta(minutes=1))
        if target > self.clock.now():
            self.clock.set(target)
        return self.clock.now()


def seed(*, root: Path, passphrase: str, county_home: Path, county_grpc: str, townships: dict[str, Path],
         town_grpc: dict[str, str], plans: tuple[TownshipPlan, ...], village_dirs: dict[str, Path],
         staff: dict[str, tuple[tuple[str, str, str, str], ...]]) -> None:
    """Build the demo county's history. `staff` maps "county" and each township code to demo logins."""
    from hub import cli as county_cli
    from hub.bootstrap import build_app as build_hub
    from hub.bootstrap import init_home as init_county
    from hub.bootstrap import load_signer as county_signer
    from town_center import cli as town_cli
    from town_center.bootstrap import build_app as build_town
    from town_center.bootstrap import init_home as init_town
    from town_center.bootstrap import link_county, load_link_signer, load_signer
    from village_agent import actions
    from village_agent import cli as village_cli
    from village_agent.bootstrap import open_agent

    calendar = WorkingCalendar()
    line = Timeline(calendar, SystemClock().now(), start_working_days_ago=14)
    clock = line.clock

    def add_staff(cli: Any, home: Path, logins: tuple[tuple[str, str, str, str], ...]) -> None:
        for staff_id, name, role, password in logins:
            os.environ["QUANCHENG_STAFF_PASSWORD"] = password
            cli.main(["staff", "add", staff_id, "--name", name, "--role", role, "--home", str(home)])
        os.environ.pop("QUANCHENG_STAFF_PASSWORD", None)

    init_county(county_home, passphrase)
    add_staff(county_cli, county_home, staff["county"])
    hub = build_hub(f"sqlite:///{county_home / 'county.db'}", county_signer(county_home, passphrase), clock=clock,
                    calendar=calendar)
    county_server, _ = build_server(hub.core, county_grpc)
    county_server.start()
    servers = [county_server]
    towns: dict[str, Seeded] = {}
    try:
        for plan in plans:
            home = townships[plan.code]
            init_town(home, passphrase)
            add_staff(town_cli, home, staff[plan.code])
            db_url = f"sqlite:///{home / 'town.db'}"
            link_signer = load_link_signer(home, passphrase)
            assert link_signer is not None
            link_county(db_url, link_signer, address=county_grpc, county_public_key=hub.signer.public_key,
                        township_code=plan.code, township_name=plan.name)
            town = build_town(db_url, load_signer(home, passphrase), clock=clock, calendar=calendar, link_signer=link_signer)
            assert town.county_link is not None
            server, _ = build_server(town.core, town_grpc[plan.code])
            server.start()
            servers.append(server)
            client = town.county_link.make_client()
            client.sync_once()                                   # the link key's enrollment reaches the county
            hub.store.approve(link_signer.key_id, by=staff["county"][0][0], now_ms=0)
            villages = {}
            for code, name, agent in plan.villages:
                data = village_dirs[code]
                village_cli.main(["init", "--data", str(data), "--agent-name", agent, "--village-code", code,
                                  "--village-name", name, "--township-code", plan.code, "--township-name", plan.name,
                                  "--township-address", town_grpc[plan.code],
                                  "--township-key", enrollment_uri(town.signer.public_key)])
                service = open_agent(data, passphrase, clock=clock)
                actions.sync(service, {})                        # enrolment: pending at the township
                town.services.approve(service.signer.key_id, by=staff[plan.code][1][0])
                villages[code] = service
            towns[plan.code] = Seeded(town, villages)
        _history(line, hub, towns, staff)
    finally:
        for s in towns.values():
            for service in s.villages.values():
                service.store.close()
            if s.town.county_link is not None and s.town.county_link.client is not None:
                s.town.county_link.client.stop()
        for server in servers:
            server.stop(grace=None)
        for s in towns.values():
            s.town.close()
        hub.close()


class _Flow:
    """Moves matters through the tiers for the seed, syncing every hop after each step."""

    def __init__(self, hub: Any, towns: dict[str, Seeded]) -> None:
        from village_agent import actions

        self.actions = actions
        self.hub = hub
        self.towns = towns
        self.catalog = load_catalog()
        self.people = iter(_VILLAGERS)

    def settle(self) -> None:
        for _ in range(3):
            for s in self.towns.values():
                for service in s.villages.values():
                    self.actions.sync(service, {})
                s.town.intake.run_once()
                link = s.town.county_link
                link.client.sync_once()
                self.hub.handling.run_once()
                link.client.sync_once()
                link.fold()

    def file(self, township: str, village: str, code: str) -> str:
        service = self.towns[township].villages[village]
        item = self.catalog.item(code)
        person = next(self.people)
        params = dict(person, matter=code, materials=[m.id for m in item.main_materials],
                      commitments={m.id: (service.clock.now() + dt.timedelta(days=10)).date().isoformat()
                                   for m in item.auxiliary_materials},
                      authorization="witness", witness_name="村委会 张主任", witness_statement="申请人口头委托，本人在场见证")
        matter_id = str(self.actions.request(service, params)["matter_id"])
        self.settle()
        return matter_id

    def village(self, township: str, village: str, action: str, **params: Any) -> None:
        getattr(self.actions, action)(self.towns[township].villages[village], params)
        self.settle()

    def close_at_village(self, township: str, village: str, matter_id: str, rating: str = "very_satisfied") -> None:
        self.village(township, village, "handover", matter_id=matter_id, result="已将办理结果交给申请人")
        self.village(township, village, "signoff", matter_id=matter_id, rating=rating, method="witness",
                     witness_name="村委会 张主任", witness_statement="群众确认已收到办理结果")


def _history(line: Timeline, hub: Any, towns: dict[str, Seeded], staff: dict[str, Any]) -> None:
    flow = _Flow(hub, towns)
    ops = {code: Actor(logins[0][0], Role.OPERATOR) for code, logins in staff.items() if code != "county"}
    county_staff = Actor(staff["county"][0][0], Role.DIRECTOR)
    h = {code: towns[code].town.handling for code in towns}

    # 14 working days ago: a 低保 application goes up to the county and is decided and signed off everywhere.
    line.at(14, 9, 20)
    dibao = flow.file("T01", "V001", "MZ-001")
    h["T01"].classify(dibao, MatterKind.REPORTED, actor=ops["T01"])
    line.at(13, 10)
    h["T01"].escalate(dibao, "经入户核查，家庭人均收入低于当地低保标准，建议批准", actor=ops["T01"])
    flow.settle()
    line.at(10, 15)
    hub.handling.decide(dibao, "approve", actor=county_staff, reason="准予纳入最低生活保障，自下月起发放")
    flow.settle()
    line.at(9, 10)
    flow.close_at_village("T01", "V001", dibao)

    # 12 working days ago: a promised matter, done in time and signed off; another one still open (overdue).
    line.at(12, 9, 40)
    done = flow.file("T01", "V002", "MZ-003")
    h["T01"].classify(done, MatterKind.PROMISED, actor=ops["T01"])
    line.at(10, 11)
    h["T01"].record_result(done, approved=True, summary="批准临时救助 1500 元", actor=ops["T01"])
    flow.settle()
    line.at(9, 14)
    flow.close_at_village("T01", "V002", done, rating="satisfied")
    line.at(9, 15)
    late = flow.file("T02", "V003", "MZ-003")
    h["T02"].classify(late, MatterKind.PROMISED, actor=ops["T02"])
    flow.settle()

    # 8 working days ago: a large 临时救助 goes up to the county, which has not decided (its hop runs late).
    line.at(8, 10)
    big = flow.file("T02", "V004", "MZ-004")
    h["T02"].classify(big, MatterKind.REPORTED, actor=ops["T02"])
    h["T02"].escalate(big, "因病致困，申请大额临时救助，乡镇初审通过", actor=ops["T02"])
    flow.settle()
    # Immediate matters handled on the spot and signed off; a returned one; a joint one under way.
    line.at(7, 9, 30)
    quick = flow.file("T01", "V001", "RS-001")
    h["T01"].classify(quick, MatterKind.IMMEDIATE, actor=ops["T01"])
    h["T01"].record_result(quick, approved=True, summary="已完成参保登记", actor=ops["T01"])
    flow.settle()
    flow.close_at_village("T01", "V001", quick)
    returned = flow.file("T02", "V003", "WJ-001")
    h["T02"].classify(returned, MatterKind.RETURNED, actor=ops["T02"], return_reason="申请人户籍不在本乡，请到户籍地办理")
    flow.settle()
    line.at(6, 10)
    house = flow.file("T01", "V002", "NY-001")
    h["T01"].classify(house, MatterKind.JOINT, actor=ops["T01"], lead_window="自然资源和农业窗口",
                      departments=("农业农村办", "自然资源所", "村镇建设办"))
    flow.settle()

    # 5 working days ago: the county asks for materials on a 特困 application (its clock waits).
    line.at(5, 9, 30)
    tekun = flow.file("T02", "V004", "MZ-002")
    h["T02"].classify(tekun, MatterKind.REPORTED, actor=ops["T02"])
    h["T02"].escalate(tekun, "申请人无劳动能力、无生活来源，建议纳入特困供养", actor=ops["T02"])
    flow.settle()
    line.at(4, 14)
    hub.handling.decide(tekun, "needs_materials", actor=county_staff, reason="缺少残疾等级证明",
                        missing=("残疾人证复印件",))
    flow.settle()

    # 4 working days ago: a promised matter now one day from its deadline (warning); a 补办件 waiting.
    line.at(4, 15)
    soon = flow.file("T01", "V001", "MZ-003")
    h["T01"].classify(soon, MatterKind.PROMISED, actor=ops["T01"])
    line.at(3, 10)
    insured = flow.file("T02", "V003", "YB-001")
    h["T02"].classify(insured, MatterKind.SUPPLEMENT, actor=ops["T02"], missing_materials=("户口簿",))
    flow.settle()

    # The county supervises the late township matter (督办), and T02 has not answered yet.
    line.at(1, 9, 30)
    hub.handling.issue_supervision(late, "该承诺件已超过办结时限，请说明原因并尽快办结", actor=county_staff)
    flow.settle()
    # Today: new requests just received, not yet classified.
    line.at(0, 9, 10)
    flow.file("T01", "V002", "GA-002")
    flow.file("T02", "V004", "MZ-005")


_VILLAGERS: tuple[dict[str, Any], ...] = ()


def _make_villagers() -> tuple[dict[str, Any], ...]:
    from shared.domain.id_number import with_check_char

    names = ("李桂兰", "王建国", "赵秀英", "刘德明", "陈玉梅", "张守田", "杨春花", "黄大山", "周翠英", "吴长顺",
             "徐淑珍", "孙福来", "马秀兰", "朱永贵", "胡桂芳", "郭占山")
    out = []
    for i, name in enumerate(names):
        born = f"19{40 + i * 3 % 50:02d}{(i % 12) + 1:02d}{(i * 7) % 27 + 1:02d}"
        out.append({"name": name, "id_number": with_check_char(f"430524{born}{i:03d}"),
                    "phone": f"1390731{i:04d}", "address": f"{['东山村', '西岭村', '南坡村', '北河村'][i % 4]}{i % 7 + 1}组{i + 3}号",
                    "elderly_or_disabled": i % 3 == 0, "door_to_door": i % 5 == 0})
    return tuple(out)


_VILLAGERS = _make_villagers()


def township_key(home: Path, passphrase: str):
    from town_center.bootstrap import KEY_FILE_NAME

    return load_key_file(home / KEY_FILE_NAME, passphrase)
