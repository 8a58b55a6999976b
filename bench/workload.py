"""What the benches send: village records as a village laptop makes them, so a bench measures the
path real records take (see docs/performance.md).

* every village files its own matters (a matter id is a fresh UUID; a village's records never
  collide with another's, so the township's intake makes one matter per filing);
* claimed times are the laptop's clock when the agent recorded each one: spread over the hours
  before the run, increasing along the chain and never ahead of the township's clock, so none is
  flagged;
* a filing carries what a laptop puts in it: a catalogue code of the published catalogue, the
  materials brought, a masked ID number, the applicant's details sealed to the township and a
  lookup code's hash.
"""
from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from shared.envelope import GENESIS, ChainTip, sign_next
from shared.sealing import seal_to
from shared.signing import Signer
from shared.wire.v1 import records_pb2

__all__ = ["filing", "claimed_times_ms", "prepare_outboxes", "TownServer", "free_port"]

REPO = Path(__file__).resolve().parent.parent
# Catalogue items of the published catalogue (shared/data/catalog.toml), county- and township-decided.
_CODES = ("MZ-001", "MZ-003", "YB-001", "MZ-002")


def free_port() -> int:
    """A port the kernel just handed out (for servers that cannot report the one they bound)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def filing(village_code: str, n: int, town_public_key: bytes, town_key_id: str) -> records_pb2.Record:
    """The `n`th filing of a village: its own matter, as its laptop records it."""
    record = records_pb2.Record()
    body = record.request_filed
    body.matter_id = str(uuid.uuid4())
    body.catalog_code = _CODES[n % len(_CODES)]
    body.catalog_version = "2026.1"
    body.village_code = village_code
    body.intake_outcome = records_pb2.INTAKE_OUTCOME_ACCEPT
    body.materials_brought.extend(["身份证", "户口簿"])
    body.applicant.id_number_masked = "3301**********123X"
    details = records_pb2.ApplicantDetails(name="测试村民", id_number="330102199001011234", phone="13800001111",
                                           address=f"{village_code}村一组")
    body.applicant.sealed_details = seal_to(town_public_key, details.SerializeToString())
    body.applicant.sealed_to_key_id = town_key_id
    body.lookup_code_hash = hashlib.sha256(f"{village_code}-{n}-{body.matter_id}".encode()).digest()
    return record


def claimed_times_ms(n: int, *, end_ms: int | None = None, spread_s: float = 6 * 3600) -> list[int]:
    """`n` increasing claimed times spread over the `spread_s` seconds before `end_ms` (default: now
    minus a minute, so a laptop clock a little behind the township's is what the bench shows)."""
    end = end_ms if end_ms is not None else int(time.time() * 1000) - 60_000
    step = max(1, int(spread_s * 1000 / max(1, n)))
    return [end - (n - i) * step for i in range(n)]


def prepare_outboxes(tmp: Path, n_villages: int, n_records: int, town_public_key: bytes, town_key_id: str,
                     ) -> list[tuple[Signer, Path, str]]:
    """Each village's outbox file (the laptop's queue) with `n_records` signed filings waiting."""
    from tests.relay_fakes import SqliteOutbox  # the outbox the relay's own tests run on

    out = []
    for v in range(n_villages):
        signer = Signer.generate()
        code = f"V{v + 1:03d}"
        db = tmp / f"v{v}.sqlite"
        outbox = SqliteOutbox(db, own_key_id=signer.key_id, township_public_key=town_public_key,
                              township_key_id=town_key_id)
        conn = outbox._conn
        tip: ChainTip = GENESIS
        conn.execute("BEGIN")
        for i, claimed in enumerate(claimed_times_ms(n_records)):
            signed = sign_next(signer, filing(code, i, town_public_key, town_key_id), tip, claimed)
            conn.execute("INSERT INTO ledger VALUES (?, ?, ?, ?)", (signed.seq, signed.envelope.payload,
                                                                 signed.envelope.signature, signed.hash))
            conn.execute("INSERT INTO outbox VALUES (?)", (signed.seq,))
            tip = signed.tip
        conn.execute("COMMIT")
        outbox.close()
        out.append((signer, db, code))
    return out


class TownServer:
    """`town-center serve` as a child process on ports the kernel picks (port 0, read back from
    `--port-file`), with the console and `/metrics` off, so a bench never collides with a running
    demo (console 8700) or another bench."""

    def __init__(self, home: Path, *, db_url: str | None = None, extra: Sequence[str] = ()) -> None:
        self.home, self.db_url, self.extra = home, db_url, list(extra)
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.log_path = home / "town.log"

    def start(self, timeout_s: float = 30) -> TownServer:
        from tests.relay_fakes import health_serving

        port_file = self.home / "port"
        port_file.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "town_center.cli", "serve", "--home", str(self.home), "--listen", "127.0.0.1:0",
               "--port-file", str(port_file), "--console-listen", "off", "--passphrase-file", str(self.home / "pass"),
               *self.extra]
        if self.db_url:
            cmd += ["--db", self.db_url]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=log, env={**os.environ})
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"township exited with {self.proc.returncode}; see {self.log_path}")
            if port_file.exists() and port_file.read_text().strip():
                self.port = int(port_file.read_text().strip())
                if health_serving(self.port, 0.3):
                    return self
            time.sleep(0.05)
        self.close()
        raise TimeoutError("township did not become healthy")

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
