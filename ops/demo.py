"""What the README's start command runs at this stage of the project.

Creates (once) a demo township center and a demo village agent under `var/demo/`, starts the
township's gRPC relay, enrols and approves the agent's key, records a few sample requests for
made-up villagers, syncs them to the township, verifies the agent's signed ledger, and serves the
village agent's web UI on 127.0.0.1 (syncing in the background) until Ctrl-C stops everything.
A second run reuses the same data.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from shared import cli_common
from shared.domain.id_number import with_check_char
from shared.errors import SharedError
from shared.keys import enrollment_uri, load_key_file
from shared.signing import Signer

DEMO_ROOT = Path("var/demo")
# A demo-only passphrase, printed openly; real devices take one from their operator.
DEMO_PASSPHRASE = "演示口令-仅供本机演示"

SAMPLE_VILLAGERS = (
    {"name": "李桂兰", "id_number": with_check_char("43052419480312002"), "phone": "13907310001", "address": "东山村三组 12 号",
     "elderly_or_disabled": True, "door_to_door": True},
    {"name": "王建国", "id_number": with_check_char("43052419620708001"), "phone": "13907310002", "address": "东山村五组 3 号"},
    {"name": "赵秀英", "id_number": with_check_char("43052419550101002"), "phone": "13907310003", "address": "东山村一组 7 号",
     "elderly_or_disabled": True},
)


TOWN_HOME = DEMO_ROOT / "township-T01"
TOWN_ADDRESS = "127.0.0.1:7001"
TOWN_CONSOLE = "127.0.0.1:8700"
# Demo-only logins for the township console, printed openly; real accounts come from `town-center staff add`.
DEMO_STAFF = (
    ("chuangkou", "窗口 王敏", "operator", "演示窗口口令2026"),
    ("zhuren", "主任 赵刚", "director", "演示主任口令2026"),
    ("admin", "管理员 周洁", "administrator", "演示管理员口令2026"),
)


def _demo_staff() -> None:
    from town_center import cli as town_cli

    for staff_id, name, role, password in DEMO_STAFF:
        os.environ["QUANCHENG_STAFF_PASSWORD"] = password
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            town_cli.main(["staff", "add", staff_id, "--name", name, "--role", role, "--home", str(TOWN_HOME)])
    os.environ.pop("QUANCHENG_STAFF_PASSWORD", None)


def _start_township() -> subprocess.Popen[bytes]:
    from town_center import cli as town_cli
    from town_center.bootstrap import KEY_FILE_NAME

    if not (TOWN_HOME / KEY_FILE_NAME).exists():
        town_cli.main(["init", "--home", str(TOWN_HOME)])
    _demo_staff()  # an account that exists already is left as it is
    log = open(DEMO_ROOT / "township.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "town_center.cli", "serve", "--home", str(TOWN_HOME),
                             "--listen", TOWN_ADDRESS, "--console-listen", TOWN_CONSOLE],
                            stdout=log, stderr=subprocess.STDOUT)
    host, port = TOWN_ADDRESS.rsplit(":", 1)
    for _ in range(100):
        if proc.poll() is not None:
            raise SystemExit(f"乡镇中心未能启动，见 {DEMO_ROOT / 'township.log'}（端口 {port} 是否已被占用？）")
        with socket.socket() as s:
            if s.connect_ex((host, int(port))) == 0:
                print(f"乡镇中心已启动：{TOWN_ADDRESS}（日志 {DEMO_ROOT / 'township.log'}）")
                print(f"乡镇工作台：http://{TOWN_CONSOLE}/   政务公开查询：http://{TOWN_CONSOLE}/public")
                for staff_id, name, _role, password in DEMO_STAFF:
                    print(f"  演示登录 {name}：登录名 {staff_id}  密码 {password}")
                return proc
        time.sleep(0.1)
    proc.terminate()
    raise SystemExit("乡镇中心 10 秒内未能启动")


def _township_key() -> Signer:
    from town_center.bootstrap import KEY_FILE_NAME

    return load_key_file(TOWN_HOME / KEY_FILE_NAME, os.environ[cli_common.PASSPHRASE_ENV])


def _demo_township_work() -> None:
    """Give the township console something to show: the synced requests in the inbox, one accepted
    as a promised matter by the demo window operator (only on the first run)."""
    from shared.catalog import MatterKind
    from shared.domain.handling import Actor, Role, Stage
    from town_center.bootstrap import build_app, default_db_url

    app = build_app(default_db_url(TOWN_HOME), _township_key())
    try:
        app.intake.run_once()
        received = app.handling.inbox(stages=[Stage.RECEIVED])
        if received and len(received) == len(app.handling.inbox()):
            first = received[-1]
            app.handling.classify(first.matter_id, MatterKind.PROMISED, actor=Actor(DEMO_STAFF[0][0], Role.OPERATOR),
                                  written_promise="承诺在时限内办结，办结后由代办员送达")
            print(f"  乡镇已受理：{first.catalog_name}（承诺件）")
    finally:
        app.close()


def main() -> int:
    parser = argparse.ArgumentParser(description="本机演示")
    parser.add_argument("--no-serve", action="store_true", help="只准备演示数据，不启动网页界面")
    parser.add_argument("--port", type=int, default=8631)
    args = parser.parse_args()
    os.environ.setdefault(cli_common.PASSPHRASE_ENV, DEMO_PASSPHRASE)
    DEMO_ROOT.mkdir(parents=True, exist_ok=True)
    import logging

    # Sync progress and refusals go to a file; the terminal keeps the summary.
    logging.basicConfig(filename=DEMO_ROOT / "demo.log", level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    print("== 全程代办系统（本机演示）")
    town = _start_township()
    try:
        return _run_village(args, town)
    finally:
        town.terminate()
        town.wait(timeout=30)
        print("已停止乡镇中心。")


def _run_village(args: argparse.Namespace, town: subprocess.Popen[bytes]) -> int:
    from village_agent import actions
    from village_agent import cli as village_cli
    from village_agent.bootstrap import open_agent
    from town_center import cli as town_cli

    township = _township_key()
    village_dir = DEMO_ROOT / "village-V001"
    if not (village_dir / "agent.json").exists():
        village_cli.main(["init", "--data", str(village_dir), "--agent-name", "王芳", "--village-code", "V001",
                          "--village-name", "东山村", "--township-code", "T01", "--township-name", "青石镇",
                          "--township-address", TOWN_ADDRESS, "--township-key", enrollment_uri(township.public_key)])
    service = open_agent(village_dir, os.environ[cli_common.PASSPHRASE_ENV])
    if service.store.count_matters() == 0:
        catalog = service.catalog
        for person, item in zip(SAMPLE_VILLAGERS, list(catalog)[:3]):
            params = dict(person, matter=item.code, materials=[m.id for m in item.main_materials],
                          commitments={m.id: service.clock.now().date().isoformat() for m in item.auxiliary_materials},
                          authorization="witness", witness_name="村委会 张主任", witness_statement="申请人口头委托，本人在场见证")
            result = actions.request(service, params)
            print(f"  已登记：{item.name}  查询码 {result['lookup_code']}  （{result['outcome_zh']}）")
    try:
        first = actions.sync(service, {})  # enrols the key (pending until the township approves it)
        if not first["drained"]:
            town_cli.main(["agents", "approve", service.signer.key_id, "--home", str(TOWN_HOME), "--by", "演示站长"])
            actions.sync(service, {})
    except SharedError as exc:
        print(f"同步失败：{exc}")
    _demo_township_work()
    status = actions.status(service, {})
    print(f"本机事项 {status['matters']} 件，签名台账最后序号 {status['last_seq']}，待上报 {status['waiting_to_send']} 条")
    with tempfile.TemporaryDirectory() as tmp:
        exported = Path(tmp) / "ledger.qclog"
        actions.export(service, {"out": str(exported)})
        village_cli.main(["ledger-verify", str(exported)])
    if args.no_serve:
        service.store.close()
        return 0
    try:
        from village_agent.ui.server import serve
    except ImportError:
        service.store.close()
        return 0
    from village_agent.sync import reachability_probe, relay_client

    client = relay_client(service)
    client.start()
    print(f"村代办员网页界面：http://127.0.0.1:{args.port}/   （按 Ctrl-C 停止）")
    try:
        return serve(service, host="127.0.0.1", port=args.port, sync_status=reachability_probe(client))
    finally:
        client.stop()


if __name__ == "__main__":
    raise SystemExit(main())
