"""The township → county hop with real processes: `county-hub serve` and test townships sending from
their real link chain (`tests/relay_township_proc.py`), real gRPC on loopback, real SQLite files,
SIGKILL on either side and a chaotic proxy between them. Every test is bounded and stops itself."""
from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy import select

from shared.envelope import open_receipt
from shared.relay.ports import EnrollmentInfo
from shared.signing import Signer, is_valid
from shared.wire.v1 import envelope_pb2, records_pb2
from tests.relay_fakes import PASSPHRASE, REPO, ChaosProxy, CountyProcess, free_port
from town_center.store import open_town_store
from town_center.store.tables import county_up


class TownshipSender:
    def __init__(self, workdir: Path, code: str, county_pub: bytes, port: int, **options: object) -> None:
        self.db = workdir / f"{code}.db"
        self.signer = Signer.generate()
        self.code, self.county_pub, self.port, self.options, self.workdir = code, county_pub, port, options, workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, **overrides: object) -> TownshipSender:
        opts = {**self.options, **overrides}
        cmd = [sys.executable, "-m", "tests.relay_township_proc", "--db", str(self.db), "--seed-hex", self.signer.seed().hex(),
               "--target", f"127.0.0.1:{opts.pop('port', self.port)}", "--county-pub-hex", self.county_pub.hex(),
               "--township", self.code]
        for k, v in opts.items():
            cmd += ["--" + k.replace("_", "-"), str(v)]
        err = open(self.workdir / f"{self.code}.log", "ab")
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=err)
        err.close()
        return self

    def wait(self, timeout: float) -> dict[str, object]:
        assert self.proc is not None
        out, _ = self.proc.communicate(timeout=timeout)
        lines = out.decode().strip().splitlines()
        state: dict[str, object] = json.loads(lines[-1]) if lines else {}
        state["returncode"] = self.proc.returncode
        return state

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def county_home(tmp_path: Path) -> Iterator[Path]:
    from hub.bootstrap import init_home

    home = tmp_path / "county"
    home.mkdir()
    (home / "pass").write_text(PASSPHRASE, encoding="utf-8")
    init_home(home, PASSPHRASE)
    yield home


def _county_pub(home: Path) -> bytes:
    return bytes.fromhex((home / "county.pub").read_text().strip())


def _approve(home: Path, senders: Sequence[TownshipSender]) -> None:
    from hub.store import open_hub_store

    store = open_hub_store(str(home / "county.db"))
    try:
        for s in senders:
            store.register_approved(s.signer.public_key, EnrollmentInfo(records_pb2.KEY_ROLE_TOWNSHIP, f"乡镇{s.code}", "",
                                                                        s.code, ""), by="测试", now_ms=0)
    finally:
        store.close()


def _exactly_once(home: Path, senders: Sequence[TownshipSender]) -> int:
    """Every link record is stored at the county once with its exact hash; every receipt the township
    holds verifies under the county key and matches the stored row."""
    from hub.store import open_hub_store

    store = open_hub_store(str(home / "county.db"))
    pub = _county_pub(home)
    total = 0
    try:
        for s in senders:
            town = open_town_store(str(s.db))
            try:
                with town.engine.connect() as conn:
                    ledger = {int(r.seq): bytes(r.hash) for r in conn.execute(select(county_up.ledger.c.seq, county_up.ledger.c.hash))}
                    receipts = [envelope_pb2.Envelope.FromString(bytes(r.envelope)) for r in conn.execute(select(county_up.receipt))]
                    queued = conn.execute(select(county_up.outbox)).all()
            finally:
                town.close()
            rows = store.ingested(s.signer.key_id)
            assert [q for q, _, _ in rows] == list(range(1, len(ledger) + 1)), f"{s.code}: stored seqs differ from the chain"
            stored = {q: (h, t) for q, h, t in rows}
            assert all(stored[q][0] == h for q, h in ledger.items()), f"{s.code}: stored bytes differ"
            assert not queued, f"{s.code}: outbox not drained"
            assert len(receipts) == len(ledger)
            for env in receipts:
                assert is_valid(pub, env.payload, env.signature)
                r = open_receipt(env)
                assert stored[r.seq] == (r.record_hash, r.receipt_time_ms), f"{s.code}: receipt without its row"
            total += len(ledger)
    finally:
        store.close()
    return total


def test_the_county_sigkilled_fifty_times_mid_stream_loses_and_duplicates_nothing(county_home: Path, tmp_path: Path) -> None:
    port, stop_file = free_port(), tmp_path / "stop-recording"
    senders = [TownshipSender(tmp_path, f"T0{i}", _county_pub(county_home), port, until_file=stop_file,
                              record_every_ms=20, per_tick=3, batch_size=25, window=2, deadline_s=3, timeout_s=150)
               for i in range(2)]
    _approve(county_home, senders)
    for s in senders:
        s.start()
    from hub.store import open_hub_store

    store = open_hub_store(str(county_home / "county.db"))
    rng = random.Random(23)
    kills = 0
    county: CountyProcess | None = None
    try:
        while kills < 50:
            county = CountyProcess(county_home, port).start()
            before = store.ingest_count()
            end = time.monotonic() + 5
            while store.ingest_count() == before and time.monotonic() < end:
                time.sleep(0.01)   # batches are flowing: kill in the middle of them
            time.sleep(rng.uniform(0, 0.05))
            county.close()
            kills += 1
        stop_file.write_text("stop")
        county = CountyProcess(county_home, port).start()
        states = [s.wait(200) for s in senders]
    finally:
        store.close()
        for s in senders:
            s.kill()
        if county is not None:
            county.close()
    assert all(st["returncode"] == 0 for st in states), states
    assert _exactly_once(county_home, senders) > 0


def test_a_township_sigkilled_mid_push_resumes_from_its_outbox_without_loss_or_duplicates(county_home: Path,
                                                                                      tmp_path: Path) -> None:
    port = free_port()
    sender = TownshipSender(tmp_path, "T01", _county_pub(county_home), port, records=600, batch_size=20, window=2,
                            deadline_s=3, timeout_s=60)
    _approve(county_home, [sender])
    county = CountyProcess(county_home, port).start()
    rng = random.Random(5)
    try:
        for _ in range(20):
            sender.start()
            time.sleep(rng.uniform(0.05, 0.3))
            sender.kill()
        sender.start()
        state = sender.wait(90)
    finally:
        sender.kill()
        county.close()
    assert state["returncode"] == 0 and state["tip"] == 600, state
    assert _exactly_once(county_home, [sender]) == 600


def test_everything_reaches_the_county_once_a_cut_and_flaky_network_heals(county_home: Path, tmp_path: Path) -> None:
    port = free_port()
    county = CountyProcess(county_home, port).start()
    proxy = ChaosProxy(port, seed=9).start()
    senders = [TownshipSender(tmp_path, f"T0{i}", _county_pub(county_home), proxy.port, records=300, batch_size=30,
                              deadline_s=2, timeout_s=90) for i in range(2)]
    _approve(county_home, senders)
    try:
        for s in senders:
            s.start()
        time.sleep(4)   # refused, delayed, cut and black-holed connections
        proxy.heal()
        states = [s.wait(90) for s in senders]
    finally:
        for s in senders:
            s.kill()
        proxy.stop()
        county.close()
    assert all(st["returncode"] == 0 for st in states), states
    assert _exactly_once(county_home, senders) == 600
