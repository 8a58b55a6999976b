"""A test village: records signed records into a SQLite-file outbox and syncs them with the real
relay client, as its own process. Prints one JSON line with its state when it exits.

    python -m tests.relay_village_proc --db v1.sqlite --seed-hex … --target 127.0.0.1:PORT \
        --town-pub-hex … --records 300 [--record-every-ms 0] [--until-file stop] [--timeout-s 60]

Exit status 0 when every record was recorded and the outbox drained, 3 on timeout.
The first record of a fresh outbox is the key's enrollment request (seq 1).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
import threading
import time
from pathlib import Path

from shared.clock import SystemClock, to_unix_ms
from shared.relay.client import ClientLimits, RelayClient
from shared.retry import RetryPolicy
from shared.signing import Signer, key_id_for
from tests.relay_fakes import SqliteOutbox, enrollment_record, note_record


class OffsetClock:
    """The laptop's own clock, wrong by a fixed offset (a laptop 10 years off still syncs)."""

    def __init__(self, offset: dt.timedelta) -> None:
        self.offset = offset

    def now(self) -> dt.datetime:
        return SystemClock().now() + self.offset


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--db", required=True)
    p.add_argument("--seed-hex", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--town-pub-hex", required=True)
    p.add_argument("--records", type=int, required=True)
    p.add_argument("--record-every-ms", type=int, default=0)
    p.add_argument("--per-tick", type=int, default=1)
    p.add_argument("--until-file", default="")
    p.add_argument("--timeout-s", type=float, default=60)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--window", type=int, default=2)
    p.add_argument("--clock-offset-days", type=float, default=0)
    p.add_argument("--salt", default="")
    p.add_argument("--village", default="V001")
    p.add_argument("--deadline-s", type=float, default=5)
    p.add_argument("--no-sync", action="store_true")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s village %(levelname)s %(name)s: %(message)s")

    signer = Signer(bytes.fromhex(args.seed_hex))
    town_pub = bytes.fromhex(args.town_pub_hex)
    outbox = SqliteOutbox(Path(args.db), own_key_id=signer.key_id, township_public_key=town_pub,
                          township_key_id=key_id_for(town_pub))
    clock = OffsetClock(dt.timedelta(days=args.clock_offset_days))
    limits = ClientLimits(batch_size=args.batch_size, window=args.window, push_deadline_s=args.deadline_s,
                          unary_deadline_s=args.deadline_s, idle_poll_s=0.5, keepalive_time_ms=2_000,
                          keepalive_timeout_ms=2_000)
    client = RelayClient(args.target, outbox, signer, clock, limits=limits,
                         policy=RetryPolicy(initial_s=0.1, cap_s=1.0, floor_s=0.02))

    done_recording = threading.Event()

    def recorder() -> None:
        while True:
            tip = outbox.tip()
            if args.until_file:
                if Path(args.until_file).exists():
                    break
            elif tip.seq >= args.records:
                break
            for _ in range(args.per_tick):
                tip = outbox.tip()
                record = enrollment_record(signer, args.village) if tip.seq == 0 else note_record(tip.seq + 1, args.salt)
                outbox.record(signer, record, to_unix_ms(clock.now()))
            client.wake()
            if args.record_every_ms:
                time.sleep(args.record_every_ms / 1000)
        done_recording.set()

    rec = threading.Thread(target=recorder, daemon=True)
    rec.start()
    if not args.no_sync:
        client.start()
    deadline = time.monotonic() + args.timeout_s
    drained = False
    while time.monotonic() < deadline:
        if done_recording.is_set() and (args.no_sync or (outbox.pending_count() == 0 and client.last_result is not None
                                                         and client.last_result.drained)):
            drained = True
            break
        time.sleep(0.05)
    if not args.no_sync:
        client.stop()
    state = {"key_id": signer.key_id, "tip": outbox.tip().seq, "pending": outbox.pending_count(),
             "receipts": len(outbox.receipts()), "down": len(outbox.down_records()), "drained": drained,
             "last_error": client.last_error}
    print(json.dumps(state, ensure_ascii=False), flush=True)
    outbox.close()
    return 0 if drained else 3


if __name__ == "__main__":
    raise SystemExit(main())
