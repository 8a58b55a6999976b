"""Size and start time of the village agent's single-file installer, against the same command run
from the development virtualenv (the reference).

    .venv/bin/python -m bench.bench_installer

Prints: file size; first start (shiv unpacks into a fresh SHIV_ROOT); warm start (median of 5);
the venv's `village-agent --help` (median of 5); and the ratios.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ops.build_installer import build


def _time(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def _township_uri() -> str:
    from shared.keys import enrollment_uri
    from shared.signing import Signer

    return enrollment_uri(Signer.generate().public_key)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        pyz = build(Path(tmp) / "village-agent.pyz")
        built_s = time.perf_counter() - t0
        env = dict(os.environ, SHIV_ROOT=str(Path(tmp) / "shiv-root"))
        cold = _time([sys.executable, str(pyz), "--help"], env)
        warm = statistics.median(_time([sys.executable, str(pyz), "--help"], env) for _ in range(5))
        venv = statistics.median(_time([str(Path(sys.executable).parent / "village-agent"), "--help"], env) for _ in range(5))
        data = Path(tmp) / "agent"
        env["QUANCHENG_PASSPHRASE"] = "bench-passphrase-1"
        subprocess.run([sys.executable, str(pyz), "init", "--data", str(data), "--agent-name", "王芳", "--village-code",
                        "V001", "--village-name", "东山村", "--township-code", "T01", "--township-name", "青石镇",
                        "--township-address", "127.0.0.1:7001", "--township-key", _township_uri()],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        status_pyz = statistics.median(_time([sys.executable, str(pyz), "status", "--data", str(data)], env) for _ in range(5))
        status_venv = statistics.median(_time([str(Path(sys.executable).parent / "village-agent"), "status", "--data",
                                               str(data)], env) for _ in range(5))
        unpacked = sum(f.stat().st_size for f in Path(env["SHIV_ROOT"]).rglob("*") if f.is_file())
        print(f"build time           {built_s:6.1f} s")
        print(f"installer size       {pyz.stat().st_size / 1e6:6.1f} MB  (unpacked on first start: {unpacked / 1e6:.0f} MB)")
        print(f"first start (--help) {cold:6.2f} s   = {cold / venv:5.1f}x the venv command")
        print(f"warm start  (--help) {warm:6.2f} s   = {warm / venv:5.1f}x the venv command")
        print(f"venv command (--help){venv:6.2f} s   (reference)")
        print(f"status (opens store) {status_pyz:6.2f} s   = {status_pyz / status_venv:5.1f}x the venv command ({status_venv:.2f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
