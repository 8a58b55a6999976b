"""A real village laptop files a request over real gRPC to a real township: the laptop's receipt,
one-time notice, application form and 委托书 are numbered and signed in the filing's transaction, and
the 交付签收单 in the sign-off's, each as a `DocumentIssued` record of the laptop's chain; the township
keeps those records and verifies a villager's receipt by its number and check code (or its HTML), and
refuses an altered one."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import func, select

from shared.documents.adapters import sql
from shared.documents.chain import verify_received
from shared.documents.content import short_hash
from shared.domain.catalog import MatterKind
from tests.integration.test_township_handling_round_trip import _loop
from tests.town_fixtures import OPERATOR
from tests.unit.test_village_services import form
from village_agent.services import Confirmation
from village_agent.store import ledger


def test_the_laptops_documents_are_issued_with_the_filing_and_sign_off_and_verified_at_the_township(
        tmp_path: Path) -> None:
    town, server, agent, client, clock = _loop(tmp_path)
    try:
        filed = agent.file_request(form())
        # Numbered with the filing, before anything is printed; each one a record of the laptop's chain.
        with agent.store.engine.connect() as conn:
            numbers = dict(conn.execute(select(sql.issued_document.c.kind, sql.issued_document.c.number)).all())
            kinds = [r.body_kind for r in conn.execute(select(ledger.c.body_kind).order_by(ledger.c.seq))]
        assert set(numbers) == {"collection_receipt", "one_time_notice", "application_form", "authorization"}
        assert kinds[-5:] == ["request_filed"] + ["document_issued"] * 4
        receipt = agent.documents.issue_or_load("receipt", filed.matter_id)
        assert receipt.number == numbers["collection_receipt"]         # the print is what the filing issued

        client.sync_once()
        town.services.approve(agent.signer.key_id, by="站长")
        client.sync_once()
        town.intake.run_once()
        documents = town.handling.documents
        assert documents is not None
        result = documents.verify(receipt.number, typed_hash=receipt.content_hash[:16])
        assert result.genuine and result.title == "代办收件回执" and "村代办员" in result.issuer_name
        assert not documents.verify(receipt.number, typed_hash="0" * 16).genuine
        with town.store.engine.connect() as conn:
            [kept] = sql.load_received(conn, receipt.number, {})
        assert verify_received(kept, html=receipt.html.encode("utf-8")).genuine
        altered = verify_received(kept, html=receipt.html.replace("李桂兰", "李桂英").encode("utf-8"))
        assert not altered.genuine and "不是同一份" in altered.problems[0]
        assert short_hash(receipt.content_hash) in receipt.html

        town.handling.classify(filed.matter_id, MatterKind.IMMEDIATE, actor=OPERATOR)
        clock.advance(dt.timedelta(hours=1))
        town.handling.record_result(filed.matter_id, approved=True, summary="已办结", actor=OPERATOR)
        client.sync_once()
        agent.hand_over(filed.matter_id, "证明已交本人")
        with agent.store.engine.connect() as conn:
            count = select(func.count()).select_from(sql.issued_document).where(sql.issued_document.c.kind == "handover")
            assert conn.execute(count).scalar() == 0          # not before the villager signs
        agent.sign_off(filed.matter_id, "satisfied", confirmation=Confirmation(
            "witness", witness_name="村委会 张主任", witness_statement="群众确认已收到"))
        handover = agent.documents.issue_or_load("handover", filed.matter_id)
        assert handover.content.title == "交付签收单" and "满意" in handover.html
        client.sync_once()
        town.intake.run_once()
        assert documents.verify(handover.number, typed_hash=handover.content_hash[:16]).genuine
    finally:
        server.stop(0)
        agent.store.close()
        town.close()
