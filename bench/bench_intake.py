"""Intake: how fast the township turns stored village records into matters, beside the relay's own
cost per record measured in the same run.

    .venv/bin/python -m bench.bench_intake [--villages 10] [--records 2000] [--db URL]

A township app on a fresh SQLite file (or `--db`, e.g. a PostgreSQL URL) receives every village's
filings through its real `RelayCore` (verified, stored, receipted: the reference rate), then
`Intake.run_once()` folds them into matters (the measured rate: new matters per second, each with
its acceptance and 报送 clocks and its history line). Goal (issue 20): >= 5,000 new matters/s.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

from bench.workload import claimed_times_ms, filing
from shared.calendar import WorkingCalendar
from shared.clock import SystemClock
from shared.envelope import GENESIS, sign_next
from shared.relay.ports import EnrollmentInfo
from shared.relay.server import PushSession
from shared.signing import Signer
from shared.wire.v1 import records_pb2
from town_center.bootstrap import build_app
from town_center.store.matter_tables import town_matter


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--villages", type=int, default=10)
    parser.add_argument("--records", type=int, default=2000, help="filings per village")
    parser.add_argument("--db", default=None, help="SQLAlchemy URL (default: a fresh SQLite file)")
    parser.add_argument("--profile", action="store_true", help="print the intake's top functions (cProfile)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        url = args.db or f"sqlite:///{Path(d) / 'town.db'}"
        town = Signer.generate()
        app = build_app(url, town, clock=SystemClock(), calendar=WorkingCalendar())
        chains = []
        for v in range(args.villages):
            signer, code = Signer.generate(), f"V{v + 1:03d}"
            app.store.register_approved(signer.public_key, EnrollmentInfo(
                records_pb2.KEY_ROLE_VILLAGE_AGENT, f"代办员{code}", code, "T01", ""), by="bench", now_ms=0)
            tip, envs = GENESIS, []
            for i, claimed in enumerate(claimed_times_ms(args.records)):
                signed = sign_next(signer, filing(code, i, town.public_key, town.key_id), tip, claimed)
                envs.append(signed.envelope)
                tip = signed.tip
            chains.append(envs)
        total = args.villages * args.records
        t = time.perf_counter()
        for envs in chains:
            session = PushSession(peer="bench")   # one stream per village, as its laptop sends it
            for i in range(0, len(envs), 500):
                response = app.core.push(envs[i:i + 500], session)
                assert len(response.receipts) == len(envs[i:i + 500]), response.refusals[:1]
        relay_s = time.perf_counter() - t
        flagged = len(app.store.time_flags())
        t = time.perf_counter()
        if args.profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            applied = profiler.runcall(app.intake.run_once)
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        else:
            applied = app.intake.run_once()
        intake_s = time.perf_counter() - t
        with app.store.engine.connect() as conn:
            matters = int(conn.execute(select(func.count()).select_from(town_matter)).scalar() or 0)
        app.close()
    relay_rate, intake_rate = total / relay_s, matters / intake_s
    print(f"records: {total} filings from {args.villages} villages on {url.split(':')[0]}; "
          f"claimed times flagged: {flagged}")
    print(f"relay core (verify, store, receipt)   {relay_rate:10,.0f} records/s  {1e6 / relay_rate:6.0f} µs/record")
    print(f"intake (records -> matters)           {intake_rate:10,.0f} matters/s  {1e6 / intake_rate:6.0f} µs/matter"
          f"  = {intake_rate / relay_rate:4.2f} x the relay core (goal >= 5,000/s)")
    if matters != total or applied != total:
        raise SystemExit(f"intake made {matters} matters from {applied} applied of {total} records")


if __name__ == "__main__":
    main()
