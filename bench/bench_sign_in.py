"""What the stronger password hashing costs a sign-in: `ConsoleAuth.authenticate` with today's scrypt
(n=2^17) against the old cost (n=2^15) measured in the same run, on a real SQLite file, and how long
a burst of concurrent sign-ins takes with the KDF slots (2 at once, ~128 MiB each).

    .venv/bin/python bench/bench_sign_in.py
    .venv/bin/python bench/bench_sign_in.py --rounds 10 --burst 8
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine

from shared.clock import SystemClock
from shared.console import ConsoleAuth, ScryptParams, create_console_tables
from shared.console.passwords import DEFAULT_SCRYPT
from shared.domain.handling import Role

PASSWORD = "青石镇窗口2026春季值班"


def _auth(folder: Path, name: str, kdf: ScryptParams) -> ConsoleAuth:
    engine = create_engine(f"sqlite:///{folder / name}")
    create_console_tables(engine)
    auth = ConsoleAuth(engine, SystemClock(), kdf=kdf)
    auth.create_staff("wangfang", "王芳", Role.OPERATOR, PASSWORD)
    return auth


def _per_sign_in(auth: ConsoleAuth, rounds: int) -> float:
    auth.authenticate("wangfang", PASSWORD, address="10.0.0.1")   # warm: tables, connection pool
    t0 = time.perf_counter()
    for _ in range(rounds):
        auth.authenticate("wangfang", PASSWORD, address="10.0.0.1")
    return (time.perf_counter() - t0) / rounds


def _burst(auth: ConsoleAuth, n: int) -> float:
    threads = [threading.Thread(target=auth.authenticate, args=("wangfang", PASSWORD), kwargs={"address": f"10.0.1.{i}"})
               for i in range(n)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--burst", type=int, default=6)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        old = _auth(folder, "old.db", ScryptParams(n=2**15, r=8, p=1))
        new = _auth(folder, "new.db", DEFAULT_SCRYPT)
        ref = _per_sign_in(old, args.rounds)
        now = _per_sign_in(new, args.rounds)
        print(f"sign-in, scrypt n=2^15 (reference)        {ref * 1000:8.1f} ms")
        print(f"sign-in, scrypt n=2^17 (today)            {now * 1000:8.1f} ms   ratio {now / ref:5.2f}× the reference")
        ref_burst = _burst(old, args.burst)
        now_burst = _burst(new, args.burst)
        print(f"{args.burst} sign-ins at once, n=2^15 (reference) {ref_burst * 1000:8.1f} ms")
        print(f"{args.burst} sign-ins at once, n=2^17 (today)     {now_burst * 1000:8.1f} ms   ratio {now_burst / ref_burst:5.2f}×")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
