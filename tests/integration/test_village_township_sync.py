"""The real village agent and the real township center, as separate processes on loopback.

Three villages record while the township is down; it comes up; each agent syncs through
`village-agent sync`; every record arrives exactly once and every outbox row is dropped only
against a verified receipt.
"""
from __future__ import annotations

import json
import os
import random
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from shared.keys import enrollment_uri, load_key_file
from tests.common_fixtures import free_port
from tests.village_fixtures import PASSPHRASE, RECORDS_PER_FILING, request_params
from town_center.bootstrap import DB_FILE_NAME, KEY_FILE_NAME

BIN = Path(sys.executable).parent
ENV = dict(os.environ, QUANCHENG_PASSPHRASE=PASSPHRASE)


def _run(cmd: list[str], stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout, env=ENV)


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert proc.poll() is None, "township exited early"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError("township did not start listening")


def test_three_villages_recording_while_the_township_is_down_deliver_every_record_exactly_once(tmp_path: Path) -> None:
    town_home = tmp_path / "town"
    assert _run([str(BIN / "town-center"), "init", "--home", str(town_home)]).returncode == 0
    township_key = load_key_file(town_home / KEY_FILE_NAME, PASSPHRASE)
    port = free_port()
    villages = [tmp_path / f"village{i}" for i in range(3)]
    rng = random.Random(42)
    per_village = 20
    for i, data in enumerate(villages):
        init = _run([str(BIN / "village-agent"), "init", "--data", str(data), "--agent-name", f"代办员{i}",
                     "--village-code", f"V00{i}", "--village-name", f"第{i}村", "--township-code", "T01",
                     "--township-name", "青石镇", "--township-address", f"127.0.0.1:{port}",
                     "--township-key", enrollment_uri(township_key.public_key)])
        assert init.returncode == 0, init.stderr
        lines = "".join(json.dumps(request_params(rng), ensure_ascii=False) + "\n" for _ in range(per_village))
        assert _run([str(BIN / "village-agent"), "batch", "--data", str(data)], stdin=lines).returncode == 0
        # The township is still down: sync fails cleanly and loses nothing.
        down = _run([str(BIN / "village-agent"), "sync", "--data", str(data)])
        assert down.returncode == 2 and "无法连接乡镇" in down.stderr

    town = subprocess.Popen([str(BIN / "town-center"), "serve", "--home", str(town_home), "--listen", f"127.0.0.1:{port}"],
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port, town)
        for data in villages:
            first = _run([str(BIN / "village-agent"), "sync", "--data", str(data), "--json"])
            assert first.returncode == 0, first.stderr
        listed = _run([str(BIN / "town-center"), "agents", "list", "--home", str(town_home)])
        assert listed.returncode == 0 and listed.stdout.count("待审批") >= 3, listed.stdout
        for data in villages:
            key_id = json.loads(_run([str(BIN / "village-agent"), "status", "--data", str(data), "--json"]).stdout)["key_id"]
            approved = _run([str(BIN / "town-center"), "agents", "approve", key_id, "--home", str(town_home), "--by", "站长"])
            assert approved.returncode == 0, approved.stderr
        for data in villages:
            for _ in range(2):  # the second pass must find nothing left and change nothing
                synced = _run([str(BIN / "village-agent"), "sync", "--data", str(data), "--json"])
                assert synced.returncode == 0, synced.stderr
            assert json.loads(synced.stdout)["waiting_to_send"] == 0
    finally:
        town.terminate()
        town.wait(timeout=30)

    db = town_home / DB_FILE_NAME
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT author_key_id, seq FROM ingest_log").fetchall()
    assert len(rows) == len(set(rows)) == 3 * (per_village * RECORDS_PER_FILING + 1)
    for data in villages:
        with sqlite3.connect(data / "agent.db") as conn:
            assert conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0
            assert conn.execute("SELECT count(*) FROM receipt").fetchone()[0] == per_village * 5 + 1
