"""The county's written documents: issued in the transaction of the county act that decides them
(`CountyHandling._commit` and `issue_supervision` call in here), numbered without gaps, signed with
the county key, rendered to HTML (A4 print view) and PDF (the archive), listed on the county's
matter page and verified by number and hash (`/public/verify`, `county-hub document verify`).

- 不予批准 (a director's, or a delegated approver's approved by the director) → 不予（行政）许可决定书;
- 需补正材料 → 补办件通知书 (一次性告知, the county clock waits);
- an approved extension → 延期告知书 (003 第七条: the applicant is told in writing; the township hands it on);
- 督办 → 督办通知 to the township responsible;
- a 上报 taken in → 受理通知书 (the county's limit, due date and the periods not counted).
"""
from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from hub.store.tables import county_matter, township_key, tracked_matter
from shared.clock import from_unix_ms, to_unix_ms
from shared.documents.adapters.archive import DocumentArchive, IssuerSettings
from shared.documents.adapters.tier import TierDocuments
from shared.documents.chain import document_record
from shared.documents.content import instant_zh
from shared.documents.drafts import (
    DocumentDraft,
    NoticeFacts,
    extension_draft,
    refusal_draft,
    supervision_draft,
    supplement_draft,
    upper_acceptance_draft,
)
from shared.documents.kinds import DocumentKind, IssuingTier
from shared.documents.signed import IssuedDocument
from shared.domain.catalog import CatalogItem
from shared.domain.handling import HandledMatter
from shared.sealing import open_sealed
from shared.wire.v1 import records_pb2

if TYPE_CHECKING:
    from hub.handling import CountyHandling

__all__ = ["CountyDocuments", "add_document_commands", "VERIFY_HINT"]

VERIFY_HINT = "核验真伪：在县政务服务中心“文书核验”页（/public/verify）输入文书编号和校验码"
_HOP_ZH = {"township": "乡镇办理环节", "county": "县级审批环节", "village": "村级报送环节"}


class CountyDocuments(TierDocuments):
    colleague_zh = "县政务服务中心工作人员"

    def __init__(self, handling: CountyHandling) -> None:
        self.handling = handling
        self.archive = DocumentArchive(IssuingTier.COUNTY, handling.signer, self.settings)

    def settings(self, conn: Connection | None = None) -> IssuerSettings:
        configured = self.configured_settings(conn)
        if configured is not None:
            return configured
        return IssuerSettings("县政务服务中心", "县人民政府政务服务中心", "县政务中心", VERIFY_HINT)

    # ------------------------------------------------------------------ issuing (inside the act's transaction)

    def issue_for(self, conn: Connection, row: Any, before: HandledMatter, after: HandledMatter, action: str, *,
                  now: dt.datetime) -> list[IssuedDocument]:
        drafts = self._drafts(conn, row, before, after, action)
        issued = [self.archive.issue_in(conn, d, now=now) for d in drafts]
        for draft, doc in zip(drafts, issued, strict=True):
            self._sign_into_chain(conn, doc, draft.kind, draft.matter_id, row.township_key_id, row.township_code, now)
        return issued

    def _sign_into_chain(self, conn: Connection, doc: IssuedDocument, kind: DocumentKind, matter_id: str,
                         township_key_id: str, township_code: str, now: dt.datetime) -> None:
        """The document as a record of the county's chain to the township concerned, in the transaction
        that allocated its number: the township that hands a county notice on can check it (docs/wire-v1.md
        "Written documents")."""
        record = document_record(doc, kind=kind, matter_id=matter_id, issued_at_ms=to_unix_ms(now))
        self.handling._publish(conn, record, township_key_id, township_code, to_unix_ms(now))

    def _drafts(self, conn: Connection, row: Any, before: HandledMatter, after: HandledMatter,
                action: str) -> list[DocumentDraft]:
        if action in ("refuse", "approve_refusal") and after.approved is False:
            pending = before.pending_refusal
            decided_by = pending.requested_by if action == "approve_refusal" and pending is not None else after.owner
            return [refusal_draft(self._facts(conn, row, after), after.result_summary,
                                  decided_by=self._name(conn, decided_by),
                                  approved_by=self._name(conn, after.refusal_approved_by))]
        if action == "needs_materials" and after.missing_materials:
            return [supplement_draft(self._facts(conn, row, after), after.missing_materials, during_handling=True)]
        if action in ("extend", "approve_extension") and after.clock is not None and after.clock.extensions \
                and (before.clock is None or len(before.clock.extensions) < len(after.clock.extensions)):
            ext = after.clock.extensions[-1]
            due = after.clock.due_at(self.handling.calendar)
            return [extension_draft(self._facts(conn, row, after), reason=ext.reason,
                                    old_zh=ext.previous_limit.describe_zh(), new_zh=ext.new_limit.describe_zh(),
                                    statutory_zh=after.clock.statutory.describe_zh(),
                                    due_on=instant_zh(due) if due else "", approved_by=self._name(conn, ext.approver),
                                    tier_zh="县级")]
        return []

    def issue_accepted_in(self, conn: Connection, matter: HandledMatter, *, now: dt.datetime) -> IssuedDocument:
        """受理通知书 when the county takes a 上报 in, in the intake's transaction."""
        row = conn.execute(select(county_matter).where(county_matter.c.matter_id == matter.matter_id)).one()
        clock = matter.clock
        due = clock.due_at(self.handling.calendar) if clock is not None and clock.start_at is not None else None
        draft = upper_acceptance_draft(self._facts(conn, row, matter), accepted_on=instant_zh(now),
                                       limit_zh=clock.limit.describe_zh() if clock else "",
                                       statutory_zh=clock.statutory.describe_zh() if clock else "",
                                       due_on=instant_zh(due) if due else "")
        doc = self.archive.issue_in(conn, draft, now=now)
        self._sign_into_chain(conn, doc, draft.kind, draft.matter_id, row.township_key_id, row.township_code, now)
        return doc

    def issue_supervision_in(self, conn: Connection, *, matter_id: str, township_key_id: str, message: str,
                             hop_tier: str, overdue_working_days: int, issued_by: str, now: dt.datetime) -> IssuedDocument:
        township = conn.execute(select(township_key.c.holder_name).where(township_key.c.key_id == township_key_id)).scalar()
        code = conn.execute(select(county_matter.c.catalog_code).where(county_matter.c.matter_id == matter_id)).scalar() \
            or conn.execute(select(tracked_matter.c.catalog_code).where(tracked_matter.c.matter_id == matter_id)).scalar()
        item = self._item(str(code or ""))
        draft = supervision_draft(matter_id, township_name=f"{township}便民服务中心" if township else "乡镇便民服务中心",
                                  matter_name=item.name if item is not None else "所办事项", message=message,
                                  hop_zh=_HOP_ZH.get(hop_tier, "乡镇办理环节"),
                                  overdue_working_days=overdue_working_days, issued_by=self._name(conn, issued_by))
        doc = self.archive.issue_in(conn, draft, now=now)
        code = conn.execute(select(township_key.c.township_code).where(township_key.c.key_id == township_key_id)).scalar()
        self._sign_into_chain(conn, doc, draft.kind, matter_id, township_key_id, str(code or ""), now)
        return doc

    def _item(self, code: str) -> CatalogItem | None:
        catalog = self.handling.catalog
        return catalog.item(code) if code in catalog else None

    def _facts(self, conn: Connection, row: Any, m: HandledMatter) -> NoticeFacts:
        item = self._item(row.catalog_code)
        name = ""
        if row.sealed_applicant:
            try:
                name = records_pb2.ApplicantDetails.FromString(
                    open_sealed(self.handling.signer.seed(), bytes(row.sealed_applicant))).name
            except Exception:  # noqa: BLE001 - sealed to another county key: the notice says 申请人
                name = ""
        township = conn.execute(select(township_key.c.holder_name)
                                .where(township_key.c.key_id == row.township_key_id)).scalar()
        return NoticeFacts(
            matter_id=m.matter_id, applicant_name=name, matter_name=item.name if item is not None else "所申请事项",
            received_on=instant_zh(from_unix_ms(int(row.township_received_at_ms))),
            via=f"经{township}便民服务中心上报县政务服务中心" if township else "经乡镇便民服务中心上报县政务服务中心",
            handler=self._name(conn, m.owner), fee=item.fee if item is not None else "",
            legal_basis=item.legal_basis if item is not None else "", category=item.category if item is not None else "",
            extra_not_counted=tuple(f"{p.what}（依据：{p.basis}）" for p in item.not_counted) if item is not None else ())

    # ------------------------------------------------------------------ reading, printing, verifying (TierDocuments)

    def _store(self) -> Any:
        return self.handling.store

    def _issuers(self, conn: Connection) -> dict[str, str]:
        return received_issuers(self.handling.store, conn)


def received_issuers(store: Any, conn: Connection) -> dict[str, str]:
    """Who signed the documents the county receives, by name: its townships' centers."""
    return {k: f"{n}便民服务中心" for k, n in conn.execute(select(township_key.c.key_id, township_key.c.holder_name))}


def add_document_commands(subparsers: Any, add_home: Callable[[argparse.ArgumentParser], None],
                          db_url: Callable[[argparse.Namespace], str]) -> None:
    """`county-hub document verify|issuer`."""
    from hub.bootstrap import KEY_FILE_NAME
    from hub.store import open_hub_store
    from shared.documents.adapters.cli import add_document_commands as add

    add(subparsers, tier_zh="县级", add_home=add_home, db_url=db_url, open_store=open_hub_store,
        key_file_name=KEY_FILE_NAME, verify_hint=VERIFY_HINT, received_issuers=received_issuers)
