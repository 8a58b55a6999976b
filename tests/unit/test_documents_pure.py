"""The pure part of the written documents: numbers 文号 (format, parsing what a person typed, the year
in Beijing time), check codes, and signing and verifying a document without any store."""
from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from shared.documents.content import DocumentContent, Line, canonical_json, normalise_hash, short_hash
from shared.documents.errors import DocumentInvalid
from shared.documents.kinds import DocumentKind, IssuingTier
from shared.documents.numbering import format_number, numbering_year, parse_number
from shared.documents.signed import issue, verify_document
from shared.signing import Signer


def content(**overrides: object) -> DocumentContent:
    values: dict[str, object] = dict(
        kind=DocumentKind.RETURNED, tier=IssuingTier.TOWNSHIP, number="青石镇便民中心〔2026〕退字第7号", title="退回件通知书",
        issuer_name="青石镇便民服务中心", seal_text="青石镇人民政府便民服务中心", issued_at_ms=1_795_000_000_000,
        matter_id="m-1", addressee="李桂兰", opening="经审查，决定不予受理。", lines=(Line("退回理由", "主要材料缺失"),))
    values.update(overrides)
    return DocumentContent(**values)


def test_a_number_reads_back_as_typed_with_ascii_brackets_or_full_width_digits() -> None:
    assert format_number("青石镇便民中心", 2026, DocumentKind.PROMISED_ACCEPTANCE, 12) == "青石镇便民中心〔2026〕诺字第12号"
    for typed in ("青石镇便民中心〔2026〕诺字第12号", " 青石镇便民中心[2026]诺字第12号 ", "青石镇便民中心（２０２６）诺字第１２号"):
        assert parse_number(typed).text == "青石镇便民中心〔2026〕诺字第12号"
    with pytest.raises(DocumentInvalid, match="文书编号格式不对"):
        parse_number("诺字12号")
    with pytest.raises(ValueError):
        format_number("青石镇便民中心", 2026, DocumentKind.RETURNED, 0)


def test_numbers_restart_in_the_new_year_by_beijing_time() -> None:
    assert numbering_year(dt.datetime(2026, 12, 31, 16, 30, tzinfo=dt.UTC)) == 2027   # 00:30 on 1 January in Beijing
    assert numbering_year(dt.datetime(2026, 12, 31, 15, 30, tzinfo=dt.UTC)) == 2026


def test_the_check_code_is_accepted_as_printed_and_malformed_codes_are_refused_in_chinese() -> None:
    digest = "ab" * 32
    assert short_hash(digest) == "ABAB-ABAB-ABAB-ABAB"
    assert normalise_hash("ABAB-ABAB-ABAB-ABAB") == "abababababababab"
    for bad in ("1234", "zzzz-zzzz-zzzz-zzzz", "a" * 65):
        with pytest.raises(DocumentInvalid, match="校验码"):
            normalise_hash(bad)


def test_a_signed_document_verifies_and_any_changed_field_or_foreign_key_does_not() -> None:
    signer = Signer.generate()
    doc = issue(content(), signer)
    keys = {signer.key_id: signer.public_key}
    assert verify_document(doc, keys, typed_hash=doc.content_hash[:16]).genuine
    altered = dataclasses.replace(doc, content_json=canonical_json(content(lines=(Line("退回理由", "材料齐全"),))))
    assert not verify_document(altered, keys).genuine
    other = Signer.generate()
    forged = issue(content(lines=(Line("退回理由", "材料齐全"),)), other)
    assert not verify_document(forged, keys).genuine                     # signed, but not by this tier
    assert not verify_document(doc, keys, typed_hash="0" * 16).genuine    # another paper's check code
