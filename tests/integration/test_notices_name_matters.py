"""What people read about a matter names it as they know it: deadline notices, 督办 and applicant SMS
carry the matter's title (and the lookup code where the tier knows it) and the hop in Chinese, never the
internal id or an English hop key; and an applicant's mobile number leaves the SMS queue once sent.
Real SQLite deadline store, the real outbox relay, the real deadline watch; fakes only for the receiver."""
from __future__ import annotations

import datetime as dt
import re
import uuid
from pathlib import Path

import pytest

from shared.calendar import WorkingCalendar
from shared.clock import FakeClock
from shared.deadline_watch.notify import (
    HOP_ZH,
    DeliveryRejectedError,
    MatterName,
    Notification,
    OutboxRelay,
    deadline_notifications,
    extension_notice_sms,
    result_ready_sms,
)
from shared.deadline_watch.scheduler import DeadlineWatch
from shared.deadline_watch.sealed_recipient import KeySeal
from shared.deadline_watch.store import DeadlineStore, make_engine
from shared.domain.deadlines import ClockState
from shared.signing import Signer
from tests.county_fixtures import County, LinkedTownship
from tests.integration.test_county_hop import _escalate
from tests.integration.test_deadline_watch import AFTER_WARN, RECEIVED, RecordingReceiver, five_day_clock, sh
from tests.town_fixtures import VillageDevice

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ASCII_WORD = re.compile(r"[A-Za-z_]{3,}")
PHONE = "13907310001"


def _assert_reads_as_people_say_it(text: str) -> None:
    assert not UUID.search(text), text
    for key in HOP_ZH:
        assert key not in text, text
    assert not ASCII_WORD.search(text.replace("AB3CD-EF4GH", "")), text


class Names:
    """The port as a tier implements it, over a dict."""

    def __init__(self, names: dict[str, MatterName]) -> None:
        self.names = names

    def matter_name(self, matter_id: str) -> MatterName | None:
        return self.names.get(matter_id)


class Refusing(RecordingReceiver):
    def send(self, notification: Notification) -> None:
        raise DeliveryRejectedError("对方拒收：HTTP 400")


@pytest.fixture
def store(tmp_path: Path) -> DeadlineStore:
    engine = make_engine(f"sqlite:///{tmp_path / 'deadlines.db'}")
    deadlines = DeadlineStore(engine, WorkingCalendar(), recipient_seal=KeySeal.of(Signer.generate()))
    deadlines.create_schema()
    yield deadlines
    engine.dispose()


@pytest.mark.parametrize("hop", sorted(HOP_ZH))
@pytest.mark.parametrize("level", [ClockState.WARNING, ClockState.OVERDUE, ClockState.SUPERVISE])
def test_a_deadline_notice_names_the_hop_in_chinese_and_never_the_matter_id(hop: str, level: ClockState) -> None:
    matter_id = str(uuid.uuid4())
    for name in (None, MatterName("最低生活保障审批", "东山村", "AB3CD-EF4GH")):
        for n in deadline_notifications(matter_id=matter_id, hop=hop, level=level, due_at=sh(2026, 12, 1),
                                        responsible="wang", name=name):
            _assert_reads_as_people_say_it(n.text_zh)
            assert HOP_ZH[hop] in n.text_zh
            if name is not None:
                assert "东山村的“最低生活保障审批”（查询码 AB3CD-EF4GH）" in n.text_zh


def test_applicant_sms_never_carry_the_matter_id() -> None:
    matter_id = str(uuid.uuid4())
    for name in (None, MatterName("最低生活保障审批", "东山村")):
        sms = [result_ready_sms(matter_id=matter_id, phone=PHONE, pickup_place_zh="青石镇便民服务中心", name=name),
               extension_notice_sms(matter_id=matter_id, hop="township", phone=PHONE, new_due_at=sh(2026, 12, 8),
                                    extension_index=1, name=name)]
        for n in sms:
            _assert_reads_as_people_say_it(n.text_zh)
            assert PHONE not in n.text_zh


def test_the_watch_words_each_notice_with_the_tiers_names_when_it_is_delivered(store: DeadlineStore) -> None:
    matter_id = str(uuid.uuid4())
    store.save_clock(matter_id, "township", five_day_clock(), now=RECEIVED, responsible="wang")
    store.enqueue_notification(result_ready_sms(matter_id=matter_id, phone=PHONE, pickup_place_zh="2号窗口"), now=RECEIVED)
    receiver = RecordingReceiver()
    names = Names({matter_id: MatterName("最低生活保障审批", "东山村")})
    relay = OutboxRelay(store, receiver, receiver, owner="p1", names=names)
    report = DeadlineWatch(store, FakeClock(AFTER_WARN), relay=relay, fired_by="p1").run_once()
    assert report.drained.sent == 2
    texts = {n.kind.value: n.text_zh for n in receiver.sent}
    assert "东山村的“最低生活保障审批”（乡镇办理环节）将于" in texts["deadline_warning"]
    assert "您委托办理的“最低生活保障审批”已办结" in texts["result_ready"]
    for text in texts.values():
        _assert_reads_as_people_say_it(text)


def test_a_sent_sms_leaves_no_mobile_number_in_the_queue_or_the_database_file(store: DeadlineStore, tmp_path: Path) -> None:
    now = sh(2026, 11, 23, 12)
    for i in range(3):
        store.enqueue_notification(result_ready_sms(matter_id=f"m-{i}", phone=f"1390731000{i}", pickup_place_zh="窗口"), now=now)
    store.enqueue_notification(result_ready_sms(matter_id="m-9", phone="13907310009", pickup_place_zh="窗口"), now=now)
    receiver = RecordingReceiver()
    assert OutboxRelay(store, receiver, receiver, owner="p1", batch_size=3, max_batches=1).drain(now).sent == 3
    assert sorted(n.recipient for n in receiver.sent) == [f"1390731000{i}" for i in range(3)]   # the gateway got them
    assert OutboxRelay(store, Refusing(), Refusing(), owner="p1").drain(now).rejected == 1      # m-9, finally refused
    store.engine.dispose()
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    for phone in [f"1390731000{i}" for i in range(3)] + ["13907310009"]:
        assert phone.encode() not in blob
    assert b"139****0001" in blob


def test_an_sms_still_waiting_for_the_gateway_keeps_its_number(store: DeadlineStore) -> None:
    now = sh(2026, 11, 23, 12)
    store.enqueue_notification(result_ready_sms(matter_id="m-1", phone=PHONE, pickup_place_zh="窗口"), now=now)
    claimed = store.claim_notifications(now, limit=10, lease_after=dt.timedelta(minutes=2), owner="p1")
    assert [item.notification.recipient for item in claimed] == [PHONE]


# ---------------------------------------------------------------- each tier's MatterNames, on its real store


def test_the_township_and_the_county_name_a_reported_matter_by_its_title_and_where_it_came_from(
        town: LinkedTownship, hub: County, clock: FakeClock) -> None:
    from hub.matter_names import CountyMatterNames
    from town_center.matter_names import TownMatterNames

    village = VillageDevice(town.app, village_code="V001")
    matter_id = _escalate(town, hub, village, clock)
    title = town.app.handling.catalog.item("MZ-001").name
    at_town = TownMatterNames(town.app.store.engine, lambda: town.app.handling.catalog).matter_name(matter_id)
    at_county = CountyMatterNames(hub.app.store.engine, lambda: hub.app.handling.catalog).matter_name(matter_id)
    assert at_town == MatterName(title, "代办员代办员V001报送")
    assert at_county is not None and at_county.title == title and at_county.place == "青山镇"
    assert TownMatterNames(town.app.store.engine, lambda: town.app.handling.catalog).matter_name(str(uuid.uuid4())) is None
    for name in (at_town, at_county):
        notice = deadline_notifications(matter_id=matter_id, hop="county", level=ClockState.OVERDUE,
                                        due_at=sh(2026, 12, 1), responsible=None, name=name)[0]
        _assert_reads_as_people_say_it(notice.text_zh)
