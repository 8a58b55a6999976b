"""The township's background intake yields to villages that are pushing, and catches up after."""
from __future__ import annotations

import time
from pathlib import Path

from shared.wire.v1 import records_pb2
from tests.town_fixtures import VillageDevice, township
from town_center.bootstrap import Background


def _filing(matter_id: str) -> records_pb2.Record:
    record = records_pb2.Record()
    record.request_filed.matter_id, record.request_filed.catalog_code = matter_id, "MZ-003"
    return record


def _wait_for(predicate, timeout_s: float = 20.0) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_the_intake_waits_while_villages_push_and_folds_everything_once_they_stop(tmp_path: Path) -> None:
    app = township(f"sqlite:///{tmp_path / 'town.db'}")
    village = VillageDevice(app)
    background = Background(app, intake_every_s=0.05)
    background.quiet_s, background.max_defer_s = 3600.0, 3600.0    # "busy" for as long as pushes keep coming
    app.core.last_push_monotonic = time.monotonic()                    # a burst is under way before the loop starts
    background.start()
    try:
        village.send(_filing("00000000-0000-4000-8000-000000000001"))   # a push: the core notes the time
        time.sleep(0.5)
        assert app.handling.inbox() == []                                  # deferred, not lost: the log holds it
        # The burst is over (relative to now: monotonic time starts near zero on a freshly booted machine).
        app.core.last_push_monotonic = time.monotonic() - 2 * background.quiet_s
        assert _wait_for(lambda: len(app.handling.inbox()) == 1)
    finally:
        background.stop()
        app.close()
