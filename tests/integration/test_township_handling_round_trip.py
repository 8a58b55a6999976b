"""A real village agent files a request, syncs it over real gRPC on loopback to a real township,
the township's operator classifies it and records the result, the village pulls the township's
signed records and hands the result over, the villager signs off, and the township sees the
sign-off and the rating: the whole township loop of one matter."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import grpc
from sqlalchemy import select

from shared.calendar import WorkingCalendar
from shared.catalog import shipped_catalog_text
from shared.clock import FakeClock
from shared.domain.catalog import MatterKind
from shared.domain.handling import Stage
from shared.relay.client import RelayClient
from shared.signing import Signer
from shared.wire.v1 import records_pb2
from tests.town_fixtures import MONDAY_9AM, OPERATOR
from tests.unit.test_village_services import form
from tests.village_fixtures import PASSPHRASE, make_agent
from town_center.bootstrap import TownApp, build_app
from town_center.grpc_server import create_server
from town_center.store.matter_tables import town_matter
from village_agent.bootstrap import open_agent
from village_agent.domain import MatterStatus
from village_agent.services import AgentService, Confirmation, lookup_code_hash
from village_agent.sync import village_outbox


def _loop(tmp_path: Path) -> tuple[TownApp, grpc.Server, AgentService, RelayClient, FakeClock]:
    """A township serving gRPC on a loopback port and a real village agent set up to sync with it."""
    township_key = Signer.generate()
    clock = FakeClock(MONDAY_9AM)
    town = build_app(f"sqlite:///{tmp_path / 'town.db'}", township_key, clock=clock, calendar=WorkingCalendar())
    server, port = create_server(town.core, "127.0.0.1:0")
    server.start()
    make_agent(tmp_path / "agent", township_key)
    agent = open_agent(tmp_path / "agent", PASSPHRASE, clock)
    return town, server, agent, RelayClient(f"127.0.0.1:{port}", village_outbox(agent), agent.signer, agent.clock), clock


def test_a_matter_goes_from_the_village_to_the_township_and_back_to_the_villagers_sign_off(tmp_path: Path) -> None:
    town, server, agent, client, clock = _loop(tmp_path)
    try:
        filed = agent.file_request(form())
        client.sync_once()                                   # enrols: pending until approved
        town.services.approve(agent.signer.key_id, by="站长")
        client.sync_once()
        assert town.intake.run_once() >= 1
        [line] = town.handling.inbox()
        assert line.matter_id == filed.matter_id and line.stage is Stage.RECEIVED
        details = town.handling.applicant(filed.matter_id)
        assert details is not None and details.name == "李桂兰"           # sealed to the township, opened there
        assert line.id_masked and "李桂兰" not in line.id_masked

        town.handling.classify(filed.matter_id, MatterKind.PROMISED, actor=OPERATOR)
        client.sync_once()
        state = agent.store.matter_state(filed.matter_id)
        assert state.kind == records_pb2.MATTER_KIND_PROMISED and state.due_at_ms > 0

        clock.advance(dt.timedelta(hours=3))
        town.handling.record_result(filed.matter_id, approved=True, summary="已办结，证明已开具", actor=OPERATOR)
        client.sync_once()
        assert agent.store.matter_state(filed.matter_id).status is MatterStatus.RESULT_READY

        agent.hand_over(filed.matter_id, "证明已交本人")
        agent.sign_off(filed.matter_id, "very_satisfied", "上门送达，很方便",
                       confirmation=Confirmation("witness", witness_name="村委会 张主任", witness_statement="群众确认已收到"))
        client.sync_once()
        town.intake.run_once()
        page = town.handling.page(filed.matter_id)
        assert page.matter.stage is Stage.SIGNED_OFF and page.rating == records_pb2.RATING_VERY_SATISFIED
        assert [e.action for e in page.events][-2:] == ["handed_over", "signed_off"]
        # The public lookup key is the hash of the code printed on the villager's receipt.
        assert page.lookup_code_set
        code = agent.store.lookup_code_of(filed.matter_id)
        with town.store.engine.connect() as conn:
            found = conn.execute(select(town_matter.c.matter_id)
                                 .where(town_matter.c.lookup_code_hash == lookup_code_hash(code))).scalar()
        assert found == filed.matter_id
    finally:
        server.stop(0)
        agent.store.close()
        town.close()


def test_a_catalogue_published_by_the_township_is_verified_and_taken_up_by_a_running_village_agent(tmp_path: Path) -> None:
    town, server, agent, client, clock = _loop(tmp_path)
    try:
        client.sync_once()
        town.services.approve(agent.signer.key_id, by="站长")
        text = shipped_catalog_text().replace('version = "2026.1"', 'version = "2026.9"', 1)
        text = text.replace('name = "最低生活保障申请"', 'name = "最低生活保障申请（新）"', 1)
        town.services.publish_catalog(text, by="站长")
        client.sync_once()
        assert agent.catalog.version == "2026.9" and agent.catalog.item("MZ-001").name == "最低生活保障申请（新）"
    finally:
        server.stop(0)
        agent.store.close()
    reopened = open_agent(tmp_path / "agent", PASSPHRASE, clock)   # and after a restart
    try:
        assert reopened.catalog.version == "2026.9"
    finally:
        reopened.store.close()
        town.close()
