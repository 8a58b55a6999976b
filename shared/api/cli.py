"""`staff token create|list|revoke`: API tokens on the township's and the county's command line.

    staff = register_staff_commands(subparsers, open_auth)
    add_token_commands(staff, open_auth, decorate=add_home_option)

A token is printed once, when it is made; afterwards only its number, owner, purpose and dates are
shown. `open_auth(args)` opens the tier's `ConsoleAuth`, whose engine and clock the tokens share.
"""
from __future__ import annotations

import argparse
import datetime as dt
import functools
from collections.abc import Callable
from zoneinfo import ZoneInfo

from shared.api.errors import TokenError
from shared.api.tokens import DEFAULT_EXPIRES_AFTER, MAX_EXPIRES_AFTER, ApiTokens, create_api_tables
from shared.cli_common import add_command
from shared.console.auth import ConsoleAuth

__all__ = ["add_token_commands"]

_SHANGHAI = ZoneInfo("Asia/Shanghai")

OpenAuth = Callable[[argparse.Namespace], ConsoleAuth]


def _bj(at: dt.datetime | None) -> str:
    return "—" if at is None else at.astimezone(_SHANGHAI).strftime("%Y-%m-%d %H:%M")


def _tokens(args: argparse.Namespace, open_auth: OpenAuth) -> ApiTokens:
    auth = open_auth(args)
    create_api_tables(auth.engine)
    return ApiTokens(auth.engine, auth.clock)


def add_token_commands(staff: argparse.ArgumentParser, open_auth: OpenAuth,
                       *, decorate: Callable[[argparse.ArgumentParser], None] = lambda p: None) -> None:
    """Add `token` (create, list, revoke) under the `staff` command; `decorate` adds the tier's own
    options (e.g. `--home`) to each of them."""
    group = next(a for a in staff._actions if isinstance(a, argparse._SubParsersAction))
    token = add_command(group, "token", "接口令牌：为工作人员创建、列出、吊销调用 JSON 接口用的令牌")
    actions = token.add_subparsers(dest="token_command", metavar="<操作>", required=True)

    create = add_command(actions, "create", "为工作人员创建接口令牌（只显示一次；按该工作人员的身份授权）")
    create.add_argument("staff_id", metavar="登录名")
    create.add_argument("--expires", type=int, default=DEFAULT_EXPIRES_AFTER.days, metavar="天数",
                        help=f"有效天数（1–{MAX_EXPIRES_AFTER.days}，默认 {DEFAULT_EXPIRES_AFTER.days}）")
    create.add_argument("--note", default="", metavar="用途", help="用途说明，例如：县数据平台对接")
    create.set_defaults(handler=functools.partial(_cmd_create, open_auth=open_auth))

    listing = add_command(actions, "list", "列出接口令牌（不显示令牌本身）")
    listing.add_argument("staff_id", nargs="?", default=None, metavar="登录名", help="只列出该工作人员的令牌")
    listing.set_defaults(handler=functools.partial(_cmd_list, open_auth=open_auth))

    revoke = add_command(actions, "revoke", "吊销接口令牌（立即生效）")
    revoke.add_argument("token_no", type=int, metavar="编号", help="令牌编号（见 staff token list）")
    revoke.set_defaults(handler=functools.partial(_cmd_revoke, open_auth=open_auth))

    for parser in (create, listing, revoke):
        decorate(parser)


def _cmd_create(args: argparse.Namespace, *, open_auth: OpenAuth) -> int:
    if not 1 <= args.expires <= MAX_EXPIRES_AFTER.days:
        raise TokenError(f"有效期须在 1 至 {MAX_EXPIRES_AFTER.days} 天之间")
    issued = _tokens(args, open_auth).create(args.staff_id, expires_after=dt.timedelta(days=args.expires),
                                             note=args.note)
    info = issued.info
    print(f"已为 {info.display_name}（{info.staff_id}）创建接口令牌，编号 {info.token_no}，"
          f"有效期至北京时间 {_bj(info.expires_at)}。")
    print("令牌只显示这一次，请立即妥善保存（丢失后只能吊销并重新创建）：")
    print(issued.token)
    print("调用接口时放在请求头中：Authorization: Bearer <令牌>")
    return 0


def _cmd_list(args: argparse.Namespace, *, open_auth: OpenAuth) -> int:
    tokens = _tokens(args, open_auth)
    infos = tokens.list_tokens(args.staff_id)
    if not infos:
        print("尚无接口令牌。可用“staff token create 登录名”创建。")
        return 0
    now = tokens.clock.now()
    print("编号\t登录名\t姓名\t用途\t创建时间\t有效期至\t最近使用\t状态（北京时间）")
    for t in infos:
        print(f"{t.token_no}\t{t.staff_id}\t{t.display_name}\t{t.note or '—'}\t{_bj(t.created_at)}\t{_bj(t.expires_at)}\t"
              f"{_bj(t.last_used_at)}\t{t.state_zh(now)}")
    return 0


def _cmd_revoke(args: argparse.Namespace, *, open_auth: OpenAuth) -> int:
    info = _tokens(args, open_auth).revoke(args.token_no)
    print(f"已吊销 {info.display_name}（{info.staff_id}）的接口令牌（编号 {info.token_no}），此后用它调用接口一律拒绝。")
    return 0
