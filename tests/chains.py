"""Builders for signed chains used across tests and benches."""
from __future__ import annotations

from shared.envelope import GENESIS, ChainTip, SignedRecord, sign_next
from shared.signing import Signer
from shared.wire.v1 import envelope_pb2, records_pb2

BASE_MS = 1_790_000_000_000  # 2026-09-21, an arbitrary fixed claimed time


def request_record(i: int) -> records_pb2.Record:
    record = records_pb2.Record()
    body = record.request_filed
    body.matter_id = f"00000000-0000-4000-8000-{i:012d}"
    body.catalog_code = "MZ-001"
    body.catalog_version = "2026.1"
    body.materials_brought.extend(["id-card", "hukou"])
    body.applicant.id_number_masked = "3301**********123X"
    body.applicant.sealed_details = bytes(80)
    body.intake_outcome = records_pb2.INTAKE_OUTCOME_ACCEPT
    body.village_code = "V001"
    return record


def build_chain(signer: Signer, n: int, tip: ChainTip = GENESIS) -> list[SignedRecord]:
    out: list[SignedRecord] = []
    for i in range(n):
        signed = sign_next(signer, request_record(tip.seq + 1 + i), tip, BASE_MS + i * 1000)
        out.append(signed)
        tip = signed.tip
    return out


def envelopes(chain: list[SignedRecord]) -> list[envelope_pb2.Envelope]:
    return [s.envelope for s in chain]
