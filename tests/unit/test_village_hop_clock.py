"""The village's 报送 hop: from the villager's request (filing on the laptop) to the township's receipt,
limited by the catalogue's village hop, counted in working days; stopped by the township's signed
receipt. A matter the village decides itself has no 报送: its hop is the handling clock."""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.catalog import load_catalog
from shared.clock import FakeClock, to_unix_ms
from shared.domain.catalog import Tier
from shared.domain.id_number import with_check_char
from shared.envelope import sign_receipt
from shared.signing import Signer
from shared.wire.v1 import envelope_pb2
from tests.village_fixtures import PASSPHRASE, make_agent
from village_agent.bootstrap import open_agent
from village_agent.hop import village_hop
from village_agent.services import AgentService, RequestForm
from village_agent.sync import village_outbox

NOW = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)  # Monday 10:00 in Shanghai
CATALOG = load_catalog()
REPORTED = next(i for i in CATALOG if i.decided_by is not Tier.VILLAGE and i.hop(Tier.VILLAGE).promised.to_text() == "1wd")
VILLAGE_ITEM = next(i for i in CATALOG if i.decided_by is Tier.VILLAGE)
SHANGHAI_HOUR = dt.timedelta(hours=1)


@pytest.fixture()
def agent(tmp_path: Path) -> Iterator[tuple[AgentService, Signer, FakeClock]]:
    township = make_agent(tmp_path / "agent")
    clock = FakeClock(NOW)
    service = open_agent(tmp_path / "agent", PASSPHRASE, clock)
    yield service, township, clock
    service.store.close()


def file(service: AgentService, item=REPORTED) -> str:
    return service.file_request(RequestForm(
        applicant_name="李桂兰", id_number=with_check_char("43052419480312002"), phone="13907310001", address="东山村",
        catalog_code=item.code, materials_brought=[m.id for m in item.materials], authorization_method="witness",
        witness_name="赵六", witness_statement="口头委托")).matter_id


def hop_now(service: AgentService, matter_id: str):
    state = service.store.matter_state(matter_id)
    item = service.catalog.item(state.catalog_code)
    received = service.store.receipt_times([state.filed_seq]).get(state.filed_seq)
    return village_hop(item, state, received_ms=received, now_ms=to_unix_ms(service.clock.now()), calendar=service.calendar)


def township_receipt(service: AgentService, township: Signer, matter_id: str, at: dt.datetime) -> None:
    """The township's signed receipt for the filing record, confirmed through the laptop's outbox."""
    seq = service.store.matter_state(matter_id).filed_seq
    row = next(r for r in service.store.ledger_rows() if r.seq == seq)
    from shared.signing import payload_hash

    receipt = envelope_pb2.Receipt(author_key_id=service.signer.key_id, seq=seq, record_hash=payload_hash(row.envelope.payload),
                                   receipt_time_ms=to_unix_ms(at))
    assert village_outbox(service).confirm([sign_receipt(township, receipt)], now_ms=to_unix_ms(at)) == 1


def test_the_report_hop_is_due_one_working_day_after_the_request_on_the_working_calendar(agent) -> None:
    service, _, _ = agent
    hop = hop_now(service, file(service))
    assert hop.title_zh == "报送时限" and hop.due_zh == "2026-11-24 17:30" and hop.css == "on-time"
    assert hop.source_zh == "本县规定时限" and "承诺 1个工作日" in hop.limit_zh


def test_a_request_filed_on_friday_evening_is_due_on_tuesday_not_over_the_weekend(agent) -> None:
    service, _, clock = agent
    clock.set(dt.datetime(2026, 11, 27, 11, 0, tzinfo=dt.UTC))   # Friday 19:00 in Shanghai, after office hours
    hop = hop_now(service, file(service))
    assert hop.due_zh == "2026-12-01 17:30"   # received Monday, one working day: Tuesday's close


def test_the_report_hop_warns_then_goes_overdue_while_the_township_has_not_received_it(agent) -> None:
    service, _, clock = agent
    matter_id = file(service)
    clock.advance(dt.timedelta(hours=8))          # Monday 18:00: within a working day of the due time
    assert (hop_now(service, matter_id).css, hop_now(service, matter_id).state_zh) == ("warning", "临期预警")
    clock.advance(dt.timedelta(days=1, hours=1))  # Tuesday 19:00: past Tuesday's close
    assert (hop_now(service, matter_id).css, hop_now(service, matter_id).state_zh) == ("overdue", "已超期")


def test_the_township_receipt_stops_the_report_hop_on_time(agent) -> None:
    service, township, clock = agent
    matter_id = file(service)
    township_receipt(service, township, matter_id, NOW + 2 * SHANGHAI_HOUR)
    clock.advance(dt.timedelta(days=5))
    hop = hop_now(service, matter_id)
    assert hop.state_zh == "按时报送" and hop.css == "done" and "乡镇已收到（2026-11-23 12:00）" == hop.stopped_zh


def test_a_late_receipt_stops_the_clock_and_shows_the_report_was_late(agent) -> None:
    service, township, clock = agent
    matter_id = file(service)
    township_receipt(service, township, matter_id, NOW + dt.timedelta(days=3))   # Thursday
    hop = hop_now(service, matter_id)
    assert hop.state_zh == "超时报送" and hop.css == "overdue-done"


def test_a_village_decided_matter_runs_its_handling_clock_until_the_hand_over(agent) -> None:
    service, _, clock = agent
    matter_id = file(service, VILLAGE_ITEM)
    hop = hop_now(service, matter_id)
    assert hop.title_zh == "办理时限" and hop.due_zh == "2026-11-23 10:30"   # 30 office minutes
    clock.advance(dt.timedelta(minutes=25))
    assert hop_now(service, matter_id).state_zh == "临期预警"
    service.hand_over(matter_id, "资格认证已通过")
    clock.advance(dt.timedelta(hours=3))
    assert hop_now(service, matter_id).state_zh == "按时办结"


def test_a_request_the_village_returned_at_intake_has_no_report_clock(agent) -> None:
    service, _, _ = agent
    matter_id = service.file_request(RequestForm(
        applicant_name="李桂兰", id_number=with_check_char("43052419480312002"), phone="13907310001", address="东山村",
        catalog_code=REPORTED.code, materials_brought=[], authorization_method="witness", witness_name="赵六",
        witness_statement="口头委托")).matter_id
    hop = hop_now(service, matter_id)
    assert hop.css == "untimed" and "退回" in hop.state_zh


def test_a_withdrawal_before_the_receipt_stops_the_report_clock(agent) -> None:
    service, _, clock = agent
    matter_id = file(service)
    clock.advance(dt.timedelta(hours=1))
    service.withdraw(matter_id, "申请人不再办理")
    clock.advance(dt.timedelta(days=5))
    hop = hop_now(service, matter_id)
    assert hop.state_zh == "已撤回，停止计时" and hop.css == "done"


def test_a_limit_the_catalogue_marks_statutory_is_labelled_as_such_and_any_other_as_the_countys_own(agent) -> None:
    import dataclasses
    from types import MappingProxyType

    from shared.domain.catalog import StatutorySource

    service, _, _ = agent
    matter_id = file(service)
    state = service.store.matter_state(matter_id)
    local = village_hop(REPORTED, state, received_ms=None, now_ms=to_unix_ms(NOW), calendar=service.calendar)
    hop = dataclasses.replace(REPORTED.limits[Tier.VILLAGE], statutory_source=StatutorySource.STATUTE)
    statute = dataclasses.replace(REPORTED, limits=MappingProxyType({**REPORTED.limits, Tier.VILLAGE: hop}))
    labelled = village_hop(statute, state, received_ms=None, now_ms=to_unix_ms(NOW), calendar=service.calendar)
    assert local is not None and labelled is not None
    assert local.source_zh == "本县规定时限" and "法定" not in local.limit_zh
    assert labelled.source_zh == "法定时限" and "（法定时限 " in labelled.limit_zh
