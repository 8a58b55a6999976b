"""Sign + append and verify-chain rates for N records, beside raw Ed25519 rates measured in the same run.

    .venv/bin/python -m bench.bench_chain [--records 100000]

Raw rates are measured for both implementations available (libsodium via PyNaCl, OpenSSL via
`cryptography`) over payloads of the same size; ratios are against the fastest of each.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.chain import verify_chain
from shared.envelope import GENESIS, sign_next
from shared.keys import InMemoryKeyDirectory
from shared.ledger_file import LedgerAppender, read_ledger
from shared.signing import Signer
from tests.chains import BASE_MS, request_record

FSYNC_EVERY = 1000


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def raw_rates(payload: bytes, n: int) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    signer = Signer.generate()
    from nacl.signing import VerifyKey

    vk = VerifyKey(signer.public_key)
    t = time.perf_counter()
    sigs = [signer.sign(payload) for _ in range(n)]
    sign_s = time.perf_counter() - t
    t = time.perf_counter()
    for s in sigs:
        vk.verify(payload, s)
    out["PyNaCl/libsodium"] = (rate(n, sign_s), rate(n, time.perf_counter() - t))

    key = Ed25519PrivateKey.generate()
    pub = key.public_key()
    t = time.perf_counter()
    sigs = [key.sign(payload) for _ in range(n)]
    sign_s = time.perf_counter() - t
    t = time.perf_counter()
    for s in sigs:
        pub.verify(s, payload)
    out["cryptography/OpenSSL"] = (rate(n, sign_s), rate(n, time.perf_counter() - t))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args()
    n = args.records
    signer = Signer.generate()
    keys = InMemoryKeyDirectory()
    keys.add_public_key(signer.public_key)

    with tempfile.TemporaryDirectory() as tmp:
        ledger = Path(tmp) / "ledger.qclog"
        tip, batch = GENESIS, []
        records = [request_record(i) for i in range(n)]  # building bodies is the caller's work
        t = time.perf_counter()
        with LedgerAppender(ledger) as appender:
            for i, record in enumerate(records):
                signed = sign_next(signer, record, tip, BASE_MS + i)
                batch.append(signed.envelope)
                tip = signed.tip
                if len(batch) == FSYNC_EVERY:
                    appender.append(batch)
                    batch = []
            appender.append(batch)
        sign_append_s = time.perf_counter() - t

        envs = read_ledger(ledger).envelopes
        payload_len = sum(len(e.payload) for e in envs[:1000]) // 1000
        t = time.perf_counter()
        report = verify_chain(envs, keys)
        verify_1_s = time.perf_counter() - t
        assert report.ok and report.verified == n
        t = time.perf_counter()
        report2 = verify_chain(envs, keys, workers=2)
        verify_2_s = time.perf_counter() - t
        assert report2.ok

    sample = envs[0].payload
    raw = raw_rates(sample, min(n, 20_000))
    best_sign = max(v[0] for v in raw.values())
    best_verify = max(v[1] for v in raw.values())
    print(f"records: {n}, payload ~{payload_len} bytes, ledger fsync every {FSYNC_EVERY}")
    for name, (s, v) in raw.items():
        print(f"raw Ed25519 {name:22s} sign {s:10,.0f}/s   verify {v:10,.0f}/s")
    sa = rate(n, sign_append_s)
    v1, v2 = rate(n, verify_1_s), rate(n, verify_2_s)
    print(f"sign + append (ledger file)     {sa:10,.0f}/s   = {sa / best_sign:5.2f} x fastest raw sign")
    print(f"verify chain, 1 thread          {v1:10,.0f}/s   = {v1 / best_verify:5.2f} x fastest raw verify")
    print(f"verify chain, 2 threads         {v2:10,.0f}/s   = {v2 / best_verify:5.2f} x fastest raw verify")


if __name__ == "__main__":
    main()
