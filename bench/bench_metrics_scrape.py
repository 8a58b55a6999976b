"""How long one Prometheus scrape of a township's `/metrics` takes on a large township.

    .venv/bin/python -m bench.bench_metrics_scrape                   # 100,000 open clocks, 300 villages
    .venv/bin/python -m bench.bench_metrics_scrape --clocks 1000000 --villages 1000

Open clocks by state come from counts kept as clocks change (docs/performance.md), not a scan:
this fills a real township SQLite file through the deadline store (`insert_clocks`, the intake's
path) with `--clocks` running hop clocks (some overdue, some in warning) and `--villages` approved
village keys with 20 stored records each, then times `/metrics` end to end over HTTP (`--scrapes`
times; median and p95) beside one grouped scan of every clock measured in the same run. Goal
(issue 20): < 100 ms at 1,000,000 open clocks.

Reference, printed with the ratio: Prometheus's default scrape interval (15 s), i.e. what share of
one core a township spends answering its scrapes. Goal: well under 1 %.
"""
from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import insert

from shared.calendar import WorkingCalendar
from shared.clock import FakeClock, to_unix_ms
from shared.domain.deadlines import HopClock
from shared.domain.limits import Limit
from shared.observability.metrics import MetricsServer, metrics_registry
from shared.relay.ports import EnrollmentInfo
from shared.signing import Signer
from town_center.bootstrap import build_app, metric_sources
from town_center.store.tables import ingest_log

NOW = dt.datetime(2026, 12, 14, 2, 0, tzinfo=dt.UTC)   # Monday 10:00 in Beijing
SCRAPE_INTERVAL_S = 15.0


def _fill(app, clocks: int, villages: int) -> None:
    store = app.deadlines
    batch: list[tuple[str, str, HopClock, dt.datetime]] = []
    for i in range(clocks):
        # Received 0–9 working days ago with 5 working days: some on time, some warning, some overdue.
        received = NOW - dt.timedelta(days=(i % 10) * 7 / 5, hours=i % 7)
        clock = HopClock.received(received, Limit.working_days(5), Limit.working_days(20))
        batch.append((f"m-{i:08d}", "township", clock, received))   # saved at its receipt, as the intake does
        if len(batch) == 5000:
            with store.engine.begin() as conn:
                store.insert_clocks(batch, conn=conn)
            batch = []
    if batch:
        with store.engine.begin() as conn:
            store.insert_clocks(batch, conn=conn)
    # What the deadline watch's scans do as time passes and clocks are saved.
    store.advance_phases(NOW)
    store.fold_counts()
    for v in range(villages):
        signer = Signer.generate()
        app.store.register_approved(signer.public_key, EnrollmentInfo(village_code=f"V{v:04d}"), by="bench", now_ms=0)
        with app.store.engine.begin() as conn:
            conn.execute(insert(ingest_log), [
                {"author_key_id": signer.key_id, "seq": s, "record_id": f"{v}-{s}", "hash": bytes(32), "payload": b"x",
                 "signature": bytes(64), "body_kind": "request_filed", "claimed_time_ms": to_unix_ms(NOW) - 60_000,
                 "receipt_time_ms": to_unix_ms(NOW) - 1000 * s} for s in range(1, 21)])
            conn.execute(app.store.t.agent_key.update().where(app.store.t.agent_key.c.key_id == signer.key_id)
                         .values(tip_seq=20, last_receipt_ms=to_unix_ms(NOW) - 20_000))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clocks", type=int, default=100_000)
    parser.add_argument("--villages", type=int, default=300)
    parser.add_argument("--scrapes", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        app = build_app(f"sqlite:///{Path(tmp) / 'town.db'}", Signer.generate(), clock=FakeClock(NOW),
                        calendar=WorkingCalendar())
        started = time.perf_counter()
        _fill(app, args.clocks, args.villages)
        print(f"filled {args.clocks:,} open clocks and {args.villages} villages in {time.perf_counter() - started:.1f} s")
        scanned = []
        for _ in range(5):
            t0 = time.perf_counter()
            reference = app.deadlines.clock_counts_scanned(NOW)
            scanned.append(time.perf_counter() - t0)
        assert app.deadlines.clock_counts(NOW) == reference, "kept counts differ from the scan"
        sources = metric_sources(app)
        server = MetricsServer(metrics_registry(sources), "127.0.0.1:0", on_stop=sources.close)
        try:
            with httpx.Client(timeout=30) as client:
                url = f"http://127.0.0.1:{server.port}/metrics"
                body = client.get(url).text          # warm-up (and a check that it answers)
                times = []
                for _ in range(args.scrapes):
                    t0 = time.perf_counter()
                    client.get(url).raise_for_status()
                    times.append(time.perf_counter() - t0)
        finally:
            server.stop()
            app.close()
    median = statistics.median(times)
    p95 = sorted(times)[max(0, int(len(times) * 0.95) - 1)]
    lines = [line for line in body.splitlines() if line and not line.startswith("#")]
    print(f"/metrics: {len(body):,} bytes, {len(lines):,} samples")
    print(f"scrape median {median * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms over {args.scrapes} scrapes")
    scan = statistics.median(scanned)
    print(f"reference: one grouped scan of every clock (the old scrape's query) {scan * 1000:.1f} ms; "
          f"the whole scrape is {median / scan:.2f} x that scan (kept counts equal the scan)")
    print(f"ratio to the {SCRAPE_INTERVAL_S:.0f} s scrape interval: {median / SCRAPE_INTERVAL_S:.4f} "
          f"({median / SCRAPE_INTERVAL_S * 100:.2f} % of one core)")


if __name__ == "__main__":
    main()
