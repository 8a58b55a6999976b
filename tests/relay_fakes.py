"""Test doubles for the relay that are real enough to crash: a SQLite-file `Outbox` and a chaotic
loopback TCP proxy.

`SqliteOutbox` keeps the device's ledger, its outbox rows, the receipts it verified and the records
pulled from the township in one SQLite file (WAL, synchronous=FULL), so a test can SIGKILL the
process that uses it and reopen the file. A record and its outbox row are written in one transaction.

`ChaosProxy` forwards 127.0.0.1:<port> to a target and, while chaotic, refuses, delays, cuts and
black-holes connections (the last one is a half-open connection: the client's keepalive must notice).
"""
from __future__ import annotations

import asyncio
import json
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from shared.envelope import ChainTip, SignedRecord, open_receipt, open_record, sign_next
from shared.errors import EnvelopeError
from shared.signing import Signer, is_valid, payload_hash
from shared.wire.v1 import envelope_pb2, records_pb2
from tests.common_fixtures import free_port

__all__ = ["SqliteOutbox", "ChaosProxy", "enrollment_record", "note_record", "PASSPHRASE", "free_port", "init_town",
           "health_serving", "TownProcess", "CountyProcess", "VillageProcess", "approve_villages", "assert_exactly_once"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger (seq INTEGER PRIMARY KEY, payload BLOB NOT NULL, signature BLOB NOT NULL, hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS receipt (seq INTEGER PRIMARY KEY, envelope BLOB NOT NULL, receipt_time_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS down (cursor INTEGER PRIMARY KEY, payload BLOB NOT NULL, signature BLOB NOT NULL, key_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def enrollment_record(signer: Signer, village_code: str, role: int = records_pb2.KEY_ROLE_VILLAGE_AGENT) -> records_pb2.Record:
    record = records_pb2.Record()
    body = record.key_enrollment_requested
    body.public_key = signer.public_key
    body.role = role
    body.holder_name = f"代办员{village_code}"
    body.village_code = village_code
    return record


def note_record(i: int, salt: str = "") -> records_pb2.Record:
    record = records_pb2.Record()
    body = record.request_filed
    body.matter_id = f"00000000-0000-4000-8000-{i:012d}"
    body.catalog_code = "MZ-001"
    body.intake_outcome = records_pb2.INTAKE_OUTCOME_ACCEPT
    body.note = f"记录 {i} {salt}"
    return record


class SqliteOutbox:
    """Implements `shared.relay.ports.Outbox` over one SQLite file."""

    def __init__(self, path: Path, *, own_key_id: str, township_public_key: bytes, township_key_id: str) -> None:
        self.path = path
        self.own_key_id = own_key_id
        self.township_public_key = township_public_key
        self.township_key_id = township_key_id
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=15)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # ------------------------------------------------------------ recording

    def tip(self) -> ChainTip:
        with self._lock:
            row = self._conn.execute("SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
        return ChainTip() if row is None else ChainTip(int(row[0]), bytes(row[1]))

    def record(self, signer: Signer, record: records_pb2.Record, claimed_time_ms: int) -> SignedRecord:
        with self._tx() as conn:
            row = conn.execute("SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
            tip = ChainTip() if row is None else ChainTip(int(row[0]), bytes(row[1]))
            signed = sign_next(signer, record, tip, claimed_time_ms)
            conn.execute("INSERT INTO ledger VALUES (?, ?, ?, ?)",
                         (signed.seq, signed.envelope.payload, signed.envelope.signature, signed.hash))
            conn.execute("INSERT INTO outbox VALUES (?)", (signed.seq,))
        return signed

    # ------------------------------------------------------------ Outbox port

    def pending(self, limit: int) -> list[envelope_pb2.Envelope]:
        with self._lock:
            rows = self._conn.execute("SELECT l.payload, l.signature FROM outbox o JOIN ledger l ON l.seq = o.seq "
                                      "ORDER BY o.seq LIMIT ?", (limit,)).fetchall()
        return [envelope_pb2.Envelope(payload=bytes(p), signature=bytes(s), key_id=self.own_key_id) for p, s in rows]

    def confirm(self, receipts: Sequence[envelope_pb2.Envelope], *, now_ms: int) -> int:
        checked: list[tuple[int, bytes, bytes, int]] = []
        for env in receipts:   # signatures checked outside the lock: libsodium releases the GIL
            if env.key_id != self.township_key_id or not is_valid(self.township_public_key, env.payload, env.signature):
                continue
            try:
                r = open_receipt(env)
            except EnvelopeError:
                continue
            if r.author_key_id == self.own_key_id:
                checked.append((r.seq, r.record_hash, env.SerializeToString(), r.receipt_time_ms))
        if not checked:
            return 0
        with self._tx() as conn:
            seqs = [c[0] for c in checked]
            held = {int(s): bytes(h) for s, h in conn.execute(
                f"SELECT seq, hash FROM ledger WHERE seq IN ({','.join('?' * len(seqs))})", seqs)}
            good = [c for c in checked if held.get(c[0]) == c[1]]
            conn.executemany("INSERT OR IGNORE INTO receipt VALUES (?, ?, ?)", [(c[0], c[2], c[3]) for c in good])
            before = conn.total_changes
            conn.executemany("DELETE FROM outbox WHERE seq = ?", [(c[0],) for c in good])
            return conn.total_changes - before

    def resend_from(self, from_seq: int, *, now_ms: int) -> int:
        with self._tx() as conn:
            return conn.execute("INSERT OR IGNORE INTO outbox SELECT seq FROM ledger WHERE seq >= ?", (from_seq,)).rowcount

    def pull_cursor(self) -> int:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = 'pull_cursor'").fetchone()
        return int(row[0]) if row else 0

    def apply_down(self, envelopes: Sequence[envelope_pb2.Envelope], next_cursor: int) -> int:
        for env in envelopes:
            if env.key_id != self.township_key_id or not is_valid(self.township_public_key, env.payload, env.signature):
                raise EnvelopeError("乡镇下发的记录签名无效，已拒收")
            open_record(env)
        with self._tx() as conn:
            for env in envelopes:
                conn.execute("INSERT INTO down (payload, signature, key_id) VALUES (?, ?, ?)",
                             (env.payload, env.signature, env.key_id))
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('pull_cursor', ?)", (str(next_cursor),))
        return len(envelopes)

    # ------------------------------------------------------------ inspection

    def pending_count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM outbox").fetchone()[0])

    def ledger_hashes(self) -> dict[int, bytes]:
        with self._lock:
            return {int(s): bytes(h) for s, h in self._conn.execute("SELECT seq, hash FROM ledger")}

    def receipts(self) -> list[envelope_pb2.Envelope]:
        with self._lock:
            return [envelope_pb2.Envelope.FromString(bytes(b)) for (b,) in self._conn.execute("SELECT envelope FROM receipt ORDER BY seq")]

    def down_records(self) -> list[records_pb2.Record]:
        with self._lock:
            return [records_pb2.Record.FromString(bytes(p)) for (p,) in self._conn.execute("SELECT payload FROM down ORDER BY cursor")]


def payload_hashes(envelopes: Sequence[envelope_pb2.Envelope]) -> list[bytes]:
    return [payload_hash(e.payload) for e in envelopes]


class ChaosProxy:
    """An asyncio TCP proxy on 127.0.0.1 in its own thread. `chaos=True` makes each new connection
    one of: refused (closed at once), delayed, cut after a random number of bytes, or black-holed
    (accepted, never forwarded, never closed: half-open). `heal()` makes new connections clean and
    closes the black holes."""

    def __init__(self, target_port: int, *, seed: int = 7) -> None:
        self.target_port = target_port
        self.port = 0
        self.chaos = False
        self._rng = random.Random(seed)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="chaos-proxy")
        self._server: asyncio.AbstractServer | None = None
        self._holes: list[asyncio.StreamWriter] = []
        self._writers: set[asyncio.StreamWriter] = set()
        self.stats = {"refused": 0, "delayed": 0, "cut": 0, "frozen": 0, "blackholed": 0, "clean": 0}

    def start(self) -> ChaosProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("proxy did not start")
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        # Connection errors inside the proxy are the point of it; do not format tracebacks for them
        # in this thread (CPython 3.11's traceback formatting uses `ast`, which is not thread-safe).
        self._loop.set_exception_handler(lambda _loop, _context: None)

        async def main() -> None:
            self._stopping = asyncio.Event()
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stopping.wait()
            self._server.close()
            for w in list(self._writers) + self._holes:
                w.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            self._loop.run_until_complete(main())
        finally:
            self._loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        mode = "clean"
        if self.chaos:
            mode = self._rng.choice(["refused", "delayed", "cut", "cut", "frozen", "blackholed", "clean"])
        self.stats[mode] += 1
        if mode == "refused":
            writer.close()
            return
        if mode == "blackholed":
            self._holes.append(writer)
            return   # never read, never forward, never close
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        budget = [self._rng.randint(200, 40_000) if mode in ("cut", "frozen") else -1]
        delay = self._rng.uniform(0.05, 0.3) if mode == "delayed" else 0.0

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while True:
                    data = await src.read(16384)
                    if not data:
                        break
                    if delay:
                        await asyncio.sleep(delay)
                    if budget[0] >= 0:
                        budget[0] -= len(data)
                        if budget[0] < 0:
                            if mode == "frozen":
                                # Half-open: keep the socket, swallow everything, answer nothing.
                                while await src.read(16384):
                                    pass
                                return
                            break
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                if mode != "frozen" or budget[0] >= 0:
                    for w in (writer, up_writer):
                        w.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True)

    def heal(self) -> None:
        def do() -> None:
            self.chaos = False
            for w in self._holes:
                w.close()
            self._holes.clear()
        self._loop.call_soon_threadsafe(do)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(lambda: self._stopping.set())
        self._thread.join(10)

# ---------------------------------------------------------------- process helpers for integration tests

PASSPHRASE = "relay-test-passphrase"
REPO = Path(__file__).resolve().parent.parent


def init_town(home: Path, db_url: str | None = None) -> Signer:
    from town_center.bootstrap import init_home

    home.mkdir(parents=True, exist_ok=True)
    (home / "pass").write_text(PASSPHRASE, encoding="utf-8")
    return init_home(home, PASSPHRASE, db_url)


def health_serving(port: int, timeout: float = 0.5) -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


class TownProcess:
    """`town-center serve` as a real child process on a fixed loopback port."""

    def __init__(self, home: Path, port: int, *, db_url: str | None = None, extra: Sequence[str] = ()) -> None:
        self.home, self.port, self.db_url, self.extra = home, port, db_url, list(extra)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = open(home / "town.log", "ab")

    def start(self) -> TownProcess:
        cmd = [sys.executable, "-m", "town_center.cli", "serve", "--home", str(self.home), "--listen",
               f"127.0.0.1:{self.port}", "--passphrase-file", str(self.home / "pass"), *self.extra]
        if self.db_url:
            cmd += ["--db", self.db_url]
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=self.log, stderr=self.log)
        return self

    def wait_serving(self, timeout: float = 20) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"township exited with {self.proc.returncode}; see {self.home / 'town.log'}")
            if health_serving(self.port, 0.3):
                return
            time.sleep(0.03)
        raise TimeoutError("township did not become healthy")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def close(self) -> None:
        self.stop()
        self.log.close()


class CountyProcess:
    """`county-hub serve` as a real child process on a fixed loopback port (no board)."""

    def __init__(self, home: Path, port: int) -> None:
        self.home, self.port = home, port
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = open(home / "county.log", "ab")

    def start(self) -> CountyProcess:
        self.proc = subprocess.Popen([sys.executable, "-m", "hub.cli", "serve", "--home", str(self.home), "--listen",
                                      f"127.0.0.1:{self.port}", "--console-listen", "off", "--passphrase-file",
                                      str(self.home / "pass")], cwd=REPO, stdout=self.log, stderr=self.log)
        end = time.monotonic() + 20
        while not health_serving(self.port, 0.3):
            assert self.proc.poll() is None, (self.home / "county.log").read_text(errors="replace")
            if time.monotonic() > end:
                raise TimeoutError("county did not become healthy")
            time.sleep(0.03)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def close(self) -> None:
        self.kill()
        self.log.close()


class VillageProcess:
    """`tests/relay_village_proc.py` as a child process."""

    def __init__(self, workdir: Path, name: str, town_public_key: bytes, target_port: int, *, seed: bytes | None = None,
                 **options: object) -> None:
        self.db = workdir / f"{name}.sqlite"
        self.seed = seed or Signer.generate().seed()
        self.signer = Signer(self.seed)
        self.town_public_key = town_public_key
        self.target_port = target_port
        self.options = options
        self.name = name
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, **overrides: object) -> VillageProcess:
        opts = {**self.options, **overrides}
        cmd = [sys.executable, "-m", "tests.relay_village_proc", "--db", str(self.db), "--seed-hex", self.seed.hex(),
               "--target", f"127.0.0.1:{opts.pop('port', self.target_port)}", "--town-pub-hex", self.town_public_key.hex(),
               "--village", self.name, "--quiet"]
        for k, v in opts.items():
            flag = "--" + k.replace("_", "-")
            if v is True:
                cmd.append(flag)
            elif v is not False and v is not None:
                cmd += [flag, str(v)]
        err = open(self.workdir / f"{self.name}.log", "ab")
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=err)
        err.close()
        return self

    def wait(self, timeout: float) -> dict[str, object]:
        assert self.proc is not None
        out, _ = self.proc.communicate(timeout=timeout)
        lines = out.decode().strip().splitlines()
        state: dict[str, object] = json.loads(lines[-1]) if lines else {}
        state["returncode"] = self.proc.returncode
        return state

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def outbox(self) -> SqliteOutbox:
        return SqliteOutbox(self.db, own_key_id=self.signer.key_id, township_public_key=self.town_public_key,
                            township_key_id=_key_id(self.town_public_key))


def _key_id(public_key: bytes) -> str:
    from shared.signing import key_id_for

    return key_id_for(public_key)


def approve_villages(db_url: str, villages: Sequence[VillageProcess]) -> None:
    """Register the villages' keys as approved, as an operator would after checking fingerprints."""
    from shared.relay.ports import EnrollmentInfo
    from town_center.store import open_town_store

    store = open_town_store(db_url)
    try:
        for v in villages:
            store.register_approved(v.signer.public_key, EnrollmentInfo(village_code=v.name), by="测试", now_ms=0)
    finally:
        store.close()


def assert_exactly_once(db_url: str, villages: Sequence[VillageProcess]) -> int:
    """Every record of every village is stored once with its exact hash, and every receipt a village
    holds verifies and matches the stored row (hash and receipt time). Returns the total."""
    from shared.envelope import open_receipt as _open_receipt
    from town_center.store import open_town_store

    store = open_town_store(db_url)
    total = 0
    try:
        for v in villages:
            outbox = v.outbox()
            try:
                ledger = outbox.ledger_hashes()
                rows = store.ingested(v.signer.key_id)
                assert [s for s, _, _ in rows] == list(range(1, len(ledger) + 1)), f"{v.name}: stored seqs differ from ledger"
                stored = {s: (h, t) for s, h, t in rows}
                assert all(stored[s][0] == h for s, h in ledger.items()), f"{v.name}: stored bytes differ"
                assert outbox.pending_count() == 0, f"{v.name}: outbox not drained"
                for env in outbox.receipts():
                    assert is_valid(v.town_public_key, env.payload, env.signature)
                    r = _open_receipt(env)
                    assert stored[r.seq] == (r.record_hash, r.receipt_time_ms), f"{v.name}: receipt without its row"
                assert len(outbox.receipts()) == len(ledger)
                total += len(ledger)
            finally:
                outbox.close()
    finally:
        store.close()
    return total
