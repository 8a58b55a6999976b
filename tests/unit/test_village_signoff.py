"""Sign-off 签收确认 needs the villager's own mark (drawn, a photo of the signed form, or a fingerprint
按手印), or a witness who is not the agent; an empty pad is refused. Through `AgentService` on a real
SQLite file; the sealed evidence is opened with the township's key to see what was kept."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.catalog import load_catalog
from shared.clock import FakeClock
from shared.domain.catalog import Tier
from shared.domain.id_number import with_check_char
from shared.sealing import open_sealed
from shared.signing import Signer
from shared.wire.v1 import records_pb2
from tests.unit.test_village_signature import blank_png, dot_png, fingerprint_photo_png, signature_png
from tests.village_fixtures import PASSPHRASE, make_agent
from village_agent.bootstrap import open_agent
from village_agent.domain import MatterStatus
from village_agent.errors import FormError
from village_agent.services import AgentService, Confirmation, RequestForm

NOW = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)
VILLAGE_ITEM = next(i for i in load_catalog() if i.decided_by is Tier.VILLAGE)


@pytest.fixture()
def handed_over(tmp_path: Path) -> Iterator[tuple[AgentService, Signer, str]]:
    township = make_agent(tmp_path / "agent")
    service = open_agent(tmp_path / "agent", PASSPHRASE, FakeClock(NOW))
    filed = service.file_request(RequestForm(
        applicant_name="李桂兰", id_number=with_check_char("43052419480312002"), phone="13907310001", address="东山村",
        catalog_code=VILLAGE_ITEM.code, materials_brought=[m.id for m in VILLAGE_ITEM.materials],
        authorization_method="witness", witness_name="赵六", witness_statement="口头委托"))
    service.hand_over(filed.matter_id, "资格认证已通过")
    yield service, township, filed.matter_id
    service.store.close()


def _signed_off(service: AgentService) -> records_pb2.SignedOff:
    records = [records_pb2.Record.FromString(r.envelope.payload) for r in service.store.ledger_rows()]
    # The 交付签收单 is signed into the chain right after the sign-off, in its transaction.
    return next(r for r in reversed(records) if r.HasField("signed_off")).signed_off


def _refused(service: AgentService, matter_id: str, **kwargs: object) -> str:
    seq = service.store.tip().seq
    with pytest.raises(FormError) as caught:
        service.sign_off(matter_id, "satisfied", **kwargs)
    assert service.store.tip().seq == seq and service.store.matter_state(matter_id).status is MatterStatus.HANDED_OVER
    return str(caught.value)


def test_a_sign_off_without_any_mark_of_the_villager_is_refused(handed_over) -> None:
    service, _, matter_id = handed_over
    assert "见证人" in _refused(service, matter_id)


@pytest.mark.parametrize("pad, why", [(blank_png(), "空白"), (blank_png(fill=b"\xff\xff\xff\xff"), "空白"),
                                      (dot_png(), "一点笔迹"), (blank_png(8, 8, b"\x00\x00\x00\xff"), "过小")])
def test_an_empty_or_nearly_empty_pad_is_refused_in_chinese(handed_over, pad: bytes, why: str) -> None:
    service, _, matter_id = handed_over
    assert why in _refused(service, matter_id, signature_png=pad)


def test_a_drawn_signature_closes_the_matter_and_travels_sealed_with_its_hash(handed_over) -> None:
    service, township, matter_id = handed_over
    pad = signature_png()
    service.sign_off(matter_id, "very_satisfied", "服务周到", pad)
    body = _signed_off(service)
    assert body.confirmation_method == records_pb2.AUTHORIZATION_METHOD_DRAWN_SIGNATURE
    assert open_sealed(township.seed(), body.sealed_signature) == pad and body.evidence_sha256 == hashlib.sha256(pad).digest()
    assert service.store.matter_state(matter_id).status is MatterStatus.SIGNED_OFF


def test_a_fingerprint_mark_is_accepted_as_the_villagers_confirmation(handed_over) -> None:
    service, township, matter_id = handed_over
    photo = fingerprint_photo_png()
    service.sign_off(matter_id, "satisfied", confirmation=Confirmation("fingerprint", photo))
    body = _signed_off(service)
    assert body.confirmation_method == records_pb2.AUTHORIZATION_METHOD_FINGERPRINT
    assert open_sealed(township.seed(), body.sealed_signature) == photo


def test_a_blank_photo_is_not_a_fingerprint(handed_over) -> None:
    service, _, matter_id = handed_over
    assert "空白" in _refused(service, matter_id, confirmation=Confirmation("fingerprint", blank_png(300, 300, b"\xff\xff\xff\xff")))


def test_a_photo_of_the_signed_form_is_accepted(handed_over) -> None:
    service, _, matter_id = handed_over
    service.sign_off(matter_id, "basically_satisfied", confirmation=Confirmation("photo_of_form", fingerprint_photo_png()))
    assert _signed_off(service).confirmation_method == records_pb2.AUTHORIZATION_METHOD_PHOTO_OF_FORM


@pytest.mark.parametrize("name", ["王芳", " 王 芳 ", "王芳。"])
def test_the_agent_cannot_be_the_witness_of_a_sign_off(handed_over, name: str) -> None:
    service, _, matter_id = handed_over
    assert "不能是代办员本人" in _refused(service, matter_id, confirmation=Confirmation(
        "witness", witness_name=name, witness_statement="群众确认已收到"))


def test_a_witness_who_is_not_the_agent_attests_with_a_statement(handed_over) -> None:
    service, township, matter_id = handed_over
    assert "见证说明" in _refused(service, matter_id, confirmation=Confirmation("witness", witness_name="村委会 张主任"))
    service.sign_off(matter_id, "satisfied", confirmation=Confirmation(
        "witness", witness_name="村委会 张主任", witness_statement="群众双手不便，本人在场见证其确认收到结果"))
    body = _signed_off(service)
    assert body.confirmation_method == records_pb2.AUTHORIZATION_METHOD_WITNESS
    attested = json.loads(open_sealed(township.seed(), body.sealed_signature))
    assert attested == {"witness_name": "村委会 张主任", "statement": "群众双手不便，本人在场见证其确认收到结果"}


def test_the_agent_cannot_witness_the_authorization_at_filing_either(tmp_path: Path) -> None:
    make_agent(tmp_path / "agent")
    service = open_agent(tmp_path / "agent", PASSPHRASE, FakeClock(NOW))
    try:
        with pytest.raises(FormError, match="不能是代办员本人"):
            service.file_request(RequestForm(
                applicant_name="李桂兰", id_number=with_check_char("43052419480312002"), phone="13907310001", address="东山村",
                catalog_code=VILLAGE_ITEM.code, materials_brought=[m.id for m in VILLAGE_ITEM.materials],
                authorization_method="witness", witness_name="王芳", witness_statement="口头委托"))
        assert service.store.count_matters() == 0
    finally:
        service.store.close()


def test_a_fingerprint_is_also_accepted_as_the_authorization_at_filing(tmp_path: Path) -> None:
    township = make_agent(tmp_path / "agent")
    service = open_agent(tmp_path / "agent", PASSPHRASE, FakeClock(NOW))
    try:
        photo = fingerprint_photo_png()
        filed = service.file_request(RequestForm(
            applicant_name="李桂兰", id_number=with_check_char("43052419480312002"), phone="13907310001", address="东山村",
            catalog_code=VILLAGE_ITEM.code, materials_brought=[m.id for m in VILLAGE_ITEM.materials],
            authorization_method="fingerprint", authorization_evidence=photo))
        auth = service.store.filing_record(filed.matter_id).request_filed.authorization
        assert auth.method == records_pb2.AUTHORIZATION_METHOD_FINGERPRINT
        assert open_sealed(township.seed(), auth.sealed_evidence) == photo
    finally:
        service.store.close()
