"""The township and county as real processes: health turns NOT_SERVING as soon as they are asked to
stop (before in-flight calls drain), `/metrics` answers on its own port, and `--log-format json`
writes one JSON object a line."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from tests.relay_fakes import PASSPHRASE, REPO, VillageProcess, approve_villages, free_port, health_serving, init_town


def _init_county(home: Path) -> None:
    from hub.bootstrap import init_home

    home.mkdir(parents=True, exist_ok=True)
    (home / "pass").write_text(PASSPHRASE, encoding="utf-8")
    init_home(home, PASSPHRASE)


def _serve(tier: str, home: Path, port: int, metrics_port: int) -> subprocess.Popen[bytes]:
    module = "town_center.cli" if tier == "township" else "hub.cli"
    log = open(home / "serve.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "serve", "--home", str(home), "--listen", f"127.0.0.1:{port}",
         "--console-listen", "off", "--metrics-listen", f"127.0.0.1:{metrics_port}", "--log-format", "json",
         "--passphrase-file", str(home / "pass")], cwd=REPO, stdout=log, stderr=log)
    log.close()
    end = time.monotonic() + 30
    while not health_serving(port, 0.3):
        assert proc.poll() is None, (home / "serve.log").read_text(errors="replace")
        assert time.monotonic() < end, "did not become healthy"
        time.sleep(0.05)
    return proc


@pytest.mark.parametrize("tier", ["township", "county"])
def test_health_reports_not_serving_as_soon_as_the_process_is_asked_to_stop(tier: str, tmp_path: Path) -> None:
    home = tmp_path / tier
    init_town(home) if tier == "township" else _init_county(home)
    port, metrics_port = free_port(), free_port()
    proc = _serve(tier, home, port, metrics_port)
    seen: list[int] = []
    watching = threading.Event()

    def watch() -> None:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stream = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""), timeout=20)
            try:
                for reply in stream:
                    seen.append(reply.status)
                    watching.set()
            except grpc.RpcError:
                pass   # the server closes the stream when it finally stops

    watcher = threading.Thread(target=watch)
    try:
        watcher.start()
        assert watching.wait(10)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        watcher.join(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert seen[0] == health_pb2.HealthCheckResponse.SERVING
    assert health_pb2.HealthCheckResponse.NOT_SERVING in seen, seen
    entries = [json.loads(line) for line in (home / "serve.log").read_text(encoding="utf-8").splitlines()
               if line.startswith("{")]
    assert any(e["logger"] == "shared.serving" and e["message"].startswith("shutting down") for e in entries), entries


def test_a_running_township_serves_metrics_for_the_villages_pushing_to_it(tmp_path: Path) -> None:
    home = tmp_path / "town"
    town_signer = init_town(home)
    port, metrics_port = free_port(), free_port()
    village = VillageProcess(tmp_path, "V07", town_signer.public_key, port)
    approve_villages(f"sqlite:///{home / 'town.db'}", [village])
    proc = _serve("township", home, port, metrics_port)
    try:
        village.start(records=60, timeout_s=60)
        assert village.wait(90)["returncode"] == 0
        text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("quancheng_relay_records_stored_total", ())] == 60
    assert samples[("quancheng_relay_receipts_total", ())] == 60
    assert ("quancheng_peer_last_receipt_age_seconds", (("key_id", village.signer.key_id), ("place", "V07"))) in samples
    assert ("quancheng_hop_clocks", (("hop", "township"), ("state", "overdue"))) in samples

