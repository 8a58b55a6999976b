"""Issue 15, item 1, as an attacker with a copy of the disks would see it: the three tiers run as separate
processes on loopback (`county-hub serve`, `town-center serve`, the `village-agent` command), people type ID
and mobile numbers into every free-text box they can reach (the laptop's note, appointment purpose and
hand-over; the township's return reason, result and escalation opinion; the county's decision reason) and
are refused in Chinese; two matters then go round for real (one decided at the township, whose result SMS
goes out, one decided at the county); the laptop exports its ledger and every tier takes a backup. After
the servers stop, no file under any tier's folder — databases with their WAL, logs, the SMS queue, the
ledger export, the backups — holds a raw ID number or a mobile number, typed or the applicants' own."""
from __future__ import annotations

import base64
import json
import os
import re
import sqlite3
import time
from pathlib import Path

from shared.catalog import load_catalog
from shared.domain import id_number
from shared.keys import enrollment_uri, load_key_file
from tests.e2e.test_three_tiers_processes import _sync_until, _wait_listed
from tests.process_fixtures import BIN, ConsoleClient, Served, free_port, run, village
from tests.village_fixtures import PASSPHRASE, SIGNATURE_PNG

APPLICANTS = {
    "MZ-003": {"name": "李桂兰", "id_number": id_number.with_check_char("43052419480312002"), "phone": "13907310001",
               "address": "东山村三组12号"},
    "MZ-001": {"name": "张建国", "id_number": id_number.with_check_char("11010519570704123"), "phone": "15873120002",
               "address": "东山村五组3号"},
}
TYPED_ID = id_number.with_check_char("33010219850512345")
TYPED_PHONE = "186 7312 0003"
SECRETS = [a["id_number"] for a in APPLICANTS.values()] + [a["phone"] for a in APPLICANTS.values()] + \
    [TYPED_ID, TYPED_PHONE, TYPED_PHONE.replace(" ", "")]
_MOBILE = re.compile(rb"(?<![0-9])1[3-9][0-9]{9}(?![0-9])")


def _request_line(code: str, **extra: str) -> str:
    item = load_catalog().item(code)
    return json.dumps(dict(APPLICANTS[code], action="request", matter=code, materials=[m.id for m in item.main_materials],
                           commitments={m.id: "2026-12-30" for m in item.auxiliary_materials},
                           authorization="drawn_signature", evidence_b64=base64.b64encode(SIGNATURE_PNG).decode(),
                           **extra), ensure_ascii=False) + "\n"


def _batch(data: Path, *lines: str) -> list[dict]:
    done = run([BIN / "village-agent", "batch", "--data", data], stdin="".join(lines), check=False)
    return [json.loads(line) for line in done.stdout.splitlines()]


def _refused_in_chinese(client: ConsoleClient, path: str, form: dict[str, str], field_zh: str) -> None:
    """A console form post with a number in it: answered 400 with the Chinese reason, nothing done."""
    page = client.http.get(f"/matters/{path.rsplit('/', 2)[1]}")
    version = re.search(r'name="expected_version" value="(\d+)"', page.text)
    assert version, page.text[:500]
    response = client.http.post(path, data={**form, "expected_version": version.group(1)},
                                headers={"X-CSRF-Token": client.csrf})
    assert response.status_code == 400, (path, response.status_code, response.text[:500])
    assert f"“{field_zh}”中不能填写" in response.text, response.text[:2000]


def _sms_outbox_settled(db: Path, timeout: float = 60) -> None:
    """Every applicant SMS the township queued has gone to the gateway (the log, here) and its number
    has been masked in the queue."""
    end = time.monotonic() + timeout
    while True:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            rows = conn.execute("SELECT status, payload_json FROM notification_outbox WHERE audience = 'applicant'").fetchall()
        if len(rows) == 2 and all(status == "sent" and "*" in json.loads(p)["recipient"] for status, p in rows):
            return
        if time.monotonic() > end:
            raise AssertionError(f"applicant SMS not yet sent and forgotten: {[status for status, _ in rows]}")
        time.sleep(0.5)


def _files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_numbers_typed_anywhere_are_refused_and_no_file_of_any_tier_holds_a_raw_id_or_mobile_number(tmp_path: Path) -> None:
    county_home, town_home, data = tmp_path / "county", tmp_path / "town", tmp_path / "village"
    grpc_county, web_county, grpc_town, web_town = free_port(), free_port(), free_port(), free_port()
    run([BIN / "county-hub", "init", "--home", county_home])
    run([BIN / "county-hub", "staff", "add", "chen", "--name", "陈主任", "--role", "director", "--home", county_home])
    run([BIN / "town-center", "init", "--home", town_home])
    for staff_id, name, role in (("wang", "王芳", "operator"), ("zhao", "赵主任", "director")):
        run([BIN / "town-center", "staff", "add", staff_id, "--name", name, "--role", role, "--home", town_home])
    run([BIN / "town-center", "county", "link", "--home", town_home, "--address", f"127.0.0.1:{grpc_county}",
         "--county-key", county_home / "county.pub", "--code", "T01", "--name", "青石镇"])
    town_key = load_key_file(town_home / "town.key", PASSPHRASE)
    link_key = load_key_file(town_home / "county_link.key", PASSPHRASE)
    run([BIN / "village-agent", "init", "--data", data, "--agent-name", "王代办", "--village-code", "V001",
         "--village-name", "东山村", "--township-code", "T01", "--township-name", "青石镇",
         "--township-address", f"127.0.0.1:{grpc_town}", "--township-key", enrollment_uri(town_key.public_key)])
    county = Served([BIN / "county-hub", "serve", "--home", county_home, "--listen", f"127.0.0.1:{grpc_county}",
                     "--console-listen", f"127.0.0.1:{web_county}"], county_home / "serve.log", [grpc_county, web_county]).start()
    town = Served([BIN / "town-center", "serve", "--home", town_home, "--listen", f"127.0.0.1:{grpc_town}",
                   "--console-listen", f"127.0.0.1:{web_town}"], town_home / "serve.log", [grpc_town, web_town]).start()
    try:
        _wait_listed([BIN / "county-hub", "townships", "list", "--home", county_home], link_key.key_id)
        run([BIN / "county-hub", "townships", "approve", link_key.key_id, "--home", county_home, "--by", "陈主任"])
        village(data, "sync", check=False)
        run([BIN / "town-center", "agents", "approve", village(data, "status")["key_id"], "--home", town_home,
             "--by", "赵主任"])

        # The laptop: a number in a note, an appointment's purpose or a hand-over is refused, by field.
        refused = _batch(data, _request_line("MZ-003", note=f"申请人身份证 {TYPED_ID}"),
                         json.dumps({"action": "appointment", "at": "2026-12-30T09:30", "place": "service_room",
                                     "purpose": f"补签委托书，先电话 {TYPED_PHONE}"}, ensure_ascii=False) + "\n")
        assert [r["ok"] for r in refused] == [False, False]
        assert refused[0]["fields"] == ["note"] and "身份证号码" in refused[0]["error"]
        assert refused[1]["fields"] == ["purpose"] and "手机号码" in refused[1]["error"]
        filed = _batch(data, _request_line("MZ-003", note="老人行动不便，需上门"), _request_line("MZ-001"))
        assert all(r["ok"] for r in filed), filed
        promised, reported = (r["matter_id"] for r in filed)
        village(data, "sync")

        wang = ConsoleClient(f"http://127.0.0.1:{web_town}", "wang")
        chen = ConsoleClient(f"http://127.0.0.1:{web_county}", "chen")
        page = f"/matters/{promised}"
        wang.wait_for(page, "分类")
        _refused_in_chinese(wang, f"{page}/classify", {"kind": "returned", "return_reason": f"请致电 {TYPED_PHONE}"},
                            "退回理由")
        wang.post(f"{page}/classify", {"kind": "promised", "promise_amount": "3", "promise_unit": "working_days"},
                  version_from=page)
        _refused_in_chinese(wang, f"{page}/record_result", {"approved": "yes", "summary": f"已办结，身份证{TYPED_ID}"},
                            "办理结果")
        wang.post(f"{page}/record_result", {"approved": "yes", "summary": "办理完成"}, version_from=page)

        page = f"/matters/{reported}"
        wang.wait_for(page, "分类")
        wang.post(f"{page}/classify", {"kind": "reported"}, version_from=page)
        _refused_in_chinese(wang, f"{page}/escalate", {"summary": f"初审通过，申请人电话 {TYPED_PHONE}", "confirm": "yes"},
                            "初审意见")
        wang.post(f"{page}/escalate", {"summary": "初审通过，请县级审批", "confirm": "yes"}, version_from=page)
        chen.wait_for(page, "县级开始计时")
        _refused_in_chinese(chen, f"{page}/decide", {"outcome": "approve", "reason": f"准予，身份证 {TYPED_ID}"},
                            "决定理由")
        chen.post(f"{page}/decide", {"outcome": "approve", "reason": "准予纳入最低生活保障"}, version_from=page)

        for mid in (promised, reported):
            _sync_until(data, mid, "result_ready")
        handover = _batch(data, json.dumps({"action": "handover", "matter_id": promised,
                                            "result": f"已领取，家属电话 {TYPED_PHONE}"}, ensure_ascii=False) + "\n")
        assert handover[0]["ok"] is False and handover[0]["fields"] == ["result_summary"]
        for mid in (promised, reported):
            village(data, "handover", "--matter-id", mid, "--result", "已领取")
            village(data, "signoff", "--matter-id", mid, "--rating", "very_satisfied", "--method", "witness",
                    "--witness-name", "村委会 张主任", "--witness-statement", "群众确认已收到")
        village(data, "sync")
        chen.wait_for(f"/matters/{reported}", "办结", timeout=60)
        _sms_outbox_settled(town_home / "town.db")
        wang.close()
        chen.close()
    finally:
        town_rc, county_rc = town.stop(), county.stop()
    assert town_rc == 0 and county_rc == 0

    # The laptop's ledger export (under the usual umask) and a backup of every tier.
    old_umask = os.umask(0o022)
    try:
        export = data / "exports" / "台账.qclog"
        for folder in (export.parent, town_home / "backups", county_home / "backups"):
            folder.mkdir()
        village(data, "export", "--out", str(export))
        run([BIN / "village-agent", "backup", "--data", data, "--out", data / "exports" / "东山村.qcbak"])
        run([BIN / "town-center", "backup", "--home", town_home, "--out", town_home / "backups" / "乡镇.bak"])
        run([BIN / "county-hub", "backup", "--home", county_home, "--out", county_home / "backups" / "县级.bak"])
    finally:
        os.umask(old_umask)
    assert export.stat().st_mode & 0o777 == 0o600

    files = _files_under(tmp_path)
    assert {p.name for p in files} >= {"county.db", "town.db", "agent.db", "台账.qclog", "serve.log"}
    for path in files:
        blob = path.read_bytes()
        where = path.relative_to(tmp_path)
        for secret in SECRETS:
            assert secret.encode() not in blob, f"{secret[:3]}… in {where}"
        for candidate in id_number.CANDIDATE_PATTERN.findall(blob):
            assert not id_number.is_valid(candidate.decode()), f"a valid ID number in {where}"
        for mobile in _MOBILE.findall(blob):
            raise AssertionError(f"a mobile number {mobile[:3].decode()}… in {where}")
    # Read only after the scan (a connection's close checkpoints the WAL): sent, with the number masked.
    with sqlite3.connect(f"file:{town_home / 'town.db'}?mode=ro", uri=True) as conn:
        sent = [json.loads(p) for (p,) in conn.execute(
            "SELECT payload_json FROM notification_outbox WHERE audience = 'applicant' AND status = 'sent'")]
    assert len(sent) == 2 and all(n["recipient"].count("*") == 4 for n in sent)
