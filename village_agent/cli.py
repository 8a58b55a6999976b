"""`village-agent`: the village agent's command line. Every action of the web UI is here too."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared import cli_common
from shared.errors import SharedError
from village_agent.errors import AgentError, FormError
from village_agent.sync_text import plain_sync_text

if TYPE_CHECKING:
    from village_agent.services import AgentService

log = logging.getLogger(__name__)

DATA_ENV = "QUANCHENG_AGENT_DATA"
DEFAULT_DATA = Path("var/village-agent")

DESCRIPTION = """村代办员工具：离线登记全程代办事项（申请、委托书、材料、上门服务、交付与签收评价），
每条记录在本机签名保存，联网时报送乡镇便民服务中心。

常用：
  village-agent init --agent-name 王芳 --village-code V001 --village-name 东山村 \\
      --township-code T01 --township-name 青石镇 --township-address 127.0.0.1:7001 \\
      --township-key quancheng:key:v1:…
  village-agent serve                 在本机浏览器中使用（默认 http://127.0.0.1:8631，输入口令或 PIN 解锁）
  village-agent unlock-pin            设置网页解锁 PIN（6–12 位数字），免去每次输入长口令
  village-agent catalog               查看服务事项目录：事项编码、名称和所需材料（含材料编号）
  village-agent catalog MZ-001        查看一个事项的全部材料、各环节时限、收费和依据
  village-agent request --name … --id-number … --phone … --address … --matter MZ-001 \\
      --materials application_form,household_register --authorization witness \\
      --witness-name 赵六 --witness-statement 申请人口头委托
  village-agent list                  列出本机事项（查询码、状态、时限）
  village-agent show --code AB3CD-EF4GH / receipt --code … / status
  village-agent signoff --code … --rating satisfied --signature-file 签名.png
  village-agent batch < actions.jsonl  每行一个 JSON 动作，每行输出一个 JSON 结果
  village-agent backup --out /media/U盘/东山村备份.qcbak   加密备份整个数据目录（可在使用中备份）
  village-agent restore --from 东山村备份.qcbak --data 新数据目录   恢复到新电脑（须先与乡镇同步才能继续登记）

数据目录默认为 ./var/village-agent，可用 --data 或环境变量 QUANCHENG_AGENT_DATA 指定。
口令取自环境变量 QUANCHENG_PASSPHRASE、--passphrase-file 或交互输入。"""

# A matter is named by the lookup code on its receipt; `--matter-id` stays for scripts that hold the internal id.
_CODE: tuple[str, str, str, dict[str, Any]] = ("--code", "code", "事项查询码（回执上的 10 位查询码，如 AB3CD-EF4GH）", {})

# (flag, params key, help, extra argparse kwargs) per action; keys match `actions.py`.
_ACTION_ARGS: dict[str, tuple[str, list[tuple[str, str, str, dict[str, Any]]]]] = {
    "request": ("登记一件新的代办申请（含委托书与已带材料）", [
        ("--name", "name", "申请人姓名", {}), ("--id-number", "id_number", "身份证号码（18 位）", {}),
        ("--phone", "phone", "联系电话", {}), ("--address", "address", "住址", {}),
        ("--matter", "matter", "事项编码，如 MZ-001（见 village-agent catalog）", {}),
        ("--materials", "materials", "已带材料编号，逗号分隔（见 village-agent catalog 事项编码）", {}),
        ("--commit", "commit", "缺少材料的承诺补交日期：材料编号=YYYY-MM-DD，可重复", {"action": "append", "default": []}),
        ("--not-applicable", "not_applicable", "不适用的条件性材料编号，逗号分隔", {}),
        ("--authorization", "authorization",
         "委托方式：drawn_signature（签名）/ photo_of_form（已签字委托书照片）/ fingerprint（按手印照片）/ witness（见证人）", {}),
        ("--evidence-file", "evidence_file", "签名、委托书照片或按手印照片（PNG/JPEG）", {}),
        ("--witness-name", "witness_name", "见证人姓名", {}), ("--witness-statement", "witness_statement", "见证说明", {}),
        ("--elderly-or-disabled", "elderly_or_disabled", "申请人为老弱病残", {"action": "store_true"}),
        ("--door-to-door", "door_to_door", "上门服务时登记", {"action": "store_true"}),
        ("--note", "note", "备注（不要写个人信息）", {}),
    ]),
    "assess": ("按目录核对材料：列出全部所缺材料并给出受理意见（一次性告知）", [
        ("--matter", "matter", "事项编码", {}), ("--materials", "materials", "已带材料编号，逗号分隔", {}),
        ("--not-applicable", "not_applicable", "不适用的条件性材料编号", {}),
    ]),
    "materials": ("为已登记事项补充材料", [
        _CODE, ("--materials", "materials", "补充的材料编号，逗号分隔", {}),
        ("--note", "note", "备注", {}),
    ]),
    "appointment": ("预约办理或上门服务（超过约定时间 30 分钟未到、经联系仍无法到场的，视为失约）", [
        ("--at", "at", "预约时间，如 2026-12-01T09:30（北京时间）", {}),
        ("--place", "place", "地点：service_room / applicant_home / township_center", {}),
        ("--purpose", "purpose", "事由", {}), ("--code", "code", "相关事项的查询码（可选）", {}),
        ("--place-detail", "place_detail", "详细地址（加密保存）", {}),
    ]),
    "visit": ("登记一次上门服务", [
        ("--appointment", "appointment_id", "预约号（登记预约时显示，可选）", {}), ("--code", "code", "相关事项的查询码（可选）", {}),
        ("--place", "place", "地点（默认 applicant_home）", {"default": "applicant_home"}),
        ("--outcome", "outcome", "上门情况", {}),
        ("--late-reason", "late_reason", "超过约定时间 30 分钟或预约已失约时，写明原因", {}),
    ]),
    "forfeit": ("超过约定时间 30 分钟、经联系仍无法到场的预约标记为失约（须登记联系情况）", [
        ("--appointment", "appointment_id", "预约号（登记预约时显示）", {}),
        ("--contact-at", "contact_at", "联系群众的时间，如 2026-12-01T10:15（北京时间）", {}),
        ("--method", "method",
         "联系方式：phone（电话）/ home_visit（上门寻找）/ via_relative（托亲友、邻居转告）/ message（短信或微信留言）", {}),
        ("--outcome", "outcome", "联系结果，如：电话无人接听", {}),
    ]),
    "withdraw": ("撤回事项", [_CODE, ("--reason", "reason", "撤回原因", {})]),
    "handover": ("向群众交付办理结果", [
        _CODE, ("--result", "result", "办理结果", {}),
        ("--materials-returned", "materials_returned", "退还的材料编号，逗号分隔", {}),
    ]),
    "signoff": ("群众签收确认并评价（非常满意/满意/基本满意/不满意/非常不满意）：须有群众签名、签字照片或按手印，"
                "无法签字时由代办员以外的见证人证明", [
        _CODE,
        ("--rating", "rating", "very_satisfied / satisfied / basically_satisfied / dissatisfied / very_dissatisfied", {}),
        ("--comment", "comment", "意见建议", {}),
        ("--method", "method", "签收确认方式：drawn_signature（签名图片）/ photo_of_form（签收单照片）/ "
                               "fingerprint（按手印照片）/ witness（见证人）", {}),
        ("--signature-file", "signature_file", "群众签名图片（PNG，在签名板上签的）", {}),
        ("--evidence-file", "evidence_file", "签收单照片或按手印照片（PNG/JPEG）", {}),
        ("--witness-name", "witness_name", "见证人姓名（不能是代办员本人）", {}),
        ("--witness-statement", "witness_statement", "见证说明", {}),
    ]),
    "followup": ("登记一次回访", [
        _CODE, ("--outcome", "outcome", "回访情况", {}),
        ("--not-reached", "not_reached", "未联系上", {"action": "store_true"}), ("--rating", "rating", "回访评价（可选）", {}),
    ]),
    "list": ("列出本机事项（查询码、状态、村级环节时限、办结时限）", [
        ("--status", "status", "只列出某一状态（如 returned 或 已退回）", {}), ("--limit", "limit", "条数", {"type": int, "default": 50})]),
    "show": ("查看一件事项的状态与全部记录", [_CODE]),
    "receipt": ("打印代办收件回执与一次性告知书（与登记时所告知的一致）", [_CODE]),
    "status": ("查看本机状态：待上报记录数、最近同步时间", []),
    "sync": ("立即与乡镇同步一次：上报全部待上报记录，并接收乡镇下发的状态与结果", []),
    "rebuild": ("从签名台账重建事项状态表", []),
    "export": ("把整本签名台账导出到文件（审计或拷贝到 U 盘），可用 ledger-verify 校验", [("--out", "out", "导出文件路径", {})]),
}


def _add_data_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", metavar="目录", help="数据目录（默认 ./var/village-agent）")
    cli_common.add_passphrase_option(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = cli_common.new_parser("village-agent", DESCRIPTION)
    subparsers = cli_common.add_subparsers(parser)

    init = cli_common.add_command(subparsers, "init", "初始化本机：生成设备密钥，登记村、乡镇及乡镇中心地址和公钥，显示登记码")
    _add_data_option(init)
    for flag, help_zh in (("--agent-name", "代办员姓名"), ("--village-code", "村代码"), ("--village-name", "村名称"),
                          ("--township-code", "乡镇代码"), ("--township-name", "乡镇名称"),
                          ("--township-address", "乡镇中心 gRPC 地址，如 10.1.2.3:7001"),
                          ("--township-key", "乡镇中心登记码（quancheng:key:v1:…）")):
        init.add_argument(flag, required=True, metavar="值", help=help_zh)
    _add_township_tls_options(init)
    init.set_defaults(handler=_cmd_init)

    set_ca = cli_common.add_command(subparsers, "set-township-ca",
                                    "乡镇中心启用加密连接（TLS）后，为已初始化的本机登记乡镇的 CA 证书")
    set_ca.add_argument("--data", metavar="目录", help="数据目录（默认 ./var/village-agent）")
    _add_township_tls_options(set_ca, required=True)
    set_ca.set_defaults(handler=_cmd_set_township_ca)

    for name, (help_zh, arguments) in _ACTION_ARGS.items():
        sub = cli_common.add_command(subparsers, name, help_zh)
        _add_data_option(sub)
        sub.add_argument("--json", action="store_true", help="以 JSON 输出结果")
        for flag, dest, arg_help, extra in arguments:
            if extra.get("action") not in ("store_true",):
                extra = {"metavar": "值", **extra}
            sub.add_argument(flag, dest=dest, help=arg_help, **extra)
            if flag == "--code":
                sub.add_argument("--matter-id", dest="matter_id", metavar="值", help=argparse.SUPPRESS)
        sub.set_defaults(handler=_cmd_action, action_name=name)

    catalog = cli_common.add_command(subparsers, "catalog", "查看服务事项目录：事项编码、名称、主要/辅助材料及材料编号（登记时用）、"
                                                            "可容缺与按情形提交的材料；给出事项编码时显示该事项的全部内容")
    catalog.add_argument("code", nargs="?", default="", metavar="事项编码", help="如 MZ-001；省略时列出全部事项")
    catalog.add_argument("--data", metavar="目录",
                         help="数据目录：使用乡镇下发到本机的目录版本（默认 ./var/village-agent，未初始化时用随软件发布的目录）")
    catalog.set_defaults(handler=_cmd_catalog)

    batch = cli_common.add_command(subparsers, "batch", "从标准输入逐行读取 JSON 动作并执行，每行输出一个 JSON 结果（脚本与测试用）")
    _add_data_option(batch)
    batch.set_defaults(handler=_cmd_batch)

    serve = cli_common.add_command(subparsers, "serve", "启动本机网页界面（仅本机访问），并在后台自动把超时 30 分钟未履约的预约标记为失约")
    _add_data_option(serve)
    serve.add_argument("--host", default="127.0.0.1", metavar="地址", help="监听地址（默认 127.0.0.1，仅本机）")
    serve.add_argument("--port", type=_port, default=8631, metavar="端口", help="端口（默认 8631）")
    serve.add_argument("--offline", action="store_true", help="不在后台与乡镇同步（仅离线使用）")
    serve.add_argument("--allowed-host", action="append", default=[], metavar="名称",
                       help="网页还允许用此名称访问（可多次给出），例如本机在局域网中的名称；"
                            "默认只认监听地址（本机为 127.0.0.1、localhost）")
    serve.add_argument("--idle-minutes", type=_minutes, default=10, metavar="分钟",
                       help="多少分钟无操作后网页自动锁定，须重新输入口令或 PIN（默认 10）")
    serve.set_defaults(handler=_cmd_serve)

    pin = cli_common.add_command(subparsers, "unlock-pin", "设置或清除网页解锁 PIN（6–12 位数字，输入口令后设置；口令始终也可解锁）")
    _add_data_option(pin)
    pin.add_argument("--clear", action="store_true", help="清除已设置的 PIN（此后只能用口令解锁）")
    pin.set_defaults(handler=_cmd_unlock_pin)

    backup = cli_common.add_command(subparsers, "backup",
                                    "把整个数据目录（数据库、加密的设备密钥、配置）加密备份到一个文件，可写到 U 盘；使用中也可备份")
    _add_data_option(backup)
    backup.add_argument("--out", required=True, metavar="文件", help="备份文件路径（已存在时不会覆盖）")
    backup.add_argument("--backup-passphrase-file", metavar="文件",
                        help="用另一个口令加密备份文件（从此文件读取）；默认使用本机口令")
    backup.set_defaults(handler=_cmd_backup)

    restore = cli_common.add_command(subparsers, "restore",
                                     "从备份文件恢复到一个空的数据目录；恢复后须先与乡镇同步，取回备份之后的记录，才能继续登记")
    restore.add_argument("--from", dest="source", required=True, metavar="文件", help="备份文件路径")
    _add_data_option(restore)
    restore.set_defaults(handler=_cmd_restore)

    cli_common.register_key_commands(subparsers)
    return parser


def _cmd_backup(args: argparse.Namespace) -> int:
    from shared.clock import SystemClock, to_unix_ms
    from village_agent.backup import backup_agent

    passphrase = cli_common.read_passphrase(args)
    other = Path(args.backup_passphrase_file).read_text(encoding="utf-8").rstrip("\r\n") if args.backup_passphrase_file else None
    summary = backup_agent(data_root(args), passphrase, Path(args.out), backup_passphrase=other,
                           now_ms=to_unix_ms(SystemClock().now()))
    print(f"已备份到 {summary.file}（{summary.size_bytes} 字节）：台账共 {summary.ledger_seq} 条记录，"
          f"含 {'、'.join(summary.files)}。")
    print("备份文件已用" + ("指定的备份口令" if other else "本机口令") + "加密，请与口令分开妥善保管。")
    return 0


def _cmd_restore(args: argparse.Namespace) -> int:
    from village_agent.backup import restore_agent

    summary = restore_agent(Path(args.source), data_root(args), cli_common.read_passphrase(args))
    print(f"已恢复到 {summary.root}：台账共 {summary.ledger_seq} 条记录（设备密钥 {summary.key_id}）。")
    print("本机现处于“从备份恢复”状态：请先连接乡镇运行 village-agent sync，取回备份之后登记的记录，之后才能继续登记。")
    return 0


def _add_township_tls_options(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    parser.add_argument("--township-ca", required=required, default=None, metavar="文件",
                        help="乡镇中心的 CA 证书（PEM，乡镇或县级信息化人员提供）：与乡镇同步时使用 TLS 加密连接")
    parser.add_argument("--township-tls-name", default="", metavar="名称",
                        help="乡镇证书上的名称与乡镇中心地址中的主机名不同时，写证书上的名称")


def _township_ca(args: argparse.Namespace) -> str:
    from shared.relay.tls import read_ca_file

    return read_ca_file(args.township_ca).decode("ascii") if args.township_ca else ""


def _cmd_set_township_ca(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from village_agent.config import AgentConfig, Paths

    paths = Paths(data_root(args))
    config = replace(AgentConfig.load(paths), township_ca_pem=_township_ca(args),
                     township_tls_name=args.township_tls_name.strip())
    config.save(paths)
    print(f"已登记乡镇 CA 证书：此后与乡镇（{config.township_address}）同步使用 TLS 加密连接。")
    return 0


def data_root(args: argparse.Namespace) -> Path:
    return Path(args.data or os.environ.get(DATA_ENV) or DEFAULT_DATA)


def _open(args: argparse.Namespace) -> AgentService:
    from village_agent.bootstrap import open_agent

    return open_agent(data_root(args), cli_common.read_passphrase(args))


def _cmd_init(args: argparse.Namespace) -> int:
    from shared.keys import enrollment_uri, parse_enrollment_uri
    from village_agent.bootstrap import init_agent

    township_ca = _township_ca(args)   # a wrong CA file fails before the passphrase is asked for
    config, signer = init_agent(
        data_root(args), cli_common.read_passphrase(args, confirm=True), agent_name=args.agent_name,
        village_code=args.village_code, village_name=args.village_name, township_code=args.township_code,
        township_name=args.township_name, township_address=args.township_address,
        township_public_key=parse_enrollment_uri(args.township_key),
        township_ca_pem=township_ca, township_tls_name=args.township_tls_name,
    )
    print(f"已初始化：{config.village_name}（{config.village_code}），代办员 {config.agent_name}")
    if config.township_ca_pem:
        print("与乡镇同步使用 TLS 加密连接（已登记乡镇 CA 证书）。")
    print("请把以下登记码交给乡镇便民服务中心审核（可念出指纹或扫描二维码）：")
    cli_common.print_key_summary(signer.public_key)
    assert enrollment_uri(signer.public_key)
    return 0


def _params(args: argparse.Namespace) -> dict[str, Any]:
    not_params = {"handler", "action_name", "data", "passphrase_file", "json", "command"}
    params = {k: v for k, v in vars(args).items() if v is not None and k not in not_params}
    if "commit" in params:
        commitments = {}
        for item in params.pop("commit"):
            material, _, date = item.partition("=")
            commitments[material.strip()] = date.strip()
        params["commitments"] = commitments
    if params.pop("not_reached", False):
        params["reached"] = False
    return params


def _print_result(name: str, result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps({k: v for k, v in result.items() if k != "text"}, ensure_ascii=False))
    else:
        print(result.get("text") or "已完成。")


def _cmd_action(args: argparse.Namespace) -> int:
    from village_agent.actions import ACTIONS

    service = _open(args)
    try:
        result = ACTIONS[args.action_name](service, _params(args))
    finally:
        service.store.close()
    _print_result(args.action_name, result, args.json)
    return 0


def _cmd_batch(args: argparse.Namespace) -> int:
    """One JSON object per line in, one per line out; a line is answered only after its commit.
    A bad line is answered in Chinese and the next line goes on: what earlier lines saved stays saved."""
    from village_agent.actions import ACTIONS

    service = _open(args)
    failures = 0
    try:
        for number, line in enumerate(sys.stdin, start=1):
            if not line.strip():
                continue
            out = _batch_line(service, ACTIONS, number, line)
            failures += not out["ok"]
            sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
            sys.stdout.flush()
    finally:
        service.store.close()
    return 0 if failures == 0 else 1


def _batch_line(service: Any, actions: dict[str, Any], number: int, line: str) -> dict[str, Any]:
    try:
        params = json.loads(line)
    except ValueError:
        return {"ok": False, "error": f"第 {number} 行不是有效的 JSON"}
    if not isinstance(params, dict):
        return {"ok": False, "error": f"第 {number} 行应为一个 JSON 对象（{{\"action\": …}}）"}
    name = params.pop("action", None)
    if name not in actions:
        known = "、".join(sorted(actions))
        return {"ok": False, "error": f"第 {number} 行{'缺少 action' if name is None else f'的动作 {name!r} 不存在'}；可用的动作：{known}"}
    try:
        result = actions[name](service, params)
    except FormError as exc:
        return {"ok": False, "error": str(exc), "fields": [p.field for p in exc.problems]}
    except AgentError as exc:
        return {"ok": False, "error": str(exc)}
    except SharedError as exc:
        return {"ok": False, "error": plain_sync_text(str(exc))}
    except Exception as exc:  # noqa: BLE001 - one bad line must not lose the lines after it
        log.error("batch line %d (%s) failed: %s\n%s", number, name, type(exc).__name__, _where(exc))
        return {"ok": False, "error": f"第 {number} 行无法执行（内部错误 {type(exc).__name__}），未保存；已保存的记录不受影响"}
    return {"ok": True, **{k: v for k, v in result.items() if k != "text"}}


def _cmd_catalog(args: argparse.Namespace) -> int:
    from village_agent.catalog_text import catalog_item_text, catalog_list_text

    catalog = _catalog_for(args)
    code = args.code.strip().upper()
    if not code:
        print(catalog_list_text(catalog))
        return 0
    if code not in catalog:
        raise AgentError(f"服务事项目录（版本 {catalog.version}）中没有编码为 {code} 的事项；"
                         "运行 village-agent catalog 查看全部事项编码")
    print(catalog_item_text(catalog.item(code)))
    return 0


def _catalog_for(args: argparse.Namespace) -> Any:
    """The catalogue this laptop uses (the township's latest, kept in its database), or the shipped one."""
    from shared.catalog import load_catalog
    from village_agent.config import Paths
    from village_agent.store import AgentStore

    paths = Paths(data_root(args))
    if paths.database.is_file():
        store = AgentStore(paths.database)
        try:
            published = store.published_catalog()
        finally:
            store.close()
        if published is not None:
            return published
    return load_catalog()


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("端口应为 1–65535 之间的整数") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError("端口应为 1–65535 之间的整数")
    return port


def _minutes(text: str) -> int:
    try:
        minutes = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("分钟数应为 1–240 之间的整数") from None
    if not 1 <= minutes <= 240:
        raise argparse.ArgumentTypeError("分钟数应为 1–240 之间的整数")
    return minutes


def _cmd_unlock_pin(args: argparse.Namespace) -> int:
    import getpass

    from village_agent.config import Paths
    from village_agent.ui.errors import PinError
    from village_agent.ui.unlock import UnlockPin

    service = _open(args)   # the passphrase first: only the agent sets the PIN
    try:
        pin = UnlockPin(Paths(data_root(args)).unlock_pin, service.signer)
        if args.clear:
            print("已清除解锁 PIN，此后请用代办员口令解锁网页。" if pin.clear() else "本机没有设置解锁 PIN。")
            return 0
        typed = os.environ.get("QUANCHENG_UNLOCK_PIN", "")
        if not typed:
            if not sys.stdin.isatty():
                raise PinError("需要 PIN：请设置环境变量 QUANCHENG_UNLOCK_PIN，或在终端中交互输入。")
            typed = getpass.getpass("请输入新的解锁 PIN（6–12 位数字）：")
            if getpass.getpass("请再次输入：") != typed:
                raise PinError("两次输入的 PIN 不一致")
        pin.set(typed)
    finally:
        service.store.close()
    print("已设置解锁 PIN。打开网页时输入 PIN 或代办员口令均可解锁；PIN 只在本机有效。")
    return 0


def _check_port_free(host: str, port: int) -> None:
    """Refuse a taken port before anything starts: uvicorn would only log an English line and exit."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as exc:
            from village_agent.actions import os_error_zh

            raise AgentError(f"无法在 {host}:{port} 启动网页界面：{os_error_zh(exc)}。可能已有一个 village-agent serve 在运行"
                             f"（请直接在浏览器打开 http://{host}:{port}/），或用 --port 换一个端口") from exc


def _cmd_serve(args: argparse.Namespace) -> int:
    from village_agent.sync import reachability_probe, relay_client
    from village_agent.ui.server import serve

    _check_port_free(args.host, args.port)
    service = _open(args)
    client = relay_client(service)
    if not args.offline:
        client.start()  # background sync whenever the township is reachable; the outbox is the queue
    try:
        return serve(service, host=args.host, port=args.port, sync_status=None if args.offline else reachability_probe(client),
                     extra_hosts=tuple(args.allowed_host),
                     idle_minutes=args.idle_minutes)
    finally:
        client.stop()
        service.store.close()


def _where(exc: BaseException) -> str:
    """Where an unexpected error happened, for the log: the frames only, never the message, which may
    quote what was typed (names, ID numbers)."""
    import traceback

    return "".join(traceback.format_tb(exc.__traceback__))


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except FormError as exc:
        for problem in exc.problems:
            print(f"错误：{problem}", file=sys.stderr)
        return 2
    except AgentError as exc:
        print(f"错误：{exc}", file=sys.stderr)
        return 2
    except SharedError as exc:
        # Relay errors carry the transport's raw text for the log; the agent reads the Chinese part.
        print(f"错误：{plain_sync_text(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:
        from village_agent.actions import os_error_zh

        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"错误：无法访问文件或网络{where}：{os_error_zh(exc)}。已保存的记录不受影响。", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - never a traceback in front of the agent
        log.error("village-agent %s failed: %s\n%s", getattr(args, "command", "?"), type(exc).__name__, _where(exc))
        print(f"错误：出现内部错误（{type(exc).__name__}），本次操作未完成；已保存的记录不受影响。"
              "请把数据目录中的 agent.log 交给县级信息化人员。", file=sys.stderr)
        return 3


def main(argv: Sequence[str] | None = None) -> int:
    # Whatever the caller's umask: the data folder, database, WAL, log and backups hold personal
    # data and the device key, so everything this process creates is the owner's alone (0600/0700).
    os.umask(0o077)
    return cli_common.run(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
