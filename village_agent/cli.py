"""`village-agent`: the village agent's command line."""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from shared import cli_common

DESCRIPTION = """村代办员工具：离线登记全程代办事项，签名保存，联网时上报乡镇便民服务中心。

示例：
  village-agent keygen --key-file 设备密钥.key
  village-agent demo-ledger --key-file 设备密钥.key --ledger 台账.qclog --count 20
  village-agent ledger-verify 台账.qclog"""


def build_parser() -> argparse.ArgumentParser:
    parser = cli_common.new_parser("village-agent", DESCRIPTION)
    subparsers = cli_common.add_subparsers(parser)
    cli_common.register_key_commands(subparsers)
    demo = cli_common.add_command(subparsers, "demo-ledger", "写入若干条示例代办记录（不含个人信息）到台账文件并续接签名链")
    demo.add_argument("--key-file", required=True, metavar="文件", help="本设备密钥文件")
    demo.add_argument("--ledger", required=True, metavar="文件", help="台账文件（不存在时新建）")
    demo.add_argument("--count", type=int, default=10, metavar="条数", help="写入的示例记录条数（默认 10）")
    demo.add_argument("--village-code", default="V001", metavar="村代码", help="村代码（默认 V001）")
    cli_common.add_passphrase_option(demo)
    demo.set_defaults(handler=_cmd_demo_ledger)
    return parser


def _cmd_demo_ledger(args: argparse.Namespace) -> int:
    from shared.clock import SystemClock
    from village_agent.demo_ledger import append_demo_records
    from shared.keys import load_key_file

    if args.count < 0 or args.count > 100_000:
        raise cli_common.SharedError("条数应在 0 到 100000 之间")
    signer = load_key_file(Path(args.key_file), cli_common.read_passphrase(args))
    written, tip = append_demo_records(signer, Path(args.ledger), args.count, args.village_code, SystemClock())
    print(f"已写入 {written} 条签名记录，台账最后序号 {tip.seq}。")
    return 0


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


def main(argv: Sequence[str] | None = None) -> int:
    return cli_common.run(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
