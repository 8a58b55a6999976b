"""Seeding tool: a township with many matters, made through the real stores and code paths.

    .venv/bin/python -m bench.seed_township --db sqlite:///var/bench/town.db --matters 100000 [--villages 50]

Each village's laptop signs its own filings (bench.workload: own matters, realistic claimed times);
the township's `RelayCore` verifies, stores and receipts them and its `Intake` makes the matters
(acceptance and 报送 clocks, history): the same path a village push takes, minus gRPC. Adding to an
existing township grows it (each run adds `--matters`). Prints what it made and how fast.
"""
from __future__ import annotations

import argparse
import time

from bench.workload import claimed_times_ms, filing
from shared.calendar import WorkingCalendar
from shared.clock import SystemClock
from shared.envelope import GENESIS, sign_next
from shared.relay.ports import EnrollmentInfo
from shared.relay.server import PushSession
from shared.signing import Signer
from shared.wire.v1 import records_pb2
from town_center.bootstrap import TownApp, build_app

__all__ = ["seed", "open_township"]


def open_township(db_url: str, signer: Signer | None = None) -> TownApp:
    return build_app(db_url, signer or Signer.generate(), clock=SystemClock(), calendar=WorkingCalendar())


def seed(app: TownApp, matters: int, *, villages: int = 50, chunk: int = 2_000) -> float:
    """Add `matters` filings spread over `villages` new village keys; returns the seconds taken."""
    started = time.perf_counter()
    town = app.signer
    per_village = -(-matters // villages)
    made = 0
    base = len(app.store.keys())
    for v in range(villages):
        n = min(per_village, matters - made)
        if n <= 0:
            break
        signer, code = Signer.generate(), f"V{base + v + 1:03d}"
        app.store.register_approved(signer.public_key, EnrollmentInfo(
            records_pb2.KEY_ROLE_VILLAGE_AGENT, f"代办员{code}", code, "T01", ""), by="seed", now_ms=0)
        tip, session = GENESIS, PushSession(peer="seed")
        claimed = claimed_times_ms(n, spread_s=30 * 86400)
        for start in range(0, n, chunk):
            envs = []
            for i in range(start, min(n, start + chunk)):
                signed = sign_next(signer, filing(code, i, town.public_key, town.key_id), tip, claimed[i])
                envs.append(signed.envelope)
                tip = signed.tip
            for i in range(0, len(envs), 500):
                response = app.core.push(envs[i:i + 500], session)
                if len(response.receipts) != len(envs[i:i + 500]):
                    raise SystemExit(f"township refused seeded records: {response.refusals[:1]}")
            app.intake.run_once()
        made += n
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="SQLAlchemy URL of the township store (made if missing)")
    parser.add_argument("--matters", type=int, default=100_000)
    parser.add_argument("--villages", type=int, default=50)
    args = parser.parse_args()
    app = open_township(args.db)
    try:
        seconds = seed(app, args.matters, villages=args.villages)
    finally:
        app.close()
    print(f"seeded {args.matters:,} matters from {args.villages} villages in {seconds:.1f} s "
          f"({args.matters / seconds:,.0f}/s)")


if __name__ == "__main__":
    main()
