"""`county-hub`: the command line of this tier."""
from __future__ import annotations

import argparse
from collections.abc import Sequence

from shared import cli_common

DESCRIPTION = """县政务服务中心：接收乡镇上报件，审批决定并下发，跟踪各乡镇办件时限与督办。

示例：
  county-hub keygen --key-file 中心密钥.key
  county-hub fingerprint --key-file 中心密钥.key
  county-hub ledger-verify 台账.qclog"""


def build_parser() -> argparse.ArgumentParser:
    parser = cli_common.new_parser("county-hub", DESCRIPTION)
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
