"""Sub-commands every tier's console script shares: device keys, ledgers, the catalogue.

Operators read `--help`, so help and messages are Chinese. Passphrases come from the
`QUANCHENG_PASSPHRASE` environment variable, a `--passphrase-file`, or an interactive prompt.
"""
from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from shared.errors import SettingError, SharedError

if TYPE_CHECKING:
    from shared.relay.tls import ServerTls

__all__ = ["SharedError", "new_parser", "add_subparsers", "add_command", "read_passphrase", "run"]

PASSPHRASE_ENV = "QUANCHENG_PASSPHRASE"


class ChineseHelpFormatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)

    def add_usage(self, usage, actions, groups, prefix=None):
        super().add_usage(usage, actions, groups, "用法：" if prefix is None else prefix)


# argparse builds its own messages through gettext; these are the ones an operator meets.
_ARGPARSE_ZH = {
    "the following arguments are required: %s": "缺少必需的参数：%s",
    "unrecognized arguments: %s": "无法识别的参数：%s",
    "invalid choice: %(value)r (choose from %(choices)s)": "无效的选项 %(value)r（可选：%(choices)s）",
    "argument %(argument_name)s: %(message)s": "参数 %(argument_name)s：%(message)s",
    "expected one argument": "需要一个值",
    "invalid %(type)s value: %(value)r": "无效的 %(type)s 值：%(value)r",
    "%(prog)s: error: %(message)s\n": "%(prog)s：错误：%(message)s\n",
    "show this help message and exit": "显示本帮助并退出",
}
_original_gettext = argparse._  # type: ignore[attr-defined]  # typeshed does not declare argparse's gettext alias `_`
argparse._ = lambda text: _ARGPARSE_ZH.get(text, _original_gettext(text))  # type: ignore[attr-defined]  # as above


def new_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description, formatter_class=ChineseHelpFormatter, add_help=False)
    parser.add_argument("-h", "--help", action="help", help="显示本帮助并退出")
    parser._positionals.title = "子命令"
    parser._optionals.title = "选项"
    return parser


def add_subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    return parser.add_subparsers(dest="command", metavar="<子命令>", required=True)


def add_command(subparsers: argparse._SubParsersAction, name: str, help_zh: str) -> argparse.ArgumentParser:
    sub = subparsers.add_parser(name, help=help_zh, description=help_zh, formatter_class=ChineseHelpFormatter, add_help=False)
    sub.add_argument("-h", "--help", action="help", help="显示本帮助并退出")
    sub._positionals.title = "参数"
    sub._optionals.title = "选项"
    return sub


def read_passphrase(args: argparse.Namespace, *, confirm: bool = False) -> str:
    file = getattr(args, "passphrase_file", None)
    if file:
        return Path(file).read_text(encoding="utf-8").rstrip("\r\n")
    from_env = os.environ.get(PASSPHRASE_ENV)
    if from_env:
        return from_env
    if not sys.stdin.isatty():
        raise SharedError(f"需要口令：请设置环境变量 {PASSPHRASE_ENV} 或使用 --passphrase-file")
    first = getpass.getpass("请输入口令：")
    if confirm and getpass.getpass("请再次输入口令：") != first:
        raise SharedError("两次输入的口令不一致")
    return first


def add_passphrase_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--passphrase-file", metavar="文件", help=f"从文件读取口令（也可设置环境变量 {PASSPHRASE_ENV}）")


def add_server_tls_options(parser: argparse.ArgumentParser) -> None:
    """`--tls-cert/--tls-key/--tls-client-ca` on a `serve` command (see `shared.relay.tls`)."""
    parser.add_argument("--tls-cert", default=None, metavar="文件",
                        help="服务器证书（PEM，可含证书链）：同步连接启用 TLS 加密；须与 --tls-key 一起使用。"
                             "不监听本机地址时应当启用")
    parser.add_argument("--tls-key", default=None, metavar="文件", help="服务器证书的私钥（PEM，未加密；文件权限须为 600）")
    parser.add_argument("--tls-client-ca", default=None, metavar="文件",
                        help="双向 TLS：只接受持有此 CA 签发的客户端证书的连接（PEM）")


def add_observability_options(parser: argparse.ArgumentParser, *, metrics_default: str = "off") -> None:
    """`--metrics-listen` (Prometheus `/metrics`) and `--log-format` on a `serve` command."""
    parser.add_argument("--metrics-listen", default=metrics_default, metavar="地址:端口",
                        help="Prometheus 监控指标地址，例如 127.0.0.1:9700（off 表示不启用；"
                             f"默认 {metrics_default}）")
    parser.add_argument("--log-format", choices=["text", "json"], default=None,
                        help="日志格式：text（默认）或 json（每行一个 JSON 对象，便于日志采集；"
                             "也可设置环境变量 QUANCHENG_LOG_FORMAT）。日志中的身份证号、手机号一律打码")


def metrics_address(args: argparse.Namespace) -> str | None:
    """The checked `--metrics-listen` address, or None when off."""
    value = (getattr(args, "metrics_listen", "") or "").strip()
    if value in ("", "off"):
        return None
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise SettingError(f"监控地址应为 地址:端口，例如 127.0.0.1:9700，收到“{value}”")
    return value


def server_tls(args: argparse.Namespace) -> ServerTls | None:
    """The checked `ServerTls` from those options, or None when none was given."""
    from shared.relay.tls import ServerTls

    return ServerTls.from_files(getattr(args, "tls_cert", None), getattr(args, "tls_key", None),
                                getattr(args, "tls_client_ca", None))


def run(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run a CLI entry point, turning domain errors into a Chinese message and exit status 2."""
    try:
        return main(argv)
    except SharedError as exc:
        print(f"错误：{exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("已中断。", file=sys.stderr)
        return 130


# ---------------------------------------------------------------- shared sub-commands


def register_key_commands(subparsers: argparse._SubParsersAction) -> None:
    keygen = add_command(subparsers, "keygen", "生成本设备的签名密钥（用口令加密保存）")
    keygen.add_argument("--key-file", required=True, metavar="文件", help="密钥文件路径（已存在时不会覆盖）")
    add_passphrase_option(keygen)
    keygen.set_defaults(handler=_cmd_keygen)

    show = add_command(subparsers, "fingerprint", "显示本设备密钥的指纹和登记二维码")
    show.add_argument("--key-file", required=True, metavar="文件", help="密钥文件路径")
    add_passphrase_option(show)
    show.set_defaults(handler=_cmd_fingerprint)

    verify = add_command(subparsers, "ledger-verify", "校验台账文件中的签名哈希链，指出第一条有问题的记录")
    verify.add_argument("ledger", metavar="台账文件")
    verify.add_argument("--public-key-uri", action="append", default=[], metavar="登记码",
                        help="可信的设备登记码（quancheng:key:v1:…），可重复；省略时信任台账中出现的登记记录")
    verify.set_defaults(handler=_cmd_ledger_verify)


def print_key_summary(public_key: bytes) -> None:
    from shared.keys import enrollment_uri, fingerprint, qr_text
    from shared.signing import key_id_for

    print(f"密钥标识：{key_id_for(public_key)}")
    print(f"密钥指纹：{fingerprint(public_key)}  （登记时请向乡镇工作人员逐组念出核对）")
    print(f"登记码：{enrollment_uri(public_key)}")
    print(qr_text(enrollment_uri(public_key)))


def _cmd_keygen(args: argparse.Namespace) -> int:
    from shared.keys import check_passphrase, save_key_file
    from shared.signing import Signer

    passphrase = read_passphrase(args, confirm=True)
    check_passphrase(passphrase)
    signer = Signer.generate()
    save_key_file(Path(args.key_file), signer, passphrase)
    print(f"已生成密钥并加密保存到 {args.key_file}")
    print_key_summary(signer.public_key)
    return 0


def _cmd_fingerprint(args: argparse.Namespace) -> int:
    from shared.keys import load_key_file

    signer = load_key_file(Path(args.key_file), read_passphrase(args))
    print_key_summary(signer.public_key)
    return 0


def _cmd_ledger_verify(args: argparse.Namespace) -> int:
    from shared.chain import verify_chain
    from shared.envelope import open_record
    from shared.keys import InMemoryKeyDirectory, parse_enrollment_uri

    path = Path(args.ledger)
    if not path.exists():
        raise SharedError(f"找不到台账文件：{path}")
    from shared.ledger_file import read_ledger

    contents = read_ledger(path)
    keys = InMemoryKeyDirectory()
    for uri in args.public_key_uri:
        keys.add_public_key(parse_enrollment_uri(uri))
    if not args.public_key_uri:
        # Trust on first use: a ledger's own seq-1 enrollment record names its key.
        for env in contents.envelopes:
            try:
                record = open_record(env)
            except SharedError:
                continue
            if record.WhichOneof("body") == "key_enrollment_requested" and record.header.seq == 1:
                keys.add_public_key(record.key_enrollment_requested.public_key)
    report = verify_chain(contents.envelopes, keys)
    if contents.torn_tail_bytes:
        print(f"注意：文件末尾有 {contents.torn_tail_bytes} 字节未写完整的记录（写入中断），已忽略。")
    if report.first_break is not None:
        print(f"校验失败：{report.first_break.message_zh()}")
        print(f"此前 {report.verified} 条记录校验通过。")
        return 1
    print(f"校验通过：共 {report.verified} 条记录，签名与哈希链完整。")
    for key_id, tip in report.tips.items():
        print(f"  密钥 {key_id}：最后序号 {tip.seq}")
    return 0
