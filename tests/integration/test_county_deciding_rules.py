"""Deciding by the rules at the county (issue 14), through the county's service on a real store with a
real gRPC server on port 0 and a real township linked to it:

* a county decision is the director's or a delegated approver's (`county-hub staff delegate`); an
  operator is refused in Chinese and nothing moves; the county decides only what the catalogue gives it;
* refusing a major matter is the director's: an approver asks, the director approves or declines; every
  county 不予批准 is in the 否定报备 register with who decided and who approved (SQLite and PostgreSQL);
* the county suspends its own hop for 鉴定/专家评审 (never 现场勘查), resumes it, extends it within the
  statutory limit on the director's approval and records that the applicant was told in writing — and
  the township's copy of the county hop follows every change to the same due instant;
* the dossier the decision maker reads: the authorization, materials by name, the agent's note, the
  elderly/disabled flag, which also sorts the board.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import uuid
from pathlib import Path
from typing import Any

import pytest

from hub.errors import NotPermitted
from hub.handling import COUNTY_HOP, Outcome
from hub.store.tables import county_refusal
from shared.clock import FakeClock
from shared.domain.catalog import Catalog, MatterKind, Tier
from shared.domain.deadlines import ClockStatus, SuspensionReason
from shared.domain.handling import Actor, RefusalKind, Role, Stage
from shared.errors import HandlingError
from shared.sealing import seal_to
from shared.wire.v1 import records_pb2
from tests.county_fixtures import County, LinkedTownship, advance, county, linked_township
from tests.town_fixtures import OPERATOR, VillageDevice
from town_center.handling import COUNTY_HOP as TOWN_COUNTY_HOP

DIRECTOR = Actor("chen", Role.DIRECTOR)
APPROVER = Actor("liu", Role.APPROVER)
COUNTY_OPERATOR = Actor("zhou", Role.OPERATOR)


def _escalate(town: LinkedTownship, hub: County, village: VillageDevice, clock: FakeClock, code: str = "MZ-001",
              *, matter_id: str | None = None) -> str:
    matter_id = matter_id or village.file(code)
    town.app.handling.classify(matter_id, MatterKind.REPORTED, actor=OPERATOR)
    advance(clock, hours=1)
    town.app.handling.escalate(matter_id, "乡镇初审：材料齐全，情况属实", actor=OPERATOR)
    advance(clock, minutes=5)
    town.sync()
    hub.app.handling.run_once()
    town.sync()
    return matter_id


def _register(hub: County) -> list[dict[str, object]]:
    with hub.app.store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(county_refusal.select().order_by(county_refusal.c.id))]


def _down_records(hub: County) -> list[records_pb2.Record]:
    down = hub.app.store.t.down_log
    with hub.app.store.engine.connect() as conn:
        return [records_pb2.Record.FromString(bytes(p)) for (p,) in conn.execute(
            down.select().with_only_columns(down.c.payload).order_by(down.c.cursor))]


def _down_kinds(hub: County) -> list[str]:
    return [r.WhichOneof("body") or "" for r in _down_records(hub)]


# ---------------------------------------------------------------- who decides


def test_a_county_operator_who_tries_to_decide_is_refused_in_chinese_and_nothing_is_signed(
        town: LinkedTownship, hub: County, clock: FakeClock) -> None:
    village = VillageDevice(town.app)
    matter_id = _escalate(town, hub, village, clock, "MZ-004")
    before = _down_kinds(hub)
    for outcome in (Outcome.APPROVE, Outcome.REFUSE, Outcome.NEEDS_MATERIALS):
        with pytest.raises(NotPermitted, match="县级决定须由中心主任或经主任委托的审批人作出"):
            hub.app.handling.decide(matter_id, outcome, actor=COUNTY_OPERATOR, reason="不符合条件", missing=["户口簿"])
    assert hub.app.handling.history(matter_id).matter.stage is Stage.IN_PROGRESS
    assert _down_kinds(hub) == before and _register(hub) == []
    # 督办 stays open to the county's operators.
    hub.app.handling.issue_supervision(matter_id, "请跟进", actor=COUNTY_OPERATOR)


def test_an_approver_delegated_with_county_hub_staff_delegate_decides_and_the_township_receives_it(
        tmp_path: Path, town: LinkedTownship, hub: County, clock: FakeClock, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from hub.cli import main as county_hub
    from hub.console import open_console_auth
    from shared.console import ScryptParams

    auth = open_console_auth(hub.app, kdf=ScryptParams(n=2**10, r=8, p=1))
    auth.create_staff("chen", "陈主任", Role.DIRECTOR, "县政务中心2026冬季值班")
    auth.create_staff("liu", "刘芳", Role.OPERATOR, "县政务中心2026冬季值班")
    db = hub.app.store.engine.url.render_as_string(hide_password=False)
    assert county_hub(["staff", "delegate", "liu", "--by", "liu", "--home", str(tmp_path), "--db", db]) != 0
    assert "不是在用的中心主任账号" in capsys.readouterr().err
    assert county_hub(["staff", "delegate", "liu", "--by", "chen", "--home", str(tmp_path), "--db", db]) == 0
    assert "刘芳" in capsys.readouterr().out and auth.get_staff("liu").role is Role.APPROVER

    village = VillageDevice(town.app)
    matter_id = _escalate(town, hub, village, clock, "MZ-004")
    hub.app.handling.decide(matter_id, Outcome.APPROVE, actor=auth.get_staff("liu").actor, reason="准予临时救助")
    town.sync()
    m = town.app.handling.page(matter_id).matter
    assert m.stage is Stage.RESULT_READY and m.approved is True

    assert county_hub(["staff", "undelegate", "liu", "--by", "chen", "--home", str(tmp_path), "--db", db]) == 0
    assert auth.get_staff("liu").role is Role.OPERATOR


def test_the_county_decides_only_what_the_catalogue_gives_the_county(
        town: LinkedTownship, hub: County, clock: FakeClock) -> None:
    village = VillageDevice(town.app)
    matter_id = _escalate(town, hub, village, clock, "MZ-004")
    catalog = hub.app.handling.catalog
    # The catalogue changed after the matter came up: MZ-004 is now the township's to decide.
    moved = Catalog(catalog.version, catalog.source, tuple(
        dataclasses.replace(i, decided_by=Tier.TOWNSHIP) if i.code == "MZ-004" else i for i in catalog.items))
    hub.app.handling.catalog = moved
    with pytest.raises(NotPermitted, match="由乡镇便民服务中心审批，县级无权作出决定"):
        hub.app.handling.decide(matter_id, Outcome.APPROVE, actor=DIRECTOR)
    assert hub.app.handling.history(matter_id).matter.stage is Stage.IN_PROGRESS


# ---------------------------------------------------------------- refusals and the 否定报备 register


def _refusal_flow(town: LinkedTownship, hub: County, clock: FakeClock) -> list[Any]:
    village = VillageDevice(town.app)
    major = _escalate(town, hub, village, clock, "MZ-001")          # 最低生活保障: major
    with pytest.raises(NotPermitted, match="属重大疑难事项，不予批准须由中心主任决定"):
        hub.app.handling.decide(major, Outcome.REFUSE, actor=APPROVER, reason="收入超过标准")
    hub.app.handling.request_refusal(major, "家庭人均收入高于当地低保标准", actor=APPROVER)
    held = hub.app.handling.history(major).matter
    assert held.pending_refusal is not None and held.pending_refusal.requested_by == "liu"
    with pytest.raises(HandlingError, match="已有一项不予批准申请等待中心主任审批"):
        hub.app.handling.decide(major, Outcome.APPROVE, actor=DIRECTOR)
    with pytest.raises(NotPermitted, match="须由中心主任审批"):
        hub.app.handling.decide_refusal_request(major, approve=True, actor=APPROVER)
    advance(clock, hours=1)
    hub.app.handling.decide_refusal_request(major, approve=True, actor=DIRECTOR)
    refused = hub.app.handling.history(major).matter
    assert refused.stage is Stage.RESULT_READY and refused.approved is False
    assert refused.refusal is RefusalKind.NOT_APPROVED and refused.refusal_approved_by == "chen"

    declined = _escalate(town, hub, village, clock, "MZ-002")       # 特困供养: major, request declined
    hub.app.handling.request_refusal(declined, "不符合特困条件", actor=APPROVER)
    hub.app.handling.decide_refusal_request(declined, approve=False, actor=DIRECTOR)
    assert hub.app.handling.history(declined).matter.stage is Stage.IN_PROGRESS

    direct = _escalate(town, hub, village, clock, "ZJ-001")         # 危房改造: major, the director himself
    hub.app.handling.decide(direct, Outcome.REFUSE, actor=DIRECTOR, reason="住房经鉴定安全")
    plain = _escalate(town, hub, village, clock, "MZ-004")          # 临时救助: not major, the approver
    with pytest.raises(NotPermitted, match="不属重大疑难事项"):
        hub.app.handling.request_refusal(plain, "理由", actor=APPROVER)
    hub.app.handling.decide(plain, Outcome.REFUSE, actor=APPROVER, reason="已获其他救助")

    rows = _register(hub)
    assert [(r["matter_id"], r["decided_by"], r["decided_by_role"], r["approved_by"], r["major"]) for r in rows] == [
        (major, "liu", "approver", "chen", True), (direct, "chen", "director", "chen", True),
        (plain, "liu", "approver", "", False)]
    entries = hub.app.handling.refusals()
    assert [e.catalog_name for e in entries][0] == "临时救助申请（大额，报县审批）"
    assert {e.township_name for e in entries} == {"青山镇"} and entries[-1].reason == "家庭人均收入高于当地低保标准"
    town.sync()
    for matter_id in (major, direct, plain):
        m = town.app.handling.page(matter_id).matter
        assert m.stage is Stage.RESULT_READY and m.approved is False
    return entries


def test_refusing_a_major_matter_is_the_directors_and_every_refusal_is_in_the_register(
        town: LinkedTownship, hub: County, clock: FakeClock) -> None:
    entries = _refusal_flow(town, hub, clock)
    # Three refusals, one of them a major item's that only stands with the director's approval.
    assert len(entries) == 3 and {e.township_name for e in entries} == {"青山镇"}
    assert any(e.catalog_name == "最低生活保障申请" for e in entries)


@pytest.mark.postgres
def test_the_refusal_register_and_the_decisions_work_alike_on_postgresql(
        tmp_path: Path, clock: FakeClock, postgres_cluster) -> None:
    pg_hub = county(postgres_cluster.create_database(f"county_rules_{uuid.uuid4().hex[:8]}"), clock)
    township = linked_township(tmp_path / "town.db", clock, pg_hub)
    try:
        entries = _refusal_flow(township, pg_hub, clock)
        assert len(entries) == 3 and all(e.reason for e in entries)
    finally:
        township.client.stop()
        township.app.close()
        pg_hub.close()


# ---------------------------------------------------------------- the county hop's clock


def test_the_county_suspends_for_appraisal_resumes_and_both_tiers_count_the_county_hop_alike(
        town: LinkedTownship, hub: County, clock: FakeClock) -> None:
    village = VillageDevice(town.app)
    matter_id = _escalate(town, hub, village, clock, "MZ-004")
    calendar = hub.app.deadlines.calendar
    due_before = hub.app.deadlines.load_clock(matter_id, COUNTY_HOP).due_at(calendar)
    with pytest.raises(HandlingError, match="只有听证、招标、拍卖、检验、检测、检疫、鉴定、专家评审"):
        hub.app.handling.suspend(matter_id, SuspensionReason.SITE_INSPECTION, "入户勘查", actor=APPROVER)
    with pytest.raises(HandlingError, match="预计所需时间"):
        hub.app.handling.suspend(matter_id, SuspensionReason.APPRAISAL, " ", actor=APPROVER)
    with pytest.raises(NotPermitted):
        hub.app.handling.suspend(matter_id, SuspensionReason.APPRAISAL, "伤残等级鉴定", actor=COUNTY_OPERATOR)
    advance(clock, hours=1)
    hub.app.handling.suspend(matter_id, SuspensionReason.APPRAISAL, "委托县司法鉴定中心作伤残等级鉴定，约需10个工作日",
                             actor=APPROVER)
    assert hub.app.deadlines.load_clock(matter_id, COUNTY_HOP).status is ClockStatus.SUSPENDED
    with pytest.raises(HandlingError, match="请先恢复计时"):
        hub.app.handling.decide(matter_id, Outcome.APPROVE, actor=APPROVER)
    town.sync()
    replica = town.app.deadlines.load_clock(matter_id, TOWN_COUNTY_HOP)
    assert replica.status is ClockStatus.SUSPENDED
    assert any("鉴定" in e.text_zh for e in town.app.handling.page(matter_id).events)

    advance(clock, days=7)      # a week of appraisal, not counted
    hub.app.handling.resume(matter_id, actor=APPROVER)
    town.sync()
    own = hub.app.deadlines.load_clock(matter_id, COUNTY_HOP)
    replica = town.app.deadlines.load_clock(matter_id, TOWN_COUNTY_HOP)
    assert own.status is replica.status is ClockStatus.RUNNING
    assert own.due_at(calendar) == replica.due_at(town.app.deadlines.calendar) > due_before
    suspension = hub.app.handling.history(matter_id).matter.clock.suspensions[-1]
    assert suspension.reason is SuspensionReason.APPRAISAL and suspension.end_at == clock.now()


def test_an_extension_is_approved_by_the_director_within_the_statutory_limit_and_the_written_notice_is_recorded(
        town: LinkedTownship, hub: County, clock: FakeClock) -> None:
    village = VillageDevice(town.app)
    matter_id = _escalate(town, hub, village, clock, "MZ-004")     # county: 5 promised, 10 local statutory
    with pytest.raises(HandlingError, match="超过法定时限"):
        hub.app.handling.request_extension(matter_id, 11, "专家评审需时较长", actor=APPROVER)
    with pytest.raises(NotPermitted, match="延期须由中心主任审批"):
        hub.app.handling.extend(matter_id, 8, "专家评审需时较长", actor=APPROVER)
    hub.app.handling.request_extension(matter_id, 8, "需组织专家评审家庭困难程度", actor=APPROVER)
    with pytest.raises(NotPermitted):
        hub.app.handling.decide_extension(matter_id, approve=True, actor=APPROVER)
    advance(clock, hours=2)
    hub.app.handling.decide_extension(matter_id, approve=True, actor=DIRECTOR)
    own = hub.app.deadlines.load_clock(matter_id, COUNTY_HOP)
    assert own.limit.amount == 8 and own.extensions[-1].approver == "chen" and own.unnotified_extensions
    town.sync()
    replica = town.app.deadlines.load_clock(matter_id, TOWN_COUNTY_HOP)
    assert replica.limit.amount == 8
    assert replica.due_at(town.app.deadlines.calendar) == own.due_at(hub.app.deadlines.calendar)
    assert any("延期" in e.text_zh for e in town.app.handling.page(matter_id).events)
    # The written 延期告知 goes down signed, for the township to pass on to the applicant.
    notices = [r.status_update.message for r in _down_records(hub) if r.WhichOneof("body") == "status_update"
               and r.status_update.matter_id == matter_id and "延期告知" in r.status_update.message]
    assert notices and "由5个工作日延长至8个工作日" in notices[-1] and "请将本告知书面转告申请人" in notices[-1]

    hub.app.handling.extension_notified(matter_id, "延期告知书经青山镇转交申请人签收", actor=APPROVER)
    own = hub.app.deadlines.load_clock(matter_id, COUNTY_HOP)
    assert not own.unnotified_extensions and own.extensions[-1].applicant_notified_at == clock.now()
    with pytest.raises(HandlingError, match="没有尚未告知申请人的延期"):
        hub.app.handling.extension_notified(matter_id, "再次告知", actor=APPROVER)
    # The director extends at once, once more, still within the statutory ten days.
    hub.app.handling.extend(matter_id, 10, "专家意见分歧，需复评", actor=DIRECTOR)
    town.sync()
    assert town.app.deadlines.load_clock(matter_id, TOWN_COUNTY_HOP).limit.amount == 10


# ---------------------------------------------------------------- what the decision maker reads


def signature_png(width: int = 240, height: int = 80) -> bytes:
    """A white PNG with a dark stroke across it: a drawn signature a screenshot can show."""
    import struct
    import zlib

    rows = []
    for y in range(height):
        row = bytearray(b"\x00" + b"\xff" * width)        # filter byte, then one grey byte per pixel
        for x in range(width):
            wave = height / 2 + (height / 3) * math.sin(x / 18)
            if abs(y - wave) < 2.5:
                row[1 + x] = 0x20
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows)))
            + chunk(b"IEND", b""))


SIGNATURE = signature_png()


def file_with_dossier(village: VillageDevice, hub: County, *, elderly: bool, sealed_to_county: bool) -> str:
    """A filing as the laptop makes it, with an authorization, materials and a note."""
    matter_id = str(uuid.uuid4())
    details = records_pb2.ApplicantDetails(name="测试村民", id_number="110101199003070011", phone="13800001111", address="一组")
    record = records_pb2.Record()
    body = record.request_filed
    body.matter_id, body.catalog_code, body.village_code = matter_id, "MZ-004", village.village_code
    body.intake_outcome = records_pb2.INTAKE_OUTCOME_ACCEPT
    body.applicant.id_number_masked = "1101**********0011"
    body.applicant.sealed_details = seal_to(village.app.signer.public_key, details.SerializeToString())
    body.applicant.sealed_to_key_id = village.app.signer.key_id
    body.applicant.elderly_or_disabled = elderly
    body.door_to_door = elderly
    key = hub.app.signer if sealed_to_county else village.app.signer
    body.authorization.method = records_pb2.AUTHORIZATION_METHOD_DRAWN_SIGNATURE
    body.authorization.sealed_evidence = seal_to(key.public_key, SIGNATURE)
    body.authorization.sealed_to_key_id = key.key_id
    body.authorization.evidence_sha256 = hashlib.sha256(SIGNATURE).digest()
    item = hub.app.handling.catalog.item("MZ-004")
    body.materials_brought.extend(m.id for m in item.main_materials)
    body.note = "申请人行动不便，上门收件" if elderly else ""
    village.send(record)
    village.app.intake.run_once()
    return matter_id


def test_the_decision_maker_reads_the_authorization_materials_by_name_the_note_and_the_flag_and_the_board_sorts_it_first(
        town: LinkedTownship, hub: County, clock: FakeClock) -> None:
    village = VillageDevice(town.app)
    plain = _escalate(town, hub, village, clock, matter_id=file_with_dossier(village, hub, elderly=False,
                                                                              sealed_to_county=False))
    elderly = _escalate(town, hub, village, clock, matter_id=file_with_dossier(village, hub, elderly=True,
                                                                                sealed_to_county=True))
    later = _escalate(town, hub, village, clock, "MZ-004")
    board = hub.app.handling.escalated()
    assert [v.matter_id for v in board] == [elderly, later, plain]     # the flag first, then newest first
    assert board[0].elderly_or_disabled and not board[1].elderly_or_disabled

    h = hub.app.handling.history(elderly)
    d = h.dossier
    assert d is not None and d.elderly_or_disabled and d.door_to_door and d.note == "申请人行动不便，上门收件"
    item = hub.app.handling.catalog.item("MZ-004")
    names = {m.name: m.status_zh for m in d.materials}
    assert all(names[m.name] == "已带" for m in item.main_materials)
    assert all(names[m.name].startswith("未带") for m in item.auxiliary_materials)
    assert not any(m.id in " ".join(names) for m in item.materials)          # names, never ids
    assert d.authorization is not None and d.authorization.method_zh == "申请人在代办员电脑上现场手写签名"
    assert hub.app.handling.authorization_image(elderly) == (SIGNATURE, "image/png")

    # Sealed to the township by the laptop: the township reseals it to the county with the 上报.
    other = hub.app.handling.history(plain).dossier
    assert other is not None and other.authorization is not None and other.authorization.has_image
    assert hub.app.handling.authorization_image(plain) == (SIGNATURE, "image/png")


def test_a_county_database_at_hub_0001_upgrades_keeps_its_matters_and_the_board_flags_them_from_their_escalations(
        tmp_path: Path, clock: FakeClock) -> None:
    from sqlalchemy import create_engine, text

    from hub.bootstrap import build_app
    from shared.calendar import WorkingCalendar

    url = f"sqlite:///{tmp_path / 'county.db'}"
    first = county(url, clock)
    township = linked_township(tmp_path / "town.db", clock, first)
    try:
        village = VillageDevice(township.app)
        elderly = _escalate(township, first, village, clock,
                            matter_id=file_with_dossier(village, first, elderly=True, sealed_to_county=False))
        first.app.handling.decide(elderly, Outcome.REFUSE, actor=DIRECTOR, reason="已获其他救助")
    finally:
        township.client.stop()
        township.app.close()
        signer = first.app.signer
        first.close()
    # What the released county had: no register, no delegations, no flags — every later revision undone.
    from alembic import command

    from hub.store.migrations import HUB_MIGRATIONS
    from shared.migrations import alembic_config
    engine = create_engine(url)
    with engine.begin() as conn:
        command.downgrade(alembic_config(HUB_MIGRATIONS, conn), "hub_0001")
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "hub_0001"
    engine.dispose()

    again = build_app(url, signer, clock=clock, calendar=WorkingCalendar())
    try:
        assert [v.matter_id for v in again.handling.escalated()] == [elderly]
        assert again.handling.refusals() == []           # refusals before the register are in the history only
        again.handling.run_once()                        # the first pass takes the flags from the escalations
        [view] = again.handling.escalated()
        assert view.elderly_or_disabled and view.door_to_door
    finally:
        again.close()
