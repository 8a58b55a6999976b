"""TLS on both hops, over real gRPC on loopback, with a throwaway county CA made in the test.

A village laptop that trusts the township's CA syncs and gets verified receipts; one that does not
(no CA, another CA, a plain-text township) is told why in Chinese and keeps every record queued. The
township's link to the county runs over TLS, and with mutual TLS the county refuses a township
without a certificate it issued. Bad certificate files stop a command before anything listens.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hub.bootstrap import HubApp
from hub.bootstrap import build_app as build_hub
from ops.tls import make_ca, make_cert
from shared.calendar import WorkingCalendar
from shared.clock import FakeClock
from shared.domain.catalog import MatterKind
from shared.domain.handling import Stage
from shared.keys import enrollment_uri, write_private_file
from shared.relay.client import ClientLimits, RelayClient
from shared.relay.errors import TlsConfigError, TlsHandshakeFailed
from shared.relay.server import build_server
from shared.relay.tls import ClientTls, ServerTls
from shared.signing import Signer
from tests.county_fixtures import advance
from tests.process_fixtures import BIN, Served, free_port, run
from tests.town_fixtures import MONDAY_9AM, OPERATOR, VillageDevice
from tests.unit.test_village_services import form
from tests.village_fixtures import PASSPHRASE
from town_center.bootstrap import TownApp, link_county
from town_center.bootstrap import build_app as build_town
from town_center.county_link import LinkSettings
from town_center.grpc_server import create_server
from village_agent.bootstrap import init_agent, open_agent
from village_agent.config import AgentConfig, Paths
from village_agent.services import AgentService
from village_agent.sync import relay_client


@dataclass(frozen=True)
class Pki:
    """A county CA, certificates it issued (servers on 127.0.0.1 and a township client), and a stranger CA."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path
    stranger_cert: Path
    stranger_key: Path


def _pair(root: Path, name: str, chain: bytes, key: bytes) -> tuple[Path, Path]:
    (root / f"{name}.crt").write_bytes(chain)
    write_private_file(root / f"{name}.key", key)
    return root / f"{name}.crt", root / f"{name}.key"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    ca, ca_key = make_ca("测试县 CA")
    other, other_key = make_ca("别的 CA")
    (root / "ca.crt").write_bytes(ca)
    (root / "other-ca.crt").write_bytes(other)
    server = _pair(root, "server", *make_cert(ca, ca_key, "town-T01", ["127.0.0.1", "localhost"]))
    client = _pair(root, "town-client", *make_cert(ca, ca_key, "town-T01-client", ["town-T01"]))
    stranger = _pair(root, "stranger", *make_cert(other, other_key, "stranger", ["127.0.0.1"]))
    return Pki(root / "ca.crt", *server, *client, root / "other-ca.crt", *stranger)


# ---------------------------------------------------------------- village → township


@dataclass
class Township:
    app: TownApp
    server: grpc.Server
    port: int
    clock: FakeClock

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def _township(tmp: Path, tls: ServerTls | None) -> Township:
    clock = FakeClock(MONDAY_9AM)
    app = build_town(f"sqlite:///{tmp / 'town.db'}", Signer.generate(), clock=clock, calendar=WorkingCalendar())
    server, port = create_server(app.core, "127.0.0.1:0", tls=tls)
    server.start()
    return Township(app, server, port, clock)


@pytest.fixture()
def tls_town(tmp_path: Path, pki: Pki) -> Iterator[Township]:
    town = _township(tmp_path, ServerTls.from_files(pki.server_cert, pki.server_key))
    yield town
    town.server.stop(None)
    town.app.close()


def _agent(root: Path, town: Township, ca: Path | None) -> AgentService:
    init_agent(root, PASSPHRASE, agent_name="王芳", village_code="V001", village_name="东山村", township_code="T01",
               township_name="青石镇", township_address=town.address, township_public_key=town.app.signer.public_key,
               scrypt_n=2**14, township_ca_pem=ca.read_text(encoding="ascii") if ca else "")
    return open_agent(root, PASSPHRASE, town.clock)


def test_a_village_that_trusts_the_township_ca_syncs_over_tls_and_every_record_is_receipted(
        tmp_path: Path, tls_town: Township, pki: Pki) -> None:
    agent = _agent(tmp_path / "agent", tls_town, pki.ca)
    client = relay_client(agent)
    try:
        assert client.tls is not None
        filed = agent.file_request(form())
        client.sync_once()                                       # enrols: pending until approved
        tls_town.app.services.approve(agent.signer.key_id, by="站长")
        result = client.sync_once()
        assert result.drained and agent.store.outbox_size() == 0
        assert tls_town.app.intake.run_once() >= 1
        assert [line.matter_id for line in tls_town.app.handling.inbox()] == [filed.matter_id]
    finally:
        client.stop()
        agent.store.close()


@pytest.mark.parametrize("trust", ["none", "other-ca", "wrong-name"])
def test_a_village_that_cannot_verify_the_township_is_told_why_in_chinese_and_keeps_its_outbox(
        tmp_path: Path, tls_town: Township, pki: Pki, trust: str) -> None:
    ca = {"none": None, "other-ca": pki.other_ca, "wrong-name": pki.ca}[trust]
    agent = _agent(tmp_path / "agent", tls_town, ca)
    if trust == "wrong-name":
        paths = Paths(tmp_path / "agent")
        replace(AgentConfig.load(paths), township_tls_name="not-the-township.example").save(paths)
        agent.store.close()
        agent = open_agent(tmp_path / "agent", PASSPHRASE, tls_town.clock)
    agent.file_request(form())
    queued = agent.store.outbox_size()
    client = relay_client(agent)
    try:
        with pytest.raises(TlsHandshakeFailed) as refused:
            client.sync_once()
        message = str(refused.value)
        assert message.startswith("无法连接乡镇服务器")
        if trust == "none":
            assert "对方很可能要求加密连接（TLS）" in message and "village-agent set-township-ca" in message
        else:
            assert "握手失败" in message and "CA 证书" in message
        # enrollment, the request and the four documents its filing issued: nothing lost
        assert agent.store.outbox_size() == queued == 2 + 4
        assert tls_town.app.store.author(agent.signer.key_id) is None
    finally:
        client.stop()
        agent.store.close()


def test_a_village_set_up_for_tls_dialling_a_plain_text_township_says_the_township_has_no_tls(
        tmp_path: Path, pki: Pki) -> None:
    town = _township(tmp_path, None)
    agent = _agent(tmp_path / "agent", town, pki.ca)
    client = relay_client(agent)
    try:
        with pytest.raises(TlsHandshakeFailed, match="对方没有启用 TLS"):
            client.sync_once()
        assert agent.store.outbox_size() == 1
    finally:
        client.stop()
        agent.store.close()
        town.server.stop(None)
        town.app.close()


def test_the_health_service_answers_on_the_tls_port_to_a_client_with_the_ca(tls_town: Township, pki: Pki) -> None:
    tls = ClientTls.from_files(pki.ca)
    with grpc.secure_channel(tls_town.address, tls.credentials()) as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="quancheng.v1.Relay"),
                                                           timeout=5)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


# ---------------------------------------------------------------- township → county


@dataclass
class TlsCounty:
    app: HubApp
    server: grpc.Server
    port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def _county(tmp: Path, clock: FakeClock, tls: ServerTls) -> TlsCounty:
    app = build_hub(f"sqlite:///{tmp / 'county.db'}", Signer.generate(), clock=clock, calendar=WorkingCalendar())
    server, port = build_server(app.core, "127.0.0.1:0", tls=tls)
    server.start()
    return TlsCounty(app, server, port)


def _linked(tmp: Path, clock: FakeClock, county: TlsCounty, pki: Pki, *, client_cert: Path | None,
            client_key: Path | None, ca: Path | None = None) -> tuple[TownApp, RelayClient]:
    """A township linked to the county with TLS settings recorded by `link_county`, its client made by
    `CountyLink.make_client` (the path `town-center serve` takes)."""
    db_url = f"sqlite:///{tmp / 'town.db'}"
    link_signer = Signer.generate()
    link_county(db_url, link_signer, address=county.address, county_public_key=county.app.signer.public_key,
                township_code="T01", township_name="青山镇", county_ca_pem=(ca or pki.ca).read_text(encoding="ascii"),
                client_cert_file=str(client_cert or ""), client_key_file=str(client_key or ""))
    app = build_town(db_url, Signer.generate(), clock=clock, calendar=WorkingCalendar(), link_signer=link_signer)
    assert app.county_link is not None
    return app, app.county_link.make_client(limits=ClientLimits(push_deadline_s=5, unary_deadline_s=3))


@pytest.mark.parametrize("mutual", [False, True], ids=["server-tls", "mutual-tls"])
def test_the_township_link_to_the_county_runs_over_tls_from_enrollment_to_an_escalation_receipt(
        tmp_path: Path, pki: Pki, mutual: bool) -> None:
    clock = FakeClock(MONDAY_9AM)
    county = _county(tmp_path, clock, ServerTls.from_files(pki.server_cert, pki.server_key,
                                                           pki.ca if mutual else None))
    town, client = _linked(tmp_path, clock, county, pki, client_cert=pki.client_cert if mutual else None,
                           client_key=pki.client_key if mutual else None)
    try:
        assert client.tls is not None and (client.tls.cert_chain is not None) is mutual
        client.sync_once()                                       # the link key's enrollment: pending
        county.app.store.approve(town.county_link.signer.key_id, by="chen", now_ms=0)
        client.sync_once()
        village = VillageDevice(town)
        matter_id = village.file("MZ-001")
        town.handling.classify(matter_id, MatterKind.REPORTED, actor=OPERATOR)
        advance(clock, hours=1)
        town.handling.escalate(matter_id, "乡镇初审通过", actor=OPERATOR)
        town.intake.run_once()
        assert client.sync_once().drained
        town.county_link.fold()
        assert town.handling.page(matter_id).matter.stage is Stage.ESCALATED
        assert client.sync_once().drained                         # the status record the receipt caused
        assert town.county_link.outbox.pending_count() == 0
        county.app.handling.run_once()
        assert county.app.handling.history(matter_id).view.received_at == clock.now()
    finally:
        client.stop()
        town.close()
        county.server.stop(None)
        county.app.close()


@pytest.mark.parametrize("identity", ["no-certificate", "stranger-certificate"])
def test_mutual_tls_refuses_a_township_without_a_certificate_from_the_county_ca_and_its_outbox_keeps_everything(
        tmp_path: Path, pki: Pki, identity: str) -> None:
    clock = FakeClock(MONDAY_9AM)
    county = _county(tmp_path, clock, ServerTls.from_files(pki.server_cert, pki.server_key, pki.ca))
    cert, key = (None, None) if identity == "no-certificate" else (pki.stranger_cert, pki.stranger_key)
    town, client = _linked(tmp_path, clock, county, pki, client_cert=cert, client_key=key)
    try:
        with pytest.raises(TlsHandshakeFailed, match="无法连接县级服务器.*客户端证书"):
            client.sync_once()
        assert town.county_link.outbox.pending_count() == 1
        assert county.app.store.keys() == []
    finally:
        client.stop()
        town.close()
        county.server.stop(None)
        county.app.close()


def test_link_settings_recorded_before_tls_existed_still_load_as_a_plain_text_link() -> None:
    old = json.dumps({"address": "10.0.0.1:7000", "county_key_id": "k", "county_public_key": "00" * 32,
                      "township_code": "T01", "township_name": "青山镇", "link_key_id": "l"})
    settings = LinkSettings.from_json(old)
    assert settings.county_ca_pem == "" and settings.client_tls() is None
    assert LinkSettings.from_json(settings.to_json()) == settings


def test_an_agent_config_written_before_tls_existed_still_loads_as_plain_text(tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    doc = {"format": "quancheng-village-agent/1", "agent_name": "王芳", "village_code": "V001", "village_name": "东山村",
           "township_code": "T01", "township_name": "青石镇", "township_address": "127.0.0.1:1",
           "township_public_key_b64": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "catalog_version": "2026.1"}
    paths.config.write_text(json.dumps(doc), encoding="utf-8")
    config = AgentConfig.load(paths)
    assert config.township_ca_pem == "" and config.township_tls() is None


# ---------------------------------------------------------------- bad files stop at start-up


def test_missing_invalid_mismatched_and_too_open_files_are_refused_with_the_file_named(tmp_path: Path, pki: Pki) -> None:
    with pytest.raises(TlsConfigError, match=r"找不到证书文件：.*nowhere\.crt"):
        ServerTls.from_files(tmp_path / "nowhere.crt", pki.server_key)
    garbage = tmp_path / "garbage.crt"
    garbage.write_text("这不是证书\n", encoding="utf-8")
    with pytest.raises(TlsConfigError, match="garbage.crt 不是有效的 PEM 证书"):
        ServerTls.from_files(garbage, pki.server_key)
    with pytest.raises(TlsConfigError, match="不配套"):
        ServerTls.from_files(pki.server_cert, pki.client_key)
    with pytest.raises(TlsConfigError, match="须同时指定"):
        ServerTls.from_files(pki.server_cert, None)
    assert ServerTls.from_files("", "") is None                     # empty values from an environment file
    leaf = tmp_path / "leaf.crt"
    chain = pki.server_cert.read_text(encoding="ascii")
    leaf.write_text(chain[:chain.index("-----BEGIN", 1)], encoding="ascii")
    with pytest.raises(TlsConfigError, match="没有 CA 证书"):
        ClientTls.from_files(leaf)                                  # the server's certificate, not the CA
    with pytest.raises(TlsConfigError, match="是一个目录"):
        ClientTls.from_files(tmp_path)
    open_key = tmp_path / "open.key"
    open_key.write_bytes(pki.server_key.read_bytes())
    open_key.chmod(0o644)
    if os.name != "nt":
        with pytest.raises(TlsConfigError, match=r"权限过宽.*chmod 600 .*open\.key"):
            ServerTls.from_files(pki.server_cert, open_key)


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_certificate_is_refused_as_unreadable(tmp_path: Path, pki: Pki) -> None:
    locked = tmp_path / "locked.crt"
    locked.write_bytes(pki.server_cert.read_bytes())
    locked.chmod(0)
    with pytest.raises(TlsConfigError, match="权限不足"):
        ServerTls.from_files(locked, pki.server_key)


def test_the_commands_refuse_bad_certificate_files_in_chinese_before_asking_for_anything(tmp_path: Path, pki: Pki) -> None:
    served = run([BIN / "town-center", "serve", "--home", tmp_path / "no-town", "--tls-cert", tmp_path / "missing.crt",
                  "--tls-key", pki.server_key], check=False)
    assert served.returncode == 2 and "找不到证书文件" in served.stderr and "missing.crt" in served.stderr
    hub = run([BIN / "county-hub", "serve", "--home", tmp_path / "no-county", "--tls-cert", pki.server_cert,
               "--tls-key", pki.client_key], check=False)
    assert hub.returncode == 2 and "不配套" in hub.stderr
    village = run([BIN / "village-agent", "init", "--data", tmp_path / "v", "--agent-name", "王芳", "--village-code", "V001",
                   "--village-name", "东山村", "--township-code", "T01", "--township-name", "青石镇",
                   "--township-address", "127.0.0.1:1", "--township-key", enrollment_uri(Signer.generate().public_key),
                   "--township-ca", pki.server_key], check=False)
    assert village.returncode == 2 and "不是有效的 PEM 证书" in village.stderr
    assert not (tmp_path / "v").exists()


# ---------------------------------------------------------------- the real commands, end to end


def test_town_center_serve_with_tls_and_village_agents_with_and_without_the_ca(tmp_path: Path, pki: Pki) -> None:
    home = tmp_path / "town"
    run([BIN / "town-center", "init", "--home", home])
    from shared.keys import load_key_file
    from town_center.bootstrap import KEY_FILE_NAME

    township_key = load_key_file(home / KEY_FILE_NAME, PASSPHRASE)
    port = free_port()
    town = Served([BIN / "town-center", "serve", "--home", home, "--listen", f"127.0.0.1:{port}", "--console-listen", "off",
                   "--tls-cert", pki.server_cert, "--tls-key", pki.server_key], tmp_path / "town.log", [port])
    town.start()
    try:
        common = ["--agent-name", "王芳", "--village-code", "V001", "--village-name", "东山村", "--township-code", "T01",
                  "--township-name", "青石镇", "--township-address", f"localhost:{port}",
                  "--township-key", enrollment_uri(township_key.public_key)]
        run([BIN / "village-agent", "init", "--data", tmp_path / "with-ca", *common])
        run([BIN / "village-agent", "set-township-ca", "--data", tmp_path / "with-ca", "--township-ca", pki.ca])
        synced = run([BIN / "village-agent", "sync", "--data", tmp_path / "with-ca", "--json"])
        assert "待乡镇审批" in json.loads(synced.stdout)["message"]
        run([BIN / "village-agent", "init", "--data", tmp_path / "no-ca", *common])
        refused = run([BIN / "village-agent", "sync", "--data", tmp_path / "no-ca"], check=False)
        assert refused.returncode == 2 and "对方很可能要求加密连接（TLS）" in refused.stderr
        status = json.loads(run([BIN / "village-agent", "status", "--data", tmp_path / "no-ca", "--json"]).stdout)
        assert status["waiting_to_send"] == 1
    finally:
        assert town.stop() == 0
    assert "同步连接已加密（TLS）" in (tmp_path / "town.log").read_text(encoding="utf-8")


def test_county_link_records_tls_and_serve_refuses_to_start_when_the_client_key_became_readable_by_others(
        tmp_path: Path, pki: Pki) -> None:
    home = tmp_path / "town"
    run([BIN / "town-center", "init", "--home", home])
    key = tmp_path / "link-client.key"
    key.write_bytes(pki.client_key.read_bytes())
    key.chmod(0o600)
    linked = run([BIN / "town-center", "county", "link", "--home", home, "--address", "127.0.0.1:1",
                  "--county-key", Signer.generate().public_key.hex(), "--code", "T01", "--name", "青山镇",
                  "--county-ca", pki.ca, "--client-cert", pki.client_cert, "--client-key", key])
    assert "TLS 加密，双向认证（客户端证书）" in linked.stdout
    not_a_ca = run([BIN / "town-center", "county", "link", "--home", home, "--address", "127.0.0.1:1",
                    "--county-key", Signer.generate().public_key.hex(), "--code", "T01", "--name", "青山镇",
                    "--county-ca", pki.client_key], check=False)
    assert not_a_ca.returncode == 2 and "不是有效的 PEM 证书" in not_a_ca.stderr
    if os.name == "nt":
        return
    key.chmod(0o644)
    served = run([BIN / "town-center", "serve", "--home", home, "--listen", "127.0.0.1:0", "--console-listen", "off"],
                 check=False, timeout=60)
    assert served.returncode == 2 and "权限过宽" in served.stderr and f"chmod 600 {key}" in served.stderr
    assert "已启动" not in served.stdout
