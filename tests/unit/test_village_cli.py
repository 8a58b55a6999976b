"""`village-agent` as the agent types it, in-process on a real data folder (and once through the real
console script): Chinese answers to bad input and never a traceback, a return with its notice, the
`catalog` sub-command the help points to, sign-off with the villager's mark, and no internal ids."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from shared.catalog import load_catalog
from shared.domain.catalog import Tier
from tests.unit.test_village_signature import blank_png, fingerprint_photo_png, signature_png
from tests.village_fixtures import PASSPHRASE, make_agent
from village_agent.cli import build_parser, main

CATALOG = load_catalog()
VILLAGE_ITEM = next(i for i in CATALOG if i.decided_by is Tier.VILLAGE)
ITEM = next(i for i in CATALOG if i.decided_by is not Tier.VILLAGE and any(m.tolerated_missing for m in i.auxiliary_materials))
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
CJK = re.compile(r"[\u4e00-\u9fff]")
ID_NUMBER = "43052419480312002X"
VILLAGER = ["--name", "李桂兰", "--id-number", ID_NUMBER, "--phone", "13907310001", "--address", "东山村三组 12 号"]
WITNESS = ["--authorization", "witness", "--witness-name", "赵六", "--witness-statement", "申请人口头委托"]


@pytest.fixture()
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    make_agent(tmp_path / "agent")
    monkeypatch.setenv("QUANCHENG_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("QUANCHENG_AGENT_DATA", str(tmp_path / "agent"))
    return tmp_path / "agent"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    return code, out.out, out.err


def ledger_length(capsys: pytest.CaptureFixture[str]) -> int:
    code, out, _ = run(capsys, "status", "--json")
    assert code == 0
    return int(json.loads(out)["last_seq"])


def file_request(capsys: pytest.CaptureFixture[str], item=VILLAGE_ITEM, materials=None) -> str:
    brought = ",".join(materials if materials is not None else [m.id for m in item.materials])
    code, out, err = run(capsys, "request", *VILLAGER, "--matter", item.code, "--materials", brought, *WITNESS, "--json")
    assert code == 0, err
    return str(json.loads(out)["lookup_code"])


def test_a_request_missing_a_main_and_a_tolerated_material_is_returned_with_its_notice(data, capsys) -> None:
    code, out, err = run(capsys, "request", *VILLAGER, "--matter", ITEM.code,
                         "--materials", ",".join(m.id for m in ITEM.main_materials[1:]), *WITNESS)
    assert code == 0, err
    assert "退回告知书" in out and "不予收件，予以退回" in out and ITEM.main_materials[0].name in out
    lookup = re.search(r"查询码：(\S+)", out)
    assert lookup is not None
    code, receipt, _ = run(capsys, "receipt", "--code", lookup.group(1))
    assert code == 0 and "退回告知书" in receipt and "一次性告知书" in receipt and "退回原因" in receipt


def test_the_help_names_only_sub_commands_that_exist(capsys) -> None:
    parser = build_parser()
    commands = set(parser._subparsers._group_actions[0].choices)
    mentioned = set(re.findall(r"village-agent ([a-z][a-z-]*)", parser.description or ""))
    assert mentioned and mentioned <= commands, mentioned - commands
    for sub in parser._subparsers._group_actions[0].choices.values():
        for action in sub._actions:
            for named in re.findall(r"village-agent ([a-z][a-z-]*)", action.help or ""):
                assert named in commands, (sub.prog, named)
    assert "catalog" in commands


def test_catalog_lists_every_code_with_its_materials_and_their_ids(data, capsys) -> None:
    code, out, _ = run(capsys, "catalog")
    assert code == 0
    for item in CATALOG:
        assert item.code in out and item.name in out
    conditional = next(m for i in CATALOG for m in i.materials if m.condition)
    tolerated = next(m for i in CATALOG for m in i.auxiliary_materials if m.tolerated_missing)
    assert re.search(rf"{conditional.id}\s+{re.escape(conditional.name)}（[^）]*{re.escape(conditional.condition)}", out)
    assert re.search(rf"{tolerated.id}\s+{re.escape(tolerated.name)}（辅助材料，可容缺", out)
    assert "主要材料，缺少即退回" in out


def test_catalog_for_one_code_shows_its_limits_fee_and_basis_and_an_unknown_code_is_refused(data, capsys) -> None:
    code, out, _ = run(capsys, "catalog", ITEM.code.lower())
    assert code == 0 and ITEM.name in out and ITEM.fee in out and "本县规定时限" in out and "报送乡镇" in out
    assert all(m.id in out for m in ITEM.materials)
    code, _, err = run(capsys, "catalog", "XX-999")
    assert code == 2 and "没有编码为 XX-999 的事项" in err


BAD_INPUTS = [
    pytest.param(["request", *VILLAGER, "--matter", "XX-999", *WITNESS], "办理事项", id="unknown-catalog-code"),
    pytest.param(["request", *VILLAGER, "--matter", "RS-003", "--materials", "no_such_paper", *WITNESS], "没有这些材料",
                 id="unknown-material"),
    pytest.param(["request", "--name", "李桂兰", "--matter", "RS-003"], "身份证号码", id="missing-fields"),
    pytest.param(["request", *VILLAGER, "--matter", ITEM.code, "--materials", ",".join(m.id for m in ITEM.main_materials),
                  "--commit", f"{ITEM.auxiliary_materials[0].id}=2026-13-45", *WITNESS], "日期", id="bad-date"),
    pytest.param(["request", *VILLAGER, "--matter", "RS-003", "--materials", "id_card", "--authorization", "fingerprint",
                  "--evidence-file", "/no/such/photo.jpg"], "文件或目录不存在", id="missing-photo-file"),
    pytest.param(["request", *VILLAGER, "--matter", "RS-003", "--materials", "id_card", "--authorization", "witness",
                  "--witness-name", "王芳", "--witness-statement", "见证"], "不能是代办员本人", id="agent-as-witness"),
    pytest.param(["show", "--code", "ZZZZZ-ZZZZZ"], "本机没有查询码为 ZZZZZ-ZZZZZ 的事项", id="nonexistent-matter"),
    pytest.param(["show", "--matter-id", "00000000-0000-0000-0000-000000000000"], "本机没有这个事项", id="nonexistent-matter-id"),
    pytest.param(["receipt"], "查询码", id="no-matter-given"),
    pytest.param(["appointment", "--at", "明天上午", "--place", "moon", "--purpose", "上门"], "时间格式", id="bad-appointment-time"),
    pytest.param(["visit", "--appointment", "abc"], "预约号", id="short-appointment-number"),
    pytest.param(["list", "--status", "done"], "可选", id="unknown-status"),
    pytest.param(["export", "--out", "/no/such/dir/ledger.qclog"], "不存在", id="export-to-missing-dir"),
    pytest.param(["catalog", "MZ"], "没有编码为", id="bad-catalog-code"),
]


@pytest.mark.parametrize("argv, expected", BAD_INPUTS)
def test_bad_input_is_answered_in_chinese_without_a_traceback_and_saves_nothing(data, capsys, argv: list[str], expected: str) -> None:
    before = ledger_length(capsys)
    code, out, err = run(capsys, *argv)
    assert code == 2, out + err
    assert expected in err and CJK.search(err)
    assert not re.search(r"\b(Error|Exception|KeyError|None)\b", err), err
    assert ledger_length(capsys) == before


def test_bad_passphrase_missing_data_folder_and_bad_json_are_answered_in_chinese(data, capsys, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("QUANCHENG_PASSPHRASE", "wrong-passphrase")
    code, _, err = run(capsys, "list")
    assert code == 2 and "口令错误" in err
    monkeypatch.setenv("QUANCHENG_PASSPHRASE", PASSPHRASE)
    code, _, err = run(capsys, "list", "--data", str(tmp_path / "nowhere"))
    assert code == 2 and "尚未初始化" in err
    code, _, err = run(capsys, "list", "--passphrase-file", str(tmp_path / "no-such-file"))
    assert code == 2 and "文件或目录不存在" in err


def test_batch_answers_each_bad_line_in_chinese_and_keeps_what_good_lines_saved(data, capsys, monkeypatch) -> None:
    import io

    good = json.dumps({"action": "request", "name": "李桂兰", "id_number": ID_NUMBER, "phone": "13907310001",
                       "address": "东山村", "matter": VILLAGE_ITEM.code, "materials": [m.id for m in VILLAGE_ITEM.materials],
                       "authorization": "witness", "witness_name": "赵六", "witness_statement": "口头委托"}, ensure_ascii=False)
    lines = ["{bad json", "[1, 2]", '{"action": "nope"}', "{}", '{"action": "request", "materials": 5}', good,
             '{"action": "signoff", "code": "ZZZZZ-ZZZZZ", "signature_b64": "!!!"}', '{"action": "list", "limit": "many"}']
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(lines) + "\n"))
    code, out, _ = run(capsys, "batch")
    answers = [json.loads(line) for line in out.splitlines()]
    assert code == 1 and len(answers) == len(lines)
    assert [a["ok"] for a in answers] == [False, False, False, False, False, True, False, False]
    assert all(CJK.search(a["error"]) for a in answers if not a["ok"])
    # enrollment, the one good request and the four documents its filing issued (receipt, notice, form, 委托书)
    assert ledger_length(capsys) == 6


def test_sign_off_needs_the_villagers_mark_and_takes_a_signature_fingerprint_or_witness(data, capsys, tmp_path) -> None:
    codes = [file_request(capsys) for _ in range(4)]
    for c in codes:
        assert run(capsys, "handover", "--code", c, "--result", "资格认证已通过")[0] == 0
    code, _, err = run(capsys, "signoff", "--code", codes[0], "--rating", "satisfied")
    assert code == 2 and "见证人" in err
    (tmp_path / "blank.png").write_bytes(blank_png())
    code, _, err = run(capsys, "signoff", "--code", codes[0], "--rating", "satisfied", "--signature-file", str(tmp_path / "blank.png"))
    assert code == 2 and "空白" in err
    (tmp_path / "sig.png").write_bytes(signature_png())
    (tmp_path / "thumb.png").write_bytes(fingerprint_photo_png())
    assert run(capsys, "signoff", "--code", codes[0], "--rating", "satisfied", "--signature-file", str(tmp_path / "sig.png"))[0] == 0
    assert run(capsys, "signoff", "--code", codes[1], "--rating", "satisfied", "--method", "fingerprint",
               "--evidence-file", str(tmp_path / "thumb.png"))[0] == 0
    code, _, err = run(capsys, "signoff", "--code", codes[2], "--rating", "satisfied", "--method", "witness",
                       "--witness-name", "王芳", "--witness-statement", "见证")
    assert code == 2 and "不能是代办员本人" in err
    code, out, _ = run(capsys, "signoff", "--code", codes[2], "--rating", "satisfied", "--method", "witness",
                       "--witness-name", "村委会 张主任", "--witness-statement", "群众确认已收到")
    assert code == 0 and "本次代办服务结束" in out
    code, out, _ = run(capsys, "show", "--code", codes[1])
    assert code == 0 and "已签收评价" in out


def test_list_and_show_name_matters_by_lookup_code_and_materials_by_name_only(data, capsys) -> None:
    lookup = file_request(capsys, ITEM, [m.id for m in ITEM.materials])
    code, listed, _ = run(capsys, "list")
    assert code == 0 and lookup in listed and ITEM.name in listed and "报送时限" in listed
    code, shown, _ = run(capsys, "show", "--code", lookup.lower())
    assert code == 0 and ITEM.materials[0].name in shown and "登记代办申请" in shown
    for text in (listed, shown):
        assert not UUID.search(text)
        assert not any(re.search(rf"(?<![A-Za-z_]){m.id}(?![A-Za-z_])", text) for m in ITEM.materials)
        assert not re.search(r"^[a-z_]+: ", text, flags=re.M)   # no English keys


def test_the_installed_console_script_answers_bad_json_in_chinese(data, tmp_path) -> None:
    script = Path(sys.executable).parent / "village-agent"
    result = subprocess.run([str(script), "batch", "--data", str(data)], input="{not json\n", capture_output=True, text=True,
                            timeout=120, env={"QUANCHENG_PASSPHRASE": PASSPHRASE, "PATH": "/usr/bin:/bin"})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert json.loads(result.stdout) == {"ok": False, "error": "第 1 行不是有效的 JSON"}


def test_forfeit_names_one_appointment_and_is_refused_in_chinese_before_the_time_and_without_a_contact(data, capsys) -> None:
    code, out, err = run(capsys, "appointment", "--at", "2030-01-02T09:30", "--place", "service_room", "--purpose", "补交材料", "--json")
    assert code == 0, err
    short = json.loads(out)["appointment_no"]
    before = ledger_length(capsys)
    code, _, err = run(capsys, "forfeit")
    assert code == 2 and "请填写要标记失约的预约号" in err
    code, _, err = run(capsys, "forfeit", "--appointment", short, "--contact-at", "2030-01-02T10:05", "--method", "phone",
                       "--outcome", "无人接听")
    assert code == 2 and "超过约定时间 30 分钟" in err   # the time has not come: nothing is forfeited
    code, _, err = run(capsys, "forfeit", "--appointment", short, "--contact-at", "明天", "--method", "phone", "--outcome", "无人接听")
    assert code == 2 and "联系时间" in err
    assert ledger_length(capsys) == before
