"""A township on a real SQLite (or PostgreSQL) store with a fake clock, and village devices that
sign real chained records and push them through the township's real `RelayCore`."""
from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass, field

from shared.calendar import WorkingCalendar
from shared.clock import FakeClock, to_unix_ms
from shared.domain.handling import Actor, Role
from shared.envelope import GENESIS, ChainTip, sign_next
from shared.relay.ports import EnrollmentInfo
from shared.sealing import seal_to
from shared.signing import Signer
from shared.wire.v1 import records_pb2
from town_center.bootstrap import TownApp, build_app

# Monday 2026-11-23 09:00 in Beijing: a working day, in office hours.
MONDAY_9AM = dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC)
OPERATOR = Actor("wang", Role.OPERATOR)
BACKUP = Actor("li", Role.OPERATOR)
DIRECTOR = Actor("zhao", Role.DIRECTOR)


def township(db_url: str, *, start_at: dt.datetime = MONDAY_9AM, signer: Signer | None = None) -> TownApp:
    return build_app(db_url, signer or Signer.generate(), clock=FakeClock(start_at), calendar=WorkingCalendar())


@dataclass
class VillageDevice:
    app: TownApp
    village_code: str = "V001"
    signer: Signer = field(default_factory=Signer.generate)
    tip: ChainTip = GENESIS
    clock_off_by: dt.timedelta = dt.timedelta(0)   # how wrong the laptop's clock is

    def __post_init__(self) -> None:
        self.app.store.register_approved(self.signer.public_key, EnrollmentInfo(
            records_pb2.KEY_ROLE_VILLAGE_AGENT, f"代办员{self.village_code}", self.village_code, "T01", ""),
            by="test", now_ms=0)

    def send(self, record: records_pb2.Record) -> None:
        signed = sign_next(self.signer, record, self.tip, to_unix_ms(self.app.clock.now() + self.clock_off_by))
        response = self.app.core.push([signed.envelope])
        assert response.receipts, f"township refused the record: {response}"
        self.tip = signed.tip

    def file(self, catalog_code: str = "MZ-001", *, phone: str = "13800001111", lookup_hash: bytes = b"",
             materials: tuple[str, ...] = (), signature_png: bytes | None = None) -> str:
        matter_id = str(uuid.uuid4())
        details = records_pb2.ApplicantDetails(name="测试村民", id_number="110101199003070011", phone=phone, address="一组")
        record = records_pb2.Record()
        body = record.request_filed
        body.matter_id, body.catalog_code, body.village_code = matter_id, catalog_code, self.village_code
        body.intake_outcome = records_pb2.INTAKE_OUTCOME_ACCEPT
        body.applicant.id_number_masked = "1101**********0011"
        body.applicant.sealed_details = seal_to(self.app.signer.public_key, details.SerializeToString())
        body.applicant.sealed_to_key_id = self.app.signer.key_id
        body.materials_brought.extend(materials)
        if signature_png is not None:   # the villager's 委托 drawn on the pad, sealed to the township
            body.authorization.method = records_pb2.AUTHORIZATION_METHOD_DRAWN_SIGNATURE
            body.authorization.sealed_evidence = seal_to(self.app.signer.public_key, signature_png)
            body.authorization.sealed_to_key_id = self.app.signer.key_id
            body.authorization.evidence_sha256 = hashlib.sha256(signature_png).digest()
        if lookup_hash:
            body.lookup_code_hash = lookup_hash
        self.send(record)
        self.app.intake.run_once()
        return matter_id

    def rotated(self) -> VillageDevice:
        """The laptop's key rotates: the old key signs the new one in (the township approves it by that
        record); the returned device signs with the new key, on its own chain."""
        new = Signer.generate()
        record = records_pb2.Record()
        record.key_rotated.new_key_id, record.key_rotated.new_public_key = new.key_id, new.public_key
        self.send(record)
        successor = object.__new__(VillageDevice)   # no __post_init__: the rotation approved the key
        successor.app, successor.village_code, successor.signer = self.app, self.village_code, new
        successor.tip, successor.clock_off_by = GENESIS, self.clock_off_by
        return successor

    def village_record(self, kind: str, matter_id: str, **fields: object) -> None:
        record = records_pb2.Record()
        body = getattr(record, kind)
        body.matter_id = matter_id
        for name, value in fields.items():
            if isinstance(value, (list, tuple)):
                getattr(body, name).extend(value)
            else:
                setattr(body, name, value)
        self.send(record)
        self.app.intake.run_once()

    def down_records(self) -> list[records_pb2.Record]:
        envelopes, _ = self.app.store.read(self.signer.key_id, 0, 10_000)
        out = []
        for e in envelopes:
            r = records_pb2.Record()
            r.ParseFromString(e.payload)
            out.append(r)
        return out
