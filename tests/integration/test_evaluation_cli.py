"""`town-center evaluation …` on a real township home: the SMS gateway's hook answers the villager in
Chinese, the provincial feed is written as JSON and CSV from a cursor without personal data, the
assessment workbook opens in openpyxl, and a bad setting is refused in Chinese."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from openpyxl import load_workbook

from shared import cli_common
from shared.domain.catalog import MatterKind
from tests.town_fixtures import OPERATOR, VillageDevice, township
from town_center import cli
from town_center.bootstrap import default_db_url, load_signer
from town_center.evaluation import Evaluations
from village_agent.services import lookup_code_hash

PASSPHRASE = "乡镇测试口令-足够长的一句话"


def test_the_gateway_hook_the_feed_and_the_report_from_the_command_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(cli_common.PASSPHRASE_ENV, PASSPHRASE)
    home = tmp_path / "home"
    assert cli.main(["init", "--home", str(home)]) == 0
    town = township(default_db_url(home), signer=load_signer(home, PASSPHRASE))
    try:
        matter_id = VillageDevice(town).file("MZ-003", lookup_hash=lookup_code_hash("HK7PM-3QW9X"), phone="13800001111")
        town.handling.classify(matter_id, MatterKind.IMMEDIATE, actor=OPERATOR)
        town.handling.record_result(matter_id, approved=True, summary="已发放", actor=OPERATOR)
        token = Evaluations(town.handling).issue_token(matter_id, by="wang")
    finally:
        town.close()
    capsys.readouterr()
    base = ["--home", str(home)]
    assert cli.main(["evaluation", "sms", *base, "--from", "13900009999", "--text", f"{token} 4 办事太慢"]) == 0
    reply = capsys.readouterr().out
    assert "感谢" in reply and "不满意" in reply and "整改" in reply
    assert cli.main(["evaluation", "sms", *base, "--from", "13900009999", "--text", f"{token} 1"]) == 0
    assert "一次一评" in capsys.readouterr().out

    out = tmp_path / "feed.json"
    assert cli.main(["evaluation", "feed", *base, "--after", "0", "--out", str(out)]) == 0
    assert "--after 1" in capsys.readouterr().out
    feed = json.loads(out.read_text(encoding="utf-8"))
    (row,) = feed["evaluations"]
    assert feed["next_cursor"] == 1 and row["channel"] == "sms" and row["reason"] == "efficiency"
    assert "13900009999" not in out.read_text(encoding="utf-8") and matter_id not in out.read_text(encoding="utf-8")
    assert cli.main(["evaluation", "feed", *base, "--after", "0", "--out", str(out)]) == 2
    assert "已存在" in capsys.readouterr().err
    as_csv = tmp_path / "feed.csv"
    assert cli.main(["evaluation", "feed", *base, "--after", "0", "--format", "csv", "--out", str(as_csv)]) == 0
    (line,) = list(csv.DictReader(io.StringIO(as_csv.read_text(encoding="utf-8-sig"))))
    assert line["level"] == "4" and line["rectification"] == "pending" and line["entered_by_agent"] == "false"

    book = tmp_path / "report.xlsx"
    assert cli.main(["evaluation", "report", *base, "--period", "2026", "--by", "catalog", "--out", str(book)]) == 0
    sheet = load_workbook(book)["考核统计"]
    assert sheet["A2"].value == "对象" and sheet["A3"].value and sheet["H3"].value == 1   # one villager rating

    capsys.readouterr()
    assert cli.main(["evaluation", "settings", *base, "--weights", "on_time=90"]) == 2
    assert "合计 100 分" in capsys.readouterr().err
    assert cli.main(["evaluation", "settings", *base, "--public-url", "ftp://x"]) == 2
    assert "评价网址" in capsys.readouterr().err
    assert cli.main(["evaluation", "settings", *base, "--rectify-days", "10", "--public-url", "https://qingshi.example.cn/"]) == 0
    out = capsys.readouterr().out
    assert "10 个工作日" in out and "https://qingshi.example.cn" in out
