"""Backup and restore, with a real village agent and a real township on loopback gRPC.

The laptop's backup is one encrypted file of its data folder, taken while the agent works; a wrong
passphrase or a tampered file restores nothing. An old backup restored on a new laptop signs nothing
until it has fetched back from the township the records it signed after the backup (docs/ARCHITECTURE.md,
invariant 7): then it files the next matter with the next seq, and the township sees no fork.
The township's own SQLite store is backed up online while villages push, and restored.
"""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from shared.backup import backup_database, restore_database
from shared.calendar import WorkingCalendar
from shared.chain import verify_chain
from shared.clock import FakeClock, to_unix_ms
from shared.errors import BackupError
from shared.keys import InMemoryKeyDirectory
from shared.relay.client import RelayClient
from shared.relay.errors import SyncRefused
from shared.relay.ports import KeyState
from shared.relay.server import RelayLimits, recover_signing_bytes
from shared.signing import Signer
from shared.wire.v1 import relay_pb2
from tests.unit.test_village_services import form
from tests.village_fixtures import PASSPHRASE
from town_center.bootstrap import TownApp, build_app
from town_center.grpc_server import create_server
from town_center.store import open_town_store
from village_agent.actions import ACTIONS
from village_agent.backup import backup_agent, restore_agent
from village_agent.bootstrap import init_agent, open_agent
from village_agent.errors import RecoveringError
from village_agent.services import AgentService
from village_agent.store import receipt
from village_agent.sync import village_outbox

BIN = Path(sys.executable).parent
ENV = dict(os.environ, QUANCHENG_PASSPHRASE=PASSPHRASE)
NOW_MS = 1_795_000_000_000


@dataclass
class Township:
    app: TownApp
    server: grpc.Server
    port: int
    signer: Signer

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def _township(db: Path, clock: FakeClock, limits: RelayLimits | None = None) -> Township:
    signer = Signer.generate()
    app = build_app(f"sqlite:///{db}", signer, clock=clock, calendar=WorkingCalendar(), limits=limits)
    server, port = create_server(app.core, "127.0.0.1:0")
    server.start()
    return Township(app, server, port, signer)



@pytest.fixture()
def town(tmp_path: Path, clock: FakeClock) -> Iterator[Township]:
    t = _township(tmp_path / "town.db", clock)
    yield t
    t.server.stop(grace=None)
    t.app.close()


def _laptop(root: Path, town: Township, clock: FakeClock) -> AgentService:
    init_agent(root, PASSPHRASE, agent_name="王芳", village_code="V001", village_name="东山村", township_code="T01",
               township_name="青石镇", township_address=town.address, township_public_key=town.signer.public_key,
               scrypt_n=2**14, clock=clock)
    return open_agent(root, PASSPHRASE, clock)


def _sync(agent: AgentService) -> dict[str, object]:
    """`village-agent sync`'s code path: the client built from the laptop's settings."""
    return ACTIONS["sync"](agent, {})


# Records a filing signs: the request and the four documents numbered with it (receipt, notice, form, 委托书).
F = 5


def _enrolled(agent: AgentService, town: Township) -> None:
    _sync(agent)                                         # enrols: pending until approved
    town.app.services.approve(agent.signer.key_id, by="站长")
    assert _sync(agent)["waiting_to_send"] == 0


def _receipts(agent: AgentService) -> dict[int, bytes]:
    with agent.store.engine.connect() as conn:
        return {int(r.seq): bytes(r.envelope) for r in conn.execute(receipt.select())}


def _ledger_verifies(agent: AgentService) -> int:
    keys = InMemoryKeyDirectory()
    keys.add_public_key(agent.signer.public_key)
    report = verify_chain([r.envelope for r in agent.store.ledger_rows()], keys)
    assert report.ok, report.first_break
    return report.verified


def test_an_old_backup_restored_refuses_to_sign_until_it_recovers_its_later_records_then_continues_without_a_fork(
        tmp_path: Path, town: Township, clock: FakeClock) -> None:
    old = _laptop(tmp_path / "laptop", town, clock)
    early = [old.file_request(form()).matter_id for _ in range(2)]
    _enrolled(old, town)
    backup = tmp_path / "usb" / "东山村.qcbak"
    backup.parent.mkdir()
    at_backup = backup_agent(tmp_path / "laptop", PASSPHRASE, backup, now_ms=NOW_MS, scrypt_n=2**14)
    assert at_backup.ledger_seq == 1 + 2 * F

    # After the backup the laptop keeps working; the township receipts everything.
    later = [old.file_request(form()).matter_id for _ in range(3)]
    assert _sync(old)["waiting_to_send"] == 0
    township_tip = town.app.store.author(old.signer.key_id).tip
    assert township_tip.seq == 1 + 5 * F
    old_receipts = _receipts(old)
    old.store.close()   # the laptop is lost

    restored = restore_agent(backup, tmp_path / "new-laptop", PASSPHRASE)
    assert restored.ledger_seq == 1 + 2 * F and restored.key_id == old.signer.key_id
    agent = open_agent(tmp_path / "new-laptop", PASSPHRASE, clock)
    try:
        assert agent.store.recovering()
        with pytest.raises(RecoveringError, match="须先连接乡镇同步"):
            agent.file_request(form())
        assert agent.store.tip().seq == 1 + 2 * F and agent.store.outbox_size() == 0

        synced = _sync(agent)
        assert synced["recovered"] == 3 * F and synced["recovering"] is False
        assert agent.store.tip() == township_tip
        assert _ledger_verifies(agent) == 1 + 5 * F
        assert {m.matter_id for m in agent.store.list_matters()} == set(early + later)
        # The township's receipts for the recovered records, re-signed: byte for byte the ones the lost laptop held.
        assert _receipts(agent) == old_receipts

        filed = agent.file_request(form())
        assert filed.seq == 2 + 5 * F
        assert _sync(agent)["waiting_to_send"] == 0
    finally:
        agent.store.close()
    author = town.app.store.author(old.signer.key_id)
    assert author is not None and author.tip.seq == 1 + 6 * F and author.state is KeyState.APPROVED
    assert town.app.store.forks() == []
    assert [seq for seq, _, _ in town.app.store.ingested(old.signer.key_id)] == list(range(1, 2 + 6 * F))


def test_a_restored_backup_holding_records_the_township_never_got_sends_them_after_recovering(
        tmp_path: Path, town: Township, clock: FakeClock) -> None:
    old = _laptop(tmp_path / "laptop", town, clock)
    _enrolled(old, town)
    old.file_request(form())
    old.file_request(form())   # recorded offline, then the laptop's disk dies before a sync
    backup_agent(tmp_path / "laptop", PASSPHRASE, tmp_path / "b.qcbak", now_ms=NOW_MS, scrypt_n=2**14)
    old.store.close()

    restore_agent(tmp_path / "b.qcbak", tmp_path / "new", PASSPHRASE)
    agent = open_agent(tmp_path / "new", PASSPHRASE, clock)
    try:
        result = _sync(agent)
        assert result["recovered"] == 0 and result["recovering"] is False and result["waiting_to_send"] == 0
        assert agent.file_request(form()).seq == 2 + 2 * F
        assert _sync(agent)["waiting_to_send"] == 0
    finally:
        agent.store.close()
    assert town.app.store.author(old.signer.key_id).tip.seq == 1 + 3 * F and town.app.store.forks() == []


def test_a_restored_laptop_does_not_resume_on_a_tip_signed_by_another_township(
        tmp_path: Path, town: Township, clock: FakeClock) -> None:
    old = _laptop(tmp_path / "laptop", town, clock)
    _enrolled(old, town)
    backup_agent(tmp_path / "laptop", PASSPHRASE, tmp_path / "b.qcbak", now_ms=NOW_MS, scrypt_n=2**14)
    old.file_request(form())
    _sync(old)
    old.store.close()
    restore_agent(tmp_path / "b.qcbak", tmp_path / "new", PASSPHRASE)
    agent = open_agent(tmp_path / "new", PASSPHRASE, clock)
    stranger = _township(tmp_path / "other.db", clock)   # knows nothing of this laptop: would say "tip 0"
    try:
        client = RelayClient(stranger.address, village_outbox(agent), agent.signer, clock)
        with pytest.raises(SyncRefused, match="链尾签名无效"):
            client.recover()
        client.stop()
        assert agent.store.recovering()
        with pytest.raises(RecoveringError):
            agent.file_request(form())
        # Its own township answers: it catches up and may sign again.
        assert _sync(agent)["recovered"] == F and not agent.store.recovering()
    finally:
        agent.store.close()
        stranger.server.stop(grace=None)
        stranger.app.close()


def test_recovery_pages_through_a_township_that_sends_two_records_at_a_time_and_refuses_forged_requests(
        tmp_path: Path, clock: FakeClock) -> None:
    town = _township(tmp_path / "town.db", clock, RelayLimits(max_pull=2))
    try:
        old = _laptop(tmp_path / "laptop", town, clock)
        _enrolled(old, town)
        backup_agent(tmp_path / "laptop", PASSPHRASE, tmp_path / "b.qcbak", now_ms=NOW_MS, scrypt_n=2**14)
        for _ in range(5):
            old.file_request(form())
        _sync(old)
        old.store.close()

        channel = grpc.insecure_channel(town.address)
        recover = channel.unary_unary("/quancheng.v1.Relay/Recover", request_serializer=relay_pb2.RecoverRequest.SerializeToString,
                                      response_deserializer=relay_pb2.RecoverResponse.FromString)
        forged = relay_pb2.RecoverRequest(key_id=old.signer.key_id, after_seq=1, max_records=10, nonce=os.urandom(16),
                                          signature=Signer.generate().sign(b"x"))
        with pytest.raises(grpc.RpcError) as refused:
            recover(forged, timeout=5)
        assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED and "签名无效" in refused.value.details()
        nonce, at_ms = os.urandom(16), to_unix_ms(clock.now())
        page = recover(relay_pb2.RecoverRequest(
            key_id=old.signer.key_id, after_seq=1, max_records=10, nonce=nonce, requested_at_ms=at_ms,
            signature=old.signer.sign(recover_signing_bytes(old.signer.key_id, 1, 10, nonce, at_ms))), timeout=5)
        assert len(page.records) == len(page.receipts) == 2 and page.more and page.tip_seq == 1 + 5 * F
        channel.close()

        restore_agent(tmp_path / "b.qcbak", tmp_path / "new", PASSPHRASE)
        agent = open_agent(tmp_path / "new", PASSPHRASE, clock)
        try:
            assert _sync(agent)["recovered"] == 5 * F
            assert agent.file_request(form()).seq == 2 + 5 * F and _sync(agent)["waiting_to_send"] == 0
        finally:
            agent.store.close()
        assert town.app.store.forks() == [] and town.app.store.author(old.signer.key_id).tip.seq == 1 + 6 * F
    finally:
        town.server.stop(grace=None)
        town.app.close()


def _cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=120, env=env or ENV)


def test_a_backup_taken_while_the_agent_records_restores_on_a_new_laptop_and_refuses_bad_passphrases_and_tampering(
        tmp_path: Path, town: Township, clock: FakeClock) -> None:
    agent = _laptop(tmp_path / "laptop", town, clock)
    stop = threading.Event()
    filed: list[int] = []

    def keep_recording() -> None:
        while not stop.is_set():
            filed.append(agent.file_request(form()).seq)

    worker = threading.Thread(target=keep_recording)
    worker.start()
    try:
        while len(filed) < 5:
            stop.wait(0.01)
        out = tmp_path / "usb" / "备份.qcbak"
        out.parent.mkdir()
        done = _cli("village-agent", "backup", "--data", str(tmp_path / "laptop"), "--out", str(out))
        assert done.returncode == 0, done.stderr
        assert "已备份到" in done.stdout
        again = _cli("village-agent", "backup", "--data", str(tmp_path / "laptop"), "--out", str(out))
        assert again.returncode == 2 and "不会覆盖" in again.stderr
    finally:
        stop.set()
        worker.join()
    recorded_by_then = len(filed)
    agent.store.close()

    wrong = _cli("village-agent", "restore", "--from", str(out), "--data", str(tmp_path / "x"),
                 env=dict(ENV, QUANCHENG_PASSPHRASE="not-the-passphrase"))
    assert wrong.returncode == 2 and "口令错误" in wrong.stderr and not (tmp_path / "x").exists()

    data = bytearray(out.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered = tmp_path / "tampered.qcbak"
    tampered.write_bytes(bytes(data))
    bad = _cli("village-agent", "restore", "--from", str(tampered), "--data", str(tmp_path / "y"))
    assert bad.returncode == 2 and "已被改动" in bad.stderr and not (tmp_path / "y").exists()

    truncated = tmp_path / "truncated.qcbak"
    truncated.write_bytes(out.read_bytes()[:-100])
    cut = _cli("village-agent", "restore", "--from", str(truncated), "--data", str(tmp_path / "z"))
    assert cut.returncode == 2 and ("不完整" in cut.stderr or "已被改动" in cut.stderr) and not (tmp_path / "z").exists()

    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "agent.json").write_text("{}", encoding="utf-8")
    busy = _cli("village-agent", "restore", "--from", str(out), "--data", str(occupied))
    assert busy.returncode == 2 and "不是空的" in busy.stderr and (occupied / "agent.json").read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".qc-restore")) == []

    restored = _cli("village-agent", "restore", "--from", str(out), "--data", str(tmp_path / "new-laptop"))
    assert restored.returncode == 0, restored.stderr
    assert "须先" in restored.stdout or "请先连接乡镇" in restored.stdout
    assert sorted(p.name for p in (tmp_path / "new-laptop").iterdir()) == ["agent.db", "agent.json", "device.key", "vault.key"]
    new = open_agent(tmp_path / "new-laptop", PASSPHRASE, clock)
    try:
        rows = _ledger_verifies(new)
        assert 1 + 5 * F <= rows <= 1 + recorded_by_then * F   # a consistent snapshot taken mid-stream
        assert new.store.count_matters() * F == rows - 1          # each filing whole, with its documents
        some = new.store.list_matters(limit=1)[0]
        assert new.applicant(some.matter_id) is not None   # the vault came along: names still open here
        assert new.store.recovering()
    finally:
        new.store.close()


def test_the_townships_sqlite_store_backed_up_online_while_villages_push_restores_and_opens(
        tmp_path: Path, town: Township, clock: FakeClock) -> None:
    agents = [_laptop(tmp_path / f"laptop{i}", town, clock) for i in range(2)]
    for agent in agents:
        _enrolled(agent, town)
    stop = threading.Event()
    errors: list[BaseException] = []

    def village(agent: AgentService) -> None:
        client = RelayClient(town.address, village_outbox(agent), agent.signer, clock)
        try:
            while not stop.is_set():
                for _ in range(3):
                    agent.file_request(form())
                client.sync_once()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            client.stop()

    threads = [threading.Thread(target=village, args=(a,)) for a in agents]
    for t in threads:
        t.start()
    backups = []
    try:
        for i in range(3):
            while town.app.store.ingest_count() < 10 * (i + 1) and not errors:
                stop.wait(0.02)
            out = tmp_path / f"town-{i}.bak"
            backup_database(f"sqlite:///{tmp_path / 'town.db'}", out)
            backups.append(out)
        with pytest.raises(BackupError, match="不会覆盖"):
            backup_database(f"sqlite:///{tmp_path / 'town.db'}", backups[-1])
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors
    for agent in agents:
        agent.store.close()

    for i, out in enumerate(backups):
        target = tmp_path / f"restored-{i}" / "town.db"
        target.parent.mkdir()
        restore_database(f"sqlite:///{target}", out)
        with pytest.raises(BackupError, match="--force"):
            restore_database(f"sqlite:///{target}", out)
        store = open_town_store(f"sqlite:///{target}")
        try:
            for agent in agents:
                held = store.author(agent.signer.key_id)
                assert held is not None
                seqs = [s for s, _, _ in store.ingested(agent.signer.key_id)]
                # Every copy is one moment of the store: each chain contiguous, its tip row agreeing.
                assert seqs == list(range(1, held.tip.seq + 1))
            assert store.ingest_count() >= 10 * (i + 1)
        finally:
            store.close()


def test_town_center_and_county_hub_backup_and_restore_their_sqlite_databases_from_the_command_line(tmp_path: Path) -> None:
    home = tmp_path / "town"
    assert _cli("town-center", "init", "--home", str(home)).returncode == 0
    out = tmp_path / "town.bak"
    done = _cli("town-center", "backup", "--home", str(home), "--out", str(out))
    assert done.returncode == 0 and "已备份乡镇数据库" in done.stdout, done.stderr
    restored = _cli("town-center", "restore", "--home", str(tmp_path / "town2"), "--from", str(out))
    assert restored.returncode == 0, restored.stderr
    refused = _cli("town-center", "restore", "--home", str(tmp_path / "town2"), "--from", str(out))
    assert refused.returncode == 2 and "--force" in refused.stderr
    forced = _cli("town-center", "restore", "--home", str(tmp_path / "town2"), "--from", str(out), "--force")
    assert forced.returncode == 0, forced.stderr
    with sqlite3.connect(tmp_path / "town2" / "town.db") as conn:
        assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM agent_key").fetchone()[0] == 0

    county = tmp_path / "county"
    assert _cli("county-hub", "init", "--home", str(county)).returncode == 0
    cout = tmp_path / "county.bak"
    assert _cli("county-hub", "backup", "--home", str(county), "--out", str(cout)).returncode == 0
    junk = tmp_path / "junk.bak"
    junk.write_bytes(b"not a database" * 100)
    bad = _cli("county-hub", "restore", "--home", str(tmp_path / "county2"), "--from", str(junk))
    assert bad.returncode == 2 and "SQLite" in bad.stderr and not (tmp_path / "county2" / "county.db").exists()
    ok = _cli("county-hub", "restore", "--home", str(tmp_path / "county2"), "--from", str(cout))
    assert ok.returncode == 0, ok.stderr
