"""The README's start command (`bash ops/start.sh`) run as a newcomer would: a whole county comes up
on embedded SQLite, a new matter flows village → township → county → back → sign-off through the
real processes and consoles, Ctrl-C stops everything cleanly, and a second run resumes the data."""
from __future__ import annotations

import base64
import json
import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from shared.catalog import load_catalog
from tests.process_fixtures import BIN, ConsoleClient, run, village
from tests.village_fixtures import SIGNATURE_PNG, villager

REPO = Path(__file__).resolve().parents[2]
TOWN_PASSWORD, COUNTY_PASSWORD = "演示窗口口令2026年春", "演示县级口令2026年春"
DEMO_PASSPHRASE = "演示口令-仅供本机演示"


def _start(root: Path, offset: int) -> tuple[subprocess.Popen[str], list[str]]:
    env = dict(os.environ, QUANCHENG_DEMO_ROOT=str(root), QUANCHENG_DEMO_PORT_OFFSET=str(offset))
    env.pop("QUANCHENG_PASSPHRASE", None)
    proc = subprocess.Popen(["bash", "ops/start.sh"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1)
    lines: list[str] = []
    end = time.monotonic() + 420      # a first run installs the runtime packages and seeds three weeks of history
    assert proc.stdout is not None
    while time.monotonic() < end:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError("start command exited early:\n" + "".join(lines))
        lines.append(line)
        if "全部服务已启动" in line:
            return proc, lines
    proc.kill()
    raise AssertionError("start command never said it was up:\n" + "".join(lines))


def _stop(proc: subprocess.Popen[str], lines: list[str]) -> None:
    proc.send_signal(signal.SIGINT)           # Ctrl-C
    out, _ = proc.communicate(timeout=90)
    lines.append(out)
    assert proc.returncode == 0, "".join(lines)
    assert "已停止" in out


def _metrics(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _closed(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_the_start_command_runs_a_whole_county_a_matter_flows_through_it_and_ctrl_c_stops_it(tmp_path: Path) -> None:
    root, offset = tmp_path / "demo", random.randint(200, 2000) * 10
    proc, lines = _start(root, offset)
    try:
        text = "".join(lines)
        for url_port in (8800, 8700, 8701, 8631, 8632, 8633, 8634):
            assert f"127.0.0.1:{url_port + offset}/" in text
        assert "chen" in text and "chuangkou" in text
        # The seeded history is on the boards: escalated matters, overdue ones, a 督办 on its way.
        chen = ConsoleClient(f"http://127.0.0.1:{8800 + offset}", "chen", COUNTY_PASSWORD)
        board = chen.get("/").text
        assert "最低生活保障" in board and "临时救助" in board
        assert "已签发" in chen.get("/notices").text or "已送达" in chen.get("/notices").text
        overdue = chen.get("/overdue").text
        assert "T02" in overdue

        # A new 上报件 from 南坡村 (白水乡) goes all the way round.
        data = root / "village-V003"

        def agent(*args: str, check: bool = True):
            return village(data, *args, check=check, passphrase=DEMO_PASSPHRASE)

        item = load_catalog().item("MZ-001")
        request = dict(villager(random.Random(3)), action="request", matter="MZ-001",
                       materials=[m.id for m in item.main_materials],
                       commitments={m.id: "2026-12-30" for m in item.auxiliary_materials},
                       authorization="drawn_signature", evidence_b64=base64.b64encode(SIGNATURE_PNG).decode())
        out = run([BIN / "village-agent", "batch", "--data", data], stdin=json.dumps(request, ensure_ascii=False) + "\n",
                  passphrase=DEMO_PASSPHRASE)
        matter_id = json.loads(out.stdout.splitlines()[0])["matter_id"]
        agent("sync", check=False)
        wang = ConsoleClient(f"http://127.0.0.1:{8701 + offset}", "chuangkou", TOWN_PASSWORD)
        # The township sees its 上报件 that are overdue at the county (seeded), by the county's clock.
        assert 'id="county-overdue"' in wang.get("/supervision").text
        page = f"/matters/{matter_id}"
        wang.wait_for(page, "分类")
        wang.post(f"{page}/classify", {"kind": "reported"}, version_from=page)
        wang.post(f"{page}/escalate", {"summary": "初审通过", "confirm": "yes"}, version_from=page)
        chen.wait_for(page, "县级开始计时")
        chen.post(f"{page}/decide", {"outcome": "approve", "reason": "准予"}, version_from=page)
        end = time.monotonic() + 60
        while agent("show", "--matter-id", matter_id)["status"] != "result_ready":
            assert time.monotonic() < end, "the county's decision never reached the village"
            agent("sync", check=False)
            time.sleep(0.5)
        agent("handover", "--matter-id", matter_id, "--result", "已领取")
        agent("signoff", "--matter-id", matter_id, "--rating", "satisfied", "--method", "witness",
              "--witness-name", "村委会 张主任", "--witness-statement", "群众确认已收到")
        agent("sync", check=False)
        chen.wait_for(page, "本件办结", timeout=60)
        # Prometheus sees the same county: overdue county hops (seeded), every village of 白水乡 syncing.
        county_metrics = _metrics(9800 + offset)
        # Past its due time a hop is "overdue" and, three working days later, "supervise" (督办): which
        # of the two a seeded matter is in depends on the hour the demo runs.
        assert sum(county_metrics[("quancheng_hop_clocks", (("hop", "county"), ("state", state)))]
                   for state in ("overdue", "supervise")) >= 1
        town_metrics = _metrics(9702 + offset)
        assert {dict(labels)["place"] for name, labels in town_metrics
                if name == "quancheng_peer_last_receipt_age_seconds"} == {"V003", "V004"}
        assert town_metrics[("quancheng_relay_receipts_total", ())] >= 1
        wang.close()
        chen.close()
    finally:
        _stop(proc, lines)
    assert all(_closed(p + offset) for p in (7000, 7001, 7002, 8800, 8700, 8701, 8631, 8634, 9800, 9701, 9702))

    # A second run resumes the same data and stops cleanly again.
    proc, lines = _start(root, offset)
    try:
        assert "沿用上次的演示数据" in "".join(lines)
    finally:
        _stop(proc, lines)
