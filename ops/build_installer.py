"""Builds the village agent's single-file laptop installer: a zipapp made with shiv.

    .venv/bin/python -m ops.build_installer [--out dist/village-agent.pyz]

The file carries the agent and every dependency; on the laptop it needs only a Python 3.11+
interpreter of the same platform (`python village-agent.pyz serve`, or run it directly on Linux).
Compiled dependencies (grpcio, cryptography, PyNaCl) are platform wheels, so build it on the kind of
machine it will run on: on Windows run this same module there (the code keeps to pathlib and
uses no fork-only APIs). On first start shiv unpacks into `~/.shiv` (or `SHIV_ROOT`); later starts
reuse that. Size and start times: `python -m bench.bench_installer`.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def build(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    shiv = Path(sys.executable).parent / "shiv"
    cmd = [str(shiv) if shiv.exists() else "shiv", "-c", "village-agent", "-o", str(out), "--compressed",
           "--reproducible", "-p", "/usr/bin/env python3", str(REPO)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(f"打包失败（shiv 退出码 {done.returncode}）：\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description="打包村代办员单文件安装包（zipapp）")
    parser.add_argument("--out", default=str(REPO / "dist" / "village-agent.pyz"), help="输出文件")
    args = parser.parse_args()
    path = build(Path(args.out))
    print(f"已生成 {path}（{path.stat().st_size / 1e6:.1f} MB）")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
