"""Relay ingest throughput, end to end, beside the rates that bound it, all measured in one run.

    .venv/bin/python -m bench.bench_relay_ingest [--villages 10] [--records 5000] [--skip-http]

1. raw single-core Ed25519 verify rate of PyNaCl (libsodium) over a payload of the same size;
2. batched insert rate of the township store (SQLite, synchronous=FULL, executemany, 500 rows/txn);
3. relay: a real `town-center serve` process; 10 villages' outboxes (SQLite files, signed beforehand)
   drained by 10 `RelayClient`s in this process: received, verified, committed, receipted, and each
   receipt verified by the village before its outbox row goes;
4. the same records, one HTTP JSON POST per record (httpx, keep-alive, 10 client threads) to a
   minimal threaded HTTP server that verifies, commits and signs a receipt per record.
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

from shared.clock import SystemClock
from shared.envelope import GENESIS, ChainTip, sign_next, sign_receipt
from shared.relay.client import ClientLimits, RelayClient
from shared.relay.ports import EnrollmentInfo, IngestRow
from shared.signing import Signer, is_valid, payload_hash
from shared.wire.v1 import envelope_pb2, records_pb2
from tests.chains import request_record as body
from tests.relay_fakes import SqliteOutbox, TownProcess, free_port, init_town
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


def prepare_villages(tmp: Path, n_villages: int, n_records: int, town_pub: bytes, town_id: str) -> list[tuple[Signer, Path]]:
    out = []
    for v in range(n_villages):
        signer = Signer.generate()
        db = tmp / f"v{v}.sqlite"
        outbox = SqliteOutbox(db, own_key_id=signer.key_id, township_public_key=town_pub, township_key_id=town_id)
        conn = outbox._conn
        tip: ChainTip = GENESIS
        conn.execute("BEGIN")
        for i in range(n_records):
            signed = sign_next(signer, body(i), tip, 1_790_000_000_000 + i)
            conn.execute("INSERT INTO ledger VALUES (?, ?, ?, ?)", (signed.seq, signed.envelope.payload,
                                                                 signed.envelope.signature, signed.hash))
            conn.execute("INSERT INTO outbox VALUES (?)", (signed.seq,))
            tip = signed.tip
        conn.execute("COMMIT")
        outbox.close()
        out.append((signer, db))
    return out


def store_insert_rate(tmp: Path, n: int) -> float:
    store = open_town_store(f"sqlite:///{tmp / 'insert-bench.db'}")
    signer = Signer.generate()
    store.register_approved(signer.public_key, EnrollmentInfo(), by="bench", now_ms=0)
    rows, tip = [], GENESIS
    for i in range(n):
        s = sign_next(signer, body(i), tip, 0)
        rows.append(IngestRow(signer.key_id, s.seq, s.record_id, s.hash, s.envelope.payload, s.envelope.signature, 0,
                              "request_filed"))
        tip = s.tip
    t = time.perf_counter()
    tip = GENESIS
    for i in range(0, n, 500):
        batch = rows[i:i + 500]
        store.store_batch(signer.key_id, tip, batch, receipt_time_ms=1)
        tip = ChainTip(batch[-1].seq, batch[-1].hash)
    elapsed = time.perf_counter() - t
    store.close()
    return rate(n, elapsed)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_relay(tmp: Path, villages: list[tuple[Signer, Path]], town_home: Path, town: Signer) -> tuple[float, int, float]:
    db_url = f"sqlite:///{town_home / 'town.db'}"
    store = open_town_store(db_url)
    for signer, _ in villages:
        store.register_approved(signer.public_key, EnrollmentInfo(), by="bench", now_ms=0)
    store.close()
    port = free_port()
    proc = TownProcess(town_home, port).start()
    proc.wait_serving()
    clients = []
    for signer, db in villages:
        outbox = SqliteOutbox(db, own_key_id=signer.key_id, township_public_key=town.public_key, township_key_id=town.key_id)
        clients.append((RelayClient(f"127.0.0.1:{port}", outbox, signer, SystemClock(),
                                    limits=ClientLimits(batch_size=500, window=4, push_deadline_s=120)), outbox))
    total = sum(o.pending_count() for _, o in clients)
    assert proc.proc is not None
    cpu_before = _cpu_seconds(proc.proc.pid)
    t = time.perf_counter()
    threads = [threading.Thread(target=c.sync_once) for c, _ in clients]
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
    proc.close()
    if left:
        raise SystemExit(f"relay left {left} records undelivered")
    return rate(total, elapsed), total, town_cpu


# ---------------------------------------------------------------- the HTTP JSON baseline


def http_server_main(port: int, db: str, seed_hex: str, keys_json: str) -> None:
    """One POST per record: decode JSON, verify, commit, sign a receipt, answer JSON."""
    town = Signer(bytes.fromhex(seed_hex))
    keys = {k: bytes.fromhex(v) for k, v in json.loads(Path(keys_json).read_text()).items()}
    store = open_town_store(f"sqlite:///{db}")
    tips: dict[str, ChainTip] = {k: GENESIS for k in keys}
    for k, pub in keys.items():
        store.register_approved(pub, EnrollmentInfo(), by="bench", now_ms=0)
    locks = {k: threading.Lock() for k in keys}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a: object) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            doc = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            payload, sig, key_id = base64.b64decode(doc["payload"]), base64.b64decode(doc["signature"]), doc["key_id"]
            ok = key_id in keys and is_valid(keys[key_id], payload, sig)
            answer: dict[str, object] = {"ok": False}
            if ok:
                record = records_pb2.Record.FromString(payload)
                h = payload_hash(payload)
                with locks[key_id]:
                    tip = tips[key_id]
                    if record.header.seq == tip.seq + 1 and record.header.prev_hash == tip.hash:
                        store.store_batch(key_id, tip, [IngestRow(key_id, record.header.seq, record.header.record_id, h,
                                                                  payload, sig, 0, "request_filed")], receipt_time_ms=1)
                        tips[key_id] = ChainTip(record.header.seq, h)
                receipt = sign_receipt(town, envelope_pb2.Receipt(author_key_id=key_id, seq=record.header.seq,
                                                                  record_hash=h, receipt_time_ms=1))
                answer = {"ok": True, "receipt": base64.b64encode(receipt.SerializeToString()).decode()}
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def run_http(tmp: Path, villages: list[tuple[Signer, Path]], town: Signer) -> float:
    import httpx

    keys = tmp / "keys.json"
    keys.write_text(json.dumps({s.key_id: s.public_key.hex() for s, _ in villages}))
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
        for signer, db in villages:
            outbox = SqliteOutbox(db, own_key_id=signer.key_id, township_public_key=town.public_key, township_key_id=town.key_id)
            rows = outbox._conn.execute("SELECT payload, signature FROM ledger ORDER BY seq").fetchall()
            outbox.close()
            work.append((signer.key_id, town, rows))
        total = sum(len(r) for _, _, r in work)
        failures = []

        def post_all(key_id: str, rows: list[tuple[bytes, bytes]]) -> None:
            with httpx.Client(timeout=30) as client:
                for payload, sig in rows:
                    reply = client.post(f"http://127.0.0.1:{port}/push", json={
                        "payload": base64.b64encode(payload).decode(), "signature": base64.b64encode(sig).decode(),
                        "key_id": key_id}).json()
                    env = envelope_pb2.Envelope.FromString(base64.b64decode(reply["receipt"]))
                    if not is_valid(town.public_key, env.payload, env.signature):
                        failures.append(key_id)

        t = time.perf_counter()
        threads = [threading.Thread(target=post_all, args=(k, r)) for k, _, r in work]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        elapsed = time.perf_counter() - t
        assert not failures
        return rate(total, elapsed)
    finally:
        server.terminate()
        server.wait(10)


def core_rate(tmp: Path, n_villages: int, n_records: int) -> float:
    """The township's relay core alone, in this process: verify (2 threads), commit, sign receipts.
    No gRPC and no senders competing for the cores: what the township could do with the box to itself."""
    from shared.relay.server import RelayCore, RelayLimits

    store = open_town_store(str(tmp / "core.db"))
    core = RelayCore(signer=Signer.generate(), ingest=store, keys=store, down=store, clock=SystemClock(),
                     limits=RelayLimits(verify_threads=2))
    chains = []
    for v in range(n_villages):
        s = Signer.generate()
        store.register_approved(s.public_key, EnrollmentInfo(role=records_pb2.KEY_ROLE_VILLAGE_AGENT, holder_name="bench",
                                                             village_code=f"V{v}", township_code="T"), by="bench", now_ms=0)
        tip: ChainTip = GENESIS
        envs = []
        for i in range(n_records):
            signed = sign_next(s, body(i), tip, 0)
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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        town_home = tmp / "town"
        town = init_town(town_home)
        villages = prepare_villages(tmp, args.villages, args.records, town.public_key, town.key_id)
        sample = sign_next(Signer.generate(), body(1), GENESIS, 0).envelope.payload
        verify = raw_verify_rate(sample)
        insert = store_insert_rate(tmp, 20_000)
        relay, total, town_cpu = run_relay(tmp, villages, town_home, town)
        print(f"records: {total} from {args.villages} villages, payload ~{len(sample)} bytes, cores: {os.cpu_count()}")
        print(f"raw Ed25519 verify, PyNaCl, 1 core   {verify:10,.0f}/s")
        print(f"store batched insert (SQLite FULL)   {insert:10,.0f}/s")
        print(f"relay end to end (gRPC, receipted)   {relay:10,.0f}/s   = {relay / verify:5.2f} x raw verify"
              f"   (villages and township share the {os.cpu_count()} cores)")
        core = core_rate(tmp, args.villages, args.records)
        print(f"township relay core alone (2 threads){core:10,.0f}/s   = {core / verify:5.2f} x raw verify"
              "   (in-process: no gRPC, no senders on the same cores)")
        per_cpu_s = rate(total, town_cpu)
        print(f"township CPU per record              {1e6 / per_cpu_s:10,.0f} µs  = {per_cpu_s:,.0f} records per CPU-second"
              f" = {per_cpu_s / verify:4.2f} x raw verify per core")
        if not args.skip_http:
            http = run_http(tmp, villages, town)
            print(f"HTTP JSON, one POST per record       {http:10,.0f}/s   relay is {relay / http:5.1f} x faster")


if __name__ == "__main__":
    main()
