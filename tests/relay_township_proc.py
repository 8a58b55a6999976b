"""A test township sender: records into its real county link chain (`SqlOutbox` over the township's
own tables in a SQLite file) and syncs with the real relay client, as its own process, so a test can
SIGKILL it or the county under it. Prints one JSON line with its state when it exits.

    python -m tests.relay_township_proc --db town.db --seed-hex … --target 127.0.0.1:PORT \
        --county-pub-hex … --records 300 [--record-every-ms 0] [--until-file stop] [--timeout-s 60]

Exit status 0 when every record was recorded and the outbox drained, 3 on timeout.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time

from shared.clock import SystemClock, to_unix_ms
from shared.relay.client import ClientLimits, RelayClient
from shared.relay.sql_outbox import SqlOutbox
from shared.retry import RetryPolicy
from shared.signing import Signer, key_id_for
from shared.wire.v1 import records_pb2
from town_center.store import open_town_store
from town_center.store.tables import county_up


def status_record(i: int, township_code: str) -> records_pb2.Record:
    record = records_pb2.Record()
    body = record.status_update
    body.matter_id = f"00000000-0000-4000-8000-{i:012d}"
    body.stage, body.kind, body.catalog_code = records_pb2.STAGE_IN_PROGRESS, records_pb2.MATTER_KIND_PROMISED, "MZ-003"
    body.message = f"办理中 {i}"
    record.audience.township_code = township_code
    return record


def enrollment(signer: Signer, township_code: str) -> records_pb2.Record:
    record = records_pb2.Record()
    body = record.key_enrollment_requested
    body.public_key, body.role, body.township_code, body.holder_name = (
        signer.public_key, records_pb2.KEY_ROLE_TOWNSHIP, township_code, f"乡镇{township_code}")
    return record


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--db", required=True)
    p.add_argument("--seed-hex", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--county-pub-hex", required=True)
    p.add_argument("--records", type=int, default=0)
    p.add_argument("--record-every-ms", type=int, default=0)
    p.add_argument("--per-tick", type=int, default=1)
    p.add_argument("--until-file", default="")
    p.add_argument("--timeout-s", type=float, default=60)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--window", type=int, default=2)
    p.add_argument("--deadline-s", type=float, default=5)
    p.add_argument("--township", default="T01")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s township %(levelname)s %(name)s: %(message)s")
    from pathlib import Path

    signer = Signer(bytes.fromhex(args.seed_hex))
    county_pub = bytes.fromhex(args.county_pub_hex)
    store = open_town_store(args.db)
    outbox = SqlOutbox(store.engine, county_up, own_key_id=signer.key_id, receiver_key_id=key_id_for(county_pub),
                       receiver_public_key=county_pub)
    clock = SystemClock()
    limits = ClientLimits(batch_size=args.batch_size, window=args.window, push_deadline_s=args.deadline_s,
                          unary_deadline_s=args.deadline_s, idle_poll_s=0.5, keepalive_time_ms=2_000, keepalive_timeout_ms=2_000)
    client = RelayClient(args.target, outbox, signer, clock, limits=limits,
                         policy=RetryPolicy(initial_s=0.1, cap_s=1.0, floor_s=0.02), peer_label_zh="县级服务器")
    done = threading.Event()

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
                record = enrollment(signer, args.township) if tip.seq == 0 else status_record(tip.seq + 1, args.township)
                outbox.append(signer, record, now_ms=to_unix_ms(clock.now()))
            client.wake()
            if args.record_every_ms:
                time.sleep(args.record_every_ms / 1000)
        done.set()

    threading.Thread(target=recorder, daemon=True).start()
    client.start()
    # Recording until a file appears runs as long as the test's fault loop takes (longer on a loaded
    # machine), so then the time limit is for draining and counts from the end of recording.
    deadline = None if args.until_file else time.monotonic() + args.timeout_s
    drained = False
    while deadline is None or time.monotonic() < deadline:
        if deadline is None and done.is_set():
            deadline = time.monotonic() + args.timeout_s
        if done.is_set() and outbox.pending_count() == 0 and client.last_result is not None and client.last_result.drained:
            drained = True
            break
        time.sleep(0.05)
    client.stop()
    print(json.dumps({"key_id": signer.key_id, "tip": outbox.tip().seq, "pending": outbox.pending_count(),
                      "drained": drained, "last_error": client.last_error}, ensure_ascii=False), flush=True)
    store.close()
    return 0 if drained else 3


if __name__ == "__main__":
    raise SystemExit(main())
