"""Envelopes: a record serialized once, signed over those exact bytes, carried and stored as bytes.

Nothing here re-serializes a received record: `open_record` parses the payload only to read it,
and every hash and signature check is over `Envelope.payload` as received.
"""
from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from shared.errors import EnvelopeError
from shared.signing import Signer, is_valid, payload_hash
from shared.wire.v1 import envelope_pb2, records_pb2

Envelope = envelope_pb2.Envelope
Record = records_pb2.Record
Receipt = envelope_pb2.Receipt

GENESIS_HASH = bytes(32)


@dataclass(frozen=True, slots=True)
class ChainTip:
    """Where an author's chain ends: the last seq and the hash of its payload (0 / zeros when empty)."""

    seq: int = 0
    hash: bytes = GENESIS_HASH


GENESIS = ChainTip()


@dataclass(frozen=True, slots=True)
class SignedRecord:
    envelope: envelope_pb2.Envelope
    record_id: str
    seq: int
    hash: bytes

    @property
    def tip(self) -> ChainTip:
        return ChainTip(self.seq, self.hash)


def sign_next(signer: Signer, record: records_pb2.Record, tip: ChainTip, claimed_time_ms: int) -> SignedRecord:
    """Fill `record`'s header as the next link after `tip`, serialize once, and sign those bytes.

    Pure apart from choosing a record id when the caller left it empty. The caller persists the
    result and only then treats the returned tip as its new tip.
    """
    header = record.header
    if not header.record_id:
        header.record_id = str(uuid.uuid4())
    header.author_key_id = signer.key_id
    header.seq = tip.seq + 1
    header.prev_hash = tip.hash
    header.claimed_time_ms = claimed_time_ms
    payload = record.SerializeToString()
    envelope = envelope_pb2.Envelope(payload=payload, signature=signer.sign(payload), key_id=signer.key_id)
    return SignedRecord(envelope, header.record_id, header.seq, payload_hash(payload))


def sign_receipt(signer: Signer, receipt: envelope_pb2.Receipt) -> envelope_pb2.Envelope:
    receipt.receiver_key_id = signer.key_id
    payload = receipt.SerializeToString()
    return envelope_pb2.Envelope(payload=payload, signature=signer.sign(payload), key_id=signer.key_id)


def open_record(envelope: envelope_pb2.Envelope) -> records_pb2.Record:
    """Parse an envelope's payload as a `Record` and check its header's shape (not its signature)."""
    try:
        record = records_pb2.Record.FromString(envelope.payload)
    except DecodeError as exc:
        raise EnvelopeError("记录无法解码") from exc
    header = record.header
    if not record.HasField("header") or header.seq < 1:
        raise EnvelopeError("记录缺少有效的记录头（seq 必须从 1 开始）")
    if len(header.prev_hash) != 32:
        raise EnvelopeError("记录头的 prev_hash 必须是 32 字节")
    if not header.record_id:
        raise EnvelopeError("记录头缺少 record_id")
    return record


def open_receipt(envelope: envelope_pb2.Envelope) -> envelope_pb2.Receipt:
    try:
        receipt = envelope_pb2.Receipt.FromString(envelope.payload)
    except DecodeError as exc:
        raise EnvelopeError("回执无法解码") from exc
    if receipt.seq < 1 or len(receipt.record_hash) != 32:
        raise EnvelopeError("回执内容不完整")
    return receipt


def receipt_problem(envelope: envelope_pb2.Envelope, *, receiver_key_id: str, receiver_public_key: bytes,
                    own_key_id: str) -> str | None:
    """Why a sender must not trust this receipt (None when it may): signed by another key than the
    receiver's, a bad signature, undecodable, or a receipt for another sender's record."""
    if envelope.key_id != receiver_key_id:
        return "signed by an unknown key"
    if not is_valid(receiver_public_key, envelope.payload, envelope.signature):
        return "bad signature"
    try:
        receipt = open_receipt(envelope)
    except EnvelopeError as exc:
        return str(exc)
    if receipt.author_key_id != own_key_id:
        return "receipt for another sender"
    return None


def open_down_records(envelopes: Sequence[envelope_pb2.Envelope], *, receiver_key_id: str, receiver_public_key: bytes,
                      refusal_zh: str) -> list[records_pb2.Record]:
    """Records pulled from the tier above, each verified under its key. One that does not verify
    refuses the whole page (`EnvelopeError` with `refusal_zh`): the caller's cursor must not move."""
    records = []
    for envelope in envelopes:
        if envelope.key_id != receiver_key_id or not is_valid(receiver_public_key, envelope.payload, envelope.signature):
            raise EnvelopeError(refusal_zh)
        records.append(open_record(envelope))
    return records
