"""Hash-chain verification: one signed chain per device key, checked link by link.

`check_link` is the single rule every tier applies to one incoming envelope against what it
already holds for that author. `verify_chain` runs it over a whole log and names the first bad
record and the reason, telling apart a dropped record (gap), a duplicate, a reordering and a fork.
"""
from __future__ import annotations

import enum
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from shared.envelope import GENESIS, ChainTip, open_record
from shared.errors import ChainError, EnvelopeError
from shared.keys import KeyDirectory
from shared.signing import is_valid, payload_hash
from shared.wire.v1 import envelope_pb2, records_pb2


class BreakReason(str, enum.Enum):
    MALFORMED = "malformed"
    AUTHOR_MISMATCH = "author_mismatch"
    UNKNOWN_KEY = "unknown_key"
    REVOKED_KEY = "revoked_key"
    BAD_SIGNATURE = "bad_signature"
    WRONG_PREV_HASH = "wrong_prev_hash"
    SEQ_GAP = "seq_gap"
    REORDERED = "reordered"
    DUPLICATE = "duplicate"
    FORK = "fork"

    @property
    def label_zh(self) -> str:
        return _LABELS_ZH[self]


_LABELS_ZH = {
    BreakReason.MALFORMED: "记录无法解码或格式错误",
    BreakReason.AUTHOR_MISMATCH: "记录作者与签名密钥不一致",
    BreakReason.UNKNOWN_KEY: "未知的设备密钥",
    BreakReason.REVOKED_KEY: "设备密钥已吊销",
    BreakReason.BAD_SIGNATURE: "签名无效",
    BreakReason.WRONG_PREV_HASH: "前一记录哈希不符",
    BreakReason.SEQ_GAP: "序号缺失（有记录丢失）",
    BreakReason.REORDERED: "记录顺序错乱",
    BreakReason.DUPLICATE: "重复的记录",
    BreakReason.FORK: "分叉：同一序号出现不同内容",
}


@dataclass(frozen=True)
class ChainBreak:
    index: int          # position in the verified sequence
    key_id: str
    seq: int            # 0 when the record could not be decoded
    reason: BreakReason
    detail: str = ""

    def message_zh(self) -> str:
        where = f"第 {self.index + 1} 条记录（密钥 {self.key_id[:8]}…，序号 {self.seq}）"
        return f"{where}：{self.reason.label_zh}" + (f"（{self.detail}）" if self.detail else "")


@dataclass
class AuthorState:
    """What a verifier holds for one author: its tip and the hash at every seq seen."""

    tip: ChainTip = GENESIS
    hashes: dict[int, bytes] = field(default_factory=dict)


def check_link(
    envelope: envelope_pb2.Envelope,
    keys: KeyDirectory,
    tip: ChainTip,
    hash_at_seq: Mapping[int, bytes],
    *,
    signature_ok: bool | None = None,
) -> tuple[records_pb2.Record | None, BreakReason | None, str]:
    """Check one envelope against its author's chain state.

    Returns (record, None, "") when it extends the chain by exactly one link; otherwise the reason
    and a short detail. `signature_ok` lets a caller pass a signature result computed in parallel.
    Signatures are checked before sequence rules: only a validly signed record can be a fork.
    """
    try:
        record = open_record(envelope)
    except EnvelopeError as exc:
        return None, BreakReason.MALFORMED, str(exc)
    header = record.header
    if header.author_key_id != envelope.key_id:
        return record, BreakReason.AUTHOR_MISMATCH, ""
    known = keys.lookup(envelope.key_id)
    if known is None:
        return record, BreakReason.UNKNOWN_KEY, ""
    if known.revoked and header.seq > known.last_valid_seq:
        return record, BreakReason.REVOKED_KEY, f"吊销后仅序号 {known.last_valid_seq} 及以前有效"
    if signature_ok is None:
        signature_ok = is_valid(known.public_key, envelope.payload, envelope.signature)
    if not signature_ok:
        return record, BreakReason.BAD_SIGNATURE, ""
    seq = header.seq
    if seq <= tip.seq:
        seen = hash_at_seq.get(seq)
        if seen is not None and seen == payload_hash(envelope.payload):
            return record, BreakReason.DUPLICATE, ""
        return record, BreakReason.FORK, ""
    if seq > tip.seq + 1:
        return record, BreakReason.SEQ_GAP, f"期望序号 {tip.seq + 1}，收到 {seq}"
    if header.prev_hash != tip.hash:
        return record, BreakReason.WRONG_PREV_HASH, ""
    return record, None, ""


@dataclass
class ChainReport:
    verified: int
    first_break: ChainBreak | None
    tips: dict[str, ChainTip]

    @property
    def ok(self) -> bool:
        return self.first_break is None


def _signatures_in_parallel(envelopes: Sequence[envelope_pb2.Envelope], keys: KeyDirectory, workers: int) -> list[bool | None]:
    # libsodium releases the GIL, so threads verify on every core. Each thread takes one
    # contiguous slice and loops itself: per-item task dispatch would cost more than it saves.
    def run(start: int, stop: int) -> list[bool | None]:
        out: list[bool | None] = []
        for env in envelopes[start:stop]:
            known = keys.lookup(env.key_id)
            out.append(None if known is None else is_valid(known.public_key, env.payload, env.signature))
        return out

    size = -(-len(envelopes) // workers)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        parts = list(pool.map(run, range(0, len(envelopes), size), range(size, len(envelopes) + size, size)))
    return [ok for part in parts for ok in part]


def verify_chain(
    envelopes: Iterable[envelope_pb2.Envelope],
    keys: KeyDirectory,
    *,
    start: Mapping[str, ChainTip] | None = None,
    workers: int = 1,
) -> ChainReport:
    """Verify a log (one author or many interleaved) and stop at the first bad record.

    A record whose seq jumps ahead is REORDERED when the missing seq appears later in the log and
    a SEQ_GAP when it never does; an earlier seq with identical bytes is a DUPLICATE, with
    different bytes a FORK.
    """
    items = list(envelopes)
    states: dict[str, AuthorState] = {k: AuthorState(tip=t) for k, t in (start or {}).items()}
    later_positions: dict[tuple[str, int], int] = {}
    signature_results: list[bool | None] = (
        _signatures_in_parallel(items, keys, workers) if workers > 1 else [None] * len(items)
    )
    for index, env in enumerate(items):
        state = states.setdefault(env.key_id, AuthorState())
        record, reason, detail = check_link(env, keys, state.tip, state.hashes, signature_ok=signature_results[index])
        if reason is None:
            assert record is not None
            digest = payload_hash(env.payload)
            state.tip = ChainTip(record.header.seq, digest)
            state.hashes[record.header.seq] = digest
            continue
        seq = record.header.seq if record is not None else 0
        if reason is BreakReason.SEQ_GAP:
            if not later_positions:
                later_positions = _seq_positions(items)
            expected = (env.key_id, state.tip.seq + 1)
            if later_positions.get(expected, -1) > index:
                reason = BreakReason.REORDERED
        return ChainReport(index, ChainBreak(index, env.key_id, seq, reason, detail), _tips(states))
    return ChainReport(len(items), None, _tips(states))


def _seq_positions(items: Sequence[envelope_pb2.Envelope]) -> dict[tuple[str, int], int]:
    positions: dict[tuple[str, int], int] = {}
    for i, env in enumerate(items):
        try:
            record = open_record(env)
        except EnvelopeError:
            continue
        positions[(env.key_id, record.header.seq)] = i
    return positions


def _tips(states: dict[str, AuthorState]) -> dict[str, ChainTip]:
    return {k: s.tip for k, s in states.items()}


def require_chain(envelopes: Iterable[envelope_pb2.Envelope], keys: KeyDirectory) -> dict[str, ChainTip]:
    """Verify and raise `ChainError` naming the first bad record; returns each author's tip."""
    report = verify_chain(envelopes, keys)
    if report.first_break is not None:
        brk = report.first_break
        raise ChainError(brk.reason, brk.seq, brk.message_zh())
    return report.tips


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))
