"""Records coming down from the county to a township over real gRPC: a record in the county's down log
that the county did not sign is refused (the pull cursor stays before it, page after page), and a
genuine county decision is applied exactly once even when the same pull is replayed."""
from __future__ import annotations

import os

import grpc
import pytest

from hub.handling import Outcome
from shared.clock import to_unix_ms
from shared.domain.catalog import MatterKind
from shared.domain.handling import Stage
from shared.errors import EnvelopeError
from shared.relay.server import SERVICE_NAME, pull_signing_bytes
from shared.signing import Signer
from shared.wire.v1 import envelope_pb2, records_pb2, relay_pb2
from tests.county_fixtures import COUNTY_STAFF, County, LinkedTownship
from tests.town_fixtures import OPERATOR, VillageDevice

REFUSED = "上级下发的记录签名无效"


def _escalated(town: LinkedTownship, hub: County) -> str:
    """A reported matter escalated, taken in by the county, and its receipt folded: stage ESCALATED."""
    matter_id = VillageDevice(town.app).file("MZ-001")
    town.app.handling.classify(matter_id, MatterKind.REPORTED, actor=OPERATOR)
    town.app.handling.escalate(matter_id, "初审通过", actor=OPERATOR)
    town.sync()
    hub.app.handling.run_once()
    town.sync()
    assert town.app.handling.page(matter_id).matter.stage is Stage.ESCALATED
    return matter_id


def _approval(matter_id: str) -> records_pb2.Record:
    record = records_pb2.Record()
    record.decision.matter_id, record.decision.outcome = matter_id, records_pb2.DECISION_OUTCOME_APPROVED
    record.decision.reason = "准予"
    return record


def _forge_down(hub: County, town: LinkedTownship, record: records_pb2.Record, kind: str) -> int:
    """Put a record the county did not sign into its down log for this township; returns its cursor."""
    assert town.app.county_link is not None
    link_key = town.app.county_link.signer.key_id
    now_ms = to_unix_ms(hub.app.clock.now())
    forger = Signer.generate()
    if kind == "foreign-key":        # a well-formed chain link, signed and labelled by another key
        return hub.app.store.publish(forger, record, [link_key], now_ms=now_ms)
    # The county's key id on the label, another key's signature on the bytes.
    record.header.author_key_id, record.header.seq = hub.app.signer.key_id, 99
    payload = record.SerializeToString()
    env = envelope_pb2.Envelope(payload=payload, signature=forger.sign(payload), key_id=hub.app.signer.key_id)
    return hub.app.store.append(env, [link_key], now_ms=now_ms)


def _events(town: LinkedTownship, matter_id: str) -> list[tuple[str, str]]:
    return [(e.action, e.text_zh) for e in town.app.handling.page(matter_id).events]


@pytest.mark.parametrize("kind", ["foreign-key", "county-key-id-foreign-signature"])
def test_a_down_record_not_signed_by_the_county_is_refused_and_the_pull_cursor_stays_before_it(
        town: LinkedTownship, hub: County, kind: str) -> None:
    matter_id = _escalated(town, hub)
    assert town.app.county_link is not None
    outbox = town.app.county_link.outbox
    before, history = outbox.pull_cursor(), _events(town, matter_id)
    forged_at = _forge_down(hub, town, _approval(matter_id), kind)
    assert forged_at > before
    with pytest.raises(EnvelopeError, match=REFUSED):
        town.sync()
    assert outbox.pull_cursor() == before and outbox.unapplied_inbox() == []
    town.app.county_link.fold()
    assert town.app.handling.page(matter_id).matter.stage is Stage.ESCALATED
    assert _events(town, matter_id) == history


def test_a_forged_down_record_is_refused_again_on_every_later_pull_and_never_skipped(
        town: LinkedTownship, hub: County) -> None:
    # As on the village side (`SqlOutbox.apply_down`): the page holding it is refused whole and the
    # cursor stays, so each pull asks again; nothing in the township moves the cursor past it.
    matter_id = _escalated(town, hub)
    assert town.app.county_link is not None
    outbox = town.app.county_link.outbox
    before = outbox.pull_cursor()
    _forge_down(hub, town, _approval(matter_id), "foreign-key")
    for _ in range(3):
        with pytest.raises(EnvelopeError, match=REFUSED):
            town.client.sync_once()
        assert outbox.pull_cursor() == before and outbox.unapplied_inbox() == []
    town.app.county_link.fold()
    assert town.app.handling.page(matter_id).matter.stage is Stage.ESCALATED


def test_a_county_decision_applies_exactly_once_even_when_the_same_pull_is_replayed(
        town: LinkedTownship, hub: County) -> None:
    matter_id = _escalated(town, hub)
    assert town.app.county_link is not None
    outbox, link = town.app.county_link.outbox, town.app.county_link.signer
    before = outbox.pull_cursor()
    hub.app.handling.decide(matter_id, Outcome.APPROVE, actor=COUNTY_STAFF, reason="准予")
    town.sync()
    assert town.app.handling.page(matter_id).matter.stage is Stage.RESULT_READY
    after, history = outbox.pull_cursor(), _events(town, matter_id)
    assert after > before and [a for a, _ in history].count("county_decision") == 1

    # The same pull again (a retried pass, or a second township process that read the old cursor; each
    # signs afresh, since a replayed request is refused): the county serves the page again, and the
    # township keeps it only once.
    nonce, at_ms = os.urandom(16), to_unix_ms(hub.app.clock.now())
    request = relay_pb2.PullRequest(key_id=link.key_id, after_cursor=before, max_records=200, nonce=nonce,
                                    requested_at_ms=at_ms,
                                    signature=link.sign(pull_signing_bytes(link.key_id, before, 200, nonce, at_ms)))
    with grpc.insecure_channel(hub.address) as channel:
        pull = channel.unary_unary(f"/{SERVICE_NAME}/Pull", request_serializer=relay_pb2.PullRequest.SerializeToString,
                                   response_deserializer=relay_pb2.PullResponse.FromString)
        replayed = pull(request, timeout=5)
    kinds = [records_pb2.Record.FromString(e.payload).WhichOneof("body") for e in replayed.records]
    assert "decision" in kinds and replayed.next_cursor == after
    assert outbox.apply_down(list(replayed.records), replayed.next_cursor) == 0
    assert outbox.unapplied_inbox() == []
    town.sync()
    town.app.county_link.fold()
    assert outbox.pull_cursor() == after
    assert town.app.handling.page(matter_id).matter.stage is Stage.RESULT_READY
    assert _events(town, matter_id) == history


def test_the_township_status_says_in_chinese_that_syncing_stopped_at_a_record_the_county_did_not_sign(
        town: LinkedTownship, hub: County) -> None:
    import time

    matter_id = _escalated(town, hub)
    assert town.app.county_link is not None
    _forge_down(hub, town, _approval(matter_id), "foreign-key")
    town.client.start()          # the background sync loop, as `town-center serve` runs it
    try:
        end = time.monotonic() + 10
        while not town.app.county_link.status().last_error and time.monotonic() < end:
            time.sleep(0.05)
    finally:
        town.client.stop()
    error = town.app.county_link.status().last_error
    assert "未通过签名核验" in error and "县级" in error, error
