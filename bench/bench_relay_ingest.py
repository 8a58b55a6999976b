"""Relay ingest throughput, end to end, beside the rates that bound it, all measured in one run.

    .venv/bin/python -m bench.bench_relay_ingest [--villages 10] [--records 5000] [--skip-http]

1. raw single-core Ed25519 verify rate of PyNaCl (libsodium) over a payload of the same size;
2. batched insert rate of the township store (`RelayStore.store_batch`, SQLite FULL, 500 rows/txn)
   beside raw sqlite3 `executemany` of the same rows into the same table (what the hot insert could be);
3. relay: a real `town-center serve` process (port 0, console off); the villages' outboxes (SQLite
   files, signed beforehand: each village its own matters, claimed times from the hours before the
   run) drained by one `RelayClient` each in this process: received, verified, committed, receipted,
   and each receipt verified by the village before its outbox row goes; then how long until the
   township's intake has made every matter;
4. the same records to a batched HTTP JSON endpoint built the same way: 500 records per POST
   (httpx, keep-alive, one client thread per village) to a threaded HTTP server that verifies each,
   stores the batch through the same store and signs a receipt per record.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench.workload import TownServer, claimed_times_ms, filing, free_port, prepare_outboxes
from shared.clock import SystemClock
from shared.envelope import GENESIS, ChainTip, sign_next, sign_receipt
from shared.relay.client import ClientLimits, RelayClient
from shared.relay.errors import PeerUnavailable
from shared.relay.ports import EnrollmentInfo, IngestRow
from shared.signing import Signer, is_valid, payload_hash
from shared.wire.v1 import envelope_pb2, records_pb2
from tests.chains import request_record as body
from tests.relay_fakes import SqliteOutbox, init_town
from town_center.store import open_town_store

HERE = Path(__file__).resolve().parent.parent


def rate(n: int, s: float) -> float:
    return n / s if s > 0 else float("inf")


def raw_verify_rate(payload: bytes, n: int = 20_000) -> float:
    from nacl.signing import VerifyKey

    s = Signer.generate()
    vk = VerifyKey(s.public_key)
    sig = s.sign(payload)
    t = time.perf_counter()
    for _ in range(n):
        vk.verify(payload, sig)
    return rate(n, time.perf_counter() - t)


def raw_verify_rate_threads(payload: bytes, threads: int = 2, n: int = 20_000) -> float:
    """The same verify on `threads` threads at once (libsodium releases the GIL): the two-core reference."""
    from concurrent.futures import ThreadPoolExecutor

    from nacl.signing import VerifyKey

    s = Signer.generate()
    vk = VerifyKey(s.public_key)
    sig = s.sign(payload)

    def part(count: int) -> None:
        for _ in range(count):
            vk.verify(payload, sig)

    t = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(part, [n // threads] * threads))
    return rate(n // threads * threads, time.perf_counter() - t)


def prepare_villages(tmp: Path, n_villages: int, n_records: int, town_pub: bytes, town_id: str) -> list[tuple[Signer, Path, str]]:
    return prepare_outboxes(tmp, n_villages, n_records, town_pub, town_id)


def _ingest_rows(n: int) -> tuple[Signer, list[IngestRow]]:
    signer = Signer.generate()
    rows, tip = [], GENESIS
    for i in range(n):
        s = sign_next(signer, body(i), tip, 0)
        rows.append(IngestRow(signer.key_id, s.seq, s.record_id, s.hash, s.envelope.payload, s.envelope.signature, 0,
                              "request_filed"))
        tip = s.tip
    return signer, rows


def store_batch_rate(url: str, n: int) -> tuple[float, float]:
    """The store's batched insert (`store_batch`, 500 rows per transaction) at an SQLAlchemy URL."""
    store = open_town_store(url)
    signer, rows = _ingest_rows(n)
    store.register_approved(signer.public_key, EnrollmentInfo(), by="bench", now_ms=0)
    t = time.perf_counter()
    tip = GENESIS
    for i in range(0, n, 500):
        batch = rows[i:i + 500]
        store.store_batch(signer.key_id, tip, batch, receipt_time_ms=1)
        tip = ChainTip(batch[-1].seq, batch[-1].hash)
    elapsed = time.perf_counter() - t
    # Reference in the same run: the same rows through SQLAlchemy's executemany (what store_batch did
    # before it used shared.bulk), as another author so they are new.
    from sqlalchemy import insert

    table = store.t.ingest_log
    other = "e" * 32
    t = time.perf_counter()
    for i in range(0, n, 500):
        with store.engine.begin() as conn:
            conn.execute(insert(table), [{"author_key_id": other, "seq": r.seq, "record_id": r.record_id, "hash": r.hash,
                                          "payload": r.payload, "signature": r.signature, "body_kind": r.body_kind,
                                          "claimed_time_ms": r.claimed_time_ms, "receipt_time_ms": 1}
                                         for r in rows[i:i + 500]])
    reference = time.perf_counter() - t
    store.close()
    return rate(n, elapsed), rate(n, reference)


def store_insert_rate(tmp: Path, n: int) -> tuple[float, float]:
    """(the store's batched insert, raw sqlite3 executemany of the same rows into the same table)."""
    import sqlite3

    store = open_town_store(f"sqlite:///{tmp / 'insert-bench.db'}")
    signer, rows = _ingest_rows(n)
    store.register_approved(signer.public_key, EnrollmentInfo(), by="bench", now_ms=0)
    t = time.perf_counter()
    tip = GENESIS
    for i in range(0, n, 500):
        batch = rows[i:i + 500]
        store.store_batch(signer.key_id, tip, batch, receipt_time_ms=1)
        tip = ChainTip(batch[-1].seq, batch[-1].hash)
    elapsed = time.perf_counter() - t
    store.close()
    raw = sqlite3.connect(tmp / "insert-bench.db", isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=FULL")
    other = "f" * 32   # another author, so the rows are new
    t = time.perf_counter()
    for i in range(0, n, 500):
        raw.execute("BEGIN IMMEDIATE")
        raw.executemany("INSERT INTO ingest_log (author_key_id, seq, record_id, hash, payload, signature, body_kind,"
                        " claimed_time_ms, receipt_time_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [(other, r.seq, r.record_id, r.hash, r.payload, r.signature, r.body_kind, r.claimed_time_ms, 1)
                         for r in rows[i:i + 500]])
        raw.execute("UPDATE agent_key SET tip_seq = tip_seq WHERE key_id = ?", (signer.key_id,))
        raw.execute("COMMIT")
    raw_elapsed = time.perf_counter() - t
    raw.close()
    return rate(n, elapsed), rate(n, raw_elapsed)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_relay(tmp: Path, villages: list[tuple[Signer, Path, str]], town_home: Path, town: Signer, *,
              pg_url: str | None = None) -> tuple[float, int, float, float, int]:
    """(records/s, records, township CPU seconds, seconds until every matter was made, claimed-time flags).
    With `pg_url` the township keeps its store in that (empty) PostgreSQL database."""
    import sqlite3

    from sqlalchemy import create_engine, text

    db_url = pg_url or f"sqlite:///{town_home / 'town.db'}"
    store = open_town_store(db_url)
    for signer, _, code in villages:
        store.register_approved(signer.public_key, EnrollmentInfo(records_pb2.KEY_ROLE_VILLAGE_AGENT, f"代办员{code}",
                                                                  code, "T01", ""), by="bench", now_ms=0)
    store.close()
    proc = TownServer(town_home, db_url=pg_url).start()
    clients = []
    for signer, db, _ in villages:
        outbox = SqliteOutbox(db, own_key_id=signer.key_id, township_public_key=town.public_key, township_key_id=town.key_id)
        clients.append((RelayClient(proc.target, outbox, signer, SystemClock(),
                                    limits=ClientLimits(batch_size=500, window=4, push_deadline_s=120)), outbox))
    total = sum(o.pending_count() for _, o in clients)
    assert proc.proc is not None
    cpu_before = _cpu_seconds(proc.proc.pid)
    t = time.perf_counter()
    interrupted = [0]

    def drain(client: RelayClient, outbox: SqliteOutbox) -> None:
        # As a laptop's sync loop does: a stream the township ends is retried after a short pause.
        end = time.monotonic() + 600
        while outbox.pending_count() and time.monotonic() < end:
            try:
                client.sync_once()
            except PeerUnavailable:
                interrupted[0] += 1
                time.sleep(0.5)

    threads = [threading.Thread(target=drain, args=(c, o)) for c, o in clients]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - t
    town_cpu = _cpu_seconds(proc.proc.pid) - cpu_before
    left = sum(o.pending_count() for _, o in clients)
    for c, o in clients:
        c.stop()
        o.close()
    # The intake: until every filing is a matter at the township (a read-only poll, as a page sees it).
    if pg_url:
        engine = create_engine(pg_url)

        def count(table: str) -> int:
            with engine.connect() as c:
                return int(c.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
    else:
        reader = sqlite3.connect(f"file:{town_home / 'town.db'}?mode=ro", uri=True, timeout=5)

        def count(table: str) -> int:
            return int(reader.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    end = time.monotonic() + 300
    matters = 0
    while time.monotonic() < end:
        matters = count("town_matter")
        if matters >= total:
            break
        time.sleep(0.1)
    made_after = time.perf_counter() - t
    flagged = count("claimed_time_flag")
    if pg_url:
        engine.dispose()
    else:
        reader.close()
    proc.close()
    if interrupted[0]:
        print(f"(push streams ended by the township and retried: {interrupted[0]})")
    if left:
        raise SystemExit(f"relay left {left} records undelivered")
    if matters < total:
        raise SystemExit(f"intake made {matters} of {total} matters within 300 s")
    return rate(total, elapsed), total, town_cpu, made_after, flagged


# ---------------------------------------------------------------- the HTTP JSON baseline


def http_server_main(port: int, db: str, seed_hex: str, keys_json: str) -> None:
    """Up to 500 records per POST: decode JSON, verify each, store the batch in one transaction
    through the township store, sign a receipt per record, answer JSON."""
    town = Signer(bytes.fromhex(seed_hex))
    keys = {k: bytes.fromhex(v) for k, v in json.loads(Path(keys_json).read_text()).items()}
    store = open_town_store(f"sqlite:///{db}")
    tips: dict[str, ChainTip] = {k: GENESIS for k in keys}
    for pub in keys.values():
        store.register_approved(pub, EnrollmentInfo(), by="bench", now_ms=0)
    locks = {k: threading.Lock() for k in keys}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a: object) -> None:
            pass

        def do_POST(self) -> None:
            doc = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            key_id = doc["key_id"]
            answer: dict[str, object] = {"receipts": []}
            if key_id in keys and len(doc["records"]) <= 500:
                rows = []
                with locks[key_id]:
                    tip = tips[key_id]
                    for item in doc["records"]:
                        payload, sig = base64.b64decode(item["payload"]), base64.b64decode(item["signature"])
                        if not is_valid(keys[key_id], payload, sig):
                            break
                        record = records_pb2.Record.FromString(payload)
                        h = payload_hash(payload)
                        if record.header.seq != tip.seq + 1 + len(rows):
                            break
                        rows.append(IngestRow(key_id, record.header.seq, record.header.record_id, h, payload, sig,
                                              record.header.claimed_time_ms, "request_filed"))
                    if rows:
                        receipt_ms = int(time.time() * 1000)
                        store.store_batch(key_id, tip, rows, receipt_time_ms=receipt_ms)
                        tips[key_id] = ChainTip(rows[-1].seq, rows[-1].hash)
                        answer["receipts"] = [base64.b64encode(sign_receipt(town, envelope_pb2.Receipt(
                            author_key_id=key_id, seq=r.seq, record_hash=r.hash, receipt_time_ms=receipt_ms))
                            .SerializeToString()).decode() for r in rows]
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def run_http(tmp: Path, villages: list[tuple[Signer, Path, str]], town: Signer) -> float:
    import httpx

    keys = tmp / "keys.json"
    keys.write_text(json.dumps({s.key_id: s.public_key.hex() for s, _, _ in villages}))
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "bench.bench_relay_ingest", "--http-server", str(port),
                               str(tmp / "http.db"), town.seed().hex(), str(keys)], cwd=HERE)
    try:
        for _ in range(200):
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=0.2)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        work = []
        for signer, db, _ in villages:
            outbox = SqliteOutbox(db, own_key_id=signer.key_id, township_public_key=town.public_key, township_key_id=town.key_id)
            rows = outbox._conn.execute("SELECT payload, signature FROM ledger ORDER BY seq").fetchall()
            outbox.close()
            work.append((signer.key_id, rows))
        total = sum(len(r) for _, r in work)
        failures = []

        def post_all(key_id: str, rows: list[tuple[bytes, bytes]]) -> None:
            with httpx.Client(timeout=120) as client:
                for i in range(0, len(rows), 500):
                    part = rows[i:i + 500]
                    reply = client.post(f"http://127.0.0.1:{port}/push", json={"key_id": key_id, "records": [
                        {"payload": base64.b64encode(p).decode(), "signature": base64.b64encode(g).decode()}
                        for p, g in part]}).json()
                    receipts = [envelope_pb2.Envelope.FromString(base64.b64decode(r)) for r in reply["receipts"]]
                    if len(receipts) != len(part) or not all(is_valid(town.public_key, e.payload, e.signature)
                                                             for e in receipts):
                        failures.append(key_id)
                        return

        t = time.perf_counter()
        threads = [threading.Thread(target=post_all, args=(k, r)) for k, r in work]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        elapsed = time.perf_counter() - t
        assert not failures, f"batched HTTP endpoint refused records of {len(failures)} villages"
        return rate(total, elapsed)
    finally:
        server.terminate()
        server.wait(10)


def core_rate(tmp: Path, n_villages: int, n_records: int) -> float:
    """The township's relay core alone, in this process: verify (2 threads), commit, sign receipts.
    No gRPC and no senders competing for the cores: what the township could do with the box to itself."""
    from shared.relay.server import RelayCore, RelayLimits

    store = open_town_store(str(tmp / "core.db"))
    town = Signer.generate()
    core = RelayCore(signer=town, ingest=store, keys=store, down=store, clock=SystemClock(),
                     limits=RelayLimits(verify_threads=2))
    chains = []
    for v in range(n_villages):
        s = Signer.generate()
        store.register_approved(s.public_key, EnrollmentInfo(role=records_pb2.KEY_ROLE_VILLAGE_AGENT, holder_name="bench",
                                                             village_code=f"V{v}", township_code="T"), by="bench", now_ms=0)
        tip: ChainTip = GENESIS
        envs = []
        for i, claimed in enumerate(claimed_times_ms(n_records)):
            signed = sign_next(s, filing(f"V{v}", i, town.public_key, town.key_id), tip, claimed)
            envs.append(signed.envelope)
            tip = signed.tip
        chains.append(envs)
    t = time.perf_counter()
    for envs in chains:
        for i in range(0, len(envs), 200):
            assert len(core.push(envs[i:i + 200]).receipts) == len(envs[i:i + 200])
    elapsed = time.perf_counter() - t
    core.close()
    store.close()
    return rate(n_villages * n_records, elapsed)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--http-server":
        http_server_main(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--villages", type=int, default=10)
    parser.add_argument("--records", type=int, default=5000, help="per village")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--postgres", action="store_true",
                        help="also the store's insert and the relay end to end on a throwaway PostgreSQL cluster (tests/pg.py)")
    parser.add_argument("--postgres-only", action="store_true", help="raw verify and the PostgreSQL figures only")
    args = parser.parse_args()
    if args.postgres_only:
        with tempfile.TemporaryDirectory() as d:
            sample = sign_next(Signer.generate(), body(1), GENESIS, 0).envelope.payload
            verify = raw_verify_rate(sample)
            print(f"raw Ed25519 verify, PyNaCl, 1 core   {verify:10,.0f}/s")
            run_postgres(Path(d), args.villages, args.records, verify)
        return
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        town_home = tmp / "town"
        town = init_town(town_home)
        villages = prepare_villages(tmp, args.villages, args.records, town.public_key, town.key_id)
        sample = sign_next(Signer.generate(), body(1), GENESIS, 0).envelope.payload
        verify = raw_verify_rate(sample)
        verify2 = raw_verify_rate_threads(sample)
        insert, raw_insert = store_insert_rate(tmp, 20_000)
        relay, total, town_cpu, made_after, flagged = run_relay(tmp, villages, town_home, town)
        print(f"records: {total} filings from {args.villages} villages (each its own matters), payload ~{len(sample)} "
              f"bytes, cores: {os.cpu_count()}; claimed times flagged: {flagged}")
        print(f"raw Ed25519 verify, PyNaCl, 1 core   {verify:10,.0f}/s")
        print(f"raw Ed25519 verify, 2 threads        {verify2:10,.0f}/s   = {verify2 / verify:4.2f} x 1 core")
        print(f"store batched insert (SQLite FULL)   {insert:10,.0f}/s   raw sqlite3 executemany {raw_insert:,.0f}/s"
              f" = {raw_insert / insert:4.1f} x the store")
        print(f"relay end to end (gRPC, receipted)   {relay:10,.0f}/s   = {relay / verify:5.2f} x raw verify"
              f" = {relay / verify2:5.2f} x 2-thread verify   (villages and township share the {os.cpu_count()} cores)")
        print(f"intake: every matter made            {made_after:10.1f} s after the sync began "
              f"({total / made_after:,.0f} matters/s end to end)")
        core = core_rate(tmp, args.villages, args.records)
        print(f"township relay core alone (2 threads){core:10,.0f}/s   = {core / verify:5.2f} x raw verify"
              "   (in-process: no gRPC, no senders on the same cores)")
        per_cpu_s = rate(total, town_cpu)
        print(f"township CPU per record              {1e6 / per_cpu_s:10,.0f} µs  = {per_cpu_s:,.0f} records per CPU-second"
              f" = {per_cpu_s / verify:4.2f} x raw verify per core (intake included)")
        if not args.skip_http:
            http = run_http(tmp, villages, town)
            print(f"HTTP JSON, 500 records per POST      {http:10,.0f}/s   relay is {relay / http:5.2f} x that (goal >= 1.5)")
        if args.postgres:
            run_postgres(tmp, args.villages, args.records, verify)


def run_postgres(tmp: Path, n_villages: int, n_records: int, verify: float) -> None:
    """The store's batched insert and the relay end to end with the township on PostgreSQL 15
    (a throwaway cluster, fsync off: the figures bound the database's CPU cost, not a disk's)."""
    from tests.pg import start_postgres

    with start_postgres() as cluster:
        insert, executemany = store_batch_rate(cluster.create_database("insert_bench"), 20_000)
        print(f"PostgreSQL store batched insert      {insert:10,.0f}/s   SQLAlchemy executemany of the same rows "
              f"{executemany:,.0f}/s: the store is {insert / executemany:4.1f} x that")
        pg_home, pg_villages = tmp / "town-pg", tmp / "pg-villages"
        pg_villages.mkdir()
        url = cluster.create_database("town_bench")
        town = init_town(pg_home, url)
        villages = prepare_villages(pg_villages, n_villages, n_records, town.public_key, town.key_id)
        relay, total, _cpu, made_after, _flagged = run_relay(tmp, villages, pg_home, town, pg_url=url)
        print(f"PostgreSQL relay end to end          {relay:10,.0f}/s   = {relay / verify:5.2f} x raw verify (goal >= 5,000/s);"
              f" every matter made {made_after:.1f} s after the sync began")


if __name__ == "__main__":
    main()
