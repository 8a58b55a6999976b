"""An append-only file of signed envelopes: a device's ledger exported for audit or carried on a USB stick.

Format: the magic line `QCLOG1\\n`, then for each envelope a 4-byte big-endian length and the
serialized `Envelope`. Envelopes are not re-signed or re-encoded: their payloads are the signed
bytes. A crash mid-append leaves at most one truncated tail entry, which reading reports and
appending cuts off before writing, so a torn write never becomes part of the ledger.
"""
from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import DecodeError

from shared.errors import EnvelopeError
from shared.wire.v1 import envelope_pb2

MAGIC = b"QCLOG1\n"
_LENGTH = struct.Struct(">I")
# An envelope larger than this is not one of ours (the relay's own bound is far lower).
MAX_ENTRY_BYTES = 16 * 1024 * 1024


@dataclass
class LedgerContents:
    envelopes: list[envelope_pb2.Envelope]
    valid_bytes: int          # length of the intact prefix
    torn_tail_bytes: int      # bytes after it, left by an interrupted append


def read_ledger(path: Path) -> LedgerContents:
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        raise EnvelopeError(f"不是台账文件（缺少文件头）：{path.name}")
    pos, out = len(MAGIC), list[envelope_pb2.Envelope]()
    while pos + _LENGTH.size <= len(data):
        (length,) = _LENGTH.unpack_from(data, pos)
        if length > MAX_ENTRY_BYTES:
            raise EnvelopeError(f"台账文件第 {len(out) + 1} 条记录长度异常：{length} 字节")
        end = pos + _LENGTH.size + length
        if end > len(data):
            break
        try:
            out.append(envelope_pb2.Envelope.FromString(data[pos + _LENGTH.size : end]))
        except DecodeError as exc:
            raise EnvelopeError(f"台账文件第 {len(out) + 1} 条记录无法解码") from exc
        pos = end
    return LedgerContents(out, pos, len(data) - pos)


class LedgerAppender:
    """Appends to a ledger file kept open: the intact prefix is found once, on open."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.exists():
            intact = read_ledger(path).valid_bytes
            if intact != path.stat().st_size:
                os.truncate(path, intact)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Created owner-only from the first byte: whatever the umask, no other account can read
            # the ledger (it names matters, villages and times).
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as fh:
                fh.write(MAGIC)
                fh.flush()
                os.fsync(fh.fileno())
        self._fh = open(path, "ab")
        os.fchmod(self._fh.fileno(), 0o600)   # a ledger carried over from an older export as well

    def append(self, envelopes: Iterable[envelope_pb2.Envelope]) -> int:
        """Append and fsync before returning. Returns how many envelopes were written."""
        count = 0
        for env in envelopes:
            blob = env.SerializeToString()
            self._fh.write(_LENGTH.pack(len(blob)) + blob)
            count += 1
        self._fh.flush()
        os.fsync(self._fh.fileno())
        return count

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> LedgerAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def append_to_ledger(path: Path, envelopes: Iterable[envelope_pb2.Envelope]) -> int:
    """Append and fsync; creates the file when absent. Returns how many envelopes were written."""
    with LedgerAppender(path) as appender:
        return appender.append(envelopes)
