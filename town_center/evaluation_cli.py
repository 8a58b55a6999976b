"""`town-center evaluation …`: the SMS gateway's hook, the provincial 好差评 feed (JSON or CSV from a
cursor), the assessment workbook and the county's settings. See `docs/evaluation.md`."""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shared import cli_common
from shared.domain.evaluation import EvaluationError, parse_weights
from shared.domain.figures import neutralise_formula
from shared.os_errors import os_error_zh

__all__ = ["add_evaluation_commands", "feed_csv", "FEED_FIELDS", "parse_weights"]

FEED_FIELDS = ("cursor", "evaluation_ref", "matter_code", "tier", "channel", "entered_by_agent", "level", "level_zh", "bad",
               "reason", "rated_at", "valid", "rectification", "rectified_at", "closed_at")


def feed_csv(rows: list[dict[str, Any]]) -> str:
    """The feed as CSV (UTF-8 with BOM for Excel), one row per evaluation change, `FEED_FIELDS` in order."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.DictWriter(out, fieldnames=FEED_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        # Reasons and rectification notes are typed by people: a leading = + - @ is text, never a formula.
        writer.writerow({k: neutralise_formula("" if r.get(k) is None else str(r[k]).lower() if isinstance(r.get(k), bool)
                                               else r[k]) for k in FEED_FIELDS})
    return out.getvalue()


def add_evaluation_commands(subparsers: Any, add_home: Callable[[argparse.ArgumentParser], None],
                            open_app: Callable[[argparse.Namespace], Any]) -> None:
    group = cli_common.add_command(subparsers, "evaluation", "好差评：短信评价接口、省级好差评数据导出、考核报表、整改期限与考核权重")
    sub = group.add_subparsers(dest="evaluation_command", metavar="<操作>", required=True)

    def command(name: str, help_zh: str) -> argparse.ArgumentParser:
        parser = cli_common.add_command(sub, name, help_zh)
        add_home(parser)
        cli_common.add_passphrase_option(parser)
        return parser

    sms = command("sms", "短信网关收到村民回复时调用：登记评价并打印应回复给村民的短信内容")
    sms.add_argument("--from", dest="sender", required=True, metavar="号码", help="发短信的手机号码")
    sms.add_argument("--text", required=True, metavar="内容", help="短信内容，如“ABCDE-FGHJK 1”")
    sms.set_defaults(handler=lambda args: _sms(args, open_app))

    secret = command("sms-secret", "生成短信网关调用评价接口（POST /public/sms-reply）的口令：只显示一次，旧口令随即失效")
    secret.set_defaults(handler=lambda args: _sms_secret(args, open_app))

    feed = command("feed", "导出省级好差评数据（不含个人信息），从上次的游标接着导出")
    feed.add_argument("--after", type=int, default=0, metavar="游标", help="上次导出打印的游标（首次为 0）")
    feed.add_argument("--format", choices=("json", "csv"), default="json", help="json 或 csv")
    feed.add_argument("--limit", type=int, default=5000, metavar="条数", help="每次最多导出的条数（不超过 5000）")
    feed.add_argument("--out", required=True, metavar="文件", help="导出文件路径（已存在时不会覆盖）")
    feed.set_defaults(handler=lambda args: _feed(args, open_app))

    report = command("report", "导出考核报表（Excel）：按月、季度、年或日期段")
    report.add_argument("--period", default="", metavar="期间", help="2026-11、2026-Q4、2026 或 2026-11-02~2026-11-20；默认本月")
    report.add_argument("--by", default="village", choices=("village", "agent", "operator", "catalog", "kind", "hop"),
                        help="统计对象：村、代办员、窗口工作人员、事项、办件类型、环节")
    report.add_argument("--out", required=True, metavar="文件", help="导出的 .xlsx 文件路径（已存在时不会覆盖）")
    report.set_defaults(handler=lambda args: _report(args, open_app))

    settings = command("settings", "查看或设置差评整改期限（工作日）、考核权重（合计 100 分）和村民评价网址")
    settings.add_argument("--rectify-days", type=int, default=None, metavar="天数", help="差评整改期限，1 到 30 个工作日")
    settings.add_argument("--weights", default=None, metavar="权重",
                          help="如 on_time=40,satisfaction=30,no_bad_reviews=10,bad_reviews_closed=10,follow_up_good=10")
    settings.add_argument("--follow-up-percent", type=int, default=None, metavar="比例",
                          help="每周回访随机抽样比例，1 到 100（县级下发设置后以县级为准）")
    settings.add_argument("--public-url", default=None, metavar="网址",
                          help="村民扫码评价打开的乡镇网址（签收单二维码），如 https://qingshi.example.cn")
    settings.set_defaults(handler=lambda args: _settings(args, open_app))


def _evaluations(app: Any) -> Any:
    from town_center.evaluation import Evaluations

    return Evaluations(app.handling)


def _write_new(path: str, data: bytes) -> None:
    target = Path(path)
    try:
        with target.open("xb") as f:
            f.write(data)
    except FileExistsError:
        raise EvaluationError(f"文件 {target} 已存在，请换一个文件名") from None
    except OSError as exc:
        raise EvaluationError(f"无法写入文件 {target}：{os_error_zh(exc)}") from None


def _sms(args: argparse.Namespace, open_app: Callable[[argparse.Namespace], Any]) -> int:
    app = open_app(args)
    try:
        reply = _evaluations(app).rate_by_sms(args.sender, args.text)
    finally:
        app.close()
    print(reply)
    return 0


def _sms_secret(args: argparse.Namespace, open_app: Callable[[argparse.Namespace], Any]) -> int:
    from town_center.sms_hook import SECRET_HEADER, SMS_HOOK_PATH, new_sms_secret

    app = open_app(args)
    try:
        secret = new_sms_secret(app.store)
    finally:
        app.close()
    print(f"短信网关口令（只显示这一次，请填入短信网关的配置，旧口令已失效）：{secret}")
    print(f"短信网关收到村民回复时，以 POST 调用 乡镇网址{SMS_HOOK_PATH}，请求头 {SECRET_HEADER}: 口令，"
          "表单字段 from（发信号码）和 text（短信内容）；把返回的文字作为回复短信发给村民。")
    return 0


def _feed(args: argparse.Namespace, open_app: Callable[[argparse.Namespace], Any]) -> int:
    if args.after < 0:
        raise EvaluationError("游标不能为负数")
    app = open_app(args)
    try:
        rows, cursor = _evaluations(app).feed(args.after, limit=args.limit)
    finally:
        app.close()
    if args.format == "json":
        body = json.dumps({"format": "quancheng-evaluation-feed/1", "after": args.after, "next_cursor": cursor,
                           "evaluations": rows}, ensure_ascii=False, indent=1).encode("utf-8")
    else:
        body = feed_csv(rows).encode("utf-8")
    _write_new(args.out, body)
    print(f"已导出 {len(rows)} 条评价到 {args.out}；下次导出请用 --after {cursor}")
    return 0


def _report(args: argparse.Namespace, open_app: Callable[[argparse.Namespace], Any]) -> int:
    from town_center.assessment import Assessment, parse_period, report_xlsx

    app = open_app(args)
    try:
        evaluations = _evaluations(app)
        today = app.handling.calendar.local_date(app.clock.now())
        report = Assessment(evaluations).report(parse_period(args.period, today), args.by)
        data = report_xlsx(report)
    finally:
        app.close()
    _write_new(args.out, data)
    print(f"已导出《{report.title}》到 {args.out}（{len(report.rows)} 行）")
    return 0


def _settings(args: argparse.Namespace, open_app: Callable[[argparse.Namespace], Any]) -> int:
    weights = parse_weights(args.weights) if args.weights else None
    app = open_app(args)
    try:
        evaluations = _evaluations(app)
        changed = (args.rectify_days is not None or weights is not None or args.public_url is not None
                   or args.follow_up_percent is not None)
        settings = evaluations.configure(rectify_working_days=args.rectify_days, weights=weights,
                                         public_url=args.public_url, follow_up_percent=args.follow_up_percent) \
            if changed else evaluations.settings()
    finally:
        app.close()
    w = settings.weights
    print(f"差评整改期限：{settings.rectify_working_days} 个工作日")
    print(f"回访抽样比例：{settings.follow_up_percent}%")
    print(f"村民评价网址：{settings.public_url or '（尚未设置）'}")
    print(f"考核权重：按时办结 {w.on_time}，群众满意度 {w.satisfaction}，无差评 {w.no_bad_reviews}，"
          f"差评整改办结 {w.bad_reviews_closed}，回访满意 {w.follow_up_good}；每件投诉扣 {w.complaint_deduction} 分")
    print("以上整改期限、权重和抽样比例由县级统一设置并下发" if settings.from_county
          else "县级尚未下发考核设置，暂用本乡镇的设置")
    sys.stdout.flush()
    return 0
