"""Sample records for the README's first command: a real signed chain, with no personal data."""
from __future__ import annotations

import uuid
from pathlib import Path

from shared.chain import verify_chain
from shared.clock import Clock, to_unix_ms
from shared.envelope import GENESIS, ChainTip, open_record, sign_next
from shared.errors import ChainError
from shared.keys import InMemoryKeyDirectory, fingerprint
from shared.ledger_file import append_to_ledger, read_ledger
from shared.signing import Signer
from shared.wire.v1 import records_pb2

_SAMPLE_MATTERS = ("城乡居民养老保险参保登记", "高龄津贴申领", "残疾人证申领", "临时救助", "耕地地力保护补贴")


def _enrollment(signer: Signer, village_code: str) -> records_pb2.Record:
    record = records_pb2.Record()
    body = record.key_enrollment_requested
    body.public_key = signer.public_key
    body.role = records_pb2.KEY_ROLE_VILLAGE_AGENT
    body.holder_name = "示例代办员"
    body.village_code = village_code
    body.fingerprint = fingerprint(signer.public_key)
    return record


def _sample_request(i: int, village_code: str) -> records_pb2.Record:
    record = records_pb2.Record()
    body = record.request_filed
    body.matter_id = str(uuid.uuid4())
    body.catalog_code = f"DEMO-{i % len(_SAMPLE_MATTERS) + 1:03d}"
    body.intake_outcome = records_pb2.INTAKE_OUTCOME_ACCEPT
    body.village_code = village_code
    body.note = f"示例：{_SAMPLE_MATTERS[i % len(_SAMPLE_MATTERS)]}"
    return record


def append_demo_records(signer: Signer, ledger: Path, count: int, village_code: str, clock: Clock) -> tuple[int, ChainTip]:
    """Continue the ledger's chain (starting it with an enrollment record) and verify it whole."""
    keys = InMemoryKeyDirectory()
    keys.add_public_key(signer.public_key)
    tip = GENESIS
    if ledger.exists():
        existing = read_ledger(ledger).envelopes
        report = verify_chain(existing, keys)
        if report.first_break is not None:
            raise ChainError(report.first_break.reason, report.first_break.seq, report.first_break.message_zh())
        tip = report.tips.get(signer.key_id, GENESIS)
        if existing and tip == GENESIS:
            raise ChainError(None, 0, "台账文件属于另一台设备的密钥")
    batch = []
    if tip.seq == 0:
        signed = sign_next(signer, _enrollment(signer, village_code), tip, to_unix_ms(clock.now()))
        batch.append(signed.envelope)
        tip = signed.tip
    for i in range(count):
        signed = sign_next(signer, _sample_request(tip.seq + i, village_code), tip, to_unix_ms(clock.now()))
        batch.append(signed.envelope)
        tip = signed.tip
    written = append_to_ledger(ledger, batch)
    final = verify_chain(read_ledger(ledger).envelopes, keys)
    assert final.ok and open_record(batch[-1]).header.seq == tip.seq if batch else True
    return written, tip
