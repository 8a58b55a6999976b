"""Logs carry no personal data: whatever a logger is handed, ID numbers and mobile numbers come out
masked, in plain text and in JSON lines."""
from __future__ import annotations

import io
import json
import logging

import pytest

from shared.domain.id_number import with_check_char
from shared.errors import SettingError
from shared.observability.logs import configure_logging, scrub

ID_NUMBER = with_check_char("11010519491231002")
KEY_ID = "0123456789012345678901234567890a"     # hex key ids may hold long digit runs: left alone


def test_an_id_number_and_a_mobile_number_are_masked_but_key_ids_and_seqs_are_kept() -> None:
    text = scrub(f"申请人 {ID_NUMBER} 电话13812345678 key={KEY_ID} seq=123456789012")
    assert ID_NUMBER not in text and "13812345678" not in text
    assert f"{ID_NUMBER[:4]}**********{ID_NUMBER[-4:]}" in text and "138****5678" in text
    assert KEY_ID in text and "seq=123456789012" in text


def test_an_id_number_ending_in_x_is_masked_too() -> None:
    assert scrub("号码 11010519491231123X 已录入") == "号码 1101**********123X 已录入"


@pytest.fixture()
def restore_root_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_hold_the_message_the_logger_and_extras_with_personal_data_masked(restore_root_logging) -> None:
    out = io.StringIO()
    configure_logging(fmt="json", stream=out)
    log = logging.getLogger("town_center.test")
    log.warning("matter filed for %s", ID_NUMBER, extra={"matter_id": "M-1", "phone": "13912345678"})
    try:
        raise ValueError(f"bad id {ID_NUMBER}")
    except ValueError:
        log.exception("intake pass failed")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [entry["logger"] for entry in lines] == ["town_center.test", "town_center.test"]
    assert lines[0]["level"] == "WARNING" and lines[0]["matter_id"] == "M-1" and lines[0]["phone"] == "139****5678"
    assert "ValueError" in lines[1]["exception"]
    assert ID_NUMBER not in out.getvalue() and "13912345678" not in out.getvalue()


def test_plain_text_logs_are_masked_as_well(restore_root_logging) -> None:
    out = io.StringIO()
    configure_logging(fmt="text", stream=out)
    logging.getLogger("hub.test").info("电话 %s", "13812345678")
    assert "138****5678" in out.getvalue() and "13812345678" not in out.getvalue()


def test_an_unknown_log_format_is_refused_in_chinese() -> None:
    with pytest.raises(SettingError, match="日志格式只能是"):
        configure_logging(fmt="xml")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_newline_in_an_enrollment_name_cannot_forge_a_log_line(restore_root_logging, fmt: str) -> None:
    out = io.StringIO()
    configure_logging(fmt=fmt, stream=out)
    forged = "张三\n2026-12-05 08:00:00,000 INFO town_center.console: 管理员 admin 已批准全部设备\r\x1b[2K"
    logging.getLogger("shared.relay.server").info("enrollment pending key=%s holder=%s", "ab" * 16, forged,
                                                   extra={"holder": forged})
    try:
        raise ValueError("bad\nINFO forged from an exception")
    except ValueError:
        logging.getLogger("shared.relay.server").exception("failed for %s", forged)
    lines = out.getvalue().splitlines()
    if fmt == "json":
        assert len(lines) == 2
        first = json.loads(lines[0])
        assert first["message"].endswith("已批准全部设备\\r\\x1b[2K") and "\\n2026-12-05" in first["message"]
        assert "\n" not in first["holder"] and "\n" not in json.loads(lines[1])["exception"].splitlines()[-1]
    else:
        # One line per record, and every traceback line indented: nothing begins like a record but records.
        records = [line for line in lines if not line.startswith("  ")]
        assert len(records) == 2 and all("shared.relay.server:" in line for line in records)
        assert "\\n2026-12-05 08:00:00,000 INFO town_center.console" in records[0] and "\x1b" not in out.getvalue()
        assert any("bad\\nINFO forged" in line or "INFO forged" in line for line in lines if line.startswith("  "))
