"""`town-center`: the command line of this tier."""
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

DESCRIPTION = """乡镇便民服务中心：接收并核验村代办员上报的签名记录，分类办理（即办/承诺/补办/退回/联办/上报），跟踪时限。

示例：
  town-center init --home 乡镇数据
  town-center serve --home 乡镇数据 --listen 0.0.0.0:50051 --tls-cert town.crt --tls-key town.key
  town-center agents list --home 乡镇数据
  town-center agents approve 3f2a9c --home 乡镇数据 --by 张三
  town-center agents revoke 3f2a9c --home 乡镇数据 --by 张三 --reason 笔记本丢失
  town-center staff add wangfang --name 王芳 --role operator --home 乡镇数据
  town-center serve --home 乡镇数据 --console-listen 127.0.0.1:8700
  town-center catalog publish 新目录.toml --home 乡镇数据 --by 张三
  town-center county link --home 乡镇数据 --address 县级地址:7000 --county-key 县级数据/county.pub --code T01 --name 青山镇 \\
      --county-ca ca.crt
  town-center county status --home 乡镇数据
  town-center backup --home 乡镇数据 --out /备份/乡镇-20261201.bak
  town-center restore --home 新数据目录 --from /备份/乡镇-20261201.bak
  town-center keygen --key-file 中心密钥.key
  town-center ledger-verify 台账.qclog
  town-center evaluation sms --home 乡镇数据 --from 13800001111 --text "ABCDE-FGHJK 1"
  town-center evaluation feed --home 乡镇数据 --after 0 --format json --out 好差评-1.json
  town-center evaluation report --home 乡镇数据 --period 2026-Q4 --by operator --out 考核-2026Q4.xlsx"""

HOME_ENV = "QUANCHENG_TOWN_HOME"
BACKUP_KIND = "town-center"
# The systemd units' environment file sets both, so admin commands find the same data.
DB_ENV = "QUANCHENG_TOWN_DB"


def _add_home(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--home", default=os.environ.get(HOME_ENV, "town-data"), metavar="目录",
                        help=f"乡镇数据目录，存放乡镇密钥和默认数据库（默认 town-data，也可设置环境变量 {HOME_ENV}）")
    parser.add_argument("--db", default=os.environ.get(DB_ENV) or None, metavar="URL",
                        help="数据库地址：默认使用数据目录中的 SQLite；PostgreSQL 写作 postgresql+psycopg://用户@主机/库名"
                             f"（也可设置环境变量 {DB_ENV}）")


def build_parser() -> argparse.ArgumentParser:
    parser = cli_common.new_parser("town-center", DESCRIPTION)
    subparsers = cli_common.add_subparsers(parser)
    cli_common.register_key_commands(subparsers)

    init = cli_common.add_command(subparsers, "init", "初始化乡镇中心：生成乡镇签名密钥（口令加密）并创建数据库")
    _add_home(init)
    cli_common.add_passphrase_option(init)
    init.set_defaults(handler=_cmd_init)

    serve = cli_common.add_command(subparsers, "serve", "启动乡镇中心的 gRPC 同步服务（含标准健康检查服务）")
    _add_home(serve)
    cli_common.add_passphrase_option(serve)
    serve.add_argument("--listen", default="127.0.0.1:50051", metavar="地址:端口",
                       help="监听地址（默认 127.0.0.1:50051；端口 0 表示自动选择）")
    serve.add_argument("--port-file", default=None, metavar="文件", help="启动后把实际端口写入此文件")
    serve.add_argument("--max-batch", type=int, default=500, metavar="条数", help="每批最多记录数（默认 500）")
    serve.add_argument("--max-streams", type=int, default=64, metavar="个数", help="同时处理的同步连接上限（默认 64）")
    serve.add_argument("--max-message-bytes", type=int, default=4 * 1024 * 1024, metavar="字节", help="单条消息大小上限（默认 4 MiB）")
    serve.add_argument("--clock-tolerance-minutes", type=int, default=10, metavar="分钟",
                       help="设备声称时间超前乡镇时间多少分钟以上即标记（默认 10）")
    serve.add_argument("--console-listen", default="127.0.0.1:8700", metavar="地址:端口",
                       help="乡镇工作台网页的监听地址（默认仅本机 127.0.0.1:8700；写 off 不启动网页）")
    serve.add_argument("--secure-cookies", action="store_true",
                       help="登录 Cookie 只经 HTTPS 发送（经 HTTPS 反向代理对外提供网页时使用）")
    serve.add_argument("--verbose", action="store_true", help="输出调试日志")
    cli_common.add_server_tls_options(serve)
    cli_common.add_observability_options(serve)
    add_web_security_options(serve)
    serve.set_defaults(handler=_cmd_serve)

    agents = cli_common.add_command(subparsers, "agents", "管理村代办员设备密钥：查看、批准、吊销")
    agent_sub = agents.add_subparsers(dest="agents_command", metavar="<操作>", required=True)
    listing = cli_common.add_command(agent_sub, "list", "列出设备密钥及状态（待审批、已批准、已吊销、已隔离）")
    _add_home(listing)
    listing.add_argument("--state", choices=["pending", "approved", "revoked", "quarantined"], default=None,
                         help="只列出某一状态：pending 待审批 / approved 已批准 / revoked 已吊销 / quarantined 已隔离")
    listing.set_defaults(handler=_cmd_agents_list)
    approve = cli_common.add_command(agent_sub, "approve", "批准待审批的设备密钥（请先与代办员逐组核对指纹）")
    _add_home(approve)
    cli_common.add_passphrase_option(approve)
    approve.add_argument("key_id", metavar="密钥标识", help="密钥标识或其唯一前缀")
    approve.add_argument("--by", required=True, metavar="操作员", help="批准人（记入审计）")
    approve.add_argument("--fingerprint", default="", metavar="指纹",
                         help="代办员念出的指纹（整串或最后一组五位数字）；给出时与登记的指纹不符则不批准")
    approve.set_defaults(handler=_cmd_agents_approve)
    revoke = cli_common.add_command(agent_sub, "revoke", "吊销设备密钥：此刻之后收到的记录一律拒收，此前已收的记录仍然有效")
    _add_home(revoke)
    cli_common.add_passphrase_option(revoke)
    revoke.add_argument("key_id", metavar="密钥标识", help="密钥标识或其唯一前缀")
    revoke.add_argument("--by", required=True, metavar="操作员", help="吊销人（记入审计）")
    revoke.add_argument("--reason", default="", metavar="原因", help="吊销原因，例如 笔记本丢失")
    revoke.set_defaults(handler=_cmd_agents_revoke)

    staff = register_staff_commands(subparsers, _open_auth)
    for group in staff._actions:
        if isinstance(group, argparse._SubParsersAction):
            for action_parser in group.choices.values():
                _add_home(action_parser)
    add_token_commands(staff, _open_auth, decorate=_add_home)
    catalog = cli_common.add_command(subparsers, "catalog", "服务事项目录：校验并发布新版本到本乡镇各村")
    catalog_sub = catalog.add_subparsers(dest="catalog_command", metavar="<操作>", required=True)
    publish = cli_common.add_command(catalog_sub, "publish", "校验目录文件，签名后下发到各村代办员（版本号须与已发布的不同）")
    _add_home(publish)
    cli_common.add_passphrase_option(publish)
    publish.add_argument("file", metavar="目录文件", help="服务事项目录 TOML 文件")
    publish.add_argument("--by", required=True, metavar="操作员", help="发布人（记入审计）")
    publish.set_defaults(handler=_cmd_catalog_publish)

    county = cli_common.add_command(subparsers, "county", "接入县政务服务中心：登记县级地址与公钥，查看上报通道状态")
    county_sub = county.add_subparsers(dest="county_command", metavar="<操作>", required=True)
    link = cli_common.add_command(county_sub, "link", "登记县级中心（地址与公钥）；本乡镇的接入申请随后由县级核对指纹批准")
    _add_home(link)
    cli_common.add_passphrase_option(link)
    link.add_argument("--address", required=True, metavar="地址:端口", help="县级 gRPC 服务地址")
    link.add_argument("--county-key", required=True, metavar="公钥",
                      help="县级公钥：64 位十六进制，或县级 county-hub init 生成的 county.pub 文件")
    link.add_argument("--code", required=True, metavar="乡镇代码", help="本乡镇代码，例如 T01")
    link.add_argument("--name", required=True, metavar="乡镇名称", help="本乡镇名称，例如 青山镇")
    link.add_argument("--county-ca", default=None, metavar="文件",
                      help="县级 CA 证书（PEM）：与县级的连接启用 TLS 加密，县级服务器证书须由它签发（内容存入数据库）")
    link.add_argument("--client-cert", default=None, metavar="文件",
                      help="双向 TLS：本乡镇的客户端证书（PEM，由县级 CA 签发）；须与 --client-key 一起使用")
    link.add_argument("--client-key", default=None, metavar="文件", help="双向 TLS：客户端证书的私钥（PEM，未加密，权限 600）")
    link.add_argument("--county-tls-name", default="", metavar="名称",
                      help="县级证书上的名称与 --address 中的主机名不同时，写证书上的名称")
    link.set_defaults(handler=_cmd_county_link)
    status = cli_common.add_command(county_sub, "status", "查看上报通道：待送达县级的记录数、最早一条的时间、未回复的督办")
    _add_home(status)
    cli_common.add_passphrase_option(status)
    status.set_defaults(handler=_cmd_county_status)

    backup = cli_common.add_command(subparsers, "backup",
                                    "备份乡镇数据库并用口令加密（文件权限 600）："
                                    "SQLite 用在线备份（服务运行中也可备份），PostgreSQL 用 pg_dump（自定义格式）")
    _add_home(backup)
    cli_common.add_passphrase_option(backup)
    backup.add_argument("--out", required=True, metavar="文件", help="备份文件路径（已存在时不会覆盖）")
    backup.add_argument("--backup-passphrase-file", metavar="文件", help="用另一个口令加密备份（从此文件读取）；默认使用乡镇口令")
    backup.set_defaults(handler=_cmd_backup)
    restore = cli_common.add_command(subparsers, "restore",
                                     "从备份恢复乡镇数据库（请先停止服务）："
                                     "SQLite 仅当数据库文件不存在或加 --force；PostgreSQL 仅恢复到空数据库")
    _add_home(restore)
    restore.add_argument("--from", dest="source", required=True, metavar="文件", help="backup 生成的备份文件")
    restore.add_argument("--force", action="store_true", help="SQLite：覆盖已有的数据库文件")
    cli_common.add_passphrase_option(restore)
    restore.add_argument("--backup-passphrase-file", metavar="文件", help="备份是用另一个口令加密的：从此文件读取该口令")
    restore.set_defaults(handler=_cmd_restore)

    from town_center.documents import add_document_commands

    add_document_commands(subparsers, _add_home, _db_url)
    from town_center.evaluation_cli import add_evaluation_commands

    add_evaluation_commands(subparsers, _add_home, _app)
    return parser


def _backup_passphrase(args: argparse.Namespace, *, check_home: bool) -> str:
    """The passphrase a backup is sealed under: `--backup-passphrase-file`, else the township's own
    (checked against its key when `check_home` and the key is in --home, so a typo cannot seal a
    backup nobody can open)."""
    if args.backup_passphrase_file:
        return Path(args.backup_passphrase_file).read_text(encoding="utf-8").rstrip("\r\n")
    passphrase = cli_common.read_passphrase(args)
    from town_center.bootstrap import KEY_FILE_NAME, load_signer

    if check_home and (Path(args.home) / KEY_FILE_NAME).exists():
        load_signer(Path(args.home), passphrase)
    return passphrase


def _cmd_backup(args: argparse.Namespace) -> int:
    from shared.backup import backup_store_encrypted
    from town_center.bootstrap import KEY_FILE_NAME, LINK_KEY_FILE_NAME

    passphrase = _backup_passphrase(args, check_home=True)
    size = backup_store_encrypted(_db_url(args), Path(args.out), passphrase, kind=BACKUP_KIND, info={"tier": "township"})
    whose = "指定的备份" if args.backup_passphrase_file else "乡镇"
    print(f"已备份乡镇数据库到 {args.out}（{size} 字节，已用{whose}口令加密，仅本用户可读）。")
    print(f"注意：乡镇密钥文件 {KEY_FILE_NAME}、{LINK_KEY_FILE_NAME} 不在数据库备份中，请另行妥善保管（已用口令加密）。")
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
    print(f"已恢复乡镇数据库 {_db_url(args).split('@')[-1]}。")
    print("注意：备份之后各村上报的记录会在各村下次上报时按缺口重发；备份之后本乡镇签发的记录不在其中，请核对后再启动服务。")
    return 0


def _read_county_key(text: str) -> bytes:
    from town_center.errors import SetupError

    path = Path(text)
    raw = path.read_text(encoding="utf-8").strip() if len(text) != 64 and path.exists() else text.strip()
    try:
        key = bytes.fromhex(raw)
    except ValueError:
        raise SetupError("县级公钥格式不对：应为 64 位十六进制，或 county.pub 文件的路径") from None
    if len(key) != 32:
        raise SetupError("县级公钥长度不对：应为 64 位十六进制（32 字节）")
    return key


def _cmd_county_link(args: argparse.Namespace) -> int:
    from shared.keys import fingerprint
    from town_center.bootstrap import LINK_KEY_FILE_NAME, link_county, load_link_signer, load_signer
    from town_center.errors import SetupError

    passphrase = cli_common.read_passphrase(args)
    load_signer(Path(args.home), passphrase)   # the passphrase is the township's: check it first
    link_signer = load_link_signer(Path(args.home), passphrase)
    if link_signer is None:
        from shared.keys import save_key_file
        from shared.signing import Signer

        link_signer = Signer.generate()
        save_key_file(Path(args.home) / LINK_KEY_FILE_NAME, link_signer, passphrase)
    county_key = _read_county_key(args.county_key)
    county_ca = ""
    if args.county_ca:
        from shared.relay.tls import read_ca_file

        county_ca = read_ca_file(args.county_ca).decode("ascii")
    settings = link_county(_db_url(args), link_signer, address=args.address, county_public_key=county_key,
                           township_code=args.code, township_name=args.name, county_ca_pem=county_ca,
                           client_cert_file=args.client_cert or "", client_key_file=args.client_key or "",
                           tls_server_name=args.county_tls_name)
    if not settings.address:
        raise SetupError("县级地址不能为空")
    print(f"已登记县级中心 {settings.address}（县级公钥指纹 {fingerprint(county_key)}）。")
    print("与县级的连接：" + ("TLS 加密" + ("，双向认证（客户端证书）" if settings.client_cert_file else "")
                           if settings.county_ca_pem else "未加密（仅适用于同一台机器或可信内网；建议用 --county-ca 启用 TLS）"))
    print(f"本乡镇接入密钥 {link_signer.key_id}，指纹 {fingerprint(link_signer.public_key)}：")
    print("请把指纹告知县级信息化人员核对后批准（county-hub townships approve）。下次启动 serve 时开始同步。")
    return 0


def _cmd_county_status(args: argparse.Namespace) -> int:
    app = _app(args)
    try:
        if app.county_link is None:
            print("本乡镇尚未接入县政务服务中心（请先运行 town-center county link）。")
            return 1
        st = app.county_link.status()
    finally:
        app.close()
    oldest = st.oldest_queued_at.astimezone(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m-%d %H:%M") if st.oldest_queued_at else "-"
    print(f"待送达县级：{st.queued} 条（最早 {oldest}）；未回复的县级督办：{st.open_notices} 条")
    return 0


def _cmd_catalog_publish(args: argparse.Namespace) -> int:
    from shared.errors import CatalogError

    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError("文件", "path", f"无法读取目录文件 {path}：{exc.__class__.__name__}") from exc
    app = _app(args)
    try:
        catalog = app.services.publish_catalog(text, by=args.by)
    finally:
        app.close()
    print(f"已发布服务事项目录 {catalog.version}（{len(catalog)} 项），各村代办员下次同步时更新。")
    return 0


def _open_auth(args: argparse.Namespace):
    from shared.clock import SystemClock
    from shared.console import ConsoleAuth, create_console_tables
    from town_center.errors import SetupError
    from town_center.store import open_town_store

    if args.db is None and not Path(args.home).is_dir():
        raise SetupError(f"找不到乡镇数据目录 {args.home}，请先运行 town-center init")
    store = open_town_store(_db_url(args))
    create_console_tables(store.engine)
    return ConsoleAuth(store.engine, SystemClock())


def _db_url(args: argparse.Namespace) -> str:
    from town_center.bootstrap import default_db_url

    return str(args.db or default_db_url(Path(args.home)))


def _app(args: argparse.Namespace):
    from town_center.bootstrap import build_app, load_link_signer, load_signer

    passphrase = cli_common.read_passphrase(args)
    signer = load_signer(Path(args.home), passphrase)
    return build_app(_db_url(args), signer, link_signer=load_link_signer(Path(args.home), passphrase))


def _cmd_init(args: argparse.Namespace) -> int:
    from shared.keys import check_passphrase
    from town_center.bootstrap import init_home

    passphrase = cli_common.read_passphrase(args, confirm=True)
    check_passphrase(passphrase)
    signer = init_home(Path(args.home), passphrase, args.db)
    print(f"已初始化乡镇中心：数据目录 {args.home}，数据库 {_db_url(args)}")
    cli_common.print_key_summary(signer.public_key)
    print("请把上面的登记码交给各村代办员的笔记本配置，用于核验乡镇回执。")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from shared.console.serve import web_security_from_args
    from shared.observability.logs import configure_logging
    from shared.relay.server import RelayLimits
    from shared.serving import check_plaintext_allowed
    from town_center.bootstrap import build_app, load_link_signer, load_signer, serve

    configure_logging(verbose=args.verbose, fmt=args.log_format)
    metrics = cli_common.metrics_address(args)
    limits = RelayLimits(max_batch=args.max_batch, max_concurrent_streams=args.max_streams,
                         max_message_bytes=args.max_message_bytes,
                         claimed_time_tolerance_ms=args.clock_tolerance_minutes * 60_000)
    tls = cli_common.server_tls(args)   # before the passphrase: a wrong certificate path fails at once
    console = None if args.console_listen in ("", "off") else args.console_listen
    check_plaintext_allowed(args.listen, tls, console_address=console, secure_cookies=args.secure_cookies,
                            insecure_plaintext=args.insecure_plaintext)
    web_security = web_security_from_args(args, console)
    passphrase = cli_common.read_passphrase(args)
    signer = load_signer(Path(args.home), passphrase)
    app = build_app(_db_url(args), signer, limits=limits, link_signer=load_link_signer(Path(args.home), passphrase))
    if app.county_link is not None:
        try:
            app.county_link.settings.client_tls()   # the county link's TLS files, checked before anything listens
        except Exception:
            app.close()
            raise
    serve(app, args.listen, port_file=Path(args.port_file) if args.port_file else None,
          console_address=console, secure_cookies=args.secure_cookies, tls=tls, metrics_address=metrics,
          web_security=web_security, metrics_hosts=tuple(args.allowed_host))
    return 0


def _fmt_ms(ms: int) -> str:
    if not ms:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m-%d %H:%M")


def _cmd_agents_list(args: argparse.Namespace) -> int:
    from shared.relay.ports import KeyState
    from town_center.store import open_town_store

    store = open_town_store(_db_url(args))
    try:
        everyone = store.keys()
        agents = [a for a in everyone if not args.state or a.state is KeyState(args.state)]
        forks = store.forks()
        flagged = {f.author_key_id for f in store.time_flags()}
    finally:
        store.close()
    if not agents:
        print("没有符合条件的设备密钥。")
        return 0
    live = [a.info.village_code for a in everyone if a.info.village_code and a.state.value in ("pending", "approved")]
    clashes = {code for code in live if live.count(code) > 1}
    print(f"{'密钥标识':<34}{'状态':<14}{'村':<10}{'持有人':<10}{'已收序号':>8}  登记时间          指纹")
    for a in agents:
        print(f"{a.key_id:<36}{a.state.label_zh:<12}{a.info.village_code:<10}{a.info.holder_name:<10}"
              f"{a.tip.seq:>10}  {_fmt_ms(a.enrolled_at_ms)}  {a.info.fingerprint}")
        if a.state.value in ("revoked", "quarantined") and a.status_reason:
            print(f"    └ {a.status_reason}（{a.status_changed_by}，{_fmt_ms(a.status_changed_at_ms)}）"
                  + (f"；序号 {a.last_valid_seq} 及以前的记录仍有效" if a.state.value == "revoked" else ""))
        for f in forks:
            if f.author_key_id == a.key_id:
                print(f"    └ 分叉证据：序号 {f.seq}，已收 {f.held_hash.hex()[:12]}…，"
                      f"新到 {f.hash.hex()[:12]}…（{_fmt_ms(f.detected_at_ms)}）")
        if a.key_id in flagged:
            print("    └ 注意：该设备的声称时间存在异常（设备时钟可能不准）")
        if a.info.village_code in clashes and a.state.value in ("pending", "approved"):
            print(f"    └ 注意：村代码 {a.info.village_code} 还有其他待审批或已批准的设备，请核对指纹后再批准")
    return 0


def _cmd_agents_approve(args: argparse.Namespace) -> int:
    app = _app(args)
    try:
        typed = "".join(args.fingerprint.split())
        if typed:
            matches = [a for a in app.store.keys() if a.key_id.startswith(args.key_id)]
            held = "".join(matches[0].info.fingerprint.split()) if len(matches) == 1 else ""
            if not held or not (held == typed or (len(typed) == 5 and held.endswith(typed))):
                print("指纹核对不符，未批准：请与代办员电话逐组核对指纹")
                return 1
        agent = app.services.approve(args.key_id, by=args.by)
    finally:
        app.close()
    print(f"已批准设备密钥 {agent.key_id}（{agent.info.village_code} {agent.info.holder_name}），指纹 {agent.info.fingerprint}")
    return 0


def _cmd_agents_revoke(args: argparse.Namespace) -> int:
    app = _app(args)
    try:
        agent = app.services.revoke(args.key_id, by=args.by, reason=args.reason)
    finally:
        app.close()
    print(f"已吊销设备密钥 {agent.key_id}：序号 {agent.last_valid_seq} 及以前的记录仍有效，此后的记录将被拒收。")
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
