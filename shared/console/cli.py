"""`staff add|list|disable|enable|passwd`: the account sub-commands the township and county CLIs share.

    from shared.console.cli import register_staff_commands
    register_staff_commands(subparsers, open_auth)   # open_auth(args) -> ConsoleAuth

Passwords come from the environment variable `QUANCHENG_STAFF_PASSWORD` (for scripts) or an
interactive prompt with confirmation; never from a command-line argument, which other users of
the machine could read in the process list.
"""
from __future__ import annotations

import argparse
import functools
import getpass
import os
import sys
from collections.abc import Callable
from zoneinfo import ZoneInfo

from shared.cli_common import add_command
from shared.console.auth import ConsoleAuth
from shared.console.errors import StaffInputError
from shared.console.passwords import MIN_PASSWORD_CHARS, check_password_policy
from shared.domain.handling import Role

__all__ = ["STAFF_PASSWORD_ENV", "register_staff_commands", "read_staff_password"]

STAFF_PASSWORD_ENV = "QUANCHENG_STAFF_PASSWORD"
_SHANGHAI = ZoneInfo("Asia/Shanghai")
_ROLE_HELP = "、".join(f"{r.value}（{r.label_zh}）" for r in Role)

OpenAuth = Callable[[argparse.Namespace], ConsoleAuth]


def read_staff_password(*, staff_id: str, confirm: bool = True) -> str:
    """The new password from `QUANCHENG_STAFF_PASSWORD`, else typed twice at a prompt; policy-checked."""
    from_env = os.environ.get(STAFF_PASSWORD_ENV)
    if from_env:
        password = from_env
    else:
        if not sys.stdin.isatty():
            raise StaffInputError(f"需要密码：请设置环境变量 {STAFF_PASSWORD_ENV}，或在终端中交互输入。")
        password = getpass.getpass(f"请输入新密码（至少 {MIN_PASSWORD_CHARS} 个字符）：")
        if confirm and getpass.getpass("请再次输入新密码：") != password:
            raise StaffInputError("两次输入的密码不一致。")
    check_password_policy(password, staff_id=staff_id)
    return password


def register_staff_commands(subparsers: argparse._SubParsersAction, open_auth: OpenAuth) -> argparse.ArgumentParser:
    """Add `staff` with its sub-commands to a CLI; `open_auth(args)` opens the tier's `ConsoleAuth`
    (its own options, e.g. `--data`, must be added by the caller to the returned `staff` parser or the top parser)."""
    staff = add_command(subparsers, "staff", "管理工作人员账号：添加、列出、停用、启用、重设密码")
    actions = staff.add_subparsers(dest="staff_command", metavar="<操作>", required=True)

    add = add_command(actions, "add", f"添加工作人员账号（密码取自环境变量 {STAFF_PASSWORD_ENV} 或交互输入）")
    add.add_argument("staff_id", metavar="登录名", help="2–32 个小写英文字母、数字、点、下划线或连字符")
    add.add_argument("--name", required=True, metavar="姓名", help="显示在页面上的姓名")
    add.add_argument("--role", required=True, metavar="角色", help=f"角色：{_ROLE_HELP}")
    add.set_defaults(handler=functools.partial(_cmd_add, open_auth=open_auth))

    listing = add_command(actions, "list", "列出全部工作人员账号")
    listing.set_defaults(handler=functools.partial(_cmd_list, open_auth=open_auth))

    disable = add_command(actions, "disable", "停用账号（立即退出其全部登录；记录保留）")
    disable.add_argument("staff_id", metavar="登录名")
    disable.set_defaults(handler=functools.partial(_cmd_disable, open_auth=open_auth))

    enable = add_command(actions, "enable", "重新启用已停用的账号")
    enable.add_argument("staff_id", metavar="登录名")
    enable.set_defaults(handler=functools.partial(_cmd_enable, open_auth=open_auth))

    passwd = add_command(actions, "passwd", f"重设账号密码（立即退出其全部登录；密码取自环境变量 {STAFF_PASSWORD_ENV} 或交互输入）")
    passwd.add_argument("staff_id", metavar="登录名")
    passwd.set_defaults(handler=functools.partial(_cmd_passwd, open_auth=open_auth))
    return staff


def _cmd_add(args: argparse.Namespace, *, open_auth: OpenAuth) -> int:
    password = read_staff_password(staff_id=args.staff_id.strip().lower())
    account = open_auth(args).create_staff(args.staff_id, args.name, args.role, password)
    print(f"已添加账号 {account.staff_id}（{account.display_name}，{account.role.label_zh}）。")
    return 0


def _cmd_list(args: argparse.Namespace, *, open_auth: OpenAuth) -> int:
    accounts = open_auth(args).list_staff()
    if not accounts:
        print("尚无工作人员账号。可用“staff add”添加。")
        return 0
    print("登录名\t姓名\t角色\t状态\t创建时间（北京时间）")
    for a in accounts:
        created = a.created_at.astimezone(_SHANGHAI).strftime("%Y-%m-%d %H:%M")
        print(f"{a.staff_id}\t{a.display_name}\t{a.role.label_zh}\t{'已停用' if a.disabled else '在用'}\t{created}")
    return 0


def _cmd_disable(args: argparse.Namespace, *, open_auth: OpenAuth) -> int:
    open_auth(args).disable_staff(args.staff_id)
    print(f"已停用账号 {args.staff_id.strip().lower()}，其登录已全部失效。")
    return 0


def _cmd_enable(args: argparse.Namespace, *, open_auth: OpenAuth) -> int:
    open_auth(args).enable_staff(args.staff_id)
    print(f"已启用账号 {args.staff_id.strip().lower()}。")
    return 0


def _cmd_passwd(args: argparse.Namespace, *, open_auth: OpenAuth) -> int:
    auth = open_auth(args)
    auth.get_staff(args.staff_id)  # fail on an unknown login before asking for a password
    auth.set_password(args.staff_id, read_staff_password(staff_id=args.staff_id.strip().lower()))
    print(f"已重设账号 {args.staff_id.strip().lower()} 的密码，其原有登录已全部失效。")
    return 0
