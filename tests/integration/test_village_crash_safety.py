"""The agent is SIGKILLed at random points while recording through its real entry point
(`village-agent batch`); every request it confirmed must survive, and the store must stay sound."""
from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from shared.chain import verify_chain
from shared.keys import InMemoryKeyDirectory, load_key_file
from tests.village_fixtures import PASSPHRASE, RECORDS_PER_FILING, make_agent, request_params
from village_agent.config import Paths
from village_agent.store import AgentStore

REQUESTS = 500
MIN_KILLS = 100
BIN = Path(sys.executable).parent


def _start(data: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([str(BIN / "village-agent"), "batch", "--data", str(data)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=dict(os.environ, QUANCHENG_PASSPHRASE=PASSPHRASE))


def test_every_confirmed_request_survives_at_least_a_hundred_sigkills(tmp_path: Path) -> None:
    data = tmp_path / "agent"
    make_agent(data)
    rng = random.Random(20261123)
    pending = []
    for i in range(REQUESTS):
        params = request_params(rng)
        params["matter_id"] = f"00000000-0000-4000-8000-{i:012d}"
        pending.append(params)
    confirmed: set[str] = set()
    kills = 0
    deadline = time.monotonic() + 600
    while (pending or kills < MIN_KILLS) and time.monotonic() < deadline:
        proc = _start(data)
        assert proc.stdin is not None and proc.stdout is not None
        # Re-send everything not yet confirmed: a request committed but killed before its reply
        # must come back as the same matter, not a second one.
        batch = pending[: rng.randint(1, 12)] if pending else [{"action": "status"}]
        for params in batch:
            proc.stdin.write(json.dumps(params, ensure_ascii=False) + "\n")
        proc.stdin.flush()
        wait_for = rng.randint(0, len(batch))
        for _ in range(wait_for):
            line = proc.stdout.readline()
            if not line:
                break
            reply = json.loads(line)
            assert reply["ok"], reply
            if "matter_id" in reply:
                confirmed.add(reply["matter_id"])
        time.sleep(rng.random() * 0.01)  # land the kill anywhere, including mid-transaction
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        kills += 1
        pending = [p for p in pending if p["matter_id"] not in confirmed]
    assert kills >= MIN_KILLS and not pending, f"{kills} kills, {len(pending)} requests never confirmed"

    paths = Paths(data)
    store = AgentStore(paths.database)
    try:
        ids = {m.matter_id for m in store.list_matters(limit=REQUESTS + 10)}
        assert confirmed <= ids and len(ids) == REQUESTS
        signer = load_key_file(paths.key, PASSPHRASE)
        keys = InMemoryKeyDirectory()
        keys.add_public_key(signer.public_key)
        rows = store.ledger_rows()
        report = verify_chain([r.envelope for r in rows], keys)
        assert report.ok, report.first_break
        assert len(rows) == REQUESTS * RECORDS_PER_FILING + 1 and store.outbox_size() == len(rows)
    finally:
        store.close()
    with sqlite3.connect(paths.database) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
