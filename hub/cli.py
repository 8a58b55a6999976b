"""`county-hub`: the command line of this tier."""
from __future__ import annotations

import argparse
import datetime as dt
import os
from collections.abc import Sequence
from pathlib import Path

from shared import cli_common
from shared.api.cli import add_token_commands
from shared.console.cli import register_staff_commands
from shared.console.serve import add_web_security_options

DESCRIPTION = """县政务服务中心：接收乡镇上报件（核验乡镇与村两级签名），审批决定并下发，跟踪各乡镇办件时限与督办。

示例：
  county-hub init --home 县级数据
  county-hub serve --home 县级数据 --listen 0.0.0.0:7000 --console-listen 127.0.0.1:8800 \\
      --tls-cert county-hub.crt --tls-key county-hub.key
  county-hub townships list --home 县级数据
  county-hub townships approve 3f2a9c --home 县级数据 --by 陈主任
  county-hub townships revoke 3f2a9c --home 县级数据 --by 陈主任 --reason 服务器被盗
  county-hub staff add chen --name 陈主任 --role director --home 县级数据
  county-hub staff delegate liu --by chen --home 县级数据
  county-hub calendar set 2027年工作日历.toml --home 县级数据 --by 陈主任
  county-hub backup --home 县级数据 --out /备份/县级-20261201.bak
  county-hub restore --home 新数据目录 --from /备份/县级-20261201.bak
  county-hub keygen --key-file 中心密钥.key"""

HOME_ENV = "QUANCHENG_COUNTY_HOME"
BACKUP_KIND = "county-hub"
# The systemd units' environment file sets both, so admin commands find the same data.
DB_ENV = "QUANCHENG_COUNTY_DB"


def _add_home(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--home", default=os.environ.get(HOME_ENV, "county-data"), metavar="目录",
                        help=f"县级数据目录，存放县级密钥和默认数据库（默认 county-data，也可设置环境变量 {HOME_ENV}）")
    parser.add_argument("--db", default=os.environ.get(DB_ENV) or None, metavar="URL",
                        help="数据库地址：默认使用数据目录中的 SQLite；PostgreSQL 写作 postgresql+psycopg://用户@主机/库名"
                             f"（也可设置环境变量 {DB_ENV}）")


def build_parser() -> argparse.ArgumentParser:
    parser = cli_common.new_parser("county-hub", DESCRIPTION)
    subparsers = cli_common.add_subparsers(parser)
    cli_common.register_key_commands(subparsers)

    init = cli_common.add_command(subparsers, "init", "初始化县政务服务中心：生成县级签名密钥（口令加密）、公钥文件并创建数据库")
    _add_home(init)
    cli_common.add_passphrase_option(init)
    init.set_defaults(handler=_cmd_init)

    serve = cli_common.add_command(subparsers, "serve", "启动县级 gRPC 同步服务（供各乡镇接入，含标准健康检查服务）和跟踪看板网页")
    _add_home(serve)
    cli_common.add_passphrase_option(serve)
    serve.add_argument("--listen", default="127.0.0.1:7000", metavar="地址:端口",
                       help="监听地址（默认 127.0.0.1:7000；端口 0 表示自动选择）")
    serve.add_argument("--port-file", default=None, metavar="文件", help="启动后把实际端口写入此文件")
    serve.add_argument("--console-listen", default="127.0.0.1:8800", metavar="地址:端口",
                       help="县级跟踪看板网页的监听地址（默认仅本机 127.0.0.1:8800；写 off 不启动网页）")
    serve.add_argument("--secure-cookies", action="store_true", help="登录 Cookie 只经 HTTPS 发送（经 HTTPS 反向代理时使用）")
    serve.add_argument("--verbose", action="store_true", help="输出调试日志")
    cli_common.add_server_tls_options(serve)
    cli_common.add_observability_options(serve)
    add_web_security_options(serve)
    serve.set_defaults(handler=_cmd_serve)

    townships = cli_common.add_command(subparsers, "townships", "管理乡镇接入密钥：查看、批准、吊销")
    sub = townships.add_subparsers(dest="townships_command", metavar="<操作>", required=True)
    listing = cli_common.add_command(sub, "list", "列出乡镇接入密钥及状态")
    _add_home(listing)
    listing.set_defaults(handler=_cmd_list)
    approve = cli_common.add_command(sub, "approve", "批准乡镇接入（请先与乡镇信息化人员逐组核对指纹）")
    _add_home(approve)
    approve.add_argument("key_id", metavar="密钥标识", help="密钥标识或其唯一前缀")
    approve.add_argument("--by", required=True, metavar="操作员", help="批准人（记入审计）")
    approve.set_defaults(handler=_cmd_approve)
    revoke = cli_common.add_command(sub, "revoke", "吊销乡镇接入密钥：此刻之后收到的记录一律拒收")
    _add_home(revoke)
    revoke.add_argument("key_id", metavar="密钥标识", help="密钥标识或其唯一前缀")
    revoke.add_argument("--by", required=True, metavar="操作员", help="吊销人（记入审计）")
    revoke.add_argument("--reason", default="", metavar="原因", help="吊销原因")
    revoke.set_defaults(handler=_cmd_revoke)

    calendar = cli_common.add_command(subparsers, "calendar", "工作日历：上传来年的节假日与调休覆盖文件")
    cal_sub = calendar.add_subparsers(dest="calendar_command", metavar="<操作>", required=True)
    set_cmd = cli_common.add_command(cal_sub, "set", "校验并保存工作日历覆盖文件（TOML），县级时限自此按新日历计算")
    _add_home(set_cmd)
    cli_common.add_passphrase_option(set_cmd)
    set_cmd.add_argument("file", metavar="日历文件", help="工作日历覆盖文件（格式见 shared/calendar.py 说明）")
    set_cmd.add_argument("--by", required=True, metavar="操作员", help="上传人（记入审计）")
    set_cmd.set_defaults(handler=_cmd_calendar_set)

    from hub.evaluation import add_evaluation_commands
    add_evaluation_commands(subparsers, _add_home, _open_app)

    staff = register_staff_commands(subparsers, _open_auth)
    for group in staff._actions:
        if isinstance(group, argparse._SubParsersAction):
            # County decisions are a director's act or a delegated approver's: the delegation is recorded.
            delegate = cli_common.add_command(group, "delegate", "中心主任委托工作人员作出县级决定（该账号成为受委托审批人，记入委托记录）")
            delegate.add_argument("staff_id", metavar="登录名", help="受委托的窗口工作人员")
            delegate.add_argument("--by", required=True, metavar="主任登录名", help="作出委托的中心主任（登录名）")
            delegate.set_defaults(handler=_cmd_delegate)
            undelegate = cli_common.add_command(group, "undelegate", "中心主任收回委托（该账号恢复为窗口工作人员）")
            undelegate.add_argument("staff_id", metavar="登录名")
            undelegate.add_argument("--by", required=True, metavar="主任登录名", help="收回委托的中心主任（登录名）")
            undelegate.set_defaults(handler=_cmd_undelegate)
            for action_parser in group.choices.values():
                _add_home(action_parser)
    add_token_commands(staff, _open_auth, decorate=_add_home)

    backup = cli_common.add_command(subparsers, "backup",
                                    "备份县级数据库并用口令加密（文件权限 600）："
                                    "SQLite 用在线备份（服务运行中也可备份），PostgreSQL 用 pg_dump（自定义格式）")
    _add_home(backup)
    cli_common.add_passphrase_option(backup)
    backup.add_argument("--out", required=True, metavar="文件", help="备份文件路径（已存在时不会覆盖）")
    backup.add_argument("--backup-passphrase-file", metavar="文件", help="用另一个口令加密备份（从此文件读取）；默认使用县级口令")
    backup.set_defaults(handler=_cmd_backup)
    restore = cli_common.add_command(subparsers, "restore",
                                     "从备份恢复县级数据库（请先停止服务）："
                                     "SQLite 仅当数据库文件不存在或加 --force；PostgreSQL 仅恢复到空数据库")
    _add_home(restore)
    restore.add_argument("--from", dest="source", required=True, metavar="文件", help="backup 生成的备份文件")
    restore.add_argument("--force", action="store_true", help="SQLite：覆盖已有的数据库文件")
    cli_common.add_passphrase_option(restore)
    restore.add_argument("--backup-passphrase-file", metavar="文件", help="备份是用另一个口令加密的：从此文件读取该口令")
    restore.set_defaults(handler=_cmd_restore)

    from hub.documents import add_document_commands

    add_document_commands(subparsers, _add_home, _db_url)
    return parser


def _backup_passphrase(args: argparse.Namespace, *, check_home: bool) -> str:
    """The passphrase a backup is sealed under: `--backup-passphrase-file`, else the county's own
    (checked against its key when `check_home` and the key is in --home, so a typo cannot seal a
    backup nobody can open)."""
    if args.backup_passphrase_file:
        return Path(args.backup_passphrase_file).read_text(encoding="utf-8").rstrip("\r\n")
    passphrase = cli_common.read_passphrase(args)
    from hub.bootstrap import KEY_FILE_NAME, load_signer

    if check_home and (Path(args.home) / KEY_FILE_NAME).exists():
        load_signer(Path(args.home), passphrase)
    return passphrase


def _cmd_backup(args: argparse.Namespace) -> int:
    from shared.backup import backup_store_encrypted

    passphrase = _backup_passphrase(args, check_home=True)
    size = backup_store_encrypted(_db_url(args), Path(args.out), passphrase, kind=BACKUP_KIND, info={"tier": "county"})
    print(f"已备份县级数据库到 {args.out}（{size} 字节，已用{'指定的备份' if args.backup_passphrase_file else '县级'}口令加密，"
          "仅本用户可读）。县级密钥文件不在数据库备份中，请另行妥善保管。")
    return 0


def _cmd_restore(args: argparse.Namespace) -> int:
    from shared.backup import MAGIC, restore_database, restore_store_encrypted

    if args.db is None:
        Path(args.home).mkdir(parents=True, exist_ok=True)
    source = Path(args.source)
    with open(source, "rb") as fh:
        sealed = fh.read(len(MAGIC)) == MAGIC
    if sealed:
        restore_store_encrypted(_db_url(args), source, _backup_passphrase(args, check_home=False), kind=BACKUP_KIND,
                                force=args.force)
    else:
        # A backup from before backups were sealed: restored as it is.
        restore_database(_db_url(args), source, force=args.force)
    print(f"已恢复县级数据库 {_db_url(args).split('@')[-1]}。备份之后各乡镇上报的记录会在其下次上报时按缺口重发。")
    return 0


def _db_url(args: argparse.Namespace) -> str:
    from hub.bootstrap import default_db_url

    return str(args.db or default_db_url(Path(args.home)))


def _store(args: argparse.Namespace):
    from hub.errors import SetupError
    from hub.store import open_hub_store

    if args.db is None and not Path(args.home).is_dir():
        raise SetupError(f"找不到县级数据目录 {args.home}，请先运行 county-hub init")
    return open_hub_store(_db_url(args))


def _open_auth(args: argparse.Namespace):
    from shared.clock import SystemClock
    from shared.console import ConsoleAuth, create_console_tables

    store = _store(args)
    create_console_tables(store.engine)
    return ConsoleAuth(store.engine, SystemClock())


def _cmd_delegate(args: argparse.Namespace) -> int:
    from hub.delegation import delegate

    auth = _open_auth(args)
    done = delegate(auth.engine, args.staff_id, by=args.by, now_ms=_now_ms())
    account, director = auth.get_staff(done.staff_id), auth.get_staff(done.delegated_by)
    print(f"已由{director.display_name}委托 {account.display_name}（{account.staff_id}）作出县级决定，"
          f"其身份现为{account.role.label_zh}。重大疑难事项的不予批准仍须中心主任审批。")
    return 0


def _cmd_undelegate(args: argparse.Namespace) -> int:
    from hub.delegation import withdraw

    auth = _open_auth(args)
    withdraw(auth.engine, args.staff_id, by=args.by, now_ms=_now_ms())
    account = auth.get_staff(args.staff_id)
    print(f"已收回对 {account.display_name}（{account.staff_id}）的委托，其身份现为{account.role.label_zh}。")
    return 0


def _now_ms() -> int:
    from shared.clock import SystemClock, to_unix_ms

    return to_unix_ms(SystemClock().now())


def _fmt_ms(ms: int) -> str:
    if not ms:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m-%d %H:%M")


def _cmd_init(args: argparse.Namespace) -> int:
    from hub.bootstrap import PUBLIC_KEY_FILE_NAME, init_home
    from shared.keys import check_passphrase

    passphrase = cli_common.read_passphrase(args, confirm=True)
    check_passphrase(passphrase)
    signer = init_home(Path(args.home), passphrase, args.db)
    print(f"已初始化县政务服务中心：数据目录 {args.home}，数据库 {_db_url(args)}")
    cli_common.print_key_summary(signer.public_key)
    print(f"县级公钥已写入 {Path(args.home) / PUBLIC_KEY_FILE_NAME}，请交给各乡镇用于 town-center county link。")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from hub.bootstrap import build_app, load_signer, serve
    from shared.console.serve import web_security_from_args
    from shared.observability.logs import configure_logging
    from shared.serving import check_plaintext_allowed

    configure_logging(verbose=args.verbose, fmt=args.log_format)
    metrics = cli_common.metrics_address(args)
    tls = cli_common.server_tls(args)   # before the passphrase: a wrong certificate path fails at once
    console = None if args.console_listen in ("", "off") else args.console_listen
    check_plaintext_allowed(args.listen, tls, console_address=console, secure_cookies=args.secure_cookies,
                            insecure_plaintext=args.insecure_plaintext)
    web_security = web_security_from_args(args, console)
    signer = load_signer(Path(args.home), cli_common.read_passphrase(args))
    app = build_app(_db_url(args), signer)
    serve(app, args.listen, port_file=Path(args.port_file) if args.port_file else None, console_address=console,
          secure_cookies=args.secure_cookies, tls=tls, metrics_address=metrics, web_security=web_security,
          metrics_hosts=tuple(args.allowed_host))
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        keys = store.keys()
    finally:
        store.close()
    if not keys:
        print("还没有乡镇申请接入。")
        return 0
    print(f"{'密钥标识':<34}{'状态':<14}{'乡镇代码':<10}{'乡镇名称':<10}{'已收序号':>8}  申请时间          指纹")
    for k in keys:
        print(f"{k.key_id:<36}{k.state.label_zh:<12}{k.info.township_code:<12}{k.info.holder_name:<10}"
              f"{k.tip.seq:>10}  {_fmt_ms(k.enrolled_at_ms)}  {k.info.fingerprint}")
    return 0


def _cmd_approve(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        key = store.approve(args.key_id, by=args.by, now_ms=_now_ms())
    finally:
        store.close()
    print(f"已批准乡镇接入 {key.key_id}（{key.info.township_code} {key.info.holder_name}），指纹 {key.info.fingerprint}")
    return 0


def _cmd_revoke(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        key = store.revoke(args.key_id, by=args.by, reason=args.reason, now_ms=_now_ms())
    finally:
        store.close()
    print(f"已吊销乡镇接入密钥 {key.key_id}：序号 {key.last_valid_seq} 及以前的记录仍有效，此后的记录将被拒收。")
    return 0


def _open_app(args: argparse.Namespace):
    from hub.bootstrap import build_app, load_signer

    return build_app(_db_url(args), load_signer(Path(args.home), cli_common.read_passphrase(args)))


def _cmd_calendar_set(args: argparse.Namespace) -> int:
    from hub.bootstrap import build_app, load_signer
    from shared.errors import CalendarOverrideError

    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CalendarOverrideError(f"无法读取日历文件 {path}：{exc.__class__.__name__}") from exc
    app = build_app(_db_url(args), load_signer(Path(args.home), cli_common.read_passphrase(args)))
    try:
        calendar = app.set_calendar_override(text, by=args.by)
    finally:
        app.close()
    years = ", ".join(f"{y}年（{'已确认' if calendar.is_confirmed(y) else '草稿，未确认'}）"
                      for y in range(dt.date.today().year, dt.date.today().year + 3))
    print(f"已保存工作日历覆盖文件。{years}")
    return 0


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


def main(argv: Sequence[str] | None = None) -> int:
    # Whatever the caller's umask: the data folder, database, WAL, exports and backups hold personal
    # data and keys, so everything this process creates is the owner's alone (0600 files, 0700 folders).
    os.umask(0o077)
    return cli_common.run(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
