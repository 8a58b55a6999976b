"""What the README's start command runs at this stage of the project.

Creates (once) a demo township key and a demo village agent under `var/demo/`, records a few
sample requests for made-up villagers, verifies the agent's signed ledger, and serves the
village agent's web UI on 127.0.0.1 until Ctrl-C. A second run reuses the same data.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from shared import cli_common
from shared.domain.id_number import with_check_char
from shared.keys import enrollment_uri, load_key_file, save_key_file
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


def _township_key() -> Signer:
    path = DEMO_ROOT / "township-T01" / "device.key"
    if not path.exists():
        save_key_file(path, Signer.generate(), DEMO_PASSPHRASE)
    return load_key_file(path, DEMO_PASSPHRASE)


def main() -> int:
    parser = argparse.ArgumentParser(description="本机演示")
    parser.add_argument("--no-serve", action="store_true", help="只准备演示数据，不启动网页界面")
    parser.add_argument("--port", type=int, default=8631)
    args = parser.parse_args()
    os.environ.setdefault(cli_common.PASSPHRASE_ENV, DEMO_PASSPHRASE)
    from village_agent import actions
    from village_agent import cli as village_cli
    from village_agent.bootstrap import open_agent

    township = _township_key()
    village_dir = DEMO_ROOT / "village-V001"
    print("== 全程代办系统（本机演示）")
    if not (village_dir / "agent.json").exists():
        village_cli.main(["init", "--data", str(village_dir), "--agent-name", "王芳", "--village-code", "V001",
                          "--village-name", "东山村", "--township-code", "T01", "--township-name", "青石镇",
                          "--township-address", "127.0.0.1:7001", "--township-key", enrollment_uri(township.public_key)])
    service = open_agent(village_dir, os.environ[cli_common.PASSPHRASE_ENV])
    if service.store.count_matters() == 0:
        catalog = service.catalog
        for person, item in zip(SAMPLE_VILLAGERS, list(catalog)[:3]):
            params = dict(person, matter=item.code, materials=[m.id for m in item.main_materials],
                          commitments={m.id: service.clock.now().date().isoformat() for m in item.auxiliary_materials},
                          authorization="witness", witness_name="村委会 张主任", witness_statement="申请人口头委托，本人在场见证")
            result = actions.request(service, params)
            print(f"  已登记：{item.name}  查询码 {result['lookup_code']}  （{result['outcome_zh']}）")
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
