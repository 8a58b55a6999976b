"""The README's start command: a whole county on one machine, on embedded SQLite.

A county hub, two townships linked to it, four villages (two per township), all keys enrolled, and
(on the first run) about three weeks of realistic history seeded through the real code paths
(`ops/demo_seed.py`): matters at every stage, some in warning, some overdue at the township and at
the county, some signed off at all three tiers, a 督办 notice on its way. Then every tier runs as
its own process (`county-hub serve`, `town-center serve`, `village-agent serve`) until Ctrl-C, which
stops them all cleanly. A second run resumes the same data under `var/demo/`.

`QUANCHENG_DEMO_ROOT` moves the data, `QUANCHENG_DEMO_PORT_OFFSET` shifts every port (tests use both).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from shared import cli_common

# A demo-only passphrase, printed openly; real devices take one from their operator.
DEMO_PASSPHRASE = "演示口令-仅供本机演示"
ROOT = Path(os.environ.get("QUANCHENG_DEMO_ROOT", "var/demo"))
OFFSET = int(os.environ.get("QUANCHENG_DEMO_PORT_OFFSET", "0"))
SEEDED_MARK = ROOT / ".seeded"

# Demo-only logins, printed openly; real accounts come from `staff add`.
COUNTY_STAFF = (("chen", "县中心 陈主任", "director", "演示县级口令2026年春"),
                ("liu", "县中心 刘科员", "operator", "演示科员口令2026年春"),
                ("xzadmin", "县中心 管理员", "administrator", "演示县管理口令2026年春"))
TOWN_STAFF = (("chuangkou", "窗口 王敏", "operator", "演示窗口口令2026年春"),
              ("zhuren", "主任 赵刚", "director", "演示主任口令2026年春"),
              ("admin", "管理员 周洁", "administrator", "演示管理员口令2026年春"))


@dataclass(frozen=True)
class Township:
    code: str
    name: str
    grpc_port: int
    web_port: int
    villages: tuple[tuple[str, str, str, int], ...]   # (code, name, agent, UI port)
    metrics_port: int

    @property
    def home(self) -> Path:
        return ROOT / f"township-{self.code}"


COUNTY_GRPC, COUNTY_WEB, COUNTY_METRICS = 7000 + OFFSET, 8800 + OFFSET, 9800 + OFFSET
TOWNSHIPS = (
    Township("T01", "青石镇", 7001 + OFFSET, 8700 + OFFSET, (("V001", "东山村", "王芳", 8631 + OFFSET),
                                                          ("V002", "西岭村", "李强", 8632 + OFFSET)), 9701 + OFFSET),
    Township("T02", "白水乡", 7002 + OFFSET, 8701 + OFFSET, (("V003", "南坡村", "张丽", 8633 + OFFSET),
                                                          ("V004", "北河村", "陈勇", 8634 + OFFSET)), 9702 + OFFSET),
)
COUNTY_HOME = ROOT / "county"


def village_dir(code: str) -> Path:
    return ROOT / f"village-{code}"


def _all_ports() -> list[int]:
    ports = [COUNTY_GRPC, COUNTY_WEB, COUNTY_METRICS]
    for t in TOWNSHIPS:
        ports += [t.grpc_port, t.web_port, t.metrics_port, *(v[3] for v in t.villages)]
    return ports


def _busy(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _seed_once() -> None:
    if SEEDED_MARK.exists():
        print(f"沿用上次的演示数据：{ROOT}/")
        return
    if COUNTY_HOME.exists() or any(t.home.exists() for t in TOWNSHIPS):
        # A first run stopped half-way: demo data only, so it is built again from the start.
        print(f"上次准备演示数据未完成，重新准备：{ROOT}/")
        for child in (COUNTY_HOME, *(t.home for t in TOWNSHIPS), *(village_dir(v[0]) for t in TOWNSHIPS for v in t.villages)):
            shutil.rmtree(child, ignore_errors=True)
    print("== 首次运行：准备演示县（约三周的办件历史，使用真实的签名、同步与办理流程，约需半分钟）", flush=True)
    (ROOT / "logs").mkdir(parents=True, exist_ok=True)
    # The set-up commands' own output (keys, fingerprints, QR codes) goes to a log, not the terminal.
    with open(ROOT / "logs" / "seed.log", "a", encoding="utf-8") as quiet, \
            contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        _seed()
    SEEDED_MARK.write_text("seeded\n", encoding="utf-8")


def _seed() -> None:
    from ops.demo_seed import TownshipPlan, seed

    seed(root=ROOT, passphrase=DEMO_PASSPHRASE, county_home=COUNTY_HOME, county_grpc=f"127.0.0.1:{COUNTY_GRPC}",
         townships={t.code: t.home for t in TOWNSHIPS}, town_grpc={t.code: f"127.0.0.1:{t.grpc_port}" for t in TOWNSHIPS},
         plans=tuple(TownshipPlan(t.code, t.name, tuple((v[0], v[1], v[2]) for v in t.villages)) for t in TOWNSHIPS),
         village_dirs={v[0]: village_dir(v[0]) for t in TOWNSHIPS for v in t.villages},
         staff={"county": COUNTY_STAFF, **{t.code: TOWN_STAFF for t in TOWNSHIPS}})


class Processes:
    """Every tier's serve process; stopped together with SIGTERM (each drains and exits cleanly)."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        (ROOT / "logs").mkdir(parents=True, exist_ok=True)

    def start(self, name: str, args: list[str], ports: list[int]) -> None:
        log = open(ROOT / "logs" / f"{name}.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", *args], stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)   # Ctrl-C reaches us; we stop the children in order
        self.procs.append((name, proc))
        end = time.monotonic() + 40
        for port in ports:
            while not _busy(port):
                if proc.poll() is not None:
                    raise SystemExit(f"{name} 未能启动，见 {ROOT / 'logs' / f'{name}.log'}")
                if time.monotonic() > end:
                    raise SystemExit(f"{name} 40 秒内未能启动（端口 {port}）")
                time.sleep(0.1)

    def stop(self) -> None:
        for _name, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in reversed(self.procs):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                print(f"{name} 未能按时停止，强制结束")
                proc.kill()
                proc.wait(10)


def _start_all(procs: Processes) -> None:
    procs.start("county", ["hub.cli", "serve", "--home", str(COUNTY_HOME), "--listen", f"127.0.0.1:{COUNTY_GRPC}",
                           "--console-listen", f"127.0.0.1:{COUNTY_WEB}",
                           "--metrics-listen", f"127.0.0.1:{COUNTY_METRICS}"], [COUNTY_GRPC, COUNTY_WEB, COUNTY_METRICS])
    for t in TOWNSHIPS:
        procs.start(f"township-{t.code}", ["town_center.cli", "serve", "--home", str(t.home), "--listen",
                                           f"127.0.0.1:{t.grpc_port}", "--console-listen", f"127.0.0.1:{t.web_port}",
                                           "--metrics-listen", f"127.0.0.1:{t.metrics_port}"],
                    [t.grpc_port, t.web_port, t.metrics_port])
    for t in TOWNSHIPS:
        for code, _name, _agent, port in t.villages:
            procs.start(f"village-{code}", ["village_agent.cli", "serve", "--data", str(village_dir(code)),
                                            "--port", str(port)], [port])


def _print_summary() -> None:
    print()
    print(f"县政务服务中心  跟踪看板 http://127.0.0.1:{COUNTY_WEB}/   （gRPC 127.0.0.1:{COUNTY_GRPC}，"
          f"监控指标 http://127.0.0.1:{COUNTY_METRICS}/metrics）")
    for staff_id, name, _role, password in COUNTY_STAFF:
        print(f"    演示登录 {name}：登录名 {staff_id}  密码 {password}")
    for t in TOWNSHIPS:
        print(f"{t.name}便民服务中心  工作台 http://127.0.0.1:{t.web_port}/   政务公开 http://127.0.0.1:{t.web_port}/public"
              f"   （gRPC 127.0.0.1:{t.grpc_port}，监控指标 http://127.0.0.1:{t.metrics_port}/metrics）")
        for code, name, agent, port in t.villages:
            print(f"    {name}（{code}）代办员 {agent}：http://127.0.0.1:{port}/")
    print("乡镇工作台演示登录（两个乡镇相同）：")
    for staff_id, name, _role, password in TOWN_STAFF:
        print(f"    {name}：登录名 {staff_id}  密码 {password}")
    print(f"设备口令（演示用，也用于解锁村代办员网页）：{DEMO_PASSPHRASE}    数据目录 {ROOT}/   日志 {ROOT / 'logs'}/")
    print("全部服务已启动。按 Ctrl-C 停止。", flush=True)


def main() -> int:
    os.environ.setdefault(cli_common.PASSPHRASE_ENV, DEMO_PASSPHRASE)
    ROOT.mkdir(parents=True, exist_ok=True)
    import logging

    logging.basicConfig(filename=ROOT / "demo.log", level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    print("== 全程代办系统：本机演示县（1 个县级中心、2 个乡镇、4 个村）")
    taken = [p for p in _all_ports() if _busy(p)]
    if taken:
        print(f"端口已被占用：{', '.join(map(str, taken))}。请先停止占用这些端口的程序（可能是上一次的演示仍在运行）。",
              file=sys.stderr)
        return 1
    stop = threading.Event()

    def on_signal(_signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    _seed_once()
    procs = Processes()
    try:
        _start_all(procs)
        _print_summary()
        while not stop.is_set():
            if any(p.poll() is not None for _, p in procs.procs):
                dead = [n for n, p in procs.procs if p.poll() is not None]
                print(f"有服务意外退出：{', '.join(dead)}（见 {ROOT / 'logs'}/），正在停止其余服务", file=sys.stderr)
                return 1
            stop.wait(0.5)
        print("\n正在停止全部服务…", flush=True)
        return 0
    finally:
        procs.stop()
        print("已停止。再次运行本命令将沿用同一份数据。", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
