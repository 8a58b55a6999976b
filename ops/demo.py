"""What the README's start command runs at this stage of the project.

It creates (once) a demo village agent's device key under `var/demo/`, continues that device's
signed ledger with a few sample records, verifies the whole chain and shows the key's
fingerprint and enrollment QR code, then summarises the service catalogue. Run it again: it
reuses the same key and ledger, so the chain grows and still verifies.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from shared import cli_common
from shared.errors import SharedError

DEMO_DIR = Path("var/demo/village-V001")
# A demo-only passphrase, printed openly; real devices take one from the agent at `keygen`.
DEMO_PASSPHRASE = "演示口令-仅供本机演示"


def main() -> int:
    os.environ.setdefault(cli_common.PASSPHRASE_ENV, DEMO_PASSPHRASE)
    from village_agent import cli as village_cli

    key_file, ledger = DEMO_DIR / "device.key", DEMO_DIR / "ledger.qclog"
    print("== 全程代办系统（本机演示）")
    if not key_file.exists():
        village_cli.main(["keygen", "--key-file", str(key_file)])
    else:
        village_cli.main(["fingerprint", "--key-file", str(key_file)])
    code = village_cli.main(["demo-ledger", "--key-file", str(key_file), "--ledger", str(ledger), "--count", "5"])
    if code == 0:
        code = village_cli.main(["ledger-verify", str(ledger)])
    try:
        from shared.catalog import load_catalog

        catalog = load_catalog()
        print(f"== 服务事项目录 {catalog.version}：共 {len(catalog.items)} 项")
        for item in list(catalog.items)[:5]:
            print(f"  {item.code}  {item.name}")
        print("  …")
    except SharedError as exc:
        print(f"服务事项目录加载失败：{exc}", file=sys.stderr)
        return 2
    print(f"演示数据保存在 {DEMO_DIR}/ ；再次运行会续接同一条签名链。")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
