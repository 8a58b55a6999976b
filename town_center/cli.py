"""`town-center`: the command line of this tier."""
from __future__ import annotations

import argparse
from collections.abc import Sequence

from shared import cli_common

DESCRIPTION = """乡镇便民服务中心：接收并核验村代办员上报的签名记录，分类办理（即办/承诺/补办/退回/联办/上报），跟踪时限。

示例：
  town-center keygen --key-file 中心密钥.key
  town-center fingerprint --key-file 中心密钥.key
  town-center ledger-verify 台账.qclog"""


def build_parser() -> argparse.ArgumentParser:
    parser = cli_common.new_parser("town-center", DESCRIPTION)
    subparsers = cli_common.add_subparsers(parser)
    cli_common.register_key_commands(subparsers)
    return parser


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


def main(argv: Sequence[str] | None = None) -> int:
    return cli_common.run(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
