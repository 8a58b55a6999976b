"""`village-agent serve` as a real process forfeits missed appointments by itself (no button, no CLI)."""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from shared.clock import FakeClock
from shared.wire.v1 import records_pb2
from tests.relay_fakes import free_port
from tests.village_fixtures import PASSPHRASE, make_agent, unlock_ui
from village_agent.bootstrap import open_agent
from village_agent.domain import AppointmentStatus

BIN = Path(sys.executable).parent
LONG_AGO = dt.datetime(2026, 1, 5, 1, 0, tzinfo=dt.timezone.utc)   # the real clock is far past this


def test_serve_forfeits_an_appointment_missed_while_it_was_not_running_without_anyone_asking(tmp_path: Path) -> None:
    root = tmp_path / "agent"
    make_agent(root)
    service = open_agent(root, PASSPHRASE, FakeClock(LONG_AGO))
    appointment_id, _ = service.make_appointment(scheduled_at=LONG_AGO + dt.timedelta(hours=1), place="service_room",
                                                 purpose="补交材料")
    service.store.close()
    port = free_port()
    proc = subprocess.Popen([str(BIN / "village-agent"), "serve", "--data", str(root), "--port", str(port), "--offline"],
                            env=dict(os.environ, QUANCHENG_PASSPHRASE=PASSPHRASE), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        page = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "失约，请联系群众改约" not in page:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=2, follow_redirects=True) as ui:
                    unlock_ui(ui)   # the agent types the passphrase on the unlock page first
                    page = ui.get("/appointments").text
            except (OSError, httpx.HTTPError):
                pass
            time.sleep(0.2)
        assert "失约，请联系群众改约" in page and "系统每 30 秒自动检查一次" in page
    finally:
        proc.terminate()
        proc.wait(10)
    service = open_agent(root, PASSPHRASE, FakeClock(LONG_AGO))
    try:
        assert service.store.appointment_row(appointment_id).status == AppointmentStatus.FORFEITED.value
        kinds = [records_pb2.Record.FromString(row.envelope.payload).WhichOneof("body") for row in service.store.ledger_rows()]
        assert kinds == ["key_enrollment_requested", "appointment_made", "appointment_forfeited"]   # exactly once
    finally:
        service.store.close()
