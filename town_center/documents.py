"""The township's written notices: issued in the transaction of the handling action that decides
them (`HandlingService.commit_in` calls `TownDocuments.issue_for`), numbered without gaps, signed
with the township key, rendered to HTML (the browser's A4 print view) and PDF (the archive), stored
with the matter and verified by number and hash (`/public/verify`, `town-center document verify`).

Which action issues what:
- classified 即办件 → 受理通知书; 承诺件 → 承诺件受理通知书; 补办件 → 补办件通知书 (一次性告知);
  退回件 → 退回件通知书; 联办件 → 联办件通知书; 上报件 → 上报件通知书;
- materials asked for while handling → 补办件通知书; an approved extension → 延期告知书;
- a township 不予批准 → 不予（行政）许可决定书.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from shared.clock import from_unix_ms, to_unix_ms
from shared.documents.adapters.archive import DocumentArchive, IssuerSettings
from shared.documents.adapters.tier import TierDocuments
from shared.documents.chain import document_record
from shared.documents.content import instant_zh
from shared.documents.drafts import (
    DocumentDraft,
    NoticeFacts,
    acceptance_draft,
    extension_draft,
    refusal_draft,
    returned_draft,
    supplement_draft,
)
from shared.documents.kinds import DocumentKind, IssuingTier
from shared.documents.signed import IssuedDocument
from shared.domain.catalog import CatalogItem, MatterKind, Tier
from shared.domain.handling import HandledMatter, RefusalKind
from town_center.store.tables import agent_key

if TYPE_CHECKING:
    from town_center.handling import Change, HandlingService

__all__ = ["TownDocuments", "KIND_OF_CLASSIFICATION", "add_document_commands"]

KIND_OF_CLASSIFICATION = {
    MatterKind.IMMEDIATE: DocumentKind.ACCEPTANCE,
    MatterKind.PROMISED: DocumentKind.PROMISED_ACCEPTANCE,
    MatterKind.SUPPLEMENT: DocumentKind.SUPPLEMENT,
    MatterKind.RETURNED: DocumentKind.RETURNED,
    MatterKind.JOINT: DocumentKind.JOINT,
    MatterKind.REPORTED: DocumentKind.REPORTED,
}
VERIFY_HINT = "核验真伪：在本中心办件查询页“文书核验”（/public/verify）输入文书编号和校验码"


class TownDocuments(TierDocuments):
    colleague_zh = "本中心工作人员"

    def __init__(self, handling: HandlingService) -> None:
        self.handling = handling
        self.archive = DocumentArchive(IssuingTier.TOWNSHIP, handling.signer, self.settings)

    # ------------------------------------------------------------------ settings

    def settings(self, conn: Connection | None = None) -> IssuerSettings:
        """The configured name, seal text and number prefix; until set, from the county link's name."""
        configured = self.configured_settings(conn)
        if configured is not None:
            return configured
        from town_center.county_link import LINK_META

        store = self.handling.store
        link = store.get_meta_in(conn, LINK_META) if conn is not None else store.get_meta(LINK_META)
        name = str(json.loads(link).get("township_name", "")) if link else ""
        if not name:
            return IssuerSettings("乡镇便民服务中心", "乡镇便民服务中心", "乡镇便民中心", VERIFY_HINT)
        return IssuerSettings(f"{name}便民服务中心", f"{name}人民政府便民服务中心", f"{name}便民中心", VERIFY_HINT)

    # ------------------------------------------------------------------ issuing (inside the action's transaction)

    def issue_for(self, conn: Connection, row: Any, before: HandledMatter, after: HandledMatter, change: Change,
                  *, now: dt.datetime, actor_label: str) -> list[IssuedDocument]:
        drafts = self._drafts(conn, row, before, after, change)
        # Listed on the matter page from the archive (not as history lines: the history is the actions').
        issued = [self.archive.issue_in(conn, draft, now=now) for draft in drafts]
        for draft, doc in zip(drafts, issued, strict=True):
            self.sign_into_chains(conn, doc, draft.kind, draft.matter_id, now=now, village_code=row.village_code)
        return issued

    def sign_into_chains(self, conn: Connection, doc: IssuedDocument, kind: DocumentKind, matter_id: str, *,
                         now: dt.datetime, village_code: str) -> None:
        """The document as a record of the township's own chain and, when linked, of its chain up to
        the county, in the transaction that allocated its number (docs/wire-v1.md "Written documents")."""
        from town_center.handling import INTERNAL_AUDIENCE

        handling = self.handling
        issued_ms = to_unix_ms(now)
        # As `HandlingService.commit_in`: signed at the township's present, so its chain's times never step back.
        sign_ms = max(issued_ms, to_unix_ms(handling.clock.now()))
        handling.store.publish_in(conn, handling.signer, document_record(doc, kind=kind, matter_id=matter_id,
                                                                         issued_at_ms=issued_ms),
                                  [INTERNAL_AUDIENCE], now_ms=sign_ms)
        if handling.up is not None:
            up = document_record(doc, kind=kind, matter_id=matter_id, issued_at_ms=issued_ms)
            up.audience.township_code, up.audience.village_code = handling.up.township_code, village_code
            handling.up.append_in(conn, up, now_ms=sign_ms)

    def _drafts(self, conn: Connection, row: Any, before: HandledMatter, after: HandledMatter,
                change: Change) -> list[DocumentDraft]:
        action = change.action
        kind = after.kind
        if action == "classify" and kind is not None:
            return [self._classified(conn, row, after, kind)]
        if action == "request_materials":
            return [supplement_draft(self._facts(conn, row, after), after.missing_materials, during_handling=True)]
        if action == "approve_extension" and after.clock is not None and after.clock.extensions:
            ext = after.clock.extensions[-1]
            due = after.clock.due_at(self.handling.calendar)
            return [extension_draft(self._facts(conn, row, after), reason=ext.reason,
                                    old_zh=ext.previous_limit.describe_zh(), new_zh=ext.new_limit.describe_zh(),
                                    statutory_zh=after.clock.statutory.describe_zh(),
                                    due_on=instant_zh(due) if due else "", approved_by=self._name(conn, ext.approver),
                                    tier_zh="本中心")]
        if action == "result" and change.refusal and after.refusal is RefusalKind.NOT_APPROVED:
            return [refusal_draft(self._facts(conn, row, after), after.result_summary,
                                  decided_by=self._name(conn, after.owner),
                                  approved_by=self._name(conn, after.refusal_approved_by))]
        return []

    def _classified(self, conn: Connection, row: Any, m: HandledMatter, kind: MatterKind) -> DocumentDraft:
        f = self._facts(conn, row, m)
        doc_kind = KIND_OF_CLASSIFICATION[kind]
        if kind is MatterKind.SUPPLEMENT:
            return supplement_draft(f, m.missing_materials, during_handling=False)
        if kind is MatterKind.RETURNED:
            return returned_draft(f, m.return_reason, approved_by=self._name(conn, m.refusal_approved_by))
        clock = m.clock
        due = clock.due_at(self.handling.calendar) if clock is not None and clock.start_at is not None else None
        item = self._item(m)
        county = item.hop(Tier.COUNTY).promised.describe_zh() if item is not None and Tier.COUNTY in item.limits else ""
        return acceptance_draft(
            f, doc_kind, limit_zh=clock.limit.describe_zh() if clock else "",
            statutory_zh=clock.statutory.describe_zh() if clock else "", due_on=instant_zh(due) if due else "",
            written_promise=m.written_promise, lead_window=m.lead_window, departments=m.departments,
            county_limit_zh=county if kind is MatterKind.REPORTED else "")

    def _item(self, m: HandledMatter) -> CatalogItem | None:
        catalog = self.handling.catalog
        return catalog.item(m.catalog_code) if m.catalog_code in catalog else None

    def _facts(self, conn: Connection, row: Any, m: HandledMatter) -> NoticeFacts:
        item = self._item(m)
        details = self.handling.applicant(m.matter_id, conn=conn)
        agent = conn.execute(select(agent_key.c.holder_name).where(agent_key.c.key_id == row.author_key_id)).scalar()
        return NoticeFacts(
            matter_id=m.matter_id, applicant_name=details.name if details is not None else "",
            matter_name=item.name if item is not None else "所申请事项",
            received_on=instant_zh(from_unix_ms(int(row.received_at_ms))),
            via=f"经村代办员{agent}报送" if agent else "经村代办员报送", handler=self._name(conn, m.owner),
            fee=item.fee if item is not None else "", legal_basis=item.legal_basis if item is not None else "",
            category=item.category if item is not None else "",
            extra_not_counted=tuple(f"{p.what}（依据：{p.basis}）" for p in item.not_counted) if item is not None else ())

    # ------------------------------------------------------------------ reading, printing, verifying (TierDocuments)

    def _store(self) -> Any:
        return self.handling.store

    def _issuers(self, conn: Connection) -> dict[str, str]:
        return received_issuers(self.handling.store, conn)


def received_issuers(store: Any, conn: Connection) -> dict[str, str]:
    """Who signed the documents the township receives, by name: its villages' agents and the county."""
    from town_center.county_link import LINK_META

    names = {k: f"村代办员{n}" if n else "村代办员电脑"
             for k, n in conn.execute(select(agent_key.c.key_id, agent_key.c.holder_name))}
    link = store.get_meta_in(conn, LINK_META)
    if link:
        names[str(json.loads(link).get("county_key_id", ""))] = "县政务服务中心"
    return names


def add_document_commands(subparsers: Any, add_home: Callable[[argparse.ArgumentParser], None],
                          db_url: Callable[[argparse.Namespace], str]) -> None:
    """`town-center document verify|issuer`."""
    from shared.documents.adapters.cli import add_document_commands as add
    from town_center.bootstrap import KEY_FILE_NAME
    from town_center.store import open_town_store

    add(subparsers, tier_zh="本乡镇", add_home=add_home, db_url=db_url, open_store=open_town_store,
        key_file_name=KEY_FILE_NAME, verify_hint=VERIFY_HINT, received_issuers=received_issuers)
