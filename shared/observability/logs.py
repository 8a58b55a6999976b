"""Structured logs without personal data.

Code never logs an applicant's name, ID number or phone on purpose (only key ids, seqs, matter ids);
`PersonalDataFilter` is the second line of defence: anything that looks like a resident ID number
(GB 11643, 18 characters) or a mainland mobile number is masked in the final message, whatever
logger or library wrote it. It also escapes control characters (newlines, carriage returns, escape
sequences, Unicode line separators) in the message and in string extras, and indents every line of
a traceback, so text a sender chose (an enrollment's holder name, a peer string) can never start a
log line of its own, in any format. `JsonFormatter` writes one JSON object a line for log collectors.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import sys
from typing import Any, TextIO

from shared.errors import SettingError

__all__ = ["JsonFormatter", "PersonalDataFilter", "configure_logging", "scrub", "escape_controls", "LOG_FORMAT_ENV",
           "LOG_FORMATS"]

LOG_FORMAT_ENV = "QUANCHENG_LOG_FORMAT"
LOG_FORMATS = ("text", "json")

# Bounded by non-alphanumerics so hex key ids and record ids that happen to hold long digit runs stay intact.
_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])(\d{6})(\d{8})(\d{3}[\dXx])(?![0-9A-Za-z])")
_MOBILE = re.compile(r"(?<![0-9A-Za-z])(1[3-9]\d)(\d{4})(\d{4})(?![0-9A-Za-z])")

# LogRecord's own attributes: everything else on a record came from `extra=` and goes into the JSON.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName", "_quancheng_clean"}


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_controls(text: str) -> str:
    """Control characters written as escapes (a newline as the two characters \\n, ESC as \\x1b)."""
    return _CONTROL.sub(lambda m: _NAMED.get(m.group(), f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                                             else f"\\u{ord(m.group()):04x}"), text)


def _indented(block: str) -> str:
    # A traceback keeps its lines, each indented and escaped: an exception message cannot forge a record.
    return "\n".join("  " + escape_controls(line) for line in block.splitlines())


def scrub(text: str) -> str:
    """Mask ID numbers (keep the first 4 and last 4, as on screen) and mobile numbers (138****5678)."""
    text = _ID_NUMBER.sub(lambda m: m.group(1)[:4] + "*" * 10 + m.group(3)[-4:], text)
    return _MOBILE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)


class PersonalDataFilter(logging.Filter):
    """Rewrites each record's message (and string extras) through `scrub` before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not lose the line; logging reports it itself
            return True
        if getattr(record, "_quancheng_clean", False):
            return True   # already cleaned by another handler's filter: escaping twice would double the backslashes
        record.msg, record.args = escape_controls(scrub(message)), None
        for name, value in list(vars(record).items()):
            if name not in _STANDARD and isinstance(value, str):
                setattr(record, name, escape_controls(scrub(value)))
        if record.exc_info and not record.exc_text:
            record.exc_text = _indented(scrub(logging.Formatter().formatException(record.exc_info)))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = _indented(scrub(record.exc_text))
        if record.stack_info:
            record.stack_info = _indented(scrub(record.stack_info))
        record._quancheng_clean = True
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, process, thread, and
    any `extra=` fields, so a collector can filter by key id or matter id without parsing text."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
            "thread": record.threadName,
        }
        for name, value in vars(record).items():
            if name not in _STANDARD and name not in entry:
                entry[name] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(*, verbose: bool = False, fmt: str | None = None, stream: TextIO | None = None) -> logging.Handler:
    """Set the root logger for a process: `fmt` is "text" or "json" (default from QUANCHENG_LOG_FORMAT,
    else text); every line passes the personal-data filter. Returns the handler it installed."""
    fmt = (fmt or os.environ.get(LOG_FORMAT_ENV) or "text").strip().lower()
    if fmt not in LOG_FORMATS:
        raise SettingError(f"日志格式只能是 {' 或 '.join(LOG_FORMATS)}，收到“{fmt}”")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(PersonalDataFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json"
                         else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    return handler
